/**
 * The functional op API (`add(a, b)`, `matmul(a, b)`...). Each is the Tensor method of the same
 * name; numbers are accepted wherever a tensor operand is, and multi-tensor ops live here.
 */
import { checkAxis, describe } from './args.js';
import { ArgumentError } from './errors.js';
import { scalar } from './creation.js';
import { call } from './runtime.js';
import { assertTensor, fromHandle, Tensor, tensorArg, type DType } from './tensor.js';

type Operand = Tensor | number;

function asTensor(x: Operand): [Tensor, boolean] {
  if (x instanceof Tensor) return [x, false];
  if (typeof x === 'number') return [scalar(x), true];
  throw new ArgumentError(`expected a Tensor or a number, got ${describe(x)}`);
}

/** The tensor argument of a functional op (a typed error, not "x.neg is not a function"). */
const T = (x: Tensor, op: string): Tensor => tensorArg(x, `${op}()`);

function withTensors<T>(a: Operand, f: (a: Tensor) => T): T {
  const [t, temp] = asTensor(a);
  try {
    return f(t);
  } finally {
    if (temp) t.dispose();
  }
}

/** Elementwise a + b with NumPy broadcasting (a number is a scalar). */
export const add = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.add(b));
/** Elementwise a − b with NumPy broadcasting. */
export const sub = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.sub(b));
/** Elementwise a · b with NumPy broadcasting. */
export const mul = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.mul(b));
/** Elementwise a / b with NumPy broadcasting. */
export const div = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.div(b));
/** Elementwise a raised to b, with NumPy broadcasting. */
export const pow = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.pow(b));
/** Elementwise maximum of a and b, with NumPy broadcasting. */
export const maximum = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.maximum(b));
/** Elementwise minimum of a and b, with NumPy broadcasting. */
export const minimum = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.minimum(b));

/** Elementwise −x. */
export const neg = (x: Tensor): Tensor => T(x, 'neg').neg();
/** Elementwise eˣ (the engine's own vector code: the same bits in every runtime). */
export const exp = (x: Tensor): Tensor => T(x, 'exp').exp();
/** Elementwise natural logarithm. */
export const log = (x: Tensor): Tensor => T(x, 'log').log();
/** Elementwise square root. */
export const sqrt = (x: Tensor): Tensor => T(x, 'sqrt').sqrt();
/** Elementwise absolute value. */
export const abs = (x: Tensor): Tensor => T(x, 'abs').abs();
/** Elementwise x². */
export const square = (x: Tensor): Tensor => T(x, 'square').square();
/** Elementwise max(x, 0). */
export const relu = (x: Tensor): Tensor => T(x, 'relu').relu();
/** Elementwise 1 / (1 + e⁻ˣ). */
export const sigmoid = (x: Tensor): Tensor => T(x, 'sigmoid').sigmoid();
/** Elementwise hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor => T(x, 'tanh').tanh();
/** Elementwise x for x > 0, alpha · x otherwise (PyTorch's `leaky_relu`). */
export const leakyRelu = (x: Tensor, alpha = 0.01): Tensor => T(x, 'leakyRelu').leakyRelu(alpha);
/** Elementwise x for x > 0, alpha · (eˣ − 1) otherwise (PyTorch's `elu`). */
export const elu = (x: Tensor, alpha = 1): Tensor => T(x, 'elu').elu(alpha);
/** Elementwise GELU: x · Φ(x), or its tanh approximation with `approximate` (PyTorch's `gelu`). */
export const gelu = (x: Tensor, approximate = false): Tensor => T(x, 'gelu').gelu(approximate);
/** Elementwise x · sigmoid(x) (SiLU, also called swish). */
export const silu = (x: Tensor): Tensor => T(x, 'silu').silu();
/** Elementwise log(1 + eˣ), computed stably. */
export const softplus = (x: Tensor): Tensor => T(x, 'softplus').softplus();
/** Elementwise log(1 + x), accurate for small x. */
export const log1p = (x: Tensor): Tensor => T(x, 'log1p').log1p();
/** Elementwise x limited to [min, max] (either bound may be left out); its gradient is 0 at the bounds, as PyTorch's. */
export const clamp = (x: Tensor, min?: number, max?: number): Tensor => T(x, 'clamp').clamp(min, max);

/** Sum over `axis` (all axes by default); `keepDims` keeps reduced axes as size 1. The sum of nothing is 0. */
export const sum = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'sum').sum(axis, keepDims);
/** Mean over `axis` (all axes by default); the mean of nothing is NaN, as PyTorch's. */
export const mean = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'mean').mean(axis, keepDims);
/** Maximum over `axis` (all axes by default); a ShapeError on an empty reduction. */
export const max = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'max').max(axis, keepDims);
/** Minimum over `axis` (all axes by default); a ShapeError on an empty reduction. */
export const min = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'min').min(axis, keepDims);
/** Index of the maximum along `axis` (default the last), int32. */
export const argMax = (x: Tensor, axis = -1, keepDims = false): Tensor => T(x, 'argMax').argMax(axis, keepDims);
/** Softmax along `axis` (default the last), numerically stable. */
export const softmax = (x: Tensor, axis = -1): Tensor => T(x, 'softmax').softmax(axis);
/** Log-softmax along `axis` (default the last), numerically stable. */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => T(x, 'logSoftmax').logSoftmax(axis);

/** Matrix product; batched over leading axes, which broadcast. */
export const matmul = (a: Tensor, b: Tensor): Tensor => T(a, 'matmul').matmul(b);
/** The same elements in a new shape (a view when the tensor is contiguous); one dimension may be -1. */
export const reshape = (x: Tensor, shape: number[]): Tensor => T(x, 'reshape').reshape(shape);
/** Reorders the axes (a view): output axis i is input axis perm[i]. */
export const permute = (x: Tensor, perm: number[]): Tensor => T(x, 'permute').permute(perm);
/** Swaps two axes (default the last two; a view). */
export const transpose = (x: Tensor, a = -2, b = -1): Tensor => T(x, 'transpose').transpose(a, b);
/** The sub-tensor from `begin` to `end` (exclusive) with optional `step` per axis (a view). */
export const slice = (x: Tensor, begin: number[], end?: number[], step?: number[]): Tensor => T(x, 'slice').slice(begin, end, step);
/** The entries at `indices` (int32, 1-D) along `axis`. */
export const indexSelect = (x: Tensor, axis: number, indices: Tensor): Tensor => T(x, 'indexSelect').indexSelect(axis, indices);
/** Per position, the entry at the index given by `indices` along `axis` (PyTorch's `gather`). */
export const gather = (x: Tensor, axis: number, indices: Tensor): Tensor => T(x, 'gather').gather(axis, indices);
/** Broadcasts size-1 axes to `shape` without copying (a view). */
export const expand = (x: Tensor, shape: number[]): Tensor => T(x, 'expand').expand(shape);
/** A copy converted to `dtype`. */
export const cast = (x: Tensor, dtype: DType): Tensor => T(x, 'cast').cast(dtype);

/** Joins tensors along `axis`. */
export function concat(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ArgumentError('concat needs a non-empty array of tensors');
  checkAxis(axis, 'concat(): axis');
  const hs = Uint32Array.from(tensors.map((t, i) => {
    assertTensor(t, `concat: element ${i} must be a Tensor`);
    return t.handle;
  }));
  return fromHandle(call((e) => e.op_concat(hs, axis)));
}

/** Stacks same-shape tensors along a new axis. */
export function stack(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ArgumentError('stack needs a non-empty array of tensors');
  checkAxis(axis, 'stack(): axis');
  tensors.forEach((t, i) => assertTensor(t, `stack: element ${i} must be a Tensor`));
  const expanded: Tensor[] = [];
  try {
    for (const t of tensors) expanded.push(t.expandDims(axis));
    return concat(expanded, axis);
  } finally {
    for (const t of expanded) t.dispose();
  }
}

/** `cond != 0 ? a : b`, broadcasting; gradients flow to the chosen side. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  assertTensor(cond, 'where() needs a Tensor condition');
  return withTensors(a, (ta) => withTensors(b, (tb) => fromHandle(call((e) => e.op_where(cond.handle, ta.handle, tb.handle)))));
}

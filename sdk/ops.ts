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

export const add = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.add(b));
export const sub = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.sub(b));
export const mul = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.mul(b));
export const div = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.div(b));
export const pow = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.pow(b));
export const maximum = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.maximum(b));
export const minimum = (a: Operand, b: Operand): Tensor => withTensors(a, (x) => x.minimum(b));

export const neg = (x: Tensor): Tensor => T(x, 'neg').neg();
export const exp = (x: Tensor): Tensor => T(x, 'exp').exp();
export const log = (x: Tensor): Tensor => T(x, 'log').log();
export const sqrt = (x: Tensor): Tensor => T(x, 'sqrt').sqrt();
export const abs = (x: Tensor): Tensor => T(x, 'abs').abs();
export const square = (x: Tensor): Tensor => T(x, 'square').square();
export const relu = (x: Tensor): Tensor => T(x, 'relu').relu();
export const sigmoid = (x: Tensor): Tensor => T(x, 'sigmoid').sigmoid();
export const tanh = (x: Tensor): Tensor => T(x, 'tanh').tanh();
export const leakyRelu = (x: Tensor, alpha = 0.01): Tensor => T(x, 'leakyRelu').leakyRelu(alpha);
export const elu = (x: Tensor, alpha = 1): Tensor => T(x, 'elu').elu(alpha);
export const gelu = (x: Tensor, approximate = false): Tensor => T(x, 'gelu').gelu(approximate);
export const silu = (x: Tensor): Tensor => T(x, 'silu').silu();
export const softplus = (x: Tensor): Tensor => T(x, 'softplus').softplus();
export const log1p = (x: Tensor): Tensor => T(x, 'log1p').log1p();
export const clamp = (x: Tensor, min?: number, max?: number): Tensor => T(x, 'clamp').clamp(min, max);

export const sum = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'sum').sum(axis, keepDims);
export const mean = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'mean').mean(axis, keepDims);
export const max = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'max').max(axis, keepDims);
export const min = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => T(x, 'min').min(axis, keepDims);
export const argMax = (x: Tensor, axis = -1, keepDims = false): Tensor => T(x, 'argMax').argMax(axis, keepDims);
export const softmax = (x: Tensor, axis = -1): Tensor => T(x, 'softmax').softmax(axis);
export const logSoftmax = (x: Tensor, axis = -1): Tensor => T(x, 'logSoftmax').logSoftmax(axis);

export const matmul = (a: Tensor, b: Tensor): Tensor => T(a, 'matmul').matmul(b);
export const reshape = (x: Tensor, shape: number[]): Tensor => T(x, 'reshape').reshape(shape);
export const permute = (x: Tensor, perm: number[]): Tensor => T(x, 'permute').permute(perm);
export const transpose = (x: Tensor, a = -2, b = -1): Tensor => T(x, 'transpose').transpose(a, b);
export const slice = (x: Tensor, begin: number[], end?: number[], step?: number[]): Tensor => T(x, 'slice').slice(begin, end, step);
export const indexSelect = (x: Tensor, axis: number, indices: Tensor): Tensor => T(x, 'indexSelect').indexSelect(axis, indices);
export const gather = (x: Tensor, axis: number, indices: Tensor): Tensor => T(x, 'gather').gather(axis, indices);
export const expand = (x: Tensor, shape: number[]): Tensor => T(x, 'expand').expand(shape);
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

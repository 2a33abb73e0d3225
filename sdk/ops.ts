/**
 * The functional op API (`add(a, b)`, `matmul(a, b)`...). Each is the Tensor method of the same
 * name; numbers are accepted wherever a tensor operand is, and multi-tensor ops live here.
 */
import { ArgumentError } from './errors.js';
import { scalar } from './creation.js';
import { call } from './runtime.js';
import { Tensor, type DType } from './tensor.js';

type Operand = Tensor | number;

function asTensor(x: Operand): [Tensor, boolean] {
  if (x instanceof Tensor) return [x, false];
  if (typeof x === 'number') return [scalar(x), true];
  throw new ArgumentError(`expected a Tensor or a number, got ${x === null ? 'null' : typeof x}`);
}

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

export const neg = (x: Tensor): Tensor => x.neg();
export const exp = (x: Tensor): Tensor => x.exp();
export const log = (x: Tensor): Tensor => x.log();
export const sqrt = (x: Tensor): Tensor => x.sqrt();
export const abs = (x: Tensor): Tensor => x.abs();
export const square = (x: Tensor): Tensor => x.square();
export const relu = (x: Tensor): Tensor => x.relu();
export const sigmoid = (x: Tensor): Tensor => x.sigmoid();
export const tanh = (x: Tensor): Tensor => x.tanh();
export const leakyRelu = (x: Tensor, alpha = 0.01): Tensor => x.leakyRelu(alpha);
export const elu = (x: Tensor, alpha = 1): Tensor => x.elu(alpha);
export const gelu = (x: Tensor, approximate = false): Tensor => x.gelu(approximate);
export const silu = (x: Tensor): Tensor => x.silu();
export const softplus = (x: Tensor): Tensor => x.softplus();
export const log1p = (x: Tensor): Tensor => x.log1p();
export const clamp = (x: Tensor, min?: number, max?: number): Tensor => x.clamp(min, max);

export const sum = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => x.sum(axis, keepDims);
export const mean = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => x.mean(axis, keepDims);
export const max = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => x.max(axis, keepDims);
export const min = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => x.min(axis, keepDims);
export const argMax = (x: Tensor, axis = -1, keepDims = false): Tensor => x.argMax(axis, keepDims);
export const softmax = (x: Tensor, axis = -1): Tensor => x.softmax(axis);
export const logSoftmax = (x: Tensor, axis = -1): Tensor => x.logSoftmax(axis);

export const matmul = (a: Tensor, b: Tensor): Tensor => a.matmul(b);
export const reshape = (x: Tensor, shape: number[]): Tensor => x.reshape(shape);
export const permute = (x: Tensor, perm: number[]): Tensor => x.permute(perm);
export const transpose = (x: Tensor, a = -2, b = -1): Tensor => x.transpose(a, b);
export const slice = (x: Tensor, begin: number[], end?: number[], step?: number[]): Tensor => x.slice(begin, end, step);
export const indexSelect = (x: Tensor, axis: number, indices: Tensor): Tensor => x.indexSelect(axis, indices);
export const gather = (x: Tensor, axis: number, indices: Tensor): Tensor => x.gather(axis, indices);
export const expand = (x: Tensor, shape: number[]): Tensor => x.expand(shape);
export const cast = (x: Tensor, dtype: DType): Tensor => x.cast(dtype);

/** Joins tensors along `axis`. */
export function concat(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ArgumentError('concat needs a non-empty array of tensors');
  const hs = Uint32Array.from(tensors.map((t) => {
    if (!(t instanceof Tensor)) throw new ArgumentError('concat: every element must be a Tensor');
    return t.handle;
  }));
  return new Tensor(call((e) => e.op_concat(hs, axis)));
}

/** Stacks same-shape tensors along a new axis. */
export function stack(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ArgumentError('stack needs a non-empty array of tensors');
  const expanded = tensors.map((t) => t.expandDims(axis));
  try {
    return concat(expanded, axis);
  } finally {
    for (const t of expanded) t.dispose();
  }
}

/** `cond != 0 ? a : b`, broadcasting; gradients flow to the chosen side. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  return withTensors(a, (ta) => withTensors(b, (tb) => new Tensor(call((e) => e.op_where(cond.handle, ta.handle, tb.handle)))));
}

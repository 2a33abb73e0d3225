/** Reading tensors (or plain `{ data, shape }` arrays) into checked host arrays for the pixel code. */
import { ArgumentError, ShapeError } from '../errors.js';
import { describe } from '../args.js';
import { isTensor, type Tensor } from '../tensor.js';

/** Values with their shape, e.g. `{ data: Float32Array, shape: [28, 28, 1] }`, for data not in a tensor. */
export interface ArrayData {
  /** The values, row-major; length must equal the product of `shape`. */
  data: ArrayLike<number>;
  /** Dimensions of the values. */
  shape: number[];
}
/** What the viz functions read: a tensor (copied out, not disposed) or an `ArrayData`. */
export type VizInput = Tensor | ArrayData;

/** The values and shape of `x`, every value checked finite (a NaN would otherwise paint silently). */
export function readInput(x: unknown, what: string): { data: ArrayLike<number>; shape: number[] } {
  let data: ArrayLike<number>;
  let shape: number[];
  if (isTensor(x)) {
    shape = x.shape;
    data = x.dataSync();
  } else if (x !== null && typeof x === 'object' && 'data' in x && 'shape' in x) {
    const a = x as ArrayData;
    if (!Array.isArray(a.shape) || !a.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new ArgumentError(`${what}: shape must be an array of sizes, got ${describe(a.shape)}`);
    }
    if (!(Array.isArray(a.data) || (ArrayBuffer.isView(a.data) && !(a.data instanceof DataView)))) {
      throw new ArgumentError(`${what}: data must be an array or typed array of numbers, got ${describe(a.data)}`);
    }
    shape = a.shape.slice();
    data = a.data as ArrayLike<number>;
    const n = shape.reduce((p, d) => p * d, 1);
    if (data.length !== n) throw new ShapeError(`${what}: data has ${data.length} values but shape [${shape.join(', ')}] needs ${n}`);
  } else {
    throw new ArgumentError(`${what} must be a Tensor or { data, shape }, got ${describe(x)}`);
  }
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`${what} holds a non-finite value (${describe(v)}) at flat index ${i}`);
  }
  return { data, shape };
}

/** `[H, W, C]` or `[1, H, W, C]` (one NHWC example) → its sizes; `what` names it in errors. */
export function hwc(shape: number[], what: string): [number, number, number] {
  const s = shape.length === 4 && shape[0] === 1 ? shape.slice(1) : shape;
  if (s.length !== 3) throw new ShapeError(`${what} must be one NHWC example [H, W, C] or [1, H, W, C], got [${shape.join(', ')}]`);
  if (s[0] === 0 || s[1] === 0 || s[2] === 0) throw new ShapeError(`${what} [${shape.join(', ')}] is empty`);
  return [s[0], s[1], s[2]];
}

/** One of the allowed strings. */
export function checkChoice<T extends string>(v: unknown, what: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new ArgumentError(`${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(v)}`);
  }
  return v as T;
}

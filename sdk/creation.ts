/** Creating tensors: from JS data, constants, ranges, and seeded random streams. */
import { ArgumentError, ShapeError } from './errors.js';
import { call } from './runtime.js';
import { dtypeCode, Tensor, type DataArray, type DType, type NestedArray, type TensorLike } from './tensor.js';

function inferShape(v: TensorLike): number[] {
  const shape: number[] = [];
  let cur: unknown = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0];
  }
  if (ArrayBuffer.isView(cur)) shape.push((cur as DataArray).length);
  return shape;
}

function flatten(v: TensorLike, shape: number[], out: number[], depth = 0, path = ''): void {
  if (depth === shape.length) {
    if (typeof v !== 'number') throw new ShapeError(`tensor(): expected a number at ${path || 'the top level'}, got ${Array.isArray(v) ? 'an array' : typeof v}`);
    out.push(v);
    return;
  }
  const arr = v as NestedArray | DataArray;
  if (!(Array.isArray(arr) || ArrayBuffer.isView(arr)) || arr.length !== shape[depth]) {
    throw new ShapeError(`tensor(): ragged nested array: ${path || 'the top level'} should have ${shape[depth]} entries`);
  }
  for (let i = 0; i < arr.length; i++) flatten(arr[i] as TensorLike, shape, out, depth + 1, `${path}[${i}]`);
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkShape(shape: number[]): Uint32Array {
  if (!Array.isArray(shape)) throw new ShapeError(`shape must be an array, got ${String(shape)}`);
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape [${shape.join(', ')}]`);
  return Uint32Array.from(shape);
}

/**
 * A tensor from JS data: a number, nested arrays, or a typed array (with `shape`).
 * The dtype follows a typed array (Int32Array -> int32, Int8Array -> int8), else float32.
 */
export function tensor(values: TensorLike, shape?: number[], dtype?: DType): Tensor {
  let flat: DataArray | number[];
  let inferred: number[];
  if (typeof values === 'number') {
    flat = [values];
    inferred = [];
  } else if (ArrayBuffer.isView(values)) {
    flat = values;
    inferred = [values.length];
  } else if (Array.isArray(values)) {
    inferred = inferShape(values);
    const out: number[] = [];
    flatten(values, inferred, out);
    flat = out;
  } else {
    throw new ArgumentError(`tensor() takes numbers, nested arrays or typed arrays, got ${typeof values}`);
  }
  const s = shape ?? inferred;
  const n = product(s);
  if (n !== flat.length) {
    throw new ShapeError(`tensor(): ${flat.length} values cannot fill shape [${s.join(', ')}] (${n} elements)`);
  }
  const d: DType = dtype ?? (flat instanceof Int32Array ? 'int32' : flat instanceof Int8Array ? 'int8' : 'float32');
  const sh = checkShape(s);
  switch (d) {
    case 'int32': {
      const data = flat instanceof Int32Array ? flat : Int32Array.from(flat as ArrayLike<number>, (x) => {
        if (!Number.isInteger(x)) throw new ArgumentError(`int32 tensor values must be integers, got ${x}`);
        return x;
      });
      return new Tensor(call((e) => e.tensor_from_i32(data, sh)));
    }
    case 'int8': {
      const data = flat instanceof Int8Array ? flat : Int8Array.from(flat as ArrayLike<number>, (x) => {
        if (!Number.isInteger(x) || x < -128 || x > 127) throw new ArgumentError(`int8 tensor values must be integers in [-128, 127], got ${x}`);
        return x;
      });
      return new Tensor(call((e) => e.tensor_from_i8(data, sh)));
    }
    case 'float32': {
      const data = flat instanceof Float32Array ? flat : Float32Array.from(flat as ArrayLike<number>);
      return new Tensor(call((e) => e.tensor_from_f32(data, sh)));
    }
    default:
      dtypeCode(d);
      throw new ArgumentError(`unknown dtype ${String(d)}`);
  }
}

export function scalar(v: number, dtype: DType = 'float32'): Tensor {
  return tensor(v, [], dtype);
}

export function full(shape: number[], value: number, dtype: DType = 'float32'): Tensor {
  const sh = checkShape(shape);
  const c = dtypeCode(dtype);
  return new Tensor(call((e) => e.tensor_full(sh, value, c)));
}
export function zeros(shape: number[], dtype: DType = 'float32'): Tensor {
  return full(shape, 0, dtype);
}
export function ones(shape: number[], dtype: DType = 'float32'): Tensor {
  return full(shape, 1, dtype);
}
export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, t.dtype);
}
export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, t.dtype);
}

/** `start, start+step, ...` below `stop`; `arange(n)` counts 0..n-1. */
export function arange(start: number, stop?: number, step = 1, dtype: DType = 'float32'): Tensor {
  const [a, b] = stop === undefined ? [0, start] : [start, stop];
  const c = dtypeCode(dtype);
  return new Tensor(call((e) => e.tensor_arange(a, b, step, c)));
}

/** Random options: an explicit seed gives a stream independent of the global one. */
export interface RandomOptions {
  seed?: number;
}

/** Seeds the global random stream (Philox4x32-10: the same values in every runtime). */
export function manualSeed(seed: number): void {
  call((e) => e.rng_seed(seed));
}

/**
 * The global stream's position (Philox: the 64-bit key set by `manualSeed` and the 64-bit block
 * counter, each as [low, high] 32-bit words). JSON-safe; `setRngState` continues the stream exactly
 * from it. Streams with an explicit `{ seed }` are independent of it.
 */
export interface RngState {
  key: [number, number];
  counter: [number, number];
}

export function getRngState(): RngState {
  const w = call((e) => e.rng_get_state());
  return { key: [w[0], w[1]], counter: [w[2], w[3]] };
}

export function setRngState(s: RngState): void {
  const words = [s?.key, s?.counter].flatMap((p) => (Array.isArray(p) && p.length === 2 ? p : [NaN, NaN]));
  if (!words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff_ffff)) {
    throw new ArgumentError('an RNG state is { key: [lo, hi], counter: [lo, hi] } of 32-bit unsigned integers (from getRngState())');
  }
  call((e) => e.rng_set_state(Uint32Array.from(words)));
}

function seedOf(opts: RandomOptions | undefined): number | undefined {
  const { seed } = checkOptions(opts, 'random options');
  return seed === undefined ? undefined : checkInt(seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
}

function rng(kind: number, shape: number[], a: number, b: number, opts?: RandomOptions): Tensor {
  const sh = checkShape(shape);
  return new Tensor(call((e) => e.rng_tensor(kind, sh, a, b, opts?.seed)));
}

/** Uniform in [low, high). */
export function rand(shape: number[], low = 0, high = 1, opts?: RandomOptions): Tensor {
  if (!(high > low)) throw new ArgumentError(`rand needs low < high, got [${low}, ${high})`);
  return rng(0, shape, low, high, opts);
}
/** Normal(mean, std). */
export function randn(shape: number[], mean = 0, std = 1, opts?: RandomOptions): Tensor {
  if (!(std >= 0)) throw new ArgumentError(`randn needs std >= 0, got ${std}`);
  return rng(1, shape, mean, std, opts);
}
/** Normal(mean, std) redrawn outside two standard deviations. */
export function truncatedNormal(shape: number[], mean = 0, std = 1, opts?: RandomOptions): Tensor {
  if (!(std >= 0)) throw new ArgumentError(`truncatedNormal needs std >= 0, got ${std}`);
  return rng(2, shape, mean, std, opts);
}
/** 1.0 with probability p, else 0.0. */
export function bernoulli(shape: number[], p: number, opts?: RandomOptions): Tensor {
  if (!(p >= 0 && p <= 1)) throw new ArgumentError(`bernoulli needs 0 <= p <= 1, got ${p}`);
  return rng(3, shape, p, 0, opts);
}
/** Uniform integers in [low, high), int32. */
export function randint(shape: number[], low: number, high: number, opts?: RandomOptions): Tensor {
  const sh = checkShape(shape);
  return new Tensor(call((e) => e.rng_randint(sh, low, high, opts?.seed)));
}
/** A random permutation of 0..n-1, int32. */
export function randperm(n: number, opts?: RandomOptions): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new ArgumentError(`randperm needs a non-negative integer, got ${n}`);
  return new Tensor(call((e) => e.rng_permutation(n, opts?.seed)));
}

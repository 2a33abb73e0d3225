/** Creating tensors: from JS data, constants, ranges, and seeded random streams. */
import { checkFloat32, checkInt, checkNumber, checkOptions, checkShape, checkSize, describe, MAX_ELEMENTS, MAX_RANK } from './args.js';
import { ArgumentError, ShapeError } from './errors.js';
import { call } from './runtime.js';
import { dtypeCode, fromHandle, Tensor, type DataArray, type DType, type NestedArray, type TensorLike } from './tensor.js';

/** Typed arrays whose elements are JS numbers (BigInt64Array and DataView are not). */
function isNumericView(v: unknown): v is ArrayLike<number> {
  return ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array);
}

function inferShape(v: TensorLike): number[] {
  const shape: number[] = [];
  let cur: unknown = v;
  while (Array.isArray(cur)) {
    // Bounded: a self-containing array would otherwise loop forever.
    if (shape.length >= MAX_RANK) throw new ShapeError(`tensor(): nested more than ${MAX_RANK} levels deep`);
    shape.push(cur.length);
    cur = cur[0];
  }
  if (ArrayBuffer.isView(cur)) shape.push((cur as DataArray).length);
  return shape;
}

function flatten(v: TensorLike, shape: number[], out: number[], depth = 0, path = ''): void {
  if (depth === shape.length) {
    if (typeof v !== 'number') throw new ShapeError(`tensor(): expected a number at ${path || 'the top level'}, got ${describe(v)}`);
    out.push(v);
    return;
  }
  const arr = v as NestedArray | DataArray;
  if (!(Array.isArray(arr) || isNumericView(arr)) || arr.length !== shape[depth]) {
    throw new ShapeError(`tensor(): ragged nested array: ${path || 'the top level'} should have ${shape[depth]} entries`);
  }
  for (let i = 0; i < arr.length; i++) flatten(arr[i] as TensorLike, shape, out, depth + 1, `${path}[${i}]`);
}

function product(shape: ArrayLike<number>): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
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
  } else if (isNumericView(values)) {
    flat = values as DataArray;
    inferred = [values.length];
  } else if (Array.isArray(values)) {
    inferred = inferShape(values);
    if (product(inferred) > MAX_ELEMENTS) checkShape(inferred, 'tensor(): the data\'s shape');
    const out: number[] = [];
    flatten(values, inferred, out);
    flat = out;
  } else {
    throw new ArgumentError(`tensor() takes a number, nested arrays of numbers or a numeric typed array, got ${describe(values)}`);
  }
  const sh = checkShape(shape ?? inferred, 'tensor(): shape');
  const n = product(sh);
  if (n !== flat.length) {
    throw new ShapeError(`tensor(): ${flat.length} values cannot fill shape [${sh.join(', ')}] (${n} elements)`);
  }
  const d: DType = dtype ?? (flat instanceof Int32Array ? 'int32' : flat instanceof Int8Array ? 'int8' : 'float32');
  switch (d) {
    case 'int32': {
      const data = flat instanceof Int32Array ? flat : Int32Array.from(flat as ArrayLike<number>, (x) => {
        if (!Number.isInteger(x) || x < -0x80000000 || x > 0x7fffffff) throw new ArgumentError(`int32 tensor values must be integers in [-2^31, 2^31), got ${x}`);
        return x;
      });
      return fromHandle(call((e) => e.tensor_from_i32(data, sh)));
    }
    case 'int8': {
      const data = flat instanceof Int8Array ? flat : Int8Array.from(flat as ArrayLike<number>, (x) => {
        if (!Number.isInteger(x) || x < -128 || x > 127) throw new ArgumentError(`int8 tensor values must be integers in [-128, 127], got ${x}`);
        return x;
      });
      return fromHandle(call((e) => e.tensor_from_i8(data, sh)));
    }
    case 'float32': {
      const data = flat instanceof Float32Array ? flat : Float32Array.from(flat as ArrayLike<number>);
      return fromHandle(call((e) => e.tensor_from_f32(data, sh)));
    }
    default:
      dtypeCode(d);
      throw new ArgumentError(`unknown dtype ${String(d)}`);
  }
}

/** A rank-0 tensor holding `v`. */
export function scalar(v: number, dtype: DType = 'float32'): Tensor {
  checkNumber(v, 'scalar(): the value', { allowNaN: true });
  return tensor(v, [], dtype);
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: number[], value: number, dtype: DType = 'float32'): Tensor {
  const sh = checkShape(shape);
  checkNumber(value, 'full(): the value', { allowNaN: true });
  const c = dtypeCode(dtype);
  return fromHandle(call((e) => e.tensor_full(sh, value, c)));
}
/** A tensor of `shape` filled with 0. */
export function zeros(shape: number[], dtype: DType = 'float32'): Tensor {
  return full(shape, 0, dtype);
}
/** A tensor of `shape` filled with 1. */
export function ones(shape: number[], dtype: DType = 'float32'): Tensor {
  return full(shape, 1, dtype);
}
/** Zeros with `t`'s shape and dtype. */
export function zerosLike(t: Tensor): Tensor {
  assertTensorArg(t, 'zerosLike');
  return zeros(t.shape, t.dtype);
}
/** Ones with `t`'s shape and dtype. */
export function onesLike(t: Tensor): Tensor {
  assertTensorArg(t, 'onesLike');
  return ones(t.shape, t.dtype);
}

function assertTensorArg(t: unknown, fn: string): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw new ArgumentError(`${fn} needs a Tensor, got ${describe(t)}`);
}

/** `start, start+step, ...` below `stop`; `arange(n)` counts 0..n-1. */
export function arange(start: number, stop?: number, step = 1, dtype: DType = 'float32'): Tensor {
  const [a, b] = stop === undefined ? [0, start] : [start, stop];
  checkNumber(a, 'arange(): start', { finite: true });
  checkNumber(b, 'arange(): stop', { finite: true });
  checkNumber(step, 'arange(): step', { finite: true });
  if (step === 0) throw new ArgumentError('arange(): step must not be 0');
  // The count is checked here, before the engine is asked for it.
  const count = Math.max(0, Math.ceil((b - a) / step));
  if (count > MAX_ELEMENTS) {
    throw new ArgumentError(`arange(${a}, ${b}, ${step}) would have ${count} elements, more than the ${MAX_ELEMENTS} a tensor can hold`);
  }
  const c = dtypeCode(dtype);
  return fromHandle(call((e) => e.tensor_arange(a, b, step, c)));
}

/** Random options: an explicit seed gives a stream independent of the global one. */
export interface RandomOptions {
  /** Draw from the stream of this seed instead of the global one (any integer; the same seed gives the same values). */
  seed?: number;
}

/** Seeds the global random stream (Philox4x32-10: the same values in every runtime). */
export function manualSeed(seed: number): void {
  checkInt(seed, 'manualSeed(): the seed', 0, Number.MAX_SAFE_INTEGER);
  call((e) => e.rng_seed(seed));
}

/**
 * The global stream's position (Philox: the 64-bit key set by `manualSeed` and the 64-bit block
 * counter, each as [low, high] 32-bit words). JSON-safe; `setRngState` continues the stream exactly
 * from it. Streams with an explicit `{ seed }` are independent of it.
 */
export interface RngState {
  /** The Philox key, two 32-bit words. */
  key: [number, number];
  /** The position in the stream, two 32-bit words. */
  counter: [number, number];
}

/** The global random stream's position, to restore later with `setRngState` (checkpoints use it). */
export function getRngState(): RngState {
  const w = call((e) => e.rng_get_state());
  return { key: [w[0], w[1]], counter: [w[2], w[3]] };
}

/** Moves the global random stream back to a position `getRngState` returned. */
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
  const seed = seedOf(opts);
  return fromHandle(call((e) => e.rng_tensor(kind, sh, a, b, seed)));
}

/** Uniform in [low, high). */
export function rand(shape: number[], low = 0, high = 1, opts?: RandomOptions): Tensor {
  checkFloat32(low, 'rand(): low');
  checkFloat32(high, 'rand(): high');
  if (!(high > low)) throw new ArgumentError(`rand needs low < high, got [${low}, ${high})`);
  return rng(0, shape, low, high, opts);
}
/** Normal(mean, std). */
export function randn(shape: number[], mean = 0, std = 1, opts?: RandomOptions): Tensor {
  checkFloat32(mean, 'randn(): mean');
  if (!(std >= 0 && std < Infinity)) throw new ArgumentError(`randn needs a finite std >= 0, got ${describe(std)}`);
  checkFloat32(std, 'randn(): std');
  return rng(1, shape, mean, std, opts);
}
/** Normal(mean, std) redrawn outside two standard deviations. */
export function truncatedNormal(shape: number[], mean = 0, std = 1, opts?: RandomOptions): Tensor {
  checkFloat32(mean, 'truncatedNormal(): mean');
  if (!(std >= 0 && std < Infinity)) throw new ArgumentError(`truncatedNormal needs a finite std >= 0, got ${describe(std)}`);
  checkFloat32(std, 'truncatedNormal(): std');
  return rng(2, shape, mean, std, opts);
}
/** 1.0 with probability p, else 0.0. */
export function bernoulli(shape: number[], p: number, opts?: RandomOptions): Tensor {
  if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new ArgumentError(`bernoulli needs 0 <= p <= 1, got ${describe(p)}`);
  return rng(3, shape, p, 0, opts);
}
/** Uniform integers in [low, high), int32. */
export function randint(shape: number[], low: number, high: number, opts?: RandomOptions): Tensor {
  const sh = checkShape(shape);
  checkInt(low, 'randint(): low');
  checkInt(high, 'randint(): high');
  if (!(high > low)) throw new ArgumentError(`randint needs low < high, got [${low}, ${high})`);
  const seed = seedOf(opts);
  return fromHandle(call((e) => e.rng_randint(sh, low, high, seed)));
}
/** A random permutation of 0..n-1, int32. */
export function randperm(n: number, opts?: RandomOptions): Tensor {
  checkSize(n, 'randperm(): n');
  const seed = seedOf(opts);
  return fromHandle(call((e) => e.rng_permutation(n, seed)));
}

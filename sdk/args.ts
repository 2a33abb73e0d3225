/**
 * Typed argument checks at the SDK boundary: one helper set used by every op, creation function,
 * layer and optimizer, so a bad argument is a typed error naming it before the engine is called
 * (never a raw TypeError, a wrapped size or a wasm trap).
 *
 * The engine's limits live here once and mirror `crates/edgegrad-core/src/shape.rs`
 * (`MAX_ELEMENTS`, `MAX_RANK`); the engine checks them again with checked arithmetic.
 */
import { ArgumentError, ShapeError } from './errors.js';

/** Most elements a tensor can hold: its bytes (4 per float32 element) must fit a wasm32 `i32`. */
export const MAX_ELEMENTS = Math.floor(0x7fffffff / 4);
/** Most dimensions a tensor can have. */
export const MAX_RANK = 32;

/**
 * Most repeated blocks a layer-count argument (numConvs, numLayers, nLayer...) may ask for: each
 * block allocates parameters, so a count like 2**32 would run until memory is exhausted.
 */
export const MAX_LAYERS = 10_000;

/** A short description of a value for error messages (never echoes large contents). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  switch (typeof v) {
    case 'number':
      return String(v);
    case 'string':
      return v.length > 32 ? `a string of length ${v.length}` : JSON.stringify(v);
    case 'bigint':
      return `a bigint (${v.toString().slice(0, 24)}n)`;
    case 'boolean':
      return String(v);
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      if (Array.isArray(v)) {
        const short = v.length <= 8 && v.every((x) => x === null || (typeof x !== 'object' && typeof x !== 'function'));
        return short ? `[${v.map(describe).join(', ')}]` : `an array of length ${v.length}`;
      }
      if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
      if ((v as { __tensor?: true }).__tensor) return 'a Tensor';
      return `an object (${(v as object).constructor?.name ?? 'no prototype'})`;
  }
}

/** A number (any value, infinities included, NaN refused unless `allowNaN`). */
export function checkNumber(v: unknown, what: string, opts: { finite?: boolean; allowNaN?: boolean } = {}): number {
  if (typeof v !== 'number') throw new ArgumentError(`${what} must be a number, got ${describe(v)}`);
  if (Number.isNaN(v) && !opts.allowNaN) throw new ArgumentError(`${what} must not be NaN`);
  if (opts.finite && !Number.isFinite(v)) throw new ArgumentError(`${what} must be finite, got ${v}`);
  return v;
}

/** A number that stays finite as a float32 (1e39 is finite in JS but infinite in the engine). */
export function checkFloat32(v: unknown, what: string): number {
  checkNumber(v, what, { finite: true });
  if (!Number.isFinite(Math.fround(v as number))) throw new ArgumentError(`${what} is ${v}, beyond the float32 range`);
  return v as number;
}

/** An integer in [min, max] (defaults: the int32 range). */
export function checkInt(v: unknown, what: string, min = -0x80000000, max = 0x7fffffff): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ArgumentError(`${what} must be an integer, got ${describe(v)}`);
  if (v < min || v > max) throw new ArgumentError(`${what} must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** A size (a count of elements, features, channels...): an integer in [min, MAX_ELEMENTS]. */
export function checkSize(v: unknown, what: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ArgumentError(`${what} must be an integer size, got ${describe(v)}`);
  if (v < min) throw new ArgumentError(`${what} must be at least ${min}, got ${v}`);
  if (v > MAX_ELEMENTS) throw new ArgumentError(`${what} is ${v}, more than the ${MAX_ELEMENTS} elements a tensor can hold`);
  return v;
}

export function checkBool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new ArgumentError(`${what} must be true or false, got ${describe(v)}`);
  return v;
}

export function checkFunction<F>(v: unknown, what: string): F {
  if (typeof v !== 'function') throw new ArgumentError(`${what} must be a function, got ${describe(v)}`);
  return v as F;
}

/** `async function` / `async () =>` (refused where a region must end when the function returns). */
export function isAsyncFunction(fn: unknown): boolean {
  return typeof fn === 'function' && fn.constructor?.name === 'AsyncFunction';
}

/** Integers given as an array or a typed array (lengths, token ids; each checked by the caller against its bound). */
export function checkLengths(v: unknown, what: string): ArrayLike<number> {
  if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)))) {
    throw new ArgumentError(`${what} needs an array (or typed array) of integers, got ${describe(v)}`);
  }
  return v as ArrayLike<number>;
}

/** A required object argument (`kind` says what it should be, e.g. '{ scale, zeroPoint }'). */
export function checkObject<T extends object>(v: unknown, what: string, kind: string): T {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ArgumentError(`${what} must be ${kind}, got ${describe(v)}`);
  return v as T;
}

/** A plain options object, or undefined (then `{}`). */
export function checkOptions<T extends object>(v: T | undefined, what: string): T {
  if (v === undefined) return {} as T;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ArgumentError(`${what} must be an object, got ${describe(v)}`);
  return v;
}

/** Element count of a checked shape; throws ShapeError when it exceeds the engine's limit. */
function countOf(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    // Bounded one by one too: [2^32 + 1, 0] is empty, but its first size would wrap to 1.
    if (d > MAX_ELEMENTS) throw new ShapeError(`${what} [${shape.join(', ')}] has a dimension of size ${d}, more than the ${MAX_ELEMENTS} elements a tensor can hold`);
    n *= d;
  }
  // Any zero size makes the product 0; a huge product is caught here before it can wrap.
  if (n > MAX_ELEMENTS) {
    throw new ShapeError(`${what} [${shape.join(', ')}] has ${n} elements, more than the ${MAX_ELEMENTS} a tensor can hold`);
  }
  return n;
}

/** A shape: an array of at most MAX_RANK integer sizes >= 0 whose product fits a tensor. */
export function checkShape(shape: unknown, what = 'shape'): Uint32Array {
  if (!Array.isArray(shape)) throw new ShapeError(`${what} must be an array of sizes, got ${describe(shape)}`);
  if (shape.length > MAX_RANK) throw new ShapeError(`${what} has ${shape.length} dimensions, more than the ${MAX_RANK} a tensor can have`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${what} [${shape.map(describe).join(', ')}] has an invalid size ${describe(d)} (sizes are integers >= 0)`);
    }
  }
  countOf(shape as number[], what);
  return Uint32Array.from(shape as number[]);
}

/** A reshape spec: sizes >= 0 and at most one -1. */
export function checkReshape(shape: unknown, what = 'reshape'): Int32Array {
  if (!Array.isArray(shape)) throw new ShapeError(`${what}: the shape must be an array of sizes, got ${describe(shape)}`);
  if (shape.length > MAX_RANK) throw new ShapeError(`${what}: ${shape.length} dimensions, more than the ${MAX_RANK} a tensor can have`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < -1) {
      throw new ShapeError(`${what}: invalid size ${describe(d)} in [${shape.map(describe).join(', ')}]`);
    }
  }
  countOf((shape as number[]).filter((d) => d !== -1), `${what}: shape`);
  return Int32Array.from(shape as number[]);
}

/** One axis (negative counts from the end); range checks against the rank happen in the engine. */
export function checkAxis(v: unknown, what = 'axis'): number {
  return checkInt(v, what, -MAX_RANK - 1, MAX_RANK);
}

/** An axis, a list of axes, or undefined (all axes). */
export function checkAxes(axis: unknown, what = 'axis'): Int32Array {
  if (axis === undefined) return new Int32Array(0);
  const a = Array.isArray(axis) ? axis : [axis];
  if (a.length > MAX_RANK) throw new ShapeError(`${what}: ${a.length} axes, more than the ${MAX_RANK} a tensor can have`);
  return Int32Array.from(a, (x) => checkAxis(x, what));
}

/** Per-axis integers (slice begin/end/step): each an integer, clamped into the int32 range. */
export function checkIndexList(v: unknown, what: string): Int32Array {
  if (!Array.isArray(v)) throw new ArgumentError(`${what} must be an array of integers, got ${describe(v)}`);
  return Int32Array.from(v, (x: unknown) => {
    if (x === Infinity) return 0x7fffffff;
    if (x === -Infinity) return -0x80000000;
    if (typeof x !== 'number' || !Number.isInteger(x)) throw new ArgumentError(`${what} must hold integers, got ${describe(x)}`);
    // Slice bounds clamp to the dimension anyway, so clamping to int32 keeps their meaning.
    return Math.max(-0x80000000, Math.min(0x7fffffff, x));
  });
}

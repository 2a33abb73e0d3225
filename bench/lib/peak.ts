/**
 * The simd128 peak of this core, measured by two register-resident loops assembled here as raw
 * wasm (no compiler between us and V8, so nothing can be hoisted, vectorised away or spilled):
 *
 * - `f32`: 6 chains of `f32x4.mul` and 6 chains of `f32x4.add` (independent, so both kinds of
 *   pipe are kept full; a chain of 6 covers their latency), unrolled twice per loop trip. Flops
 *   are counted as GEMM counts them: 4 per mul, 4 per add.
 * - `dot`: 8 chains of `v = i32x4.add(i32x4.dot_i16x8_s(v, w), x)` — the int8 GEMM's inner pair
 *   of instructions; 16 ops (8 multiply-adds) per dot.
 *
 * - `relaxedDot` (where the runtime validates relaxed SIMD, Node 22+ and Chromium): 12 chains of
 *   `v = i32x4.relaxed_dot_i8x16_i7x16_add_s(w, u, v)` — the relaxed engine's int8 product; 32 ops
 *   (16 multiply-adds) each. `relaxedDotSplit`: 10 chains of the spelling the kernel uses where that
 *   instruction is no single `vpdpbusd` (`i16x8.relaxed_dot_i8x16_i7x16_s` + `i32x4.dot_i16x8_s`
 *   with ones + add): x64 V8 without AVX-VNNI rebuilds the ones vector inside every
 *   `_add_s`, so there the split loop is the faster one and the relaxed int8 ceiling is the better
 *   of the two.
 *
 * Multiplying by 1 and adding 0 keeps the values normal (no denormal stalls); the factors come
 * in as parameters so V8 cannot fold them. Every GEMM/conv figure is reported as a share of `f32`.
 */

/** An unsigned LEB128 number. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
const simd = (op: number) => [0xfd, ...leb(op)];
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
const get = (i: number) => [0x20, ...leb(i)];
const set = (i: number) => [0x21, ...leb(i)];
const V128 = 0x7b;

const OP = { i32x4Splat: 0x11, f32x4Splat: 0x13, i32x4Lane: 0x1b, f32x4Lane: 0x1f, f32x4Add: 0xe4, f32x4Mul: 0xe6, i32x4Add: 0xae, dotI16: 0xba, relaxedDotAdd: 0x113, relaxedDotI16: 0x112, i16x8Splat: 0x10 } as const;

/** A counted loop over `body` (param 0 = trips, at least 1). */
function loop(body: number[]): number[] {
  return [0x03, 0x40, ...body, ...get(0), 0x41, 0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, 0x0b];
}

/** (trips: i32, one: f32, zero: f32) → f32. Locals 3..14 chains, 15 = splat(one), 16 = splat(zero). */
function f32Body(): number[] {
  const chains = 12;
  const init: number[] = [];
  for (let c = 0; c < chains; c++) init.push(0x43, ...new Uint8Array(new Float32Array([1 + c]).buffer), ...simd(OP.f32x4Splat), ...set(3 + c));
  const step: number[] = [];
  for (let u = 0; u < 2; u++) {
    for (let c = 0; c < 6; c++) step.push(...get(3 + c), ...get(15), ...simd(OP.f32x4Mul), ...set(3 + c));
    for (let c = 6; c < 12; c++) step.push(...get(3 + c), ...get(16), ...simd(OP.f32x4Add), ...set(3 + c));
  }
  const sum: number[] = [...get(3)];
  for (let c = 1; c < chains; c++) sum.push(...get(3 + c), ...simd(OP.f32x4Add));
  const code = [
    ...vec([[14, V128]]), ...init,
    ...get(1), ...simd(OP.f32x4Splat), ...set(15), ...get(2), ...simd(OP.f32x4Splat), ...set(16),
    ...loop(step), ...sum, ...simd(OP.f32x4Lane), 0x00, 0x0b,
  ];
  return [...leb(code.length), ...code];
}

/** (trips: i32, seed: i32) → i32. Locals 2..9 chains, 10 = w, 11 = zero. */
function dotBody(): number[] {
  const chains = 8;
  const init: number[] = [];
  for (let c = 0; c < chains; c++) init.push(...get(1), 0x41, ...leb(c + 1), 0x6a, ...simd(OP.i32x4Splat), ...set(2 + c));
  const step: number[] = [];
  for (let u = 0; u < 2; u++) {
    for (let c = 0; c < chains; c++) step.push(...get(2 + c), ...get(10), ...simd(OP.dotI16), ...get(11), ...simd(OP.i32x4Add), ...set(2 + c));
  }
  const sum: number[] = [...get(2)];
  for (let c = 1; c < chains; c++) sum.push(...get(2 + c), ...simd(OP.i32x4Add));
  const code = [
    ...vec([[10, V128]]), ...init,
    0x41, 0x03, ...simd(OP.i32x4Splat), ...set(10), 0x41, 0x00, ...simd(OP.i32x4Splat), ...set(11),
    ...loop(step), ...sum, ...simd(OP.i32x4Lane), 0x00, 0x0b,
  ];
  return [...leb(code.length), ...code];
}

/** (trips: i32, seed: i32) → i32. Locals 2..13 chains, 14 = w (signed bytes), 15 = u (bytes in [0, 127]). */
function relaxedDotBody(): number[] {
  const chains = 12;
  const init: number[] = [];
  for (let c = 0; c < chains; c++) init.push(...get(1), 0x41, ...leb(c + 1), 0x6a, ...simd(OP.i32x4Splat), ...set(2 + c));
  const step: number[] = [];
  for (let u = 0; u < 2; u++) {
    for (let c = 0; c < chains; c++) step.push(...get(14), ...get(15), ...get(2 + c), ...simd(OP.relaxedDotAdd), ...set(2 + c));
  }
  const sum: number[] = [...get(2)];
  for (let c = 1; c < chains; c++) sum.push(...get(2 + c), ...simd(OP.i32x4Add));
  const code = [
    ...vec([[14, V128]]), ...init,
    // w: bytes 0xfd (-3); u: bytes 3 (top bit clear: the instruction's deterministic range).
    0x41, ...sleb(-3), ...simd(OP.i32x4Splat), ...set(14), 0x41, 0x83, 0x86, 0x8c, 0x18, ...simd(OP.i32x4Splat), ...set(15),
    ...loop(step), ...sum, ...simd(OP.i32x4Lane), 0x00, 0x0b,
  ];
  return [...leb(code.length), ...code];
}

/**
 * (trips: i32, seed: i32) → i32, the spelling the relaxed int8 kernel uses on x64 without AVX-VNNI:
 * 10 chains of `v = i32x4.add(i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v, u), ones), v)`.
 * The chain value is the signed operand, so no product is loop-invariant or shared between chains
 * (V8 could hoist or merge those). Locals 2..11 chains, 12 = u (bytes in [0, 127]), 13 = ones.
 */
function relaxedSplitBody(): number[] {
  const chains = 10;
  const init: number[] = [];
  for (let c = 0; c < chains; c++) init.push(...get(1), 0x41, ...leb(c + 1), 0x6a, ...simd(OP.i32x4Splat), ...set(2 + c));
  const step: number[] = [];
  for (let u = 0; u < 2; u++) {
    for (let c = 0; c < chains; c++) {
      step.push(...get(2 + c), ...get(12), ...simd(OP.relaxedDotI16), ...get(13), ...simd(OP.dotI16), ...get(2 + c), ...simd(OP.i32x4Add), ...set(2 + c));
    }
  }
  const sum: number[] = [...get(2)];
  for (let c = 1; c < chains; c++) sum.push(...get(2 + c), ...simd(OP.i32x4Add));
  const code = [
    ...vec([[12, V128]]), ...init,
    0x41, 0x83, 0x86, 0x8c, 0x18, ...simd(OP.i32x4Splat), ...set(12), 0x41, 0x01, ...simd(OP.i16x8Splat), ...set(13),
    ...loop(step), ...sum, ...simd(OP.i32x4Lane), 0x00, 0x0b,
  ];
  return [...leb(code.length), ...code];
}

/** A signed LEB128 number (small negative constants). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** The relaxed-dot probe module's bytes (valid only where the runtime has relaxed SIMD): `dot` and `split`. */
export function relaxedDotModuleBytes(): Uint8Array {
  const types = vec([[0x60, 2, 0x7f, 0x7f, 1, 0x7f]]);
  const name = (s: string) => [...leb(s.length), ...[...s].map((ch) => ch.charCodeAt(0))];
  const exports = vec([[...name('dot'), 0x00, 0x00], [...name('split'), 0x00, 0x01]]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types), ...section(3, vec([[0x00], [0x00]])), ...section(7, exports),
    ...section(10, [...leb(2), ...relaxedDotBody(), ...relaxedSplitBody()]),
  ]);
}

/** The probe module's bytes. */
export function peakModuleBytes(): Uint8Array {
  const types = vec([[0x60, 3, 0x7f, 0x7d, 0x7d, 1, 0x7d], [0x60, 2, 0x7f, 0x7f, 1, 0x7f]]);
  const name = (s: string) => [...leb(s.length), ...[...s].map((ch) => ch.charCodeAt(0))];
  const exports = vec([[...name('f32'), 0x00, 0x00], [...name('dot'), 0x00, 0x01]]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types), ...section(3, vec([[0x00], [0x01]])), ...section(7, exports),
    ...section(10, [...leb(2), ...f32Body(), ...dotBody()]),
  ]);
}

/** Flops (f32) or int ops (dot) per loop trip. */
const F32_PER_TRIP = 2 * 12 * 4;
const DOT_PER_TRIP = 2 * 8 * 16;
const RELAXED_DOT_PER_TRIP = 2 * 12 * 32;
const RELAXED_SPLIT_PER_TRIP = 2 * 10 * 32;

export interface Peak {
  /** f32x4 mul+add, GFLOP/s. */
  f32: number;
  /** i32x4.dot_i16x8_s (+ add), G int ops/s. */
  dot: number;
  /** i32x4.relaxed_dot_i8x16_i7x16_add_s, G int ops/s; absent where the runtime lacks relaxed SIMD. */
  relaxedDot?: number;
  /** The same product as i16x8.relaxed_dot_i8x16_i7x16_s + i32x4.dot_i16x8_s (ones) + add. */
  relaxedDotSplit?: number;
}

/**
 * Measures both peaks. V8 first runs a fresh module in its baseline tier and compiles the
 * optimizing tier in the background (late, on a loaded machine), so each loop is timed in ~20 ms
 * runs for at least `minMs` and until the best rate has not improved for `settle` runs; the best
 * run is kept (interference on a shared machine only ever slows a run down).
 */
export async function measurePeak(minMs = 1000, settle = 15): Promise<Peak> {
  const instance = await WebAssembly.instantiate(await WebAssembly.compile(peakModuleBytes() as BufferSource));
  const f32 = instance.exports.f32 as (trips: number, one: number, zero: number) => number;
  const dot = instance.exports.dot as (trips: number, seed: number) => number;
  // Short runs, the best kept: robust to time slicing without a CPU clock (browsers have none).
  const best = (fn: (trips: number) => unknown, perTrip: number) => {
    let trips = 1000;
    let top = 0;
    let since = 0;
    const start = performance.now();
    while (performance.now() - start < minMs || since < settle) {
      const a = performance.now();
      fn(trips);
      const ms = Math.max(performance.now() - a, 1e-3);
      const rate = (trips * perTrip) / (ms * 1e6);
      if (rate > top * 1.01) [top, since] = [rate, 0];
      else since++;
      trips = Math.max(1000, Math.round((trips * 20) / ms));
      if (performance.now() - start > 10 * minMs) break;
    }
    return top;
  };
  const peak: Peak = { f32: best((n) => f32(n, 1, 0), F32_PER_TRIP), dot: best((n) => dot(n, 1), DOT_PER_TRIP) };
  const rbytes = relaxedDotModuleBytes() as BufferSource;
  if (WebAssembly.validate(rbytes)) {
    const r = (await WebAssembly.instantiate(await WebAssembly.compile(rbytes))).exports as Record<'dot' | 'split', (trips: number, seed: number) => number>;
    peak.relaxedDot = best((n) => r.dot(n, 1), RELAXED_DOT_PER_TRIP);
    peak.relaxedDotSplit = best((n) => r.split(n, 1), RELAXED_SPLIT_PER_TRIP);
  }
  return peak;
}

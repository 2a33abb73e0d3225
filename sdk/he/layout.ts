/**
 * How vectors sit in CKKS slots. A model's vectors are zero-padded to a power-of-two `period` d
 * (the largest layer width, rounded up), so a slot rotation acts as a cyclic rotation of the vector,
 * which the diagonal method needs:
 *
 * - `'single'`: one example per ciphertext, repeated every d slots (slots / d copies). Rotating the
 *   whole slot vector by k rotates every copy by k; a matrix product keeps the repetition.
 * - `'batch'`: slots / (2d) examples per ciphertext, example e in slots [2de, 2de + 2d): the vector
 *   twice in a row. A rotation by k < d then reads x[(i + k) mod d] at position i of every example,
 *   without crossing into the next; after each matrix product (whose outputs fill only the first
 *   half) one extra rotation by -d copies the result into the second half again.
 */
import { ArgumentError } from '../errors.js';

/** Every CompiledModel (a brand checked without importing the class, which would make an import cycle). */
export const compiledModels = new WeakSet<object>();

/** How examples are packed into slots. */
export type Packing = 'single' | 'batch';

/** A slot layout: what a client needs to encrypt for a compiled model (`compiled.encryptOptions`). */
export interface HELayout {
  /** One example per ciphertext (`'single'`) or many (`'batch'`). */
  packing: Packing;
  /** Power-of-two period d every vector is padded to. */
  period: number;
}

/** Examples one ciphertext holds. */
export function perCiphertext(l: HELayout, slots: number): number {
  return l.packing === 'single' ? 1 : Math.floor(slots / (2 * l.period));
}

/** Checks a layout fits `slots` (ArgumentError otherwise). */
export function checkLayout(l: HELayout, slots: number, what: string): void {
  const need = l.packing === 'single' ? l.period : 2 * l.period;
  if (need > slots) {
    throw new ArgumentError(`${what}: ${l.packing} packing with period ${l.period} needs ${need} slots, but the context has ${slots} (use a larger polyModulusDegree)`);
  }
}

/**
 * The slot vector holding `v` (length ≤ period) as every example of a ciphertext — the pattern a
 * bias, a constant or a per-element coefficient is encoded with, so it lines up with the data.
 */
export function broadcast(v: ArrayLike<number>, l: HELayout, slots: number): Float64Array {
  const out = new Float64Array(slots);
  const d = l.period;
  const step = l.packing === 'single' ? d : 2 * d;
  for (let base = 0; base + step <= slots; base += step) {
    for (let i = 0; i < v.length; i++) out[base + i] = v[i];
    if (l.packing === 'batch') for (let i = 0; i < v.length; i++) out[base + d + i] = v[i];
  }
  return out;
}

/** Slots for examples `rows[first..first+count)` (each `features` long, row-major in `x`). */
export function pack(x: ArrayLike<number>, features: number, first: number, count: number, l: HELayout, slots: number): Float64Array {
  const out = new Float64Array(slots);
  const d = l.period;
  if (l.packing === 'single') {
    for (let base = 0; base + d <= slots; base += d) for (let i = 0; i < features; i++) out[base + i] = x[first * features + i];
    return out;
  }
  for (let e = 0; e < count; e++) {
    const src = (first + e) * features;
    const base = 2 * d * e;
    for (let i = 0; i < features; i++) {
      out[base + i] = x[src + i];
      out[base + d + i] = x[src + i];
    }
  }
  return out;
}

/** Reads `count` examples of `features` values from decoded slots into `out` at row `first`. */
export function unpack(slotsIn: Float64Array, features: number, first: number, count: number, l: HELayout, out: Float32Array): void {
  const step = l.packing === 'single' ? 0 : 2 * l.period;
  for (let e = 0; e < count; e++) for (let i = 0; i < features; i++) out[(first + e) * features + i] = slotsIn[e * step + i];
}

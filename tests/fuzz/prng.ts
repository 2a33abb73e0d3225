/**
 * A tiny deterministic PRNG for the fuzz suite (splitmix32): every case is generated from one
 * 32-bit seed, so a failure's printed seed reproduces it exactly in any runtime.
 */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    this.#s = (this.#s + 0x9e3779b9) >>> 0;
    let z = this.#s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 4294967296) * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** The seed of case `i` of a run: a hash of the run seed, the format and the index. */
export function caseSeed(runSeed: number, format: string, i: number): number {
  let h = (runSeed ^ 0x2545f491) >>> 0;
  for (let k = 0; k < format.length; k++) h = Math.imul(h ^ format.charCodeAt(k), 0x01000193) >>> 0;
  h = Math.imul(h ^ i, 0x9e3779b1) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

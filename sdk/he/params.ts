/**
 * CKKS parameter checks and presets. Security follows SEAL's table (the HomomorphicEncryption.org
 * standard, classical security, ternary secret): the total coefficient-modulus bit count may not
 * exceed the bound for the ring degree N, or the lattice is too easy to attack.
 */
import { checkInt, checkOptions, describe } from '../args.js';
import { ArgumentError } from '../errors.js';

/** The ring degrees `eg.he` accepts (N; a ciphertext holds N/2 complex slots, we use them as reals). */
export const POLY_MODULUS_DEGREES = [8192, 16384, 32768] as const;
/** Security levels in bits, as SEAL's `SecurityLevel.tc128/tc192/tc256`. */
export const SECURITY_LEVELS = [128, 192, 256] as const;

/** SEAL's `CoeffModulus::MaxBitCount(N, level)`: the most total coefficient-modulus bits that are still secure. */
export const MAX_COEFF_BITS: Readonly<Record<number, Readonly<Record<number, number>>>> = Object.freeze({
  128: { 8192: 218, 16384: 438, 32768: 881 },
  192: { 8192: 152, 16384: 305, 32768: 611 },
  256: { 8192: 118, 16384: 237, 32768: 476 },
});

/** Options of `createContext`. */
export interface ContextOptions {
  /** Ring degree N (default 8192): 8192, 16384 or 32768. A ciphertext holds N/2 real slots. */
  polyModulusDegree?: 8192 | 16384 | 32768;
  /**
   * Bit sizes of the coefficient-modulus primes: the first is the decryption prime, the middle ones
   * are consumed one per multiplicative level (make them equal to `scale`), the last is SEAL's
   * special key-switching prime. Default `[60, 40, 40, 60]` (depth 2).
   */
  coeffModulusBits?: number[];
  /** Scale in bits (default 40): CKKS keeps reals as integers times 2^scale. */
  scale?: number;
  /** Bits of classical security (default 128); parameters above SEAL's bound for it are refused. */
  securityLevel?: 128 | 192 | 256;
}

/** The checked parameters of a context (a plain object, also what `HEContext.toBytes` stores). */
export interface HEParams {
  /** Ring degree N. */
  polyModulusDegree: number;
  /** Bit sizes of the coefficient-modulus primes (decryption prime, level primes, special prime). */
  coeffModulusBits: number[];
  /** Scale in bits. */
  scaleBits: number;
  /** Bits of classical security the parameters meet. */
  securityLevel: number;
  /** Real slots per ciphertext (N/2). */
  slots: number;
  /** Multiplicative levels available: one per middle prime (`coeffModulusBits.length - 2`). */
  maxDepth: number;
}

/** Checks user parameters (ArgumentError naming the rule broken) and fills the defaults. */
export function checkParams(opts: ContextOptions | undefined, what = 'eg.he.createContext'): HEParams {
  const o = checkOptions(opts, `${what} options`);
  const n = o.polyModulusDegree ?? 8192;
  if (!(POLY_MODULUS_DEGREES as readonly unknown[]).includes(n)) {
    throw new ArgumentError(`${what}: polyModulusDegree must be one of ${POLY_MODULUS_DEGREES.join(', ')}, got ${describe(n)}`);
  }
  const level = o.securityLevel ?? 128;
  if (!(SECURITY_LEVELS as readonly unknown[]).includes(level)) {
    throw new ArgumentError(`${what}: securityLevel must be 128, 192 or 256 (bits), got ${describe(level)}`);
  }
  const scaleBits = o.scale === undefined ? 40 : checkInt(o.scale, `${what}: scale (bits)`, 20, 59);
  const bits = o.coeffModulusBits ?? [60, 40, 40, 60];
  if (!Array.isArray(bits) || bits.length < 2 || bits.length > 64) {
    throw new ArgumentError(`${what}: coeffModulusBits must be an array of 2 to 64 prime sizes in bits, got ${describe(bits)}`);
  }
  bits.forEach((b, i) => checkInt(b, `${what}: coeffModulusBits[${i}]`, 20, 60));
  const total = bits.reduce((a, b) => a + b, 0);
  const max = MAX_COEFF_BITS[level][n];
  if (total > max) {
    throw new ArgumentError(`${what}: insecure parameters: coeffModulusBits total ${total} bits, but SEAL's ${level}-bit security table allows at most ${max} bits for polyModulusDegree ${n} (use fewer or smaller primes, or a larger polyModulusDegree)`);
  }
  if (bits[0] <= scaleBits) {
    throw new ArgumentError(`${what}: the first prime (${bits[0]} bits) must be larger than the scale (${scaleBits} bits), or decrypted values have no integer bits`);
  }
  for (let i = 1; i < bits.length - 1; i++) {
    if (bits[i] < scaleBits) {
      throw new ArgumentError(`${what}: level prime coeffModulusBits[${i}] (${bits[i]} bits) is below the scale (${scaleBits} bits): each rescale would shrink values`);
    }
  }
  if (bits[bits.length - 1] < Math.max(...bits.slice(0, -1))) {
    throw new ArgumentError(`${what}: the last (special) prime must be at least as large as every other prime, got ${bits.join(', ')}`);
  }
  return { polyModulusDegree: n, coeffModulusBits: [...bits], scaleBits, securityLevel: level, slots: n / 2, maxDepth: bits.length - 2 };
}

/**
 * The smallest secure parameter set with `depth` levels and at least `minSlots` slots. Without a
 * fixed `scale`, N grows until some scale of 40 down to 30 bits fits as `[s + 20 (≤ 60), s × depth,
 * s + 20]`: the first prime keeps 20 bits above the scale, so outputs up to 2^19 in magnitude
 * decrypt correctly, and the largest scale that fits gives the best precision. With a fixed
 * `scale`, edge primes of 60, else 50, else scale + 9 bits are tried (the last leaves outputs
 * only 2^8 of headroom).
 */
export function presetFor(depth: number, minSlots: number, opts: { polyModulusDegree?: number; securityLevel?: number; scale?: number } = {}): ContextOptions {
  const level = (opts.securityLevel ?? 128) as 128 | 192 | 256;
  const degrees = opts.polyModulusDegree === undefined ? POLY_MODULUS_DEGREES : [opts.polyModulusDegree];
  const candidates: [number, number][] = opts.scale === undefined
    ? Array.from({ length: 11 }, (_, i) => 40 - i).map((s) => [s, Math.min(60, s + 20)])
    : [60, 50, opts.scale + 9].map((e) => [opts.scale!, e]);
  for (const n of degrees) {
    if (n / 2 < minSlots || MAX_COEFF_BITS[level]?.[n] === undefined) continue;
    for (const [scale, edge] of candidates) {
      const bits = [edge, ...new Array<number>(depth).fill(scale), edge];
      if (bits.reduce((a, b) => a + b, 0) <= MAX_COEFF_BITS[level][n]) {
        return { polyModulusDegree: n as 8192 | 16384 | 32768, coeffModulusBits: bits, scale, securityLevel: level };
      }
    }
  }
  throw new ArgumentError(`eg.he: no secure ${level}-bit parameter set holds multiplicative depth ${depth}${opts.scale ? ` with ${opts.scale}-bit scale` : ''} and ${minSlots} slots${opts.polyModulusDegree ? ` at polyModulusDegree ${opts.polyModulusDegree}` : ' (largest N is 32768)'}: use fewer layers or activations`);
}

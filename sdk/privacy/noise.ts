/**
 * Randomness for DP-SGD: the Gaussian noise added to the sum of clipped gradients and the uniform
 * draws of Poisson sampling. Two sources (README "Differential privacy" → "Noise"):
 * - seeded (default): the engine's counter-based Philox stream (`eg.manualSeed`) through its
 *   vectorised Box–Muller sampler, bitwise identical in Node and browsers — reproducible, hence
 *   predictable by anyone who knows the seed;
 * - secure: `crypto.getRandomValues` (Web Crypto, in Node ≥ 19 and browsers) — unpredictable.
 */
import { ArgumentError, BackendError } from '../errors.js';
import { tensor } from '../creation.js';
import { checkShape } from '../args.js';
import { call } from '../runtime.js';
import { fromHandle, type Tensor } from '../tensor.js';

/** The engine's vectorised Box–Muller on the global Philox stream (rng_tensor kind 4): `randn`'s distribution, several times faster. */
const ENGINE_GAUSSIAN = 4;

/** Web Crypto's per-call limit (65,536 bytes). */
const MAX_CRYPTO_WORDS = 16_384;

/** n uniformly random 32-bit words from the platform CSPRNG. */
export function secureWords(n: number): Uint32Array {
  const c = (globalThis as { crypto?: { getRandomValues?: <T extends ArrayBufferView>(a: T) => T } }).crypto;
  if (!c || typeof c.getRandomValues !== 'function') {
    throw new BackendError('secureMode needs Web Crypto (globalThis.crypto.getRandomValues: Node >= 19 or a browser)');
  }
  const out = new Uint32Array(n);
  for (let s = 0; s < n; s += MAX_CRYPTO_WORDS) c.getRandomValues(out.subarray(s, Math.min(s + MAX_CRYPTO_WORDS, n)));
  return out;
}

/** n doubles uniform in (0, 1]: 53 random bits each, (k + 1) / 2^53 (never 0, so log() is finite). */
export function secureUniform(n: number): Float64Array {
  const w = secureWords(2 * n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = ((w[2 * i] >>> 11) * 4_294_967_296 + w[2 * i + 1] + 1) / 9_007_199_254_740_992;
  return out;
}

/**
 * n draws of N(0, std²) from the CSPRNG. Each draw is the sum of four standard normals (Box–Muller
 * in double precision on 53-bit uniforms) divided by 2 — Opacus's secure-mode sampler, which blurs
 * the gaps between representable floats that Mironov's (2012) floating-point attack reads; it is a
 * mitigation, not a proof (README "Noise").
 */
export function secureGaussian(n: number, std: number): Float32Array {
  const u = secureUniform(4 * n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const j = 4 * i;
    // Box–Muller: each pair of uniforms gives two independent standard normals (r cos t, r sin t).
    const r1 = Math.sqrt(-2 * Math.log(u[j]));
    const r2 = Math.sqrt(-2 * Math.log(u[j + 2]));
    const t1 = 2 * Math.PI * u[j + 1];
    const t2 = 2 * Math.PI * u[j + 3];
    const s = r1 * Math.cos(t1) + r1 * Math.sin(t1) + r2 * Math.cos(t2) + r2 * Math.sin(t2);
    out[i] = (s / 2) * std;
  }
  return out;
}

/**
 * Gaussian noise N(0, std²) of `shape`: from the engine's global seeded stream, or the CSPRNG when
 * `secure`. std 0 gives zeros (no noise: a non-private run with the same code path).
 */
export function gaussianNoise(shape: number[], std: number, secure: boolean): Tensor {
  if (!(typeof std === 'number' && std >= 0 && Number.isFinite(std))) throw new ArgumentError(`noise std must be a finite number >= 0, got ${String(std)}`);
  if (!secure) {
    const sh = checkShape(shape, 'noise shape');
    return fromHandle(call((e) => e.rng_tensor(ENGINE_GAUSSIAN, sh, 0, std, undefined)));
  }
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(secureGaussian(n, std), shape);
}

/**
 * DP-SGD's noisy gradient `(sum + N(0, std²)) / divisor`. Seeded: one engine pass that never
 * materialises the noise (bitwise `sum.add(gaussianNoise(...)).div(divisor)`, same stream positions);
 * secure: CSPRNG noise added by ordinary ops. Returns a new tensor; `sum` is left as it is.
 */
export function addNoiseAndDivide(sum: Tensor, std: number, divisor: number, secure: boolean): Tensor {
  if (!(typeof std === 'number' && std >= 0 && Number.isFinite(std))) throw new ArgumentError(`noise std must be a finite number >= 0, got ${String(std)}`);
  if (!secure) return fromHandle(call((e) => e.rng_add_gaussian_div(sum.handle, std, divisor)));
  const noise = gaussianNoise(sum.shape, std, true);
  const noisy = sum.add(noise);
  noise.dispose();
  const out = noisy.div(divisor);
  noisy.dispose();
  return out;
}

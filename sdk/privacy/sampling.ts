/**
 * Poisson sampling for DP-SGD (Opacus's `DPDataLoader` with its `UniformWithReplacementSampler`):
 * every example joins every batch independently with probability q, so batch sizes vary (mean qN,
 * variance q(1−q)N) and may be empty. This is the sampling the accountants' privacy amplification
 * assumes; fixed-size shuffled batches are not covered by their analysis.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { bernoulli } from '../creation.js';
import { tidy } from '../memory.js';
import { Dataset, takeRows, type Batch } from '../data.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { checkBool, checkOptions, describe } from '../args.js';
import { secureUniform } from './noise.js';

/** Sampling seeds stay below this, so `seed · 2^32 + step` is an exact double. */
export const MAX_SAMPLING_SEED = 2 ** 20;

/** Options of Poisson (Opacus-style) batch sampling. */
export interface PoissonOptions {
  /** q: the probability that an example joins a batch (Opacus's `sample_rate`; batchSize / N). */
  sampleRate: number;
  /** Batches per epoch; default round(1 / q) (so an epoch sees each example once on average). */
  batchesPerEpoch?: number;
  /** Seed of the sampling stream (not used with `secure`). */
  seed?: number;
  /** Draw the memberships from the CSPRNG (`PrivacyEngine({ secureMode: true })`). */
  secure?: boolean;
}

/**
 * Row indices of one Poisson batch out of n: the engine's seeded Bernoulli stream for (seed, step),
 * or the CSPRNG. The membership test runs in the engine (seeded) or in exact double arithmetic.
 */
export function poissonIndices(n: number, q: number, o: { seed: number; step: number; secure: boolean }): Int32Array {
  let mask: ArrayLike<number>;
  if (o.secure) {
    const u = secureUniform(n);
    mask = Array.from(u, (v) => (v <= q ? 1 : 0));
  } else {
    mask = tidy(() => bernoulli([n], q, { seed: o.seed * 4_294_967_296 + o.step }).dataSync());
  }
  let count = 0;
  for (let i = 0; i < n; i++) count += mask[i] === 1 ? 1 : 0;
  const idx = new Int32Array(count);
  for (let i = 0, k = 0; i < n; i++) if (mask[i] === 1) idx[k++] = i;
  return idx;
}

/** What `poissonDataset` needs from a caller that may end an epoch early (the privacy budget). */
export interface SamplingHooks {
  /** Asked before each batch is made; true ends the epoch there. */
  stopBefore?: () => boolean;
}

/**
 * A `Dataset` of Poisson-sampled batches of `(x, y)` for `fit(data, { trainStep })`: batch `i` of
 * epoch `e` is drawn from the stream of (seed, e·batchesPerEpoch + i), so runs and resumed runs see
 * the same batches. Empty batches are yielded as `[0, ...]` tensors (the DP step then takes a
 * noise-only step, as the analysis requires).
 */
export function poissonDataset(x: Tensor, y: Tensor, o: PoissonOptions, hooks: SamplingHooks = {}): Dataset {
  assertTensor(x, 'poissonDataset needs x as a Tensor');
  assertTensor(y, 'poissonDataset needs y as a Tensor');
  if (x.rank < 1 || y.rank < 1 || x.shape[0] !== y.shape[0]) {
    throw new ShapeError(`poissonDataset: x [${x.shape.join(', ')}] and y [${y.shape.join(', ')}] need the same first (sample) dimension`);
  }
  const n = x.shape[0];
  if (n < 1) throw new ArgumentError('poissonDataset needs at least one example');
  o = checkOptions(o, 'poissonDataset options');
  const q = o.sampleRate;
  if (!(typeof q === 'number' && q > 0 && q <= 1)) throw new ArgumentError(`sampleRate must be a number in (0, 1], got ${describe(q)}`);
  const perEpoch = o.batchesPerEpoch ?? Math.max(1, Math.round(1 / q));
  if (!Number.isSafeInteger(perEpoch) || perEpoch < 1) throw new ArgumentError(`batchesPerEpoch must be a positive integer, got ${describe(perEpoch)}`);
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed >= MAX_SAMPLING_SEED) throw new ArgumentError(`seed must be an integer in [0, ${MAX_SAMPLING_SEED}), got ${describe(seed)}`);
  const secure = checkBool(o.secure ?? false, 'poissonDataset secure');
  return Dataset.fromGenerator((epoch: number) => ({
    *[Symbol.iterator](): Iterator<Batch> {
      for (let i = 0; i < perEpoch; i++) {
        if (hooks.stopBefore?.()) return;
        const idx = poissonIndices(n, q, { seed, step: epoch * perEpoch + i, secure });
        const [bx, by] = takeRows([x, y], idx);
        yield { x: bx, y: by };
      }
    },
  }), perEpoch);
}

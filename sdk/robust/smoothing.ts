/**
 * Randomized smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified Adversarial Robustness via
 * Randomized Smoothing"): the smoothed classifier g(x) = argmax_c P(f(x + ε) = c), ε ~ N(0, σ²I),
 * its Monte Carlo prediction (PREDICT, which abstains when the top two classes cannot be told
 * apart) and certification (CERTIFY: g is constant within the L2 radius σ·Φ⁻¹(p_A_lower) around x
 * with probability at least 1 − α), plus the Gaussian noise augmentation training that makes base
 * classifiers work under noise. Noise is drawn by the engine's seeded generator and counted from
 * batched forwards (never one forward per sample), so seeded results are the same in every runtime.
 */
import { checkInt, checkNumber, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { randn, tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { concat } from '../ops.js';
import { Tensor } from '../tensor.js';
import { standardStep, type TrainStep } from '../train/step.js';
import { checkKeys } from '../explain/common.js';
import { subSeed } from '../explain/gradient.js';
import { binomTest, normalQuantile, proportionConfint } from './stats.js';
import { lineChart, type Chart } from '../viz/chart.js';

/** The class `predict` and `certify` return when they abstain. */
export const ABSTAIN = -1;

/** A classifier: a Module or a function from a batch `[rows, ...]` to class scores `[rows, classes]`. */
export type Classifier = Module | ((x: Tensor) => Tensor);

const MAX_SAMPLES = 1e9;
const MAX_SEED = Number.MAX_SAFE_INTEGER;

function checkSigma(v: unknown, what: string): number {
  checkNumber(v, what, { finite: true });
  if (!((v as number) > 0)) throw new ArgumentError(`${what} must be > 0, got ${v}`);
  if (!Number.isFinite(Math.fround(v as number))) throw new ArgumentError(`${what} is ${v}, beyond the float32 range`);
  return v as number;
}

function checkSeed(v: unknown, what: string): number | undefined {
  return v === undefined ? undefined : checkInt(v, what, 0, MAX_SEED);
}

/** Options of `noiseAugmentationStep`. */
export interface NoiseAugmentationOptions {
  /** The noise level σ: each batch is trained as x + N(0, σ²) (required; use the σ you will smooth with). */
  sigma: number;
  /** The step run on the noisy batch (default `standardStep`); e.g. another trainer's step to compose with it. */
  inner?: TrainStep;
  /**
   * Seed of the noise: batch `step` (fit's global step) draws with a seed derived from (seed, step), so
   * a run — and a run resumed from a checkpoint — is reproducible. Default: the engine's global
   * stream (reproducible after `eg.manualSeed`).
   */
  seed?: number;
}

/**
 * Gaussian noise augmentation (Cohen et al. §4; Lecuyer et al. 2019): a `TrainStep` for
 * `fit(x, y, { trainStep })` that trains the inner step on x + N(0, σ²I) instead of x, so the base
 * classifier learns to classify noisy inputs — what the smoothed classifier asks of it. The noise is
 * not clipped to the input range (as in Cohen et al.). Metrics are those of the noisy batch.
 */
export function noiseAugmentationStep(opts: NoiseAugmentationOptions): TrainStep {
  const o = checkKeys(opts as NoiseAugmentationOptions | undefined, ['sigma', 'inner', 'seed'], 'noiseAugmentationStep');
  if (o === undefined || o.sigma === undefined) throw new ArgumentError('noiseAugmentationStep needs { sigma }: the noise level to train at');
  const sigma = checkSigma(o.sigma, 'noiseAugmentationStep: sigma');
  if (o.inner !== undefined && typeof o.inner !== 'function') throw new ArgumentError(`noiseAugmentationStep: inner must be a TrainStep function, got ${describe(o.inner)}`);
  const inner = o.inner ?? standardStep;
  const seed = checkSeed(o.seed, 'noiseAugmentationStep: seed');
  return (s) => {
    if (s.x.dtype !== 'float32') throw new DTypeError(`noiseAugmentationStep: the inputs are ${s.x.dtype}; Gaussian noise needs float32 inputs`);
    const noisy = s.x.add(randn(s.x.shape, 0, sigma, subSeed(seed, 0, s.step)));
    return inner({ ...s, x: noisy });
  };
}

/** Options of `SmoothedClassifier`. */
export interface SmoothedClassifierOptions {
  /** The noise level σ > 0 (the base classifier should have been trained at it). */
  sigma: number;
  /** Number of classes the base classifier scores (its output's last dimension). */
  numClasses: number;
}

/** How noise samples are drawn. */
export interface SamplingOptions {
  /** Rows per forward (default 1000): noisy copies of one or several examples are stacked into one batch. */
  batchSize?: number;
  /**
   * Seed of the noise (default: the engine's global stream). Seeded results are bitwise the same in
   * every runtime and thread count; they depend on the seed, the sample counts, `batchSize` and the
   * example's index in `x`.
   */
  seed?: number;
}

/** Options of `SmoothedClassifier.predict` (Cohen et al.'s PREDICT). */
export interface SmoothedPredictOptions extends SamplingOptions {
  /** Noise samples per example (default 100,000 as in Cohen et al.). */
  n?: number;
  /** Probability of returning a class other than g(x) (default 0.001). */
  alpha?: number;
}

/** Options of `SmoothedClassifier.certify` (Cohen et al.'s CERTIFY). */
export interface CertifyOptions extends SamplingOptions {
  /** Samples used to pick the top class (default 100). */
  n0?: number;
  /** Samples used to bound its probability (default 100,000). */
  n?: number;
  /** Failure probability: the certificate holds with probability ≥ 1 − alpha (default 0.001). */
  alpha?: number;
}

/** What `certify` returns, one entry per example. */
export interface CertifyResult {
  /** The certified class, or `ABSTAIN` (-1) when p_A_lower < 1/2. */
  prediction: Int32Array;
  /** The certified L2 radius σ·Φ⁻¹(p_A_lower) (0 when abstaining). */
  radius: Float64Array;
  /** The one-sided (1 − alpha) Clopper–Pearson lower bound on the top class's probability under noise. */
  pLower: Float64Array;
  /** How many of the `n` estimation samples the base classifier put in the top class (chosen from the `n0` selection samples). */
  count: Int32Array;
  /** The sampling used: σ, n0, n and alpha. */
  sigma: number;
  /** Selection samples (picking the top class). */
  n0: number;
  /** Estimation samples (bounding its probability). */
  n: number;
  /** Failure probability of the certificate. */
  alpha: number;
}

/** Sampling phases: separate noise streams, so selection and estimation samples are independent. */
const enum Phase { Select = 0, Estimate = 1, Predict = 2, Counts = 3 }

/**
 * Cohen et al.'s smoothed classifier around a base classifier f: g(x) = the class f returns most
 * often on x + N(0, σ²I). `predict` and `certify` sample the noise in batches and count f's
 * predictions; a Module is run in eval mode (its mode is restored after) without gradients.
 */
export class SmoothedClassifier {
  /** The base classifier evaluated on noisy inputs. */
  readonly base: Classifier;
  /** Standard deviation σ of the Gaussian input noise. */
  readonly sigma: number;
  /** Number of classes the base classifier outputs. */
  readonly numClasses: number;

  constructor(base: Classifier, opts: SmoothedClassifierOptions) {
    if (!(base instanceof Module) && typeof base !== 'function') throw new ArgumentError(`SmoothedClassifier needs a Module or a function from inputs to class scores, got ${describe(base)}`);
    const o = checkKeys(opts as SmoothedClassifierOptions | undefined, ['sigma', 'numClasses'], 'SmoothedClassifier');
    if (o === undefined || o.sigma === undefined || o.numClasses === undefined) throw new ArgumentError('SmoothedClassifier needs { sigma, numClasses }');
    this.base = base;
    this.sigma = checkSigma(o.sigma, 'SmoothedClassifier: sigma');
    this.numClasses = checkInt(o.numClasses, 'SmoothedClassifier: numClasses', 2, 1 << 20);
  }

  /**
   * Cohen et al.'s PREDICT: counts f's classes over `n` noisy copies of each example and returns the
   * top class, or `ABSTAIN` when the two-sided binomial test of the top two counts (p = 1/2) gives a
   * p-value above `alpha` — so a returned class differs from g(x) with probability at most alpha.
   */
  predict(x: Tensor, opts?: SmoothedPredictOptions): Int32Array {
    const o = checkKeys(opts, ['n', 'alpha', 'batchSize', 'seed'], 'SmoothedClassifier.predict');
    const n = checkInt(orDefault(o.n, 100_000), 'SmoothedClassifier.predict: n', 1, MAX_SAMPLES);
    const alpha = checkAlpha(orDefault(o.alpha, 0.001), 'SmoothedClassifier.predict: alpha');
    const sampling = this.#sampling(o, 'SmoothedClassifier.predict');
    const counts = this.#count(x, n, sampling, Phase.Predict, 'SmoothedClassifier.predict');
    const c = this.numClasses;
    const out = new Int32Array(counts.length / c);
    for (let i = 0; i < out.length; i++) {
      const row = counts.subarray(i * c, (i + 1) * c);
      const [a, b] = topTwo(row);
      out[i] = binomTest(row[a], row[a] + row[b], 0.5) > alpha ? ABSTAIN : a;
    }
    return out;
  }

  /**
   * Cohen et al.'s CERTIFY: picks each example's top class ĉ_A from `n0` noisy samples, counts ĉ_A
   * in `n` fresh samples, and bounds its probability below by the one-sided Clopper–Pearson bound
   * p_A_lower at level 1 − alpha. If p_A_lower ≥ 1/2, g(x + δ) = ĉ_A for every ‖δ‖₂ < σ·Φ⁻¹(p_A_lower)
   * (with probability ≥ 1 − alpha over the sampling); otherwise it abstains (radius 0).
   */
  certify(x: Tensor, opts?: CertifyOptions): CertifyResult {
    const what = 'SmoothedClassifier.certify';
    const o = checkKeys(opts, ['n0', 'n', 'alpha', 'batchSize', 'seed'], what);
    const n0 = checkInt(orDefault(o.n0, 100), `${what}: n0`, 1, MAX_SAMPLES);
    const n = checkInt(orDefault(o.n, 100_000), `${what}: n`, 1, MAX_SAMPLES);
    const alpha = checkAlpha(orDefault(o.alpha, 0.001), `${what}: alpha`);
    const sampling = this.#sampling(o, what);
    const c = this.numClasses;
    const select = this.#count(x, n0, sampling, Phase.Select, what);
    const estimate = this.#count(x, n, sampling, Phase.Estimate, what);
    const m = select.length / c;
    const r: CertifyResult = {
      prediction: new Int32Array(m), radius: new Float64Array(m), pLower: new Float64Array(m), count: new Int32Array(m),
      sigma: this.sigma, n0, n, alpha,
    };
    for (let i = 0; i < m; i++) {
      const top = topTwo(select.subarray(i * c, (i + 1) * c))[0];
      const nA = estimate[i * c + top];
      // statsmodels' proportion_confint(nA, n, alpha=2α, method='beta')[0]: the one-sided 1 − α lower bound.
      const pLower = proportionConfint(nA, n, 2 * alpha)[0];
      r.count[i] = nA;
      r.pLower[i] = pLower;
      if (pLower < 0.5) {
        r.prediction[i] = ABSTAIN;
      } else {
        r.prediction[i] = top;
        r.radius[i] = this.sigma * normalQuantile(pLower);
      }
    }
    return r;
  }

  /**
   * How often the base classifier returns each class over `n` noisy copies of each example:
   * `[examples × numClasses]` counts, row-major (Cohen et al.'s `_sample_noise`).
   */
  sampleCounts(x: Tensor, n: number, opts?: SamplingOptions): Int32Array {
    const what = 'SmoothedClassifier.sampleCounts';
    const o = checkKeys(opts, ['batchSize', 'seed'], what);
    return this.#count(x, checkInt(n, `${what}: n`, 1, MAX_SAMPLES), this.#sampling(o, what), Phase.Counts, what);
  }

  #sampling(o: SamplingOptions, what: string): { batchSize: number; seed: number | undefined } {
    return { batchSize: checkInt(orDefault(o.batchSize, 1000), `${what}: batchSize`, 1, 1 << 24), seed: checkSeed(o.seed, `${what}: seed`) };
  }

  /**
   * The counts behind predict/certify. Each example's n samples are cut into pieces of at most
   * batchSize rows, each with its own seed (example, phase, piece); whole pieces are stacked into
   * forwards of at most batchSize rows. Only class indices leave the engine. (Noise streams are
   * 4·piece + phase: distinct for every piece below 2^30, which MAX_SAMPLES guarantees.)
   */
  #count(x: Tensor, n: number, s: { batchSize: number; seed: number | undefined }, phase: Phase, what: string): Int32Array {
    const m = checkInputs(x, what);
    const c = this.numClasses;
    const counts = new Int32Array(m * c);
    const pieces: { i: number; k: number; rows: number }[] = [];
    const per = Math.ceil(n / s.batchSize);
    const rowShape = x.shape.slice(1);
    const flush = () => {
      if (pieces.length === 0) return;
      const cls = noGrad(() => tidy(() => {
        const idx = Int32Array.from(pieces.flatMap((p) => new Array<number>(p.rows).fill(p.i)));
        const noise = pieces.map((p) => randn([p.rows, ...rowShape], 0, this.sigma, subSeed(s.seed, 4 * p.k + phase, p.i)));
        const batch = x.indexSelect(0, tensor(idx, [idx.length], 'int32')).add(noise.length === 1 ? noise[0] : concat(noise, 0));
        const out = this.#forward(batch, what);
        if (out.rank !== 2 || out.shape[0] !== idx.length || out.shape[1] !== c) {
          throw new ShapeError(`${what}: the base classifier returned [${out.shape.join(', ')}] for ${idx.length} inputs; expected class scores [${idx.length}, ${c}] (numClasses ${c})`);
        }
        // NaN scores would make argMax meaningless: x − x is 0 only where the score is finite.
        if (out.sub(out).sum().item() !== 0) throw new ArgumentError(`${what}: the base classifier returned NaN or infinite scores`);
        return out.argMax(-1).dataSync() as Int32Array;
      }));
      let r = 0;
      for (const p of pieces) {
        for (let j = 0; j < p.rows; j++, r++) counts[p.i * c + cls[r]]++;
      }
      pieces.length = 0;
    };
    const model = this.base instanceof Module ? this.base : null;
    const wasTraining = model?.training ?? false;
    model?.eval();
    try {
      let rows = 0;
      for (let i = 0; i < m; i++) {
        for (let k = 0; k < per; k++) {
          const piece = Math.min(s.batchSize, n - k * s.batchSize);
          if (rows + piece > s.batchSize) {
            flush();
            rows = 0;
          }
          pieces.push({ i, k, rows: piece });
          rows += piece;
        }
      }
      flush();
    } finally {
      model?.train(wasTraining);
    }
    return counts;
  }

  #forward(batch: Tensor, what: string): Tensor {
    const out = this.base instanceof Module ? this.base.forward(batch) : this.base(batch);
    if (!(out instanceof Tensor)) throw new ArgumentError(`${what}: the base classifier returned ${describe(out)}, not a Tensor`);
    return out;
  }
}

/** The default for a left-out option (undefined only: null is a wrong value, refused by the check). */
function orDefault(v: unknown, def: number): unknown {
  return v === undefined ? def : v;
}

function checkAlpha(v: unknown, what: string): number {
  checkNumber(v, what);
  // certify bounds at level 1 − α with a two-sided interval at 2α, which needs 2α < 1.
  if (!((v as number) > 0 && (v as number) < 0.5)) throw new ArgumentError(`${what} must be in (0, 0.5), got ${v}`);
  return v as number;
}

/** Checks a float32 batch [examples ≥ 1, ...] of finite values; returns its size. */
function checkInputs(x: Tensor, what: string): number {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${what}: x must be a Tensor (a batch of inputs), got ${describe(x)}`);
  if (x.isDisposed) x.handle; // throws DisposedError naming it
  if (x.dtype !== 'float32') throw new DTypeError(`${what}: x is ${x.dtype}; noise needs float32 inputs`);
  if (x.rank < 1 || x.shape[0] < 1) throw new ShapeError(`${what}: x has shape [${x.shape.join(', ')}]; inputs are batches [examples >= 1, ...]`);
  if (tidy(() => x.sub(x).sum().item()) !== 0) throw new ArgumentError(`${what}: x has NaN or infinite values`);
  return x.shape[0];
}

/** The indices of the largest and second largest counts (ties: the lower class index first). */
function topTwo(row: ArrayLike<number>): [number, number] {
  let a = 0;
  let b = -1;
  for (let j = 1; j < row.length; j++) {
    if (row[j] > row[a]) {
      b = a;
      a = j;
    } else if (b < 0 || row[j] > row[b]) {
      b = j;
    }
  }
  return [a, b < 0 ? (a === 0 ? 1 : 0) : b];
}

/**
 * Certified accuracy at each radius (Cohen et al.'s `analyze`): the fraction of examples whose
 * certified class is the label and whose radius is at least r. Abstentions never count.
 */
export function certifiedAccuracy(results: Pick<CertifyResult, 'prediction' | 'radius'>, labels: ArrayLike<number> | Tensor, radii: ArrayLike<number>): number[] {
  const what = 'certifiedAccuracy';
  if (results === null || typeof results !== 'object' || !(results.prediction instanceof Int32Array) || !(results.radius instanceof Float64Array)) {
    throw new ArgumentError(`${what}: results must be what certify() returned ({ prediction, radius }), got ${describe(results)}`);
  }
  const m = results.prediction.length;
  if (results.radius.length !== m) throw new ArgumentError(`${what}: results has ${m} predictions but ${results.radius.length} radii`);
  let y: ArrayLike<number>;
  if (labels instanceof Tensor) {
    if (labels.dtype !== 'int32' || labels.rank !== 1) throw new ArgumentError(`${what}: a labels tensor must be int32 [examples], got ${labels.dtype} [${labels.shape.join(', ')}]`);
    y = labels.dataSync();
  } else {
    if (!(Array.isArray(labels) || labels instanceof Int32Array)) throw new ArgumentError(`${what}: labels must be an array, an Int32Array or an int32 tensor, got ${describe(labels)}`);
    y = labels;
  }
  if (y.length !== m) throw new ArgumentError(`${what}: ${y.length} labels for ${m} results`);
  for (let i = 0; i < m; i++) checkInt(y[i], `${what}: labels[${i}]`, 0);
  if (!(Array.isArray(radii) || ArrayBuffer.isView(radii))) throw new ArgumentError(`${what}: radii must be an array of numbers, got ${describe(radii)}`);
  const rs = Array.from(radii as ArrayLike<unknown>, (r, j) => {
    checkNumber(r, `${what}: radii[${j}]`, { finite: true });
    if ((r as number) < 0) throw new ArgumentError(`${what}: radii[${j}] must be >= 0, got ${r}`);
    return r as number;
  });
  return rs.map((r) => {
    let ok = 0;
    for (let i = 0; i < m; i++) if (results.prediction[i] === y[i] && results.radius[i] >= r) ok++;
    return m === 0 ? 0 : ok / m;
  });
}

/** One line of `certifiedAccuracyChart`: a name (e.g. 'σ = 0.25'), certify's results and the labels. */
export interface CertifiedAccuracySeries {
  /** Legend label of the line, e.g. 'σ = 0.25'. */
  name: string;
  /** `certify`'s predictions and radii. */
  results: Pick<CertifyResult, 'prediction' | 'radius'>;
  /** True labels, one per example. */
  labels: ArrayLike<number> | Tensor;
}

/** Options of `certifiedAccuracyChart`. */
export interface CertifiedAccuracyChartOptions {
  /** The radii on the x axis (default 0 to 2 in steps of 0.05). */
  radii?: ArrayLike<number>;
  /** Chart title (none by default). */
  title?: string;
}

/**
 * Certified accuracy against the L2 radius, one line per series (Cohen et al.'s figures), as an
 * `eg.viz` chart (`toSVG()`, `toPNG()`).
 */
export function certifiedAccuracyChart(series: CertifiedAccuracySeries[], opts?: CertifiedAccuracyChartOptions): Chart {
  const o = checkKeys(opts, ['radii', 'title'], 'certifiedAccuracyChart');
  if (!Array.isArray(series) || series.length === 0) throw new ArgumentError(`certifiedAccuracyChart needs a non-empty array of { name, results, labels }, got ${describe(series)}`);
  const radii = o.radii === undefined ? Array.from({ length: 41 }, (_, i) => i * 0.05) : Array.from(o.radii);
  return lineChart({
    series: series.map((s, k) => {
      if (s === null || typeof s !== 'object') throw new ArgumentError(`certifiedAccuracyChart: series[${k}] must be { name, results, labels }, got ${describe(s)}`);
      return { name: s.name, x: radii, y: certifiedAccuracy(s.results, s.labels, radii) };
    }),
    title: o.title,
    xTitle: 'L2 radius',
    yTitle: 'certified accuracy',
  });
}

/**
 * Feature squeezing (Xu, Evans and Qi, NDSS 2018): squeezers that remove detail an adversarial
 * perturbation lives in, used as a defence (`SqueezedModel`: the model sees squeezed inputs) and
 * as a detector (`FeatureSqueezingDetector`: an input whose prediction moves much when squeezed is
 * flagged). Squeezers run in engine ops, so their results are the same bits in every runtime.
 *
 * Neither use resists an adaptive attacker who optimises through the squeezers and the detector's
 * score (He et al. 2017, "Adversarial example defenses: ensembles of weak defenses are not
 * strong"); a squeezed model also masks gradients (rounding has none), so attacks on it look
 * weaker than they are. See README, Robustness.
 */
import { checkInt, checkNumber, checkOptions, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { v, validate, type Schema } from '../io/validate.js';
import { tidy } from '../memory.js';
import { Module, moduleConfigSchema, moduleFromConfig, registerModule, type ModuleConfig } from '../nn/module.js';
import { concat } from '../ops.js';
import { Tensor } from '../tensor.js';
import { checkKeys, rows, type Forward } from '../explain/common.js';

/** A squeezer as data (what a saved `SqueezedModel` stores). */
export type SqueezerConfig = {
  /** Color-depth reduction. */
  kind: 'bitDepth';
  /** Bits kept per value. */
  bits: number;
  /** `[min, max]` of the values being quantized. */
  range: [number, number];
} | {
  /** Median filter over each spatial window. */
  kind: 'medianSmoothing';
  /** Side of the square window, in pixels. */
  size: number;
};

/** An input transformation `[batch, ...] → [batch, ...]` (same shape and dtype). */
export interface Squeezer {
  /** A short name for reports ("bit depth 4", "median 2x2"). */
  readonly name: string;
  /** The squeezed batch (a new tensor in the caller's scope). */
  apply(x: Tensor): Tensor;
  /** The squeezer as data. */
  toJSON(): SqueezerConfig;
}

function checkFloatBatch(x: unknown, who: string, minRank: number): Tensor {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${who}: the input must be a Tensor, got ${describe(x)}`);
  if (x.isDisposed) x.handle; // DisposedError naming it
  if (x.dtype !== 'float32') throw new ArgumentError(`${who}: the input must be float32, got ${x.dtype}`);
  if (x.rank < minRank) throw new ShapeError(`${who}: the input has shape [${x.shape.join(', ')}]; it needs rank >= ${minRank}`);
  return x;
}

/**
 * Bit-depth reduction to `bits` bits (2^bits levels) over the value range (default [0, 1]):
 * x' = round((x − min) / (max − min) · (2^bits − 1)) / (2^bits − 1) · (max − min) + min, values
 * first clipped into the range (halves round up; Xu et al. use NumPy's round-half-to-even, which
 * differs only on exact ties). Xu et al.: 1 bit for MNIST, 4–5 bits for CIFAR-10 and ImageNet.
 */
export function bitDepth(bits: number, o: { range?: readonly [number, number] } = {}): Squeezer {
  checkInt(bits, 'bitDepth: bits', 1, 24);
  o = checkOptions(o, 'bitDepth options');
  const r = o.range ?? [0, 1];
  if (!Array.isArray(r) || r.length !== 2) throw new ArgumentError(`bitDepth: range must be [min, max], got ${describe(r)}`);
  const lo = checkNumber(r[0], 'bitDepth: range min', { finite: true });
  const hi = checkNumber(r[1], 'bitDepth: range max', { finite: true });
  if (!(hi > lo)) throw new ArgumentError(`bitDepth: range needs min < max, got [${lo}, ${hi}]`);
  const levels = 2 ** bits - 1;
  return {
    name: `bit depth ${bits}`,
    apply(x: Tensor): Tensor {
      checkFloatBatch(x, 'bitDepth', 0);
      return tidy(() => {
        const scaled = x.clamp(lo, hi).affine(levels / (hi - lo), (-lo * levels) / (hi - lo) + 0.5);
        // The cast truncates towards zero; scaled + 0.5 >= 0, so it rounds to the nearest level.
        return scaled.cast('int32').cast('float32').affine((hi - lo) / levels, lo);
      });
    },
    toJSON: () => ({ kind: 'bitDepth', bits, range: [lo, hi] }),
  };
}

/** Rows (axis 1) or columns (axis 2) of `x` in the order of `idx` (small, for padding). */
function pick(x: Tensor, axis: 1 | 2, idx: number[]): Tensor[] {
  const [n, h, w, c] = x.shape;
  return idx.map((i) => (axis === 1 ? x.slice([0, i, 0, 0], [n, i + 1, w, c]) : x.slice([0, 0, i, 0], [n, h, i + 1, c])));
}

/** `x` padded by reflection (scipy's 'reflect': d c b a | a b c d | d c b a) along axis 1 or 2. */
function reflectPad(x: Tensor, axis: 1 | 2, before: number, after: number): Tensor {
  if (before === 0 && after === 0) return x;
  const len = x.shape[axis];
  const top = pick(x, axis, Array.from({ length: before }, (_, i) => before - 1 - i));
  const bottom = pick(x, axis, Array.from({ length: after }, (_, i) => len - 1 - i));
  return concat([...top, x, ...bottom], axis);
}

/**
 * Median smoothing: each pixel becomes the median of the `size`×`size` window over it, per image
 * and channel, on NHWC batches `[n, h, w, c]`. The window, padding and rank are
 * `scipy.ndimage.median_filter(x, size=(1, size, size, 1), mode='reflect')`'s, as in Xu et al.'s
 * code: offsets −⌊size/2⌋ … size−1−⌊size/2⌋, reflected edges, and the ⌊size²/2⌋-th smallest value
 * (for an even window the upper median, e.g. the 3rd of 4 for 2×2). Computed by a sorting network
 * of elementwise minimum/maximum over the size² shifted views.
 */
export function medianSmoothing(size: number): Squeezer {
  checkInt(size, 'medianSmoothing: size', 1, 7);
  const before = Math.floor(size / 2);
  const after = size - 1 - before;
  const rank = Math.floor((size * size) / 2);
  return {
    name: `median ${size}x${size}`,
    apply(x: Tensor): Tensor {
      checkFloatBatch(x, 'medianSmoothing', 4);
      if (x.rank !== 4) throw new ShapeError(`medianSmoothing: the input has shape [${x.shape.join(', ')}]; it needs images NHWC [n, h, w, c]`);
      const [n, h, w, c] = x.shape;
      if (size === 1) return x.clone();
      if (h < size || w < size) throw new ShapeError(`medianSmoothing: ${size}x${size} windows need images of at least ${size}x${size}, got ${h}x${w}`);
      return tidy(() => {
        const padded = reflectPad(reflectPad(x, 1, before, after), 2, before, after);
        const vals: Tensor[] = [];
        for (let dy = 0; dy < size; dy++) {
          for (let dx = 0; dx < size; dx++) vals.push(padded.slice([0, dy, dx, 0], [n, dy + h, dx + w, c]));
        }
        // Odd-even transposition sort: m rounds of compare-exchanges sort any m values; replaced
        // tensors are freed at once so at most about 2m images are alive.
        const m = vals.length;
        for (let round = 0; round < m; round++) {
          for (let i = round % 2; i + 1 < m; i += 2) {
            const a = vals[i];
            const b = vals[i + 1];
            vals[i] = a.minimum(b);
            vals[i + 1] = a.maximum(b);
            a.dispose();
            b.dispose();
          }
        }
        return vals[rank];
      });
    },
    toJSON: () => ({ kind: 'medianSmoothing', size }),
  };
}

const squeezerSchema: Schema<SqueezerConfig> = v.tagged<SqueezerConfig>('kind', {
  bitDepth: v.object({ kind: v.literal('bitDepth'), bits: v.int({ min: 1, max: 24 }), range: v.tuple<[number, number]>([v.number(), v.number()]) }) as Schema<SqueezerConfig>,
  medianSmoothing: v.object({ kind: v.literal('medianSmoothing'), size: v.int({ min: 1, max: 7 }) }) as Schema<SqueezerConfig>,
});

/** A squeezer from its data form (`squeezer.toJSON()`). */
export function squeezerFromConfig(c: unknown): Squeezer {
  const s = validate(squeezerSchema, c, 'squeezer', ArgumentError);
  return s.kind === 'bitDepth' ? bitDepth(s.bits, { range: s.range }) : medianSmoothing(s.size);
}

function checkSqueezer(s: unknown, what: string): Squeezer {
  const q = s as Partial<Squeezer> | null;
  if (q === null || typeof q !== 'object' || typeof q.apply !== 'function' || typeof q.name !== 'string') {
    throw new ArgumentError(`${what} must be a squeezer (bitDepth(bits), medianSmoothing(size)), got ${describe(s)}`);
  }
  return q as Squeezer;
}

/**
 * Feature squeezing as a defence: the model applied to squeezed inputs, `model(squeezer(x))`
 * (Xu et al.'s "squeezed model"). A Module whose submodule `model` is the model, so its parameters
 * and modes are the model's; saved and loaded with its squeezer (for built-in squeezers).
 */
export class SqueezedModel extends Module {
  /** The wrapped model (a submodule). */
  readonly model: Module;
  /** The input transformation applied before the model. */
  readonly squeezer: Squeezer;

  constructor(model: Module, squeezer: Squeezer) {
    if (!(model instanceof Module)) throw new ArgumentError(`SqueezedModel needs a Module, got ${describe(model)}`);
    const s = checkSqueezer(squeezer, 'SqueezedModel: squeezer');
    super();
    this.squeezer = s;
    this.model = this.registerModule('model', model);
  }

  forward(x: Tensor, ...rest: unknown[]): Tensor {
    return this.model.forward(this.squeezer.apply(x), ...rest);
  }

  override getConfig(): Record<string, unknown> {
    if (typeof this.squeezer.toJSON !== 'function') throw new ArgumentError('SqueezedModel: a custom squeezer without toJSON() cannot be saved');
    return { model: this.model.toConfig(), squeezer: this.squeezer.toJSON() };
  }
}

registerModule('SqueezedModel', (c) => {
  const cfg = validate(v.object({ model: moduleConfigSchema, squeezer: v.json() }), c, 'SqueezedModel config', ArgumentError);
  const s = squeezerFromConfig(cfg.squeezer); // checked before the model is built
  return new SqueezedModel(moduleFromConfig(cfg.model as ModuleConfig), s);
});

/** `model` behind `squeezer`: a `SqueezedModel`. */
export function squeezedModel(model: Module, squeezer: Squeezer): SqueezedModel {
  return new SqueezedModel(model, squeezer);
}

/** Options of `FeatureSqueezingDetector`. */
export interface FeatureSqueezingOptions {
  /** The squeezers compared with the raw input (default: bit depth 1 and median 2×2, Xu et al.'s MNIST choice). */
  squeezers?: Squeezer[];
  /** What the model returns: 'logits' (default; softmax is applied) or 'probabilities'. */
  outputs?: 'logits' | 'probabilities';
  /** Examples per forward (default 256). */
  batchSize?: number;
  /** A detection threshold to start with (`fit` sets one from clean data). */
  threshold?: number;
}

/** What `detect` returns. */
export interface Detection {
  /** Per example: whether its score is above the threshold (flagged as adversarial). */
  flags: boolean[];
  /** Per example: the largest L1 distance between the raw and a squeezed input's predictions. */
  scores: Float32Array;
}

/**
 * Feature squeezing as a detector (Xu et al. 2018): an example's score is the largest L1 distance
 * between the model's softmax output on the raw input and on each squeezed input; an example
 * scoring above the threshold is flagged. `fit(xClean, { fpr })` sets the threshold so that a
 * fraction `fpr` (at most) of legitimate examples is flagged. The model is run in eval mode
 * without gradients; pass a Module or a function of a batch.
 */
export class FeatureSqueezingDetector {
  /** The squeezers whose outputs are compared with the unsqueezed prediction. */
  readonly squeezers: readonly Squeezer[];
  /** What the model outputs: `'logits'` (softmax is applied first) or `'probabilities'` (default `'logits'`). */
  readonly outputs: 'logits' | 'probabilities';
  /** Examples per forward pass (default 256). */
  readonly batchSize: number;
  /** Scores above this are flagged (null until `fit` or the `threshold` option sets it). */
  threshold: number | null;
  readonly #forward: Forward;

  constructor(model: Forward, opts?: FeatureSqueezingOptions) {
    if (!(model instanceof Module) && typeof model !== 'function') throw new ArgumentError(`FeatureSqueezingDetector needs a Module or a function of a batch, got ${describe(model)}`);
    const o = checkKeys(opts, ['squeezers', 'outputs', 'batchSize', 'threshold'], 'FeatureSqueezingDetector');
    const sq = o.squeezers ?? [bitDepth(1), medianSmoothing(2)];
    if (!Array.isArray(sq) || sq.length === 0) throw new ArgumentError(`FeatureSqueezingDetector: squeezers must be a non-empty array, got ${describe(sq)}`);
    this.squeezers = sq.map((s, i) => checkSqueezer(s, `FeatureSqueezingDetector: squeezers[${i}]`));
    const out = o.outputs ?? 'logits';
    if (out !== 'logits' && out !== 'probabilities') throw new ArgumentError(`FeatureSqueezingDetector: outputs must be 'logits' or 'probabilities', got ${describe(out)}`);
    this.outputs = out;
    this.batchSize = checkInt(o.batchSize ?? 256, 'FeatureSqueezingDetector: batchSize', 1);
    this.threshold = o.threshold === undefined ? null : checkNumber(o.threshold, 'FeatureSqueezingDetector: threshold', { finite: true });
    this.#forward = model;
  }

  /** Class probabilities `[rows, classes]` of a batch. */
  #probs(x: Tensor): Tensor {
    const f = this.#forward;
    const out = f instanceof Module ? f.forward(x) : f(x);
    if (!(out instanceof Tensor) || out.rank !== 2) throw new ShapeError(`FeatureSqueezingDetector: the model returned ${out instanceof Tensor ? `[${out.shape.join(', ')}]` : describe(out)}; it needs class scores [batch, classes]`);
    return this.outputs === 'logits' ? out.softmax(-1) : out;
  }

  /** Per example: max over squeezers of ‖p(x) − p(squeeze(x))‖₁ (eval mode, no gradients). */
  scores(x: Tensor): Float32Array {
    checkFloatBatch(x, 'FeatureSqueezingDetector', 1);
    const n = x.shape[0];
    const out = new Float32Array(n);
    const m = this.#forward instanceof Module ? this.#forward : null;
    const wasTraining = m?.training ?? false;
    m?.eval();
    try {
      for (let s = 0; s < n; s += this.batchSize) {
        const e = Math.min(n, s + this.batchSize);
        out.set(tidy(() => noGrad(() => {
          const xb = rows(x, s, e);
          const p = this.#probs(xb);
          let best: Tensor | null = null;
          for (const q of this.squeezers) {
            const d = p.sub(this.#probs(q.apply(xb))).abs().sum(1);
            best = best === null ? d : best.maximum(d);
          }
          return best!.dataSync() as Float32Array;
        })), s);
      }
    } finally {
      m?.train(wasTraining);
    }
    return out;
  }

  /**
   * Sets the threshold from legitimate examples: the smallest score that flags at most
   * ⌊fpr · n⌋ of them (Xu et al. pick it for a 5% false-positive rate on legitimate data).
   * Returns the threshold.
   */
  fit(xClean: Tensor, o: { fpr?: number } = {}): number {
    o = checkKeys(o, ['fpr'], 'FeatureSqueezingDetector.fit');
    const fpr = checkNumber(o.fpr ?? 0.05, 'FeatureSqueezingDetector.fit: fpr', { finite: true });
    if (!(fpr >= 0 && fpr < 1)) throw new ArgumentError(`FeatureSqueezingDetector.fit: fpr must be in [0, 1), got ${fpr}`);
    const s = this.scores(xClean).sort();
    if (s.length === 0) throw new ArgumentError('FeatureSqueezingDetector.fit needs at least one legitimate example');
    this.threshold = s[s.length - 1 - Math.floor(fpr * s.length)];
    return this.threshold;
  }

  /** Flags (score above the threshold) and scores of a batch. */
  detect(x: Tensor): Detection {
    if (this.threshold === null) throw new ArgumentError('FeatureSqueezingDetector.detect: no threshold yet; call fit(xClean, { fpr }) or pass the threshold option');
    const t = this.threshold;
    const scores = this.scores(x);
    return { flags: Array.from(scores, (v) => v > t), scores };
  }
}

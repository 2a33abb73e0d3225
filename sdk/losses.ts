/**
 * Loss functions. Each takes predictions and targets and a `reduction` (`'mean'` default, `'sum'`,
 * `'none'` for per-sample losses). Classification losses accept probabilities or, with
 * `fromLogits`, raw scores (then computed stably through log-softmax / log-sigmoid).
 * Class weights: per-sample losses are scaled by the weight of their class and `'mean'` divides by
 * the total weight (PyTorch's convention).
 */
import { ArgumentError, DTypeError, ShapeError } from './errors.js';
import { tensor } from './creation.js';
import { tidy } from './memory.js';
import { Tensor } from './tensor.js';

export type Reduction = 'mean' | 'sum' | 'none';

function sameShape(p: Tensor, t: Tensor, name: string): void {
  if (p.shape.join() !== t.shape.join()) {
    throw new ShapeError(`${name}: predictions [${p.shape.join(', ')}] and targets [${t.shape.join(', ')}] must have the same shape`);
  }
}

function reduce(perSample: Tensor, reduction: Reduction, weightSum?: Tensor): Tensor {
  switch (reduction) {
    case 'none':
      return perSample;
    case 'sum':
      return perSample.sum();
    case 'mean':
      return weightSum ? perSample.sum().div(weightSum) : perSample.mean();
    default:
      throw new ArgumentError(`unknown reduction '${String(reduction)}' (expected 'mean', 'sum' or 'none')`);
  }
}

/** Mean over all but the first axis: one value per sample. */
function perSampleMean(t: Tensor): Tensor {
  return t.rank <= 1 ? t : t.mean(Array.from({ length: t.rank - 1 }, (_, i) => i + 1));
}

export interface LossOptions {
  reduction?: Reduction;
}

/** Mean squared error. */
function mseImpl(pred: Tensor, target: Tensor, o: LossOptions = {}): Tensor {
  sameShape(pred, target, 'mse');
  return reduce(perSampleMean(pred.sub(target).square()), o.reduction ?? 'mean');
}

/** Mean absolute error. */
function maeImpl(pred: Tensor, target: Tensor, o: LossOptions = {}): Tensor {
  sameShape(pred, target, 'mae');
  return reduce(perSampleMean(pred.sub(target).abs()), o.reduction ?? 'mean');
}

/** Huber loss: quadratic within `delta`, linear beyond. */
function huberImpl(pred: Tensor, target: Tensor, o: LossOptions & { delta?: number } = {}): Tensor {
  sameShape(pred, target, 'huber');
  const delta = o.delta ?? 1;
  if (!(delta > 0)) throw new ArgumentError(`huber delta must be > 0, got ${delta}`);
  const err = pred.sub(target).abs();
  const quad = err.clamp(-Infinity, delta);
  // 0.5·q² + δ·(|e| - q): equals 0.5e² inside, δ|e| - 0.5δ² outside.
  const loss = quad.square().mul(0.5).add(err.sub(quad).mul(delta));
  return reduce(perSampleMean(loss), o.reduction ?? 'mean');
}

const EPS = 1e-7;

/** Binary cross-entropy on probabilities, or on logits with `fromLogits` (stable). */
function binaryCrossEntropyImpl(pred: Tensor, target: Tensor, o: LossOptions & { fromLogits?: boolean; posWeight?: number } = {}): Tensor {
  sameShape(pred, target, 'binaryCrossEntropy');
  let loss: Tensor;
  const pw = o.posWeight ?? 1;
  if (o.fromLogits) {
    // log σ(x) = -softplus(-x), log(1-σ(x)) = -softplus(x)
    const lp = pred.neg().softplus(); // -log σ(x)
    const ln = pred.softplus(); // -log(1-σ(x))
    loss = target.mul(lp).mul(pw).add(target.neg().add(1).mul(ln));
  } else {
    const p = pred.clamp(EPS, 1 - EPS);
    loss = target.mul(p.log()).mul(pw).add(target.neg().add(1).mul(p.neg().add(1).log())).neg();
  }
  return reduce(perSampleMean(loss), o.reduction ?? 'mean');
}

export interface CategoricalOptions extends LossOptions {
  fromLogits?: boolean;
  /** Mixes the targets with the uniform distribution: y·(1 - s) + s / classes. */
  labelSmoothing?: number;
  /** One weight per class. */
  classWeights?: number[] | Tensor;
}

function classWeightTensor(w: number[] | Tensor | undefined, classes: number): Tensor | null {
  if (w === undefined) return null;
  const t = w instanceof Tensor ? w : tensor(w);
  if (t.rank !== 1 || t.shape[0] !== classes) throw new ShapeError(`classWeights must have one entry per class (${classes}), got [${t.shape.join(', ')}]`);
  return t;
}

function logProbs(pred: Tensor, fromLogits: boolean | undefined): Tensor {
  return fromLogits ? pred.logSoftmax(-1) : pred.clamp(EPS, 1 - EPS).log();
}

/** Cross-entropy against one-hot (or soft) targets over the last axis. */
function categoricalCrossEntropyImpl(pred: Tensor, target: Tensor, o: CategoricalOptions = {}): Tensor {
  sameShape(pred, target, 'categoricalCrossEntropy');
  const classes = pred.shape[pred.rank - 1];
  let y = target;
  const s = o.labelSmoothing ?? 0;
  if (!(s >= 0 && s < 1)) throw new ArgumentError(`labelSmoothing must be in [0, 1), got ${s}`);
  if (s > 0) y = target.mul(1 - s).add(s / classes);
  const perSample = y.mul(logProbs(pred, o.fromLogits)).sum(-1).neg();
  const cw = classWeightTensor(o.classWeights, classes);
  if (!cw) return reduce(perSample, o.reduction ?? 'mean');
  const w = target.mul(cw).sum(-1);
  return reduce(perSample.mul(w), o.reduction ?? 'mean', w.sum());
}

/** Cross-entropy against int32 class indices (`labels` shaped like `pred` without its last axis). */
function sparseCategoricalCrossEntropyImpl(pred: Tensor, labels: Tensor, o: CategoricalOptions = {}): Tensor {
  if (labels.dtype !== 'int32') throw new DTypeError(`sparseCategoricalCrossEntropy: labels must be int32 class indices, got ${labels.dtype}`);
  const lead = pred.shape.slice(0, -1);
  const lbl = labels.rank === pred.rank && labels.shape[labels.rank - 1] === 1 ? labels.squeeze(-1) : labels;
  if (lbl.shape.join() !== lead.join()) {
    throw new ShapeError(`sparseCategoricalCrossEntropy: labels [${labels.shape.join(', ')}] must match predictions [${pred.shape.join(', ')}] without the class axis`);
  }
  const classes = pred.shape[pred.rank - 1];
  const logp = logProbs(pred, o.fromLogits);
  const idx = lbl.expandDims(-1);
  let perSample = logp.gather(-1, idx).squeeze(-1).neg();
  const s = o.labelSmoothing ?? 0;
  if (!(s >= 0 && s < 1)) throw new ArgumentError(`labelSmoothing must be in [0, 1), got ${s}`);
  if (s > 0) perSample = perSample.mul(1 - s).add(logp.mean(-1).neg().mul(s));
  const cw = classWeightTensor(o.classWeights, classes);
  if (!cw) return reduce(perSample, o.reduction ?? 'mean');
  const w = cw.indexSelect(0, lbl);
  return reduce(perSample.mul(w), o.reduction ?? 'mean', w.sum());
}

/**
 * Kullback-Leibler divergence KL(target ‖ pred) = Σ target·(log target − log pred) over the last
 * axis. `pred` holds probabilities, or log-probabilities with `logInput` (what distillation uses).
 */
function klDivergenceImpl(pred: Tensor, target: Tensor, o: LossOptions & { logInput?: boolean } = {}): Tensor {
  sameShape(pred, target, 'klDivergence');
  const logq = o.logInput ? pred : pred.clamp(EPS, 1).log();
  const t = target.clamp(EPS, 1);
  const perSample = target.mul(t.log().sub(logq)).sum(-1);
  return reduce(perSample.rank > 1 ? perSampleMean(perSample) : perSample, o.reduction ?? 'mean');
}

export type LossFn = (pred: Tensor, target: Tensor) => Tensor;
export type LossName = 'mse' | 'mae' | 'huber' | 'binaryCrossEntropy' | 'categoricalCrossEntropy' | 'sparseCategoricalCrossEntropy' | 'klDivergence';

/** Resolves a loss by name (for `compile` and saved configs). */
export function getLoss(l: LossName | LossFn): LossFn {
  if (typeof l === 'function') return l;
  const table: Record<LossName, LossFn> = {
    mse: (p, t) => mse(p, t), mae: (p, t) => mae(p, t), huber: (p, t) => huber(p, t),
    binaryCrossEntropy: (p, t) => binaryCrossEntropy(p, t),
    categoricalCrossEntropy: (p, t) => categoricalCrossEntropy(p, t),
    sparseCategoricalCrossEntropy: (p, t) => sparseCategoricalCrossEntropy(p, t),
    klDivergence: (p, t) => klDivergence(p, t),
  };
  const f = table[l];
  if (!f) throw new ArgumentError(`unknown loss '${String(l)}' (known: ${Object.keys(table).join(', ')})`);
  return f;
}

// Public entry points free their intermediates (only the loss tensor survives).
export const mse = (pred: Tensor, target: Tensor, o: LossOptions = {}): Tensor => tidy(() => mseImpl(pred, target, o));
export const mae = (pred: Tensor, target: Tensor, o: LossOptions = {}): Tensor => tidy(() => maeImpl(pred, target, o));
export const huber = (pred: Tensor, target: Tensor, o: LossOptions & { delta?: number } = {}): Tensor => tidy(() => huberImpl(pred, target, o));
export const binaryCrossEntropy = (pred: Tensor, target: Tensor, o: LossOptions & { fromLogits?: boolean; posWeight?: number } = {}): Tensor =>
  tidy(() => binaryCrossEntropyImpl(pred, target, o));
export const categoricalCrossEntropy = (pred: Tensor, target: Tensor, o: CategoricalOptions = {}): Tensor => tidy(() => categoricalCrossEntropyImpl(pred, target, o));
export const sparseCategoricalCrossEntropy = (pred: Tensor, labels: Tensor, o: CategoricalOptions = {}): Tensor =>
  tidy(() => sparseCategoricalCrossEntropyImpl(pred, labels, o));
export const klDivergence = (pred: Tensor, target: Tensor, o: LossOptions & { logInput?: boolean } = {}): Tensor => tidy(() => klDivergenceImpl(pred, target, o));

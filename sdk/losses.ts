/**
 * Loss functions, with PyTorch's conventions. Each takes predictions and targets and a `reduction`:
 * - `'mean'` (default): the mean over every element (classification losses: over every position,
 *   i.e. every element but the class axis; with class weights and class-index targets, the weighted
 *   mean Σ w_{y_i}·l_i / Σ w_{y_i}, as `torch.nn.CrossEntropyLoss`);
 * - `'sum'`: the sum over every element;
 * - `'none'`: no reduction, PyTorch's shape (elementwise losses: the input's shape; classification
 *   losses: the input's shape without the class axis);
 * - `'perSample'`: one value per sample (row of the first axis), the mean of `'none'` over every other
 *   axis (KL: summed over the class axis first). This is Keras' `reduction: 'none'`, which this
 *   library's `'none'` meant before; Keras' `'sum'` is `loss(…, { reduction: 'perSample' }).sum()`.
 * Classification losses accept probabilities or, with `fromLogits`, raw scores (then computed stably
 * through log-softmax / log-sigmoid). The log of a probability is clamped at -100, as
 * `torch.nn.BCELoss` does, so probabilities of exactly 0 or 1 give finite losses and gradients.
 */
import { checkBool, checkInt, checkNumber, checkOptions, describe } from './args.js';
import { ArgumentError, DTypeError, ShapeError } from './errors.js';
import { tensor } from './creation.js';
import { tidy } from './memory.js';
import { Tensor } from './tensor.js';

/** How a loss reduces its elementwise values: `'mean'` (default), `'sum'`, `'none'` (PyTorch's shape) or `'perSample'` (one value per row of the first axis); see the module docs. */
export type Reduction = 'mean' | 'sum' | 'none' | 'perSample';
/** KL divergence also has PyTorch's `'batchmean'`: the sum over every element divided by the batch size. */
export type KLReduction = Reduction | 'batchmean';

const REDUCTIONS: readonly string[] = ['mean', 'sum', 'none', 'perSample'];

function checkReduction<R extends string>(r: R | undefined, op: string, allowed: readonly string[] = REDUCTIONS): R | 'mean' {
  if (r === undefined) return 'mean';
  if (!allowed.includes(r)) {
    throw new ArgumentError(`${op}: unknown reduction ${describe(r)} (expected ${allowed.map((a) => `'${a}'`).join(', ')})`);
  }
  return r;
}

/** The arguments every loss takes: two tensors and an options object (typed errors for anything else). */
function lossArgs<O extends object>(op: string, pred: unknown, target: unknown, o: O | undefined, targetName = 'targets'): O {
  if (!(pred instanceof Tensor)) throw new ArgumentError(`${op}: predictions must be a Tensor, got ${describe(pred)}`);
  if (!(target instanceof Tensor)) throw new ArgumentError(`${op}: ${targetName} must be a Tensor, got ${describe(target)}`);
  const opts = checkOptions(o, `${op} options`);
  for (const k of ['fromLogits', 'logInput', 'logTarget'] as const) {
    const v = (opts as Record<string, unknown>)[k];
    if (v !== undefined) checkBool(v, `${op}: ${k}`);
  }
  return opts;
}

function sameShape(p: Tensor, t: Tensor, name: string): void {
  if (p.shape.join() !== t.shape.join()) {
    throw new ShapeError(`${name}: predictions [${p.shape.join(', ')}] and targets [${t.shape.join(', ')}] must have the same shape`);
  }
}

/** Mean over all but the first axis: one value per sample. */
function perSampleMean(t: Tensor): Tensor {
  return t.rank <= 1 ? t : t.mean(Array.from({ length: t.rank - 1 }, (_, i) => i + 1));
}

/** Reduces unreduced losses `l`; `'mean'` divides by `weightSum` when given (weighted mean). */
function reduce(l: Tensor, reduction: Reduction, weightSum?: Tensor): Tensor {
  switch (reduction) {
    case 'none':
      return l;
    case 'sum':
      return l.sum();
    case 'perSample':
      return perSampleMean(l);
    default:
      return weightSum ? l.sum().div(weightSum) : l.mean();
  }
}

/** Smallest positive float32: log of it is -103.3, below the -100 floor, so exact zeros reach the floor too. */
const TINY = 2 ** -149;
/** `max(log p, -100)` (PyTorch's BCELoss floor). The inner clamp keeps the gradient finite at p = 0. */
function clampedLog(p: Tensor): Tensor {
  return p.clamp(TINY, Infinity).log().clamp(-100, Infinity);
}

/** Options every loss takes. */
export interface LossOptions {
  /** How the elementwise losses are reduced (default `'mean'`). */
  reduction?: Reduction;
}

/** Mean squared error (`torch.nn.MSELoss`). */
function mseImpl(pred: Tensor, target: Tensor, opts?: LossOptions): Tensor {
  const o = lossArgs('mse', pred, target, opts);
  const r = checkReduction(o.reduction, 'mse');
  sameShape(pred, target, 'mse');
  return reduce(pred.sub(target).square(), r);
}

/** Mean absolute error (`torch.nn.L1Loss`). */
function maeImpl(pred: Tensor, target: Tensor, opts?: LossOptions): Tensor {
  const o = lossArgs('mae', pred, target, opts);
  const r = checkReduction(o.reduction, 'mae');
  sameShape(pred, target, 'mae');
  return reduce(pred.sub(target).abs(), r);
}

/** Huber loss (`torch.nn.HuberLoss`): quadratic within `delta`, linear beyond. */
function huberImpl(pred: Tensor, target: Tensor, opts?: LossOptions & { delta?: number }): Tensor {
  const o = lossArgs('huber', pred, target, opts);
  const r = checkReduction(o.reduction, 'huber');
  sameShape(pred, target, 'huber');
  const delta = checkNumber(o.delta ?? 1, 'huber delta');
  if (!(delta > 0 && Number.isFinite(delta))) throw new ArgumentError(`huber delta must be finite and > 0, got ${delta}`);
  const err = pred.sub(target).abs();
  const quad = err.clamp(-Infinity, delta);
  // 0.5·q² + δ·(|e| - q): equals 0.5e² inside, δ|e| - 0.5δ² outside.
  const loss = quad.square().mul(0.5).add(err.sub(quad).mul(delta));
  return reduce(loss, r);
}

/** Options of {@link binaryCrossEntropy}. */
export interface BinaryCrossEntropyOptions extends LossOptions {
  /** `pred` holds raw scores, computed stably through log-sigmoid (`torch.nn.BCEWithLogitsLoss`); default false: probabilities (`BCELoss`). */
  fromLogits?: boolean;
  /**
   * Weight of the positive term, `torch.nn.BCEWithLogitsLoss`'s `pos_weight`: one number, or one per
   * class (broadcast over the last axis). Also applied, with the same formula, to probabilities.
   */
  posWeight?: number | number[] | Tensor;
}

function posWeightTensor(pw: number | number[] | Tensor | undefined, pred: Tensor): number | Tensor {
  if (pw === undefined) return 1;
  if (typeof pw === 'number' || !(Array.isArray(pw) || pw instanceof Tensor)) {
    return checkNumber(pw, 'binaryCrossEntropy: posWeight', { finite: true });
  }
  const classes = pred.rank === 0 ? 1 : pred.shape[pred.rank - 1];
  if (Array.isArray(pw) && !pw.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new ArgumentError('binaryCrossEntropy: posWeight must hold finite numbers');
  }
  const t = pw instanceof Tensor ? pw : tensor(pw);
  if (t.rank !== 1 || t.shape[0] !== classes) {
    throw new ShapeError(`binaryCrossEntropy: posWeight must be a number or one entry per class (${classes}), got [${t.shape.join(', ')}]`);
  }
  return t;
}

/**
 * Binary cross-entropy on probabilities (`torch.nn.BCELoss`: each log clamped at -100), or on logits
 * with `fromLogits` (`torch.nn.BCEWithLogitsLoss`, stable for any input).
 */
function binaryCrossEntropyImpl(pred: Tensor, target: Tensor, opts?: BinaryCrossEntropyOptions): Tensor {
  const o = lossArgs('binaryCrossEntropy', pred, target, opts);
  const r = checkReduction(o.reduction, 'binaryCrossEntropy');
  sameShape(pred, target, 'binaryCrossEntropy');
  const pw = posWeightTensor(o.posWeight, pred);
  let loss: Tensor;
  if (o.fromLogits) {
    // -log σ(x) = softplus(-x), -log(1-σ(x)) = softplus(x)
    loss = target.mul(pred.neg().softplus()).mul(pw).add(target.neg().add(1).mul(pred.softplus()));
  } else {
    loss = target.mul(clampedLog(pred)).mul(pw).add(target.neg().add(1).mul(clampedLog(pred.neg().add(1)))).neg();
  }
  return reduce(loss, r);
}

/** Options of {@link categoricalCrossEntropy}. */
export interface CategoricalOptions extends LossOptions {
  /** `pred` holds raw scores, computed through log-softmax over the last axis (`torch.nn.CrossEntropyLoss`); default false: probabilities. */
  fromLogits?: boolean;
  /** Mixes the targets with the uniform distribution: y·(1 - s) + s / classes (PyTorch's `label_smoothing`). */
  labelSmoothing?: number;
  /** One weight per class (PyTorch's `weight`). */
  classWeights?: number[] | Tensor;
}

/** Options of {@link sparseCategoricalCrossEntropy}. */
export interface SparseCategoricalOptions extends CategoricalOptions {
  /**
   * Positions whose label is this value contribute nothing and do not count in `'mean'` (PyTorch's
   * `ignore_index`, e.g. padding tokens). Unset by default: every label must be a class index.
   */
  ignoreIndex?: number;
}

function classWeightTensor(w: number[] | Tensor | undefined, classes: number, op: string): Tensor | null {
  if (w === undefined) return null;
  if (!(Array.isArray(w) || w instanceof Tensor)) throw new ArgumentError(`${op}: classWeights must be an array of numbers or a Tensor, got ${describe(w)}`);
  if (Array.isArray(w) && !w.every((v) => typeof v === 'number' && Number.isFinite(v))) throw new ArgumentError(`${op}: classWeights must hold finite numbers`);
  const t = w instanceof Tensor ? w : tensor(w);
  if (t.rank !== 1 || t.shape[0] !== classes) throw new ShapeError(`${op}: classWeights must have one entry per class (${classes}), got [${t.shape.join(', ')}]`);
  return t;
}

function smoothing(o: CategoricalOptions, op: string): number {
  const s = checkNumber(o.labelSmoothing ?? 0, `${op}: labelSmoothing`);
  if (!(s >= 0 && s <= 1)) throw new ArgumentError(`${op}: labelSmoothing must be in [0, 1], got ${s}`);
  return s;
}

function logProbs(pred: Tensor, fromLogits: boolean | undefined): Tensor {
  return fromLogits ? pred.logSoftmax(-1) : clampedLog(pred);
}

/**
 * Cross-entropy against one-hot or soft (probability) targets over the last axis:
 * `torch.nn.CrossEntropyLoss` with probability targets, l = -Σ_c w_c·y_c·log p_c. With class
 * weights, `'mean'` still divides by the number of positions (PyTorch's rule for probability targets).
 */
function categoricalCrossEntropyImpl(pred: Tensor, target: Tensor, opts?: CategoricalOptions): Tensor {
  const op = 'categoricalCrossEntropy';
  const o = lossArgs(op, pred, target, opts);
  const r = checkReduction(o.reduction, op);
  sameShape(pred, target, op);
  if (pred.rank === 0) throw new ShapeError(`${op}: predictions need a class axis, got a scalar`);
  const classes = pred.shape[pred.rank - 1];
  const s = smoothing(o, op);
  const cw = classWeightTensor(o.classWeights, classes, op);
  const y = s > 0 ? target.mul(1 - s).add(s / classes) : target;
  const terms = y.mul(logProbs(pred, o.fromLogits));
  return reduce((cw ? terms.mul(cw) : terms).sum(-1).neg(), r);
}

/**
 * Cross-entropy against int32 class indices (`labels` shaped like `pred` without its last axis):
 * `torch.nn.CrossEntropyLoss` with class-index targets. With class weights,
 * l_i = (1 - s)·w_{y_i}·(-log p_{i,y_i}) + (s / C)·Σ_c w_c·(-log p_{i,c}) and `'mean'` divides the
 * sum by Σ_i w_{y_i}.
 */
function sparseCategoricalCrossEntropyImpl(pred: Tensor, labels: Tensor, opts?: SparseCategoricalOptions): Tensor {
  const op = 'sparseCategoricalCrossEntropy';
  const o = lossArgs(op, pred, labels, opts, 'labels');
  const r = checkReduction(o.reduction, op);
  if (labels.dtype !== 'int32') throw new DTypeError(`${op}: labels must be int32 class indices, got ${labels.dtype}`);
  if (pred.rank === 0) throw new ShapeError(`${op}: predictions need a class axis, got a scalar`);
  const lead = pred.shape.slice(0, -1);
  const lbl = labels.rank === pred.rank && labels.shape[labels.rank - 1] === 1 ? labels.squeeze(-1) : labels;
  if (lbl.shape.join() !== lead.join()) {
    throw new ShapeError(`${op}: labels [${labels.shape.join(', ')}] must match predictions [${pred.shape.join(', ')}] without the class axis`);
  }
  const classes = pred.shape[pred.rank - 1];
  const s = smoothing(o, op);
  const cw = classWeightTensor(o.classWeights, classes, op);
  const ignore = o.ignoreIndex === undefined ? undefined : checkInt(o.ignoreIndex, `${op}: ignoreIndex`);
  // keepMask: 1 where the label counts; ignored positions gather class 0 and are then zeroed
  // (compare works on float32, exact for labels below 2^24).
  let idx = lbl;
  let keepMask: Tensor | null = null;
  if (ignore !== undefined) {
    const lblf = lbl.cast('float32');
    keepMask = lblf.notEqual(ignore);
    idx = lblf.mul(keepMask).cast('int32');
  }
  const logp = logProbs(pred, o.fromLogits);
  let loss = logp.gather(-1, idx.expandDims(-1)).squeeze(-1).neg();
  // Weight of each position's true class (flattened: indexSelect takes a 1-D index); 0 when ignored.
  let wy = cw ? cw.indexSelect(0, idx.reshape([-1])).reshape(lbl.shape) : null;
  if (keepMask) wy = wy ? wy.mul(keepMask) : keepMask;
  if (wy) loss = loss.mul(wy);
  if (s > 0) {
    const smooth = (cw ? logp.mul(cw) : logp).sum(-1).mul(-s / classes);
    loss = loss.mul(1 - s).add(keepMask ? smooth.mul(keepMask) : smooth);
  }
  // 'mean' divides by the weights (or the count) of the positions that count.
  return reduce(loss, r, wy ? wy.sum() : undefined);
}

/** Options of {@link klDivergence}. */
export interface KLDivergenceOptions {
  /**
   * `'mean'` is PyTorch's: the mean over every element, which is not the KL divergence (PyTorch warns
   * about it). `'batchmean'` (the sum divided by the batch size) is the true KL divergence per sample,
   * which this library's `'mean'` meant before; distillation uses it.
   */
  reduction?: KLReduction;
  /** `pred` holds log-probabilities (PyTorch's `kl_div` input) instead of probabilities. */
  logInput?: boolean;
  /** `target` holds log-probabilities (PyTorch's `log_target`). */
  logTarget?: boolean;
}

/**
 * Kullback-Leibler divergence KL(target ‖ pred), `torch.nn.KLDivLoss` elementwise:
 * target·(log target − log pred) (0 where the target is 0). `pred` holds probabilities, or
 * log-probabilities with `logInput` (what distillation uses); `target` probabilities, or
 * log-probabilities with `logTarget`.
 */
function klDivergenceImpl(pred: Tensor, target: Tensor, opts?: KLDivergenceOptions): Tensor {
  const o = lossArgs('klDivergence', pred, target, opts);
  const r = checkReduction(o.reduction, 'klDivergence', [...REDUCTIONS, 'batchmean']);
  sameShape(pred, target, 'klDivergence');
  const logq = o.logInput ? pred : clampedLog(pred);
  // target·log target with 0·log 0 = 0 (the clamp keeps the log finite for exact zeros).
  const loss = o.logTarget ? target.exp().mul(target.sub(logq)) : target.mul(target.clamp(TINY, Infinity).log().sub(logq));
  if (r === 'batchmean') return loss.sum().div(pred.rank === 0 ? 1 : pred.shape[0]);
  if (r === 'perSample') return perSampleMean(loss.rank > 0 ? loss.sum(-1) : loss);
  return reduce(loss, r);
}

/** A loss as `fit` and `compile` call it: predictions and targets in, a scalar (or reduced) loss tensor out. */
export type LossFn = (pred: Tensor, target: Tensor) => Tensor;
/** Names of the built-in losses, accepted wherever a loss function is. */
export type LossName = 'mse' | 'mae' | 'huber' | 'binaryCrossEntropy' | 'categoricalCrossEntropy' | 'sparseCategoricalCrossEntropy' | 'klDivergence';

/** Resolves a loss by name (for `compile` and saved configs). */
export function getLoss(l: LossName | LossFn): LossFn {
  if (typeof l === 'function') return l;
  const table: Record<LossName, LossFn> = {
    mse: (p, t) => mse(p, t), mae: (p, t) => mae(p, t), huber: (p, t) => huber(p, t),
    binaryCrossEntropy: (p, t) => binaryCrossEntropy(p, t),
    categoricalCrossEntropy: (p, t) => categoricalCrossEntropy(p, t),
    sparseCategoricalCrossEntropy: (p, t) => sparseCategoricalCrossEntropy(p, t),
    klDivergence: (p, t) => klDivergence(p, t, { reduction: 'batchmean' }),
  };
  const f = Object.hasOwn(table, l) ? table[l] : undefined;
  if (!f) throw new ArgumentError(`unknown loss '${String(l)}' (known: ${Object.keys(table).join(', ')})`);
  return f;
}

// Public entry points free their intermediates (only the loss tensor survives).
/** Mean squared error `(pred − target)²` (`torch.nn.MSELoss`); shapes must match (ShapeError otherwise). */
export const mse = (pred: Tensor, target: Tensor, o?: LossOptions): Tensor => tidy(() => mseImpl(pred, target, o));
/** Mean absolute error `|pred − target|` (`torch.nn.L1Loss`); shapes must match. */
export const mae = (pred: Tensor, target: Tensor, o?: LossOptions): Tensor => tidy(() => maeImpl(pred, target, o));
/** Huber loss (`torch.nn.HuberLoss`): `0.5·e²` for `|e| ≤ delta`, `delta·(|e| − 0.5·delta)` beyond; `delta` defaults to 1. */
export const huber = (pred: Tensor, target: Tensor, o?: LossOptions & { delta?: number }): Tensor => tidy(() => huberImpl(pred, target, o));
/** Binary cross-entropy of probabilities (or logits with `fromLogits`) against 0/1 (or soft) targets of the same shape (`torch.nn.BCELoss` / `BCEWithLogitsLoss`); log clamped at -100. */
export const binaryCrossEntropy = (pred: Tensor, target: Tensor, o?: BinaryCrossEntropyOptions): Tensor =>
  tidy(() => binaryCrossEntropyImpl(pred, target, o));
/** Cross-entropy against one-hot or soft targets over the last (class) axis (`torch.nn.CrossEntropyLoss` with probability targets). */
export const categoricalCrossEntropy = (pred: Tensor, target: Tensor, o?: CategoricalOptions): Tensor => tidy(() => categoricalCrossEntropyImpl(pred, target, o));
/** Cross-entropy against int32 class indices `labels` shaped like `pred` without its last axis (`torch.nn.CrossEntropyLoss`); supports `ignoreIndex` and class weights. */
export const sparseCategoricalCrossEntropy = (pred: Tensor, labels: Tensor, o?: SparseCategoricalOptions): Tensor =>
  tidy(() => sparseCategoricalCrossEntropyImpl(pred, labels, o));
/** Kullback-Leibler divergence KL(target ‖ pred) (`torch.nn.KLDivLoss`); see {@link KLDivergenceOptions} for inputs in log space and `'batchmean'`. */
export const klDivergence = (pred: Tensor, target: Tensor, o?: KLDivergenceOptions): Tensor => tidy(() => klDivergenceImpl(pred, target, o));

/**
 * F1 score (scikit-learn's `f1_score`) and a callback that logs it on validation data each epoch.
 * F1 is not a mean over batches, so it cannot be a per-batch `fit` metric: `ValidationF1` predicts
 * the whole validation set and computes it once, for `EarlyStopping({ monitor: 'val_f1', mode: 'max' })`.
 */
import { checkInt, checkOptions, checkSize, describe } from '../args.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { Callback, type Logs } from './callbacks.js';

/** Options of `f1Score`. */
export interface F1Options {
  /** `'binary'`: F1 of `positiveClass` (default); `'macro'`: the unweighted mean of every class's F1. */
  average?: 'binary' | 'macro';
  /** The positive class for `'binary'` (default 1). */
  positiveClass?: number;
}

/** Predicted classes: arg-max of `[N, C>1]` scores, or probabilities `[N]`/`[N, 1]` thresholded at 0.5. */
function predictedClasses(pred: Tensor): Int32Array {
  const n = pred.shape[0];
  const c = pred.rank === 2 ? pred.shape[1] : 1;
  if (!(pred.rank === 1 || pred.rank === 2)) throw new ShapeError(`f1Score: predictions must be [N] or [N, classes], got [${pred.shape.join(', ')}]`);
  const d = pred.dataSync();
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (c === 1) out[i] = Number(d[i]) > 0.5 ? 1 : 0;
    else {
      let best = 0;
      for (let j = 1; j < c; j++) if (Number(d[i * c + j]) > Number(d[i * c + best])) best = j;
      out[i] = best;
    }
  }
  return out;
}

/**
 * F1 = 2·precision·recall / (precision + recall) of predictions (`[N, classes]` scores or `[N]`
 * probabilities) against int32 labels `[N]` (or `[N, 1]`); 0 when a class is never predicted nor
 * present (scikit-learn's `zero_division=0`).
 */
export function f1Score(pred: Tensor, target: Tensor, opts: F1Options = {}): number {
  assertTensor(pred, 'f1Score needs the predictions as a Tensor');
  assertTensor(target, 'f1Score needs the labels as a Tensor');
  const o = checkOptions(opts, 'f1Score options');
  if (o.average !== undefined && o.average !== 'binary' && o.average !== 'macro') throw new ArgumentError(`f1Score average must be 'binary' or 'macro', got ${describe(o.average)}`);
  const pos = o.positiveClass === undefined ? 1 : checkInt(o.positiveClass, 'f1Score positiveClass', 0);
  const guess = predictedClasses(pred);
  if (target.size !== guess.length || (target.rank !== 1 && !(target.rank === 2 && target.shape[1] === 1))) {
    throw new ShapeError(`f1Score: labels [${target.shape.join(', ')}] must be [${guess.length}] (one class per prediction)`);
  }
  const truth = target.dataSync();
  const classes = new Set<number>();
  for (let i = 0; i < guess.length; i++) {
    const t = Number(truth[i]);
    if (!Number.isInteger(t) || t < 0) throw new ArgumentError(`f1Score: label ${t} at ${i} is not a class index`);
    classes.add(t);
    classes.add(guess[i]);
  }
  const f1Of = (k: number): number => {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < guess.length; i++) {
      const t = Number(truth[i]) === k;
      const g = guess[i] === k;
      if (t && g) tp++;
      else if (g) fp++;
      else if (t) fn++;
    }
    return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  };
  if ((o.average ?? 'binary') === 'binary') return f1Of(pos);
  const ks = [...classes];
  return ks.length === 0 ? 0 : ks.reduce((s, k) => s + f1Of(k), 0) / ks.length;
}

/**
 * Logs the F1 score of the model on `(x, labels)` at the end of every epoch under `name` (default
 * `'val_f1'`). List it BEFORE an `EarlyStopping`/`ModelCheckpoint` that monitors it (callbacks run
 * in order); their `'auto'` mode maximises any monitor whose name contains `f1`.
 */
export class ValidationF1 extends Callback {
  readonly #x: Tensor;
  readonly #y: Tensor;
  readonly #opts: F1Options & { name?: string; batchSize?: number };
  /** F1 on inputs `x` and int32 labels `y` (borrowed: keep them alive while training). */
  constructor(x: Tensor, y: Tensor, opts: F1Options & { name?: string; batchSize?: number } = {}) {
    super();
    assertTensor(x, 'ValidationF1 needs the validation inputs as a Tensor');
    assertTensor(y, 'ValidationF1 needs the validation labels as a Tensor');
    checkOptions(opts, 'ValidationF1 options');
    if (opts.name !== undefined && (typeof opts.name !== 'string' || opts.name.length === 0)) throw new ArgumentError(`ValidationF1 name must be a non-empty string, got ${describe(opts.name)}`);
    if (opts.batchSize !== undefined) checkSize(opts.batchSize, 'ValidationF1 batchSize', 1);
    if (opts.average !== undefined && opts.average !== 'binary' && opts.average !== 'macro') throw new ArgumentError(`ValidationF1 average must be 'binary' or 'macro', got ${describe(opts.average)}`);
    if (opts.positiveClass !== undefined) checkInt(opts.positiveClass, 'ValidationF1 positiveClass', 0);
    if (x.shape[0] !== y.shape[0]) throw new ShapeError(`ValidationF1: ${x.shape[0]} inputs but ${y.shape[0]} labels`);
    this.#x = x;
    this.#y = y;
    this.#opts = opts;
  }
  override onEpochEnd(_epoch: number, logs: Logs): void {
    const pred = this.ctx.model.predict(this.#x, { batchSize: this.#opts.batchSize ?? 64 });
    try {
      logs[this.#opts.name ?? 'val_f1'] = f1Score(pred, this.#y, this.#opts);
    } finally {
      pred.dispose();
    }
  }
}

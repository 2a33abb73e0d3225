/** Metrics for `fit`/`evaluate`: each maps (predictions, targets) to a scalar tensor. */
import { ArgumentError } from '../errors.js';
import { tidy } from '../memory.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { checkNumber, describe } from '../args.js';

/** Both arguments of a metric are Tensors (a typed error naming the metric otherwise). */
function checkPair(pred: unknown, target: unknown, who: string): void {
  assertTensor(pred, `${who} needs the predictions as a Tensor`);
  assertTensor(target, `${who} needs the targets as a Tensor`);
}

/** A metric: `(pred, target)` to a scalar tensor, averaged over batches by `fit`/`evaluate`. */
export type MetricFn = (pred: Tensor, target: Tensor) => Tensor;
/** Names of the built-in metrics (`'mae'`/`'mse'` are {@link meanAbsoluteError}/{@link meanSquaredError}). */
export type MetricName = 'accuracy' | 'binaryAccuracy' | 'mae' | 'mse';
/** A metric with the name it is logged under. */
export interface NamedMetric {
  /** Log key (validation values get a `val_` prefix). */
  name: string;
  /** Computes the metric for one batch. */
  fn: MetricFn;
}

/**
 * Fraction of correct predictions. Multi-class predictions (last axis > 1) compare the arg-max to
 * int32 labels or to the arg-max of one-hot targets; single-output predictions are thresholded at
 * 0.5 (probabilities).
 */
export function accuracy(pred: Tensor, target: Tensor): Tensor {
  checkPair(pred, target, 'accuracy');
  return tidy(() => {
    const classes = pred.shape[pred.rank - 1];
    if (pred.rank >= 2 && classes > 1) {
      const guess = pred.argMax(-1);
      const truth = target.dtype === 'int32'
        ? (target.rank === pred.rank ? target.squeeze(-1) : target)
        : target.argMax(-1);
      return guess.cast('float32').equal(truth.cast('float32')).mean();
    }
    return binaryAccuracy(pred, target);
  });
}

/** Fraction of predictions on the right side of `threshold` (default 0.5, probabilities) compared with 0/1 targets, reshaped like `pred`. */
export function binaryAccuracy(pred: Tensor, target: Tensor, threshold = 0.5): Tensor {
  checkPair(pred, target, 'binaryAccuracy');
  checkNumber(threshold, 'binaryAccuracy threshold');
  return tidy(() => pred.greater(threshold).equal(target.cast('float32').reshape(pred.shape)).mean());
}

/** Mean of `|pred − target|` over every element, a scalar. */
export function meanAbsoluteError(pred: Tensor, target: Tensor): Tensor {
  checkPair(pred, target, 'meanAbsoluteError');
  return tidy(() => pred.sub(target).abs().mean());
}
/** Mean of `(pred − target)²` over every element, a scalar. */
export function meanSquaredError(pred: Tensor, target: Tensor): Tensor {
  checkPair(pred, target, 'meanSquaredError');
  return tidy(() => pred.sub(target).square().mean());
}

/** Turns a metric name, NamedMetric or function into a NamedMetric (functions are named by `fn.name`); throws ArgumentError for unknown names. */
export function resolveMetric(m: MetricName | NamedMetric | MetricFn): NamedMetric {
  if (typeof m === 'function') return { name: m.name || 'metric', fn: m };
  if (typeof m === 'object' && m && typeof m.fn === 'function') return m;
  switch (m) {
    case 'accuracy':
      return { name: 'accuracy', fn: accuracy };
    case 'binaryAccuracy':
      return { name: 'binaryAccuracy', fn: (p, t) => binaryAccuracy(p, t) };
    case 'mae':
      return { name: 'mae', fn: meanAbsoluteError };
    case 'mse':
      return { name: 'mse', fn: meanSquaredError };
    default:
      throw new ArgumentError(`unknown metric ${describe(m)} (known: accuracy, binaryAccuracy, mae, mse)`);
  }
}

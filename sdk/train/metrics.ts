/** Metrics for `fit`/`evaluate`: each maps (predictions, targets) to a scalar tensor. */
import { ArgumentError } from '../errors.js';
import { tidy } from '../memory.js';
import type { Tensor } from '../tensor.js';

export type MetricFn = (pred: Tensor, target: Tensor) => Tensor;
export type MetricName = 'accuracy' | 'binaryAccuracy' | 'mae' | 'mse';
export interface NamedMetric {
  name: string;
  fn: MetricFn;
}

/**
 * Fraction of correct predictions. Multi-class predictions (last axis > 1) compare the arg-max to
 * int32 labels or to the arg-max of one-hot targets; single-output predictions are thresholded at
 * 0.5 (probabilities).
 */
export function accuracy(pred: Tensor, target: Tensor): Tensor {
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

export function binaryAccuracy(pred: Tensor, target: Tensor, threshold = 0.5): Tensor {
  return tidy(() => pred.greater(threshold).equal(target.cast('float32').reshape(pred.shape)).mean());
}

export function meanAbsoluteError(pred: Tensor, target: Tensor): Tensor {
  return tidy(() => pred.sub(target).abs().mean());
}
export function meanSquaredError(pred: Tensor, target: Tensor): Tensor {
  return tidy(() => pred.sub(target).square().mean());
}

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
      throw new ArgumentError(`unknown metric ${JSON.stringify(m)} (known: accuracy, binaryAccuracy, mae, mse)`);
  }
}

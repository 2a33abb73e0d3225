/**
 * One optimisation step on one batch — the part of `fit` that adversarial training (`eg.robust`),
 * differential privacy (`eg.privacy`) and other trainers replace, so they all reuse `fit`'s loop
 * (batching, callbacks, progress, validation, checkpoints) instead of writing their own.
 */
import { checkFunction, checkObject } from '../args.js';
import { ArgumentError } from '../errors.js';
import { Module } from '../nn/module.js';
import type { LossFn } from '../losses.js';
import { clipGradNorm, clipGradValue, type Optimizer } from '../optim/optimizers.js';
import { assertTensor, type Tensor } from '../tensor.js';

/** What `fit` hands a step. Everything is borrowed: the step must not dispose `x`, `y` or the model's tensors. */
export interface StepInput {
  /** The model being trained. */
  model: Module;
  /** The optimizer to step. */
  optimizer: Optimizer;
  /** The compiled loss (`compile({ loss })`). */
  loss: LossFn;
  /** Input batch. */
  x: Tensor;
  /** Target batch. */
  y: Tensor;
  /** The model's trainable parameters. */
  params: Tensor[];
  /** `compile({ clipGradNorm, clipGradValue })`, for steps that honour them. */
  clipGradNorm?: number;
  /** Clamp every gradient element into `[-clipGradValue, clipGradValue]` before the step (`compile({ clipGradValue })`). */
  clipGradValue?: number;
  /** Where the run stands: 0-based epoch, global step (batches done before this one), run length. */
  epoch: number;
  /** Optimizer steps done before this one, over the whole run. */
  step: number;
  /** Total epochs of the run. */
  epochs: number;
  /** Batches per epoch; null when the data set cannot tell (a stream). */
  batchesPerEpoch: number | null;
}

/**
 * What a step returns: the batch's loss (logged as `loss`) and the model's outputs the metrics are
 * computed on (with `y`). A step runs inside `fit`'s `tidy`: tensors it returns or leaves behind are
 * freed after the metrics are read.
 */
export interface StepOutput {
  /** The batch loss (a scalar tensor), already backpropagated by the step. */
  loss: Tensor;
  /** The model's predictions for the batch, used for the metrics. */
  pred: Tensor;
}

/** A replacement for `fit`'s step: `fit(x, y, { trainStep })`. */
export type TrainStep = (s: StepInput) => StepOutput;

/**
 * `fit`'s own step: zero the gradients, forward, loss plus the model's regularization, backward,
 * optional gradient clipping, optimizer step.
 */
export function standardStep(s: StepInput): StepOutput {
  checkStepInput(s, 'standardStep');
  s.optimizer.zeroGrad();
  const pred = s.model.forward(s.x);
  const loss = s.loss(pred, s.y);
  const reg = s.model.regularizationLoss();
  (reg ? loss.add(reg) : loss).backward();
  if (s.clipGradValue !== undefined) clipGradValue(s.params, s.clipGradValue);
  if (s.clipGradNorm !== undefined) clipGradNorm(s.params, s.clipGradNorm);
  s.optimizer.step();
  return { loss, pred };
}

/**
 * Checks what a step was handed (fit always hands a good one; a step called by hand may not): a typed
 * error naming the field, never a TypeError from deep inside.
 */
export function checkStepInput(s: unknown, what: string): asserts s is StepInput {
  const o = checkObject<Record<string, unknown>>(s, `${what}: its input`, 'a StepInput { model, optimizer, loss, x, y, params, ... }');
  if (!(o.model instanceof Module)) throw new ArgumentError(`${what}: input.model must be a Module`);
  const opt = o.optimizer as { zeroGrad?: unknown; step?: unknown } | null;
  if (!opt || typeof opt !== 'object' || typeof opt.zeroGrad !== 'function' || typeof opt.step !== 'function') throw new ArgumentError(`${what}: input.optimizer must be an Optimizer`);
  checkFunction(o.loss, `${what}: input.loss`);
  assertTensor(o.x, `${what}: input.x must be a Tensor`);
  assertTensor(o.y, `${what}: input.y must be a Tensor`);
  if (!Array.isArray(o.params)) throw new ArgumentError(`${what}: input.params must be an array of Tensors`);
}

/** `eg.train`: metrics and callbacks for `fit` (which lives on every Module). */
import './trainer.js';
export type { CompileOptions, FitOptions, History } from './trainer.js';
export * from './callbacks.js';
/** Metrics for `compile`/`fit`/`evaluate`: each maps (predictions, targets) to a scalar tensor. */
export * as metrics from './metrics.js';
export { f1Score, ValidationF1, type F1Options } from './f1.js';
export { saveCheckpoint, loadCheckpoint, type CheckpointOptions, type TrainingState } from './checkpoint.js';
export { standardStep, checkStepInput, type TrainStep, type StepInput, type StepOutput } from './step.js';

/**
 * `eg.robust`: adversarial training, robustness evaluation, certification (randomized smoothing) and
 * hardening (input guards, feature squeezing, model integrity). Issue 15; see README "Robustness".
 */
export { adversarialStep } from './training.js';
export type { AdversarialMethod, AdversarialStep, AdversarialStepOptions, EpsSchedule } from './training.js';
export { ABSTAIN, SmoothedClassifier, certifiedAccuracy, certifiedAccuracyChart, noiseAugmentationStep } from './smoothing.js';
export type { CertifiedAccuracyChartOptions, CertifiedAccuracySeries, CertifyOptions, CertifyResult, Classifier, NoiseAugmentationOptions, SamplingOptions, SmoothedClassifierOptions, SmoothedPredictOptions } from './smoothing.js';
export { betaInc, betaQuantile, binomTest, logGamma, normalCdf, normalQuantile, proportionConfint } from './stats.js';
export { GuardedModel, InputGuard, NonFiniteInputError, guard } from './guard.js';
export type { GuardOptions, GuardedFunction } from './guard.js';
export { checkGradientMasking, evaluateRobustness } from './evaluate.js';
export type { AttackEvaluation, AttackName, EnsembleAttack, EvaluateRobustnessOptions, GradientMaskingOptions, GradientMaskingReport, MaskingSetting, RobustnessReport } from './evaluate.js';
export { FeatureSqueezingDetector, SqueezedModel, bitDepth, medianSmoothing, squeezedModel, squeezerFromConfig } from './squeeze.js';
export type { Detection, FeatureSqueezingOptions, Squeezer, SqueezerConfig } from './squeeze.js';

/**
 * `eg.privacy`: differential privacy — per-example gradients, DP-SGD (`PrivacyEngine`), accountants and
 * privacy auditing. Issue 16; see README "Differential privacy".
 */
export { validate, fix } from './validate.js';
export type { ValidationProblem } from './validate.js';
export { membershipInference, rocCurve, oneRunAudit, oneRunEpsilonBound } from './audit.js';
export type {
  LabeledData, MembershipInferenceOptions, MembershipInferenceResult, RocCurve, ShadowOptions,
  OneRunAuditOptions, OneRunAuditResult, CanaryInclusion, EpsilonBoundOptions,
} from './audit.js';
export {
  Accountant, RDPAccountant, PRVAccountant, GaussianAccountant, createAccountant, getNoiseMultiplier,
  computeRdp, getPrivacySpent, DEFAULT_ALPHAS, computeMuPoisson, computeMuUniform, epsFromMu, MAX_PRV_GRID,
} from './accountants/index.js';
export type {
  AccountantState, HistoryEntry, Mechanism, NoiseMultiplierOptions, PrvEpsilon, PrvOptions, RdpConversion, RdpEpsilonOptions,
} from './accountants/index.js';
export { PrivacyEngine, PrivacyCallback } from './engine.js';
export type { AccountantName, PrivacyEngineOptions, MakePrivateOptions, MakePrivateWithEpsilonOptions, PrivateTraining } from './engine.js';
export { poissonDataset } from './sampling.js';
export type { PoissonOptions } from './sampling.js';
export { perSampleGradients, clippedGradientSum, hasPerSampleRule, UnsupportedLayerError } from './grad-sample.js';
export type { Clipping, LossReduction, ClipOptions, ClippedGradients } from './grad-sample.js';

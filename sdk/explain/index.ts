/**
 * `eg.explain`: why a model predicts what it predicts. Forward hooks and activation capture, and
 * gradient attributions with Captum's names and shapes (`attribute(inputs, { target, baselines,
 * additionalForwardArgs, ... })`), on any Module or differentiable function, batched, seeded, the
 * same bits in Node and browsers.
 */
export { captureActivations, closeMatches } from './hooks.js';
export type { Captured, ForwardHook, HookHandle } from './hooks.js';
export { Attribution } from './common.js';
export type { AttributionOf, BaseOptions, Baseline, Baselines, Forward, ForwardFunction, Inputs, Target } from './common.js';
export { Saliency, InputXGradient, IntegratedGradients, GradientShap, NoiseTunnel, GuidedBackprop, DeepLift } from './gradient.js';
export type {
  AttributionMethod, DeepLiftOptions, GradientShapOptions, IntegratedGradientsOptions, NoiseTunnelOptions, NoiseTunnelType, SaliencyOptions, WithDelta,
} from './gradient.js';
export { LayerAttribution, LayerActivation, LayerGradCam, GuidedGradCam, LayerIntegratedGradients, interpolate } from './layer.js';
export type { GuidedGradCamOptions, InterpolateMode, LayerGradCamOptions, LayerIntegratedGradientsOptions, LayerSpec } from './layer.js';
export { linearProbe } from './probes.js';
export type { LinearProbeOptions, LinearProbeReport, ProbeResult } from './probes.js';
export { quadrature, gaussLegendre, INTEGRATION_METHODS } from './approximation.js';
export type { IntegrationMethod, Quadrature } from './approximation.js';
export { PerturbationAttribution, Occlusion, FeatureAblation, FeaturePermutation, ShapleyValueSampling, KernelShap, Lime } from './perturbation.js';
export type {
  FeatureAblationOptions, FeatureMask, FeaturePermutationOptions, KernelShapOptions, LimeOptions, OcclusionOptions, PerturbationOptions, ShapleyValueSamplingOptions,
} from './perturbation.js';
export { permutationImportance, SCORES } from './importance.js';
export type { PermutationImportanceOptions, PermutationImportanceResult, ScoreFunction, ScoreName } from './importance.js';
export { infidelity, sensitivityMax, deletionCurve, insertionCurve } from './metrics.js';
export type { Curve, CurveOptions, ExplanationFunction, InfidelityOptions, PerturbFunction, SensitivityMaxOptions } from './metrics.js';
export { sensitivityAnalysis, partialDependence, mquantiles, SENSITIVITY_KINDS } from './sensitivity.js';
export type { PartialDependenceKind, PartialDependenceOptions, PartialDependenceResult, SensitivityKind, SensitivityOptions } from './sensitivity.js';

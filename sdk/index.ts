/**
 * edgegrad: deep learning at the edge. A Rust engine compiled to WebAssembly (SIMD, threads)
 * under this typed API; identical results in Node.js and browsers.
 *
 * ```ts
 * import * as eg from 'edgegrad';
 * await eg.init();
 * const w = eg.randn([3, 2], 0, 1, { seed: 1 }).requiresGrad_();
 * const loss = eg.tidy(() => eg.tensor([[1, 2, 3]]).matmul(w).relu().sum());
 * loss.backward();
 * console.log(w.grad!.dataSync());
 * ```
 */
export { init, backendInfo, setNumThreads, shutdownWorkers, isInitialized } from './runtime.js';
export type { InitOptions, BackendInfo, Build } from './runtime.js';
export { tidy, keep, dispose, memory, releasePool, setMemoryLimit, withAllocationLimit } from './memory.js';
export type { MemoryInfo } from './memory.js';
export { Tensor, isTensor } from './tensor.js';
export type { DType, DataArray, TensorLike, NestedArray } from './tensor.js';
export * from './creation.js';
export * from './ops.js';
export { noGrad, isGradEnabled } from './autograd.js';
export * from './errors.js';
export { loadDigits, readAsset } from './datasets.js';
export type { Digits } from './datasets.js';
/** Layers, models and their building blocks (PyTorch's `torch.nn`). */
export * as nn from './nn/index.js';
/** Optimizers, learning-rate schedules and gradient clipping (PyTorch's `torch.optim`). */
export * as optim from './optim/index.js';
/** Loss functions with PyTorch's definitions and reductions. */
export * as losses from './losses.js';
/** Datasets and batching for `fit` (streaming or in memory). */
export * as data from './data.js';
/** Training: `fit` and its callbacks, checkpoints, metrics and custom train steps. */
export * as train from './train/index.js';
export { saveModel, loadModel, serializeModel, saveWeights, loadWeights } from './io/model-io.js';
export type { LoadModelOptions, ModelArtifacts, ModelJson, ModelSource, SaveOptions } from './io/model-io.js';
export { encodeSafetensors, decodeSafetensors } from './io/safetensors.js';
export { IntegrityError, generateSigningKeys } from './io/integrity.js';
export type { ModelSignature } from './io/integrity.js';
/** Model compression: int8 quantization, QAT, pruning, distillation, binary weights, reports. */
export * as compress from './compress/index.js';
/** Explainability: hooks and attributions with Captum's names and definitions. */
export * as explain from './explain/index.js';
/** Adversarial attacks: FGSM, PGD, APGD, Square, Carlini-Wagner, DeepFool. */
export * as attacks from './attacks/index.js';
/** Charts and images: line/bar/xy charts, attribution overlays, feature maps (PNG and SVG). */
export * as viz from './viz/index.js';
/** Robustness: evaluation, adversarial training, randomized smoothing, input guards, feature squeezing. */
export * as robust from './robust/index.js';
/** Differential privacy: DP-SGD, accountants and privacy audits. */
export * as privacy from './privacy/index.js';
/** Encrypted inference with CKKS homomorphic encryption (Microsoft SEAL). */
export * as he from './he/index.js';
/** ONNX export and import. */
export * as onnx from './onnx/index.js';

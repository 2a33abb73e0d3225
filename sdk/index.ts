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
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as losses from './losses.js';
export * as data from './data.js';
export * as train from './train/index.js';
export { saveModel, loadModel, serializeModel, saveWeights, loadWeights } from './io/model-io.js';
export type { LoadModelOptions, ModelArtifacts, ModelJson, ModelSource, SaveOptions } from './io/model-io.js';
export { encodeSafetensors, decodeSafetensors } from './io/safetensors.js';
export { IntegrityError, generateSigningKeys } from './io/integrity.js';
export type { ModelSignature } from './io/integrity.js';
export * as compress from './compress/index.js';
export * as explain from './explain/index.js';
export * as attacks from './attacks/index.js';
export * as viz from './viz/index.js';
export * as robust from './robust/index.js';
export * as privacy from './privacy/index.js';
export * as he from './he/index.js';
export * as onnx from './onnx/index.js';

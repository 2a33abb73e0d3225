/**
 * `eg.compress`: model compression.
 *
 * - Post-training int8 quantization: `quantize(model, calibrationData, options)` → `QuantizedModel`
 *   (int8 GEMM/conv kernels with int32 accumulation, per-channel weights, calibrated activations;
 *   `serialize`/`saveQuantizedModel`/`loadQuantizedModel`).
 * - Quantization-aware training: `prepareQAT(model)` → a trainable `QATModel`; `convertQAT`.
 * - Pruning: `Pruner`/`magnitudePrune` (layer-wise or global), `PolynomialDecay` + `PruningCallback`
 *   (gradual, Zhu & Gupta), `structuredPrune` (smaller dense model), `sparsityReport`.
 * - Distillation: `distill` (Hinton loss, optional hints), `distillationLoss`.
 * - Binary weights: `BinaryLinear`, `BinaryConv2d`, `binarizeModel`, `BinaryWeightClip`, `BinaryModel`
 *   (bit-packed inference).
 * - Reports: `compressionReport`, `formatCompressionTable`.
 * - `int8`: the engine's int8 layer ops one by one, for custom layers.
 */
export type { QParams, ConvGeometry, LayerConstants, LayerOutput } from './engine.js';
/** The int8 layer ops one by one (packing, constants, GEMM/conv, pooling, add, concat, masks...). */
export * as int8 from './engine.js';
export {
  chooseQParams, quantizeTensor, dequantizeTensor, quantizePerChannel, fakeQuant, fakeQuantPerChannel, binarize,
  minMax, histogram, calibRange,
} from './engine.js';
export { traceModel, disposeGraph } from './graph.js';
export type { FloatGraph, GNode } from './graph.js';
export {
  quantize, calibrate, calibrateRanges, QuantizedModel, saveQuantizedModel, loadQuantizedModel,
} from './quantize.js';
export type { CalibrationMethod, CalibrationOptions, QuantizeOptions, QuantizedGraphJson } from './quantize.js';
export { prepareQAT, convertQAT, QATModel } from './qat.js';
export type { QATOptions } from './qat.js';
export {
  Pruner, magnitudePrune, PolynomialDecay, PruningCallback, sparsityReport, structuredPrune,
} from './prune.js';
export type { PrunerOptions, PolynomialDecayOptions, SparsityRow, StructuredPruneOptions } from './prune.js';
export { distill, distillationLoss, evalAccuracy } from './distill.js';
export type { DistillOptions, DistillHistory, DistillationLossOptions, HintOptions } from './distill.js';
export { BinaryLinear, BinaryConv2d, BinaryModel, binarizeModel, clipLatentWeights, BinaryWeightClip } from './binary.js';
export { compressionReport, formatCompressionTable, timeMs } from './report.js';
export type { CompressionStats, ReportOptions } from './report.js';

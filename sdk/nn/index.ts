/** `eg.nn`: modules, layers, layer functions, initializers and regularizers. */
export { Module, registerModule, moduleFromConfig } from './module.js';
export type { ModuleConfig } from './module.js';
export * from './layers.js';
export { GroupNorm } from './groupnorm.js';
export type { GroupNormOptions } from './groupnorm.js';
export { Square, PolyActivation, RELU_FIT } from './polynomial.js';
export type { PolyActivationOptions } from './polynomial.js';
/** Layer ops as functions, like `torch.nn.functional`: conv2d, pooling, batchNorm, layerNorm, dropout, linear. */
export * as functional from './functional.js';
export { initialize } from './init.js';
export type { Initializer, InitializerName } from './init.js';
export { l1, l2, l1l2, penalty } from './regularizers.js';
export type { Regularizer } from './regularizers.js';
export * from './recurrent.js';
export * from './attention.js';
export * from './transformer.js';
/** Text helpers for language models: CharTokenizer, random training windows, sampling and generation. */
export * as text from './text.js';
export * from './models.js';
export * from './bert.js';
export * from './tokenizer.js';
export { Graph, SymbolicTensor } from './graph.js';
export type { GraphSpec, MergeOp } from './graph.js';
/** The functional (graph) model style: `graph.input`, merges such as `graph.add`/`graph.concat`, and `Graph`. */
export * as graph from './graph.js';
/** PyTorch interop: load PyTorch state-dict weights (safetensors) into edgegrad modules and export them in PyTorch's names and layouts. */
export * as interop from './interop.js';
/** Low-rank adapters (LoRA) with PEFT's meaning and adapter file layout. */
export * as lora from './lora.js';

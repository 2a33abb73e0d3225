/** `eg.nn`: modules, layers, layer functions, initializers and regularizers. */
export { Module, registerModule, moduleFromConfig } from './module.js';
export type { ModuleConfig } from './module.js';
export * from './layers.js';
export * as functional from './functional.js';
export { initialize } from './init.js';
export type { Initializer, InitializerName } from './init.js';
export { l1, l2, l1l2, penalty } from './regularizers.js';
export type { Regularizer } from './regularizers.js';
export * from './recurrent.js';
export * from './attention.js';
export * from './transformer.js';
export * as text from './text.js';
export * from './models.js';
export { Graph, SymbolicTensor } from './graph.js';
export type { GraphSpec, MergeOp } from './graph.js';
export * as graph from './graph.js';
export * as interop from './interop.js';

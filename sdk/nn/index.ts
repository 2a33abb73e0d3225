/** `eg.nn`: modules, layers, layer functions, initializers and regularizers. */
export { Module, registerModule, moduleFromConfig } from './module.js';
export type { ModuleConfig } from './module.js';
export * from './layers.js';
export * as functional from './functional.js';
export { initialize } from './init.js';
export type { Initializer, InitializerName } from './init.js';
export { l1, l2, l1l2, penalty } from './regularizers.js';
export type { Regularizer } from './regularizers.js';

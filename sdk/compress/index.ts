/** `eg.compress`: quantization, pruning, distillation, binarization and reports. */
export {};

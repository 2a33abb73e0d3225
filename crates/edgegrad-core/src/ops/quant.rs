//! Quantized inference: int8 tensors with scales and zero points, int8 GEMM/conv, binarized weights.

//! int8 kernels: GEMM and convolution with exact int32 accumulation, requantization.

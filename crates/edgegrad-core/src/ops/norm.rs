//! Normalisation layers with fused kernels: batch norm and layer norm.

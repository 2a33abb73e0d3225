//! Exports for convolution and pooling.

//! 2-D convolution (NHWC activations, HWIO weights) with stride, padding, dilation and groups.

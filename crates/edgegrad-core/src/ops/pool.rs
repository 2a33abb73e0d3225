//! 2-D pooling (NHWC): max and average.

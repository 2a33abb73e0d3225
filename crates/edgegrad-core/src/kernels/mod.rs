//! Compute kernels on plain slices. No allocation in hot loops; `unsafe` only where a comment
//! states the invariant that makes it sound.

pub mod attention;
pub mod binary;
pub mod conv;
pub mod copy;
pub mod elementwise;
pub mod gemm;
pub mod grad_sample;
pub mod math;
pub mod pool;
pub mod reduce;
pub mod relaxed;
pub mod int8;
pub mod rnn;

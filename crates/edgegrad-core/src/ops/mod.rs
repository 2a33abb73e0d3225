//! Differentiable ops: each validates its inputs (typed errors, never a panic), runs a kernel,
//! and records its backward next to the forward, so both live in one place.

mod activation;
mod attention;
mod attribution;
mod conv;
mod elementwise;
mod grad_sample;
mod linalg;
mod norm;
pub mod optim;
mod pool;
pub mod quant;
mod recurrent;
mod reduce;
mod shape_ops;

pub use activation::*;
pub use attention::*;
pub use conv::*;
pub use elementwise::*;
pub use grad_sample::*;
pub use linalg::*;
pub use norm::*;
pub use pool::*;
pub use recurrent::*;
pub use reduce::*;
pub use shape_ops::*;

use crate::dtype::DType;
use crate::error::Result;
use crate::ensure;
use crate::tensor::Tensor;

/// Fails with a DTypeError unless `t` is float32.
pub(crate) fn expect_f32(t: &Tensor, op: &str) -> Result<()> {
    ensure!(t.dtype() == DType::F32, DType, "{} expects float32 input, got {}", op, t.dtype());
    Ok(())
}

/// A fresh contiguous float tensor from a buffer the caller filled completely.
pub(crate) fn new_f32(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_f32(data, shape)
}

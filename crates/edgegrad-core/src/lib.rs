#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]
//! edgegrad's engine: tensors in linear memory, SIMD kernels split over a deterministic worker
//! pool, a reverse-mode autograd tape, and a counter-based RNG. Plain Rust: the wasm boundary
//! lives in `edgegrad-wasm`; everything here is tested natively with `cargo test`.

pub mod error;
pub mod dtype;
pub mod shape;
pub mod simd;
pub mod panic;
pub mod parallel;
pub mod scratch;
pub mod storage;
pub mod tensor;
pub mod autograd;
pub mod rng;
pub mod kernels;
pub mod ops;

pub use dtype::DType;
pub use error::{Error, ErrorKind, Result};
pub use tensor::Tensor;

#![cfg_attr(target_arch = "wasm32", feature(alloc_error_hook))]
//! The wasm boundary: one exported function per op, integer handles in and out, no element loops
//! in JS. Failures cross as JS `Error`s whose `name` is the error kind ("ShapeError", ...); the
//! TypeScript SDK turns them into its typed error classes.
//!
//! Tensors live in a handle table on the thread that drives the engine (the JS caller). A handle
//! packs a slot index with a generation, so a stale handle is reported instead of aliasing a new
//! tensor.


mod handles;
mod exports;
mod exports_conv;
mod exports_nn;
mod exports_privacy;
mod exports_quant;
mod exports_seq;

pub use exports::*;
pub use exports_conv::*;
pub use exports_nn::*;
pub use exports_privacy::*;
pub use exports_quant::*;
pub use exports_seq::*;

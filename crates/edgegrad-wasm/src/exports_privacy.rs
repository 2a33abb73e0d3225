//! Exports for per-example gradients (`eg.privacy`): terminal ops on a layer's input and output
//! gradient. Conv layouts and options as in exports_conv.rs; `coef` 0 means none.

use crate::exports::{arg_err, out, t, R};
use edgegrad_core::ops::{self, Conv2dOptions};
use wasm_bindgen::prelude::*;

fn conv_args(kernel: &[u32], stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<([usize; 2], Conv2dOptions)> {
    fn fixed<const N: usize>(what: &str, v: &[u32]) -> R<[usize; N]> {
        if v.len() != N {
            return Err(arg_err(format!("grad_sample_conv2d: {} needs {} values, got {} ({:?})", what, N, v.len(), v)));
        }
        let mut a = [0usize; N];
        for (d, &s) in a.iter_mut().zip(v) {
            *d = s as usize;
        }
        Ok(a)
    }
    Ok((fixed("kernel", kernel)?, Conv2dOptions {
        stride: fixed("stride", stride)?,
        padding: fixed("padding [top, bottom, left, right]", padding)?,
        dilation: fixed("dilation", dilation)?,
        groups: groups as usize,
    }))
}

/// `[B, K, N]`: per-example Σ_t a[i,t]ᵀ g[i,t] (Linear: `op_grad_sample_outer(dy, x)`).
#[wasm_bindgen]
pub fn op_grad_sample_outer(a: u32, g: u32) -> R<u32> {
    out(ops::grad_sample_outer(&*t(a)?, &*t(g)?))
}

/// `[B]`: squared norms of `op_grad_sample_outer(a, g)` without materialising it.
#[wasm_bindgen]
pub fn op_grad_sample_outer_norms_sq(a: u32, g: u32) -> R<u32> {
    out(ops::grad_sample_outer_norms_sq(&*t(a)?, &*t(g)?))
}

/// `[B, KH, KW, Cin/groups, Cout]` per-example conv weight gradients.
#[wasm_bindgen]
pub fn op_grad_sample_conv2d(x: u32, dy: u32, kernel: &[u32], stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<u32> {
    let (k, o) = conv_args(kernel, stride, padding, dilation, groups)?;
    out(ops::grad_sample_conv2d(&*t(x)?, &*t(dy)?, k, &o))
}

/// `[B]` squared norms of the per-example conv weight gradients.
#[wasm_bindgen]
pub fn op_grad_sample_conv2d_norms_sq(x: u32, dy: u32, kernel: &[u32], stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<u32> {
    let (k, o) = conv_args(kernel, stride, padding, dilation, groups)?;
    out(ops::grad_sample_conv2d_norms_sq(&*t(x)?, &*t(dy)?, k, &o))
}

/// The conv weight gradient with example i's output gradient scaled by `coef[i]`.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn op_conv2d_weight_grad(x: u32, dy: u32, kernel: &[u32], stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32, coef: u32) -> R<u32> {
    let (k, o) = conv_args(kernel, stride, padding, dilation, groups)?;
    let c = if coef == 0 { None } else { Some(t(coef)?) };
    out(ops::conv2d_weight_grad(&*t(x)?, &*t(dy)?, k, &o, c.as_deref()))
}

/// `[B, V, D]` per-example embedding-table gradients.
#[wasm_bindgen]
pub fn op_grad_sample_embedding(idx: u32, g: u32, num_embeddings: u32) -> R<u32> {
    out(ops::grad_sample_embedding(&*t(idx)?, &*t(g)?, num_embeddings as usize))
}

/// `[B]` squared norms of the per-example embedding-table gradients.
#[wasm_bindgen]
pub fn op_grad_sample_embedding_norms_sq(idx: u32, g: u32) -> R<u32> {
    out(ops::grad_sample_embedding_norms_sq(&*t(idx)?, &*t(g)?))
}

/// `[B]` squared norms of materialised per-example gradients `[B, ...]`.
#[wasm_bindgen]
pub fn op_per_example_norms_sq(g: u32) -> R<u32> {
    out(ops::per_example_norms_sq(&*t(g)?))
}

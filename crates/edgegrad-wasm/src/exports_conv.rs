//! Exports for convolution and pooling. Layouts: activations NHWC, conv weights HWIO
//! `[KH, KW, Cin/groups, Cout]`; `stride`/`dilation`/`kernel` are `[h, w]`, `padding` is
//! `[top, bottom, left, right]`.

use crate::exports::{arg_err, out, t, R};
use edgegrad_core::ops::{self, Conv2dOptions};
use wasm_bindgen::prelude::*;

/// Copies a `u32` slice of exactly `N` entries, or reports an ArgumentError naming `what`.
fn fixed<const N: usize>(op: &str, what: &str, v: &[u32]) -> R<[usize; N]> {
    if v.len() != N {
        return Err(arg_err(format!("{}: {} needs {} values, got {} ({:?})", op, what, N, v.len(), v)));
    }
    let mut a = [0usize; N];
    for (d, &s) in a.iter_mut().zip(v) {
        *d = s as usize;
    }
    Ok(a)
}

/// 2-D convolution; `bias` 0 means none.
#[wasm_bindgen]
pub fn op_conv2d(x: u32, w: u32, bias: u32, stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<u32> {
    let o = conv_options(stride, padding, dilation, groups)?;
    let b = if bias == 0 { None } else { Some(t(bias)?) };
    out(ops::conv2d(&*t(x)?, &*t(w)?, b.as_deref(), &o))
}

fn conv_options(stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<Conv2dOptions> {
    Ok(Conv2dOptions {
        stride: fixed("conv2d", "stride", stride)?,
        padding: fixed("conv2d", "padding [top, bottom, left, right]", padding)?,
        dilation: fixed("conv2d", "dilation", dilation)?,
        groups: groups as usize,
    })
}

#[wasm_bindgen]
pub fn op_max_pool2d(x: u32, kernel: &[u32], stride: &[u32], padding: &[u32]) -> R<u32> {
    let k = fixed("max_pool2d", "kernel", kernel)?;
    let s = fixed("max_pool2d", "stride", stride)?;
    let p = fixed("max_pool2d", "padding [top, bottom, left, right]", padding)?;
    out(ops::max_pool2d(&*t(x)?, k, s, p))
}

#[wasm_bindgen]
pub fn op_avg_pool2d(x: u32, kernel: &[u32], stride: &[u32], padding: &[u32], count_include_pad: bool) -> R<u32> {
    let k = fixed("avg_pool2d", "kernel", kernel)?;
    let s = fixed("avg_pool2d", "stride", stride)?;
    let p = fixed("avg_pool2d", "padding [top, bottom, left, right]", padding)?;
    out(ops::avg_pool2d(&*t(x)?, k, s, p, count_include_pad))
}

/// `op_conv2d` with a fused ReLU epilogue.
#[wasm_bindgen]
pub fn op_conv2d_relu(x: u32, w: u32, bias: u32, stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<u32> {
    let o = conv_options(stride, padding, dilation, groups)?;
    let b = if bias == 0 { None } else { Some(t(bias)?) };
    out(ops::conv2d_act(&*t(x)?, &*t(w)?, b.as_deref(), &o, true))
}

/// `op_conv2d_relu` then 2x2 max pooling at stride 2, in one pass where the kernel allows.
#[wasm_bindgen]
pub fn op_conv2d_relu_max_pool2(x: u32, w: u32, bias: u32, stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<u32> {
    let o = conv_options(stride, padding, dilation, groups)?;
    let b = if bias == 0 { None } else { Some(t(bias)?) };
    out(ops::conv2d_relu_max_pool2(&*t(x)?, &*t(w)?, b.as_deref(), &o))
}

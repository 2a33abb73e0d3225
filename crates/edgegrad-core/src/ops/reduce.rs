//! Reductions (sum, mean, max, min, argmax) and softmax / log-softmax.

use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record, Saved};
use crate::error::Result;
use crate::kernels::reduce::{reduce_mid, softmax_rows, ReduceOp};
use crate::shape::{fmt_shape, norm_axes, norm_axis, numel, reduced_shape};
use crate::simd::F32x4;
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::ensure;

/// Brings `axes` (sorted) into one block: returns a contiguous tensor viewed as
/// [outer, red, inner] together with those sizes.
fn as_outer_red_inner(x: &Tensor, axes: &[usize]) -> Result<(Tensor, usize, usize, usize)> {
    let shape = x.shape();
    let rank = shape.len();
    let consecutive = axes.windows(2).all(|w| w[1] == w[0] + 1);
    if axes.is_empty() {
        return Ok((x.contiguous_nograd()?, numel(shape), 1, 1));
    }
    if consecutive {
        let (a0, a1) = (axes[0], *axes.last().unwrap());
        let outer: usize = shape[..a0].iter().product();
        let red: usize = shape[a0..=a1].iter().product();
        let inner: usize = shape[a1 + 1..].iter().product();
        return Ok((x.contiguous_nograd()?, outer, red, inner));
    }
    // Move the reduced axes last (kept axes keep their order), then reduce rows.
    let mut perm: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
    perm.extend_from_slice(axes);
    let p = super::permute_nograd(x, &perm)?.contiguous_nograd()?;
    let red: usize = axes.iter().map(|&a| shape[a]).product();
    Ok((p, numel(shape) / red.max(1), red, 1))
}

fn reduce_forward(x: &Tensor, axes: &[usize], op: ReduceOp, keepdims: bool) -> Result<Tensor> {
    let out_shape = reduced_shape(x.shape(), axes, keepdims);
    let (xc, outer, red, inner) = as_outer_red_inner(x, axes)?;
    let mut out = alloc_f32(outer * inner);
    if red == 0 {
        ensure!(op == ReduceOp::Sum, Shape, "cannot take the max/min of an empty dimension (shape {})", fmt_shape(x.shape()));
        out.fill(0.0);
    } else {
        reduce_mid(&xc.f32s()?, outer, red, inner, op, &mut out);
    }
    new_f32(out, &out_shape)
}

/// Sum over `axes` (all axes when empty).
pub fn sum(x: &Tensor, axes: &[isize], keepdims: bool) -> Result<Tensor> {
    expect_f32(x, "sum")?;
    let ax = norm_axes(axes, x.rank())?;
    let out = reduce_forward(x, &ax, ReduceOp::Sum, keepdims)?;
    let in_shape = x.shape().to_vec();
    let keep_shape = reduced_shape(&in_shape, &ax, true);
    Ok(record(out, "sum", &[x], move |g, _| {
        let gk = super::reshape(g, &keep_shape)?;
        Ok(vec![Some(super::expand(&gk, &in_shape)?.contiguous_nograd()?)])
    }))
}

/// Mean over `axes` (all axes when empty).
pub fn mean(x: &Tensor, axes: &[isize], keepdims: bool) -> Result<Tensor> {
    expect_f32(x, "mean")?;
    let ax = norm_axes(axes, x.rank())?;
    // As in PyTorch, the mean over zero elements is NaN (0 / 0), not an error.
    let count: usize = ax.iter().map(|&a| x.shape()[a]).product();
    let s = reduce_forward(x, &ax, ReduceOp::Sum, keepdims)?;
    let inv = count as f32;
    let out = super::map_f32(&s, move |v| v.div(F32x4::splat(inv)))?;
    let in_shape = x.shape().to_vec();
    let keep_shape = reduced_shape(&in_shape, &ax, true);
    Ok(record(out, "mean", &[x], move |g, _| {
        let gk = super::map_f32(&super::reshape(g, &keep_shape)?, move |v| v.div(F32x4::splat(inv)))?;
        Ok(vec![Some(super::expand(&gk, &in_shape)?.contiguous_nograd()?)])
    }))
}

fn extreme(x: &Tensor, axes: &[isize], keepdims: bool, op: ReduceOp, name: &'static str) -> Result<Tensor> {
    expect_f32(x, name)?;
    let ax = norm_axes(axes, x.rank())?;
    let out = reduce_forward(x, &ax, op, keepdims)?;
    if !will_record(&[x]) {
        return Ok(out);
    }
    let in_shape = x.shape().to_vec();
    let keep_shape = reduced_shape(&in_shape, &ax, true);
    let xs = Saved::new(x);
    let ys = Saved::new(&out);
    let axes_i: Vec<isize> = ax.iter().map(|&a| a as isize).collect();
    Ok(record(out, name, &[x], move |g, _| {
        // Ties share the gradient evenly.
        let yk = super::reshape(ys.get()?, &keep_shape)?;
        let mask = super::compare(super::CompareOp::Eq, xs.get()?, &yk)?;
        let count = sum(&mask, &axes_i, true)?;
        let gk = super::div(&super::reshape(g, &keep_shape)?, &count)?;
        Ok(vec![Some(super::mul(&mask, &gk)?)])
    }))
}

pub fn max(x: &Tensor, axes: &[isize], keepdims: bool) -> Result<Tensor> {
    extreme(x, axes, keepdims, ReduceOp::Max, "max")
}
pub fn min(x: &Tensor, axes: &[isize], keepdims: bool) -> Result<Tensor> {
    extreme(x, axes, keepdims, ReduceOp::Min, "min")
}

/// Index of the largest value along `axis` (first one on ties), as int32.
pub fn argmax(x: &Tensor, axis: isize, keepdims: bool) -> Result<Tensor> {
    expect_f32(x, "argmax")?;
    let a = norm_axis(axis, x.rank())?;
    let (xc, outer, red, inner) = as_outer_red_inner(x, &[a])?;
    ensure!(red > 0, Shape, "argmax over an empty dimension");
    let v = xc.f32s()?;
    let mut out = vec![0i32; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let (mut best, mut bi) = (v[o * red * inner + i], 0);
            for r in 1..red {
                let x = v[(o * red + r) * inner + i];
                if x > best {
                    best = x;
                    bi = r;
                }
            }
            out[o * inner + i] = bi as i32;
        }
    }
    Tensor::from_i32(out, &reduced_shape(x.shape(), &[a], keepdims))
}

fn softmax_impl(x: &Tensor, axis: isize, log: bool) -> Result<Tensor> {
    let name = if log { "log_softmax" } else { "softmax" };
    expect_f32(x, name)?;
    ensure!(x.rank() > 0, Shape, "{} needs at least one dimension", name);
    let a = norm_axis(axis, x.rank())?;
    let last = x.rank() - 1;
    // Work on the axis as the last dimension.
    let xt = if a == last { x.contiguous_nograd()? } else { super::transpose_nograd(x, a, last)?.contiguous_nograd()? };
    let len = xt.shape()[last];
    let mut out = alloc_f32(xt.numel());
    softmax_rows(&xt.f32s()?, len, &mut out, log);
    let yt = new_f32(out, xt.shape())?;
    let y = if a == last { yt } else { super::transpose_nograd(&yt, a, last)?.contiguous_nograd()? };
    if !will_record(&[x]) {
        return Ok(y);
    }
    let ys = Saved::new(&y);
    Ok(record(y, name, &[x], move |g, _| {
        let y = ys.get()?;
        let gx = if log {
            // g - softmax * sum(g)
            let s = sum(g, &[a as isize], true)?;
            super::sub(g, &super::mul(&super::exp(y)?, &s)?)?
        } else {
            // y * (g - sum(g * y))
            let gy = super::mul(g, y)?;
            let s = sum(&gy, &[a as isize], true)?;
            super::mul(y, &super::sub(g, &s)?)?
        };
        Ok(vec![Some(gx)])
    }))
}

pub fn softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    softmax_impl(x, axis, false)
}
pub fn log_softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    softmax_impl(x, axis, true)
}

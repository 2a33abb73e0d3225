//! 2-D pooling (NHWC): max and average.
//!
//! `kernel` and `stride` are `[height, width]`; `padding` is explicit `[top, bottom, left, right]`
//! and every window must overlap the input (a window made only of padding is refused).
//! Max pooling: padding counts as -infinity; each window outputs its first maximum in row-major
//! window order, NaN counting as larger than any number (so NaN propagates), and the gradient
//! goes to exactly that element. Average pooling divides the window's sum by the number of input
//! (non-padding) elements in it, or by `KH*KW` with `count_include_pad`.

use super::conv::window_out_size;
use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record};
use crate::error::Result;
use crate::kernels::pool::{avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward, PoolGeom};
use crate::shape::{check_shape_valid, fmt_shape, numel};
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::ensure;

fn pool_geom(op: &str, x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> Result<PoolGeom> {
    expect_f32(x, op)?;
    window_geom(op, x, kernel, stride, padding)
}

/// The geometry of NHWC pooling windows over `x` (any dtype), with the argument checks.
pub(crate) fn window_geom(op: &str, x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> Result<PoolGeom> {
    ensure!(x.rank() == 4, Shape, "{} expects an NHWC input of rank 4, got shape {}", op, fmt_shape(x.shape()));
    let [kh, kw] = kernel;
    let [sh, sw] = stride;
    let [pt, pb, pl, pr] = padding;
    ensure!(kh >= 1 && kw >= 1, Argument, "{}: the kernel must be at least 1x1, got [{}, {}]", op, kh, kw);
    ensure!(sh >= 1 && sw >= 1, Argument, "{}: strides must be at least 1, got [{}, {}]", op, sh, sw);
    let (n, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let oh = window_out_size(op, "height", h, pt, pb, kh, 1, sh)?;
    let ow = window_out_size(op, "width", w, pl, pr, kw, 1, sw)?;
    // The first window starts at -pad, the last at (out-1)*stride - pad: both must reach the input.
    ensure!(pt < kh && (oh - 1) * sh < h + pt, Argument,
        "{}: with kernel height {}, stride {} and padding {}+{}, a window lies entirely in the padding of an input of height {}",
        op, kh, sh, pt, pb, h);
    ensure!(pl < kw && (ow - 1) * sw < w + pl, Argument,
        "{}: with kernel width {}, stride {} and padding {}+{}, a window lies entirely in the padding of an input of width {}",
        op, kw, sw, pl, pr, w);
    check_shape_valid(&[n, oh, ow, c])?;
    Ok(PoolGeom { n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow })
}

/// Max pooling over `kernel` windows of an NHWC tensor.
pub fn max_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> Result<Tensor> {
    let g = pool_geom("max_pool2d", x, kernel, stride, padding)?;
    // Window positions are kept as f32, exact up to 2^24.
    ensure!(kernel[0].saturating_mul(kernel[1]) <= 1 << 24, Argument,
        "max_pool2d: a {}x{} window is too large (at most 2^24 elements)", kernel[0], kernel[1]);
    let out_shape = [g.n, g.oh, g.ow, g.c];
    let len = numel(&out_shape);
    let rec = will_record(&[x]);
    let mut out = alloc_f32(len);
    let mut idx = if rec { Some(alloc_f32(len)) } else { None };
    max_pool_forward(&x.contiguous_nograd()?.f32s()?, &g, &mut out, idx.as_deref_mut());
    let out = new_f32(out, &out_shape)?;
    let Some(idx) = idx else { return Ok(out) };
    // A tensor, so the buffer returns to the storage pool with the graph.
    let idx = new_f32(idx, &out_shape)?;
    let in_shape = x.shape().to_vec();
    // DeepLift's max-pool rule needs the input and output; saved only while it is the rule.
    let deeplift = (crate::autograd::backward_rule() == crate::autograd::BackwardRule::Rescale)
        .then(|| (crate::autograd::Saved::new(x), crate::autograd::Saved::new(&out)));
    Ok(record(out, "max_pool2d", &[x], move |gr, _| {
        let gc = gr.contiguous_nograd()?;
        let mut dx = alloc_f32(numel(&in_shape));
        max_pool_backward(&gc.f32s()?, &idx.f32s()?, &g, &mut dx);
        let dx = new_f32(dx, &in_shape)?;
        match &deeplift {
            Some((xs, ys)) => Ok(vec![Some(super::attribution::max_pool_rule(gr, dx, xs.get()?, ys.get()?, &idx, &g)?)]),
            None => Ok(vec![Some(dx)]),
        }
    }))
}

/// Average pooling over `kernel` windows of an NHWC tensor.
pub fn avg_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4], count_include_pad: bool) -> Result<Tensor> {
    let g = pool_geom("avg_pool2d", x, kernel, stride, padding)?;
    let out_shape = [g.n, g.oh, g.ow, g.c];
    let mut out = alloc_f32(numel(&out_shape));
    avg_pool_forward(&x.contiguous_nograd()?.f32s()?, &g, count_include_pad, &mut out);
    let out = new_f32(out, &out_shape)?;
    let in_shape = x.shape().to_vec();
    Ok(record(out, "avg_pool2d", &[x], move |gr, _| {
        let gc = gr.contiguous_nograd()?;
        let mut dx = alloc_f32(numel(&in_shape));
        avg_pool_backward(&gc.f32s()?, &g, count_include_pad, &mut dx);
        Ok(vec![Some(new_f32(dx, &in_shape)?)])
    }))
}

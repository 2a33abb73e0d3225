//! 2-D convolution (NHWC activations, HWIO weights) with stride, padding, dilation and groups.

use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record, Saved};
use crate::error::Result;
use crate::kernels::conv::{conv2d_backward, conv2d_forward_act, conv2d_relu_max_pool2 as conv2d_relu_max_pool2_kernel, fuses_max_pool2, ConvGeom};
use crate::kernels::reduce::{reduce_mid, ReduceOp};
use crate::shape::{check_shape_valid, fmt_shape};
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::ensure;

/// Options of `conv2d`. `stride` and `dilation` are `[height, width]`; `padding` is explicit,
/// `[top, bottom, left, right]` (the SDK turns 'same'/'valid' into numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    pub stride: [usize; 2],
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2dOptions {
    /// Stride 1, no padding, no dilation, one group.
    fn default() -> Self {
        Conv2dOptions { stride: [1, 1], padding: [0; 4], dilation: [1, 1], groups: 1 }
    }
}

/// Output extent of a sliding window along one axis, or a ShapeError when the (dilated) window
/// does not fit in the padded input. `what` names the op and the axis.
#[allow(clippy::too_many_arguments)]
pub(crate) fn window_out_size(
    what: &str, axis: &str, size: usize, pad_lo: usize, pad_hi: usize, kernel: usize, dilation: usize, stride: usize,
) -> Result<usize> {
    let padded = size as u128 + pad_lo as u128 + pad_hi as u128;
    ensure!(padded <= i32::MAX as u128, Argument,
        "{}: the padded input {} {} ({} + padding {}+{}) is too large", what, axis, padded, size, pad_lo, pad_hi);
    let span = dilation as u128 * (kernel as u128 - 1) + 1;
    ensure!(span <= padded, Shape,
        "{}: the {} {} of the window{} does not fit in the input {} {} with padding {}+{} (padded {}); the output would be empty",
        what, axis, kernel,
        if dilation > 1 { format!(" (dilation {}, so it spans {})", dilation, span) } else { String::new() },
        axis, size, pad_lo, pad_hi, padded);
    Ok(((padded - span) / stride as u128 + 1) as usize)
}

/// The checked geometry of `conv2d(x, w, bias, o)` (dtype, rank, channel, group and size errors).
fn conv_geom(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: &Conv2dOptions) -> Result<ConvGeom> {
    expect_f32(x, "conv2d")?;
    expect_f32(w, "conv2d (weights)")?;
    if let Some(b) = bias {
        expect_f32(b, "conv2d (bias)")?;
    }
    ensure!(x.rank() == 4, Shape, "conv2d expects an NHWC input of rank 4, got shape {}", fmt_shape(x.shape()));
    ensure!(w.rank() == 4, Shape,
        "conv2d expects weights [kernelH, kernelW, inChannels/groups, outChannels] of rank 4, got shape {}", fmt_shape(w.shape()));
    let [s_h, s_w] = o.stride;
    let [d_h, d_w] = o.dilation;
    let [p_t, p_b, p_l, p_r] = o.padding;
    let groups = o.groups;
    ensure!(groups >= 1, Argument, "conv2d: groups must be at least 1, got {}", groups);
    ensure!(s_h >= 1 && s_w >= 1, Argument, "conv2d: strides must be at least 1, got [{}, {}]", s_h, s_w);
    ensure!(d_h >= 1 && d_w >= 1, Argument, "conv2d: dilations must be at least 1, got [{}, {}]", d_h, d_w);
    let (n, h, wd, cin) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (kh, kw, cig, cout) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    ensure!(kh >= 1 && kw >= 1, Shape, "conv2d: the kernel must be at least 1x1, weights have shape {}", fmt_shape(w.shape()));
    ensure!(cig.checked_mul(groups) == Some(cin), Shape,
        "conv2d: the input {} has {} channels but the weights {} expect {} x {} groups",
        fmt_shape(x.shape()), cin, fmt_shape(w.shape()), cig, groups);
    ensure!(cout % groups == 0, Shape,
        "conv2d: {} output channels (weights {}) cannot be split into {} groups", cout, fmt_shape(w.shape()), groups);
    if let Some(b) = bias {
        ensure!(b.shape() == [cout], Shape, "conv2d: bias of shape {} for {} output channels (expected [{}])",
            fmt_shape(b.shape()), cout, cout);
    }
    let oh = window_out_size("conv2d", "height", h, p_t, p_b, kh, d_h, s_h)?;
    let ow = window_out_size("conv2d", "width", wd, p_l, p_r, kw, d_w, s_w)?;
    // A stride past the padded extent gives the same single output position; capping it (the
    // padded extent fits an i32, checked above) keeps the kernels' index steps from overflowing.
    let (s_h, s_w) = (s_h.min(h + p_t + p_b), s_w.min(wd + p_l + p_r));
    check_shape_valid(&[n, oh, ow, cout])?;
    Ok(ConvGeom {
        n, h, w: wd, cin, kh, kw, cout, groups, sh: s_h, sw: s_w, dh: d_h, dw: d_w, pt: p_t, pl: p_l, oh, ow,
    })
}

/// `max_pool2d(conv2d_act(x, w, bias, o, true), [2, 2], [2, 2], [0; 4])` (the first layers of an
/// image model at inference), bit for bit. Without a gradient to record, geometries the fused
/// kernel covers run in one pass that never writes the unpooled activations; otherwise the two
/// ops run in turn.
pub fn conv2d_relu_max_pool2(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: &Conv2dOptions) -> Result<Tensor> {
    let unfused = || super::max_pool2d(&conv2d_act(x, w, bias, o, true)?, [2, 2], [2, 2], [0; 4]);
    let inputs: Vec<&Tensor> = match bias {
        Some(b) => vec![x, w, b],
        None => vec![x, w],
    };
    if will_record(&inputs) {
        return unfused();
    }
    let geo = conv_geom(x, w, bias, o)?;
    if !fuses_max_pool2(&geo) {
        return unfused();
    }
    let out_shape = [geo.n, geo.oh / 2, geo.ow / 2, geo.cout];
    let mut out = alloc_f32(out_shape.iter().product());
    let (xc, wc) = (x.contiguous_nograd()?, w.contiguous_nograd()?);
    let bc = bias.map(|b| b.contiguous_nograd()).transpose()?;
    let bv = bc.as_ref().map(|b| b.f32s()).transpose()?;
    conv2d_relu_max_pool2_kernel(&xc.f32s()?, &wc.f32s()?, bv.as_deref(), &geo, &mut out);
    new_f32(out, &out_shape)
}

/// 2-D convolution: `x [N, H, W, Cin]`, `w [KH, KW, Cin/groups, Cout]`, optional `bias [Cout]`,
/// giving `[N, OH, OW, Cout]` with `OH = (H + pad_top + pad_bottom - dil_h*(KH-1) - 1) / stride_h + 1`
/// (same for W). Differentiable with respect to x, w and bias.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: &Conv2dOptions) -> Result<Tensor> {
    conv2d_act(x, w, bias, o, false)
}

/// `conv2d` followed by ReLU in the same pass when `relu` (the fused epilogue inference wants;
/// the backward masks the incoming gradient by the output's sign first).
pub fn conv2d_act(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: &Conv2dOptions, relu: bool) -> Result<Tensor> {
    // Under an attribution rule the ReLU runs as its own op, whose backward follows the rule.
    if relu && crate::autograd::backward_rule() != crate::autograd::BackwardRule::Gradient {
        return super::relu(&conv2d_act(x, w, bias, o, false)?);
    }
    let geo = conv_geom(x, w, bias, o)?;
    let (n, oh, ow, cout) = (geo.n, geo.oh, geo.ow, geo.cout);
    let out_shape = [n, oh, ow, cout];

    let mut out = alloc_f32(n * oh * ow * cout);
    {
        let (xc, wc) = (x.contiguous_nograd()?, w.contiguous_nograd()?);
        let bc = match bias {
            Some(b) => Some(b.contiguous_nograd()?),
            None => None,
        };
        let bv = match &bc {
            Some(b) => Some(b.f32s()?),
            None => None,
        };
        conv2d_forward_act(&xc.f32s()?, &wc.f32s()?, bv.as_deref(), &geo, relu, &mut out);
    }
    let out = new_f32(out, &out_shape)?;

    let inputs: Vec<&Tensor> = match bias {
        Some(b) => vec![x, w, b],
        None => vec![x, w],
    };
    if !will_record(&inputs) {
        return Ok(out);
    }
    let (xs, ws) = (Saved::new(x), Saved::new(w));
    let ys = if relu { Some(Saved::new(&out)) } else { None };
    let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
    Ok(record(out, if relu { "conv2d_relu" } else { "conv2d" }, &inputs, move |g, needs| {
        let masked;
        let g = match &ys {
            Some(y) => {
                masked = crate::ops::zip_f32(g, y.get()?, |g, y| crate::simd::F32x4::select(y.gt(crate::simd::F32x4::zero()), g, crate::simd::F32x4::zero()))?;
                &masked
            }
            None => g,
        };
        let gc = g.contiguous_nograd()?;
        let gv = gc.f32s()?;
        let (need_x, need_w) = (needs[0], needs[1]);
        let need_b = needs.get(2).copied().unwrap_or(false);
        let mut dx = if need_x { Some(alloc_f32(x_shape.iter().product())) } else { None };
        let mut dw = if need_w { Some(alloc_f32(w_shape.iter().product())) } else { None };
        if need_x || need_w {
            let (xc, wc) = (xs.get()?.contiguous_nograd()?, ws.get()?.contiguous_nograd()?);
            conv2d_backward(&xc.f32s()?, &wc.f32s()?, &gv, &geo, dx.as_deref_mut(), dw.as_deref_mut());
        }
        let db = if need_b {
            let mut db = alloc_f32(geo.cout);
            if geo.pixels() == 0 {
                db.fill(0.0);
            } else {
                reduce_mid(&gv, 1, geo.pixels(), geo.cout, ReduceOp::Sum, &mut db);
            }
            Some(new_f32(db, &[geo.cout])?)
        } else {
            None
        };
        let mut grads = vec![
            dx.map(|d| new_f32(d, &x_shape)).transpose()?,
            dw.map(|d| new_f32(d, &w_shape)).transpose()?,
        ];
        if needs.len() == 3 {
            grads.push(db);
        }
        Ok(grads)
    }))
}

//! Exports for quantized inference and compression (int8 layers, calibration statistics, fake
//! quantization, binary weights, pruning masks). Optional tensors are handle 0. A weight layout
//! is `groups`: 0 for a linear `[out, in]` weight, else the group count of an HWIO conv weight.
//! A layer's output is int8 (`scales` = 0, with `mult`/shifts/output quantization) or float
//! (`scales` = the dequantization scales' handle).

use crate::exports::{arg_err, js_err, out, t, tc, tl, R};
use edgegrad_core::ops::quant::{self, CalibMethod, QOutput, QParams, WeightLayout};
use edgegrad_core::ops::Conv2dOptions;
use edgegrad_core::Tensor;
use wasm_bindgen::prelude::*;

fn qp(scale: f32, zero_point: i32) -> R<QParams> {
    QParams::new(scale, zero_point).map_err(js_err)
}

fn layout(groups: u32) -> WeightLayout {
    if groups == 0 { WeightLayout::Linear } else { WeightLayout::Conv { groups: groups as usize } }
}

fn opt(h: u32) -> R<Option<Tensor>> {
    if h == 0 { Ok(None) } else { tc(h).map(Some) }
}

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

fn conv_opts(op: &str, stride: &[u32], padding: &[u32], dilation: &[u32], groups: u32) -> R<Conv2dOptions> {
    Ok(Conv2dOptions {
        stride: fixed(op, "stride", stride)?,
        padding: fixed(op, "padding [top, bottom, left, right]", padding)?,
        dilation: fixed(op, "dilation", dilation)?,
        groups: groups as usize,
    })
}

fn handle(t: Tensor) -> R<u32> {
    out(Ok(t))
}

/// `[scale, zero point]` covering `[lo, hi]`.
#[wasm_bindgen]
pub fn quant_choose_qparams(lo: f32, hi: f32) -> R<Vec<f64>> {
    let q = quant::choose_qparams(lo, hi).map_err(js_err)?;
    Ok(vec![q.scale as f64, q.zero_point as f64])
}

#[wasm_bindgen]
pub fn quant_quantize(x: u32, scale: f32, zero_point: i32) -> R<u32> {
    out(quant::quantize(&*t(x)?, qp(scale, zero_point)?))
}

#[wasm_bindgen]
pub fn quant_dequantize(x: u32, scale: f32, zero_point: i32) -> R<u32> {
    out(quant::dequantize(&*t(x)?, qp(scale, zero_point)?))
}

/// `[int8 weights, float32 scales]`.
#[wasm_bindgen]
pub fn quant_per_channel(w: u32, axis: i32) -> R<Vec<u32>> {
    let (q, s) = quant::quantize_per_channel(&*t(w)?, axis as isize).map_err(js_err)?;
    Ok(vec![handle(q)?, handle(s)?])
}

#[wasm_bindgen]
pub fn quant_pack_weights(wq: u32, groups: u32) -> R<u32> {
    out(quant::pack_weights(&*t(wq)?, layout(groups)))
}

/// `[offsets, multipliers (int8 output) or scales (float output), left, right]`; a float output
/// when `out_scale` is 0.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn quant_layer_constants(wq: u32, w_scales: u32, bias: u32, groups: u32, x_scale: f32, x_zp: i32, out_scale: f32,
                             out_zp: i32) -> R<Vec<f64>> {
    let o = if out_scale == 0.0 { None } else { Some(qp(out_scale, out_zp)?) };
    let b = opt(bias)?;
    let c = quant::layer_constants(&*t(wq)?, &*t(w_scales)?, b.as_ref(), layout(groups), qp(x_scale, x_zp)?, o).map_err(js_err)?;
    let second = match (c.mult, c.scales) {
        (Some(m), _) => handle(m)?,
        (None, Some(s)) => handle(s)?,
        _ => return Err(arg_err("layer_constants returned nothing".into())),
    };
    Ok(vec![handle(c.offsets)? as f64, second as f64, c.left as f64, c.right as f64])
}

#[allow(clippy::too_many_arguments)]
fn qout<'a>(mult: &'a Option<Tensor>, scales: &'a Option<Tensor>, left: u32, right: u32, out_scale: f32, out_zp: i32,
            relu: bool) -> R<QOutput<'a>> {
    match (scales, mult) {
        (Some(s), _) => Ok(QOutput::Float { scales: s }),
        (None, Some(m)) => Ok(QOutput::Int8 { mult: m, left, right, q: qp(out_scale, out_zp)?, relu }),
        _ => Err(arg_err("a quantized layer needs multipliers (int8 output) or scales (float output)".into())),
    }
}

/// Quantized dense layer. `scales` != 0: float output; else int8 with `mult`, shifts and the
/// output quantization (ReLU fused when `relu`).
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn quant_linear(x: u32, packed: u32, in_features: u32, offsets: u32, mult: u32, left: u32, right: u32, out_scale: f32, out_zp: i32,
                    relu: bool, scales: u32) -> R<u32> {
    let (m, s) = (opt(mult)?, opt(scales)?);
    let o = qout(&m, &s, left, right, out_scale, out_zp, relu)?;
    out(quant::qlinear(&*t(x)?, &*t(packed)?, in_features as usize, &*t(offsets)?, &o))
}

/// Quantized 2-D convolution (NHWC, HWIO weights packed per group); `kernel` is
/// `[kh, kw, cin/groups]`.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn quant_conv2d(x: u32, x_zp: i32, packed: u32, kernel: &[u32], offsets: u32, stride: &[u32], padding: &[u32],
                    dilation: &[u32], groups: u32, mult: u32, left: u32, right: u32, out_scale: f32, out_zp: i32, relu: bool,
                    scales: u32, max_pool2: bool) -> R<u32> {
    let co = conv_opts("quant_conv2d", stride, padding, dilation, groups)?;
    let k = fixed("quant_conv2d", "kernel [kh, kw, cin/groups]", kernel)?;
    let (m, s) = (opt(mult)?, opt(scales)?);
    let o = qout(&m, &s, left, right, out_scale, out_zp, relu)?;
    out(quant::qconv2d(&*t(x)?, x_zp, &*t(packed)?, k, &*t(offsets)?, &co, &o, max_pool2))
}

#[wasm_bindgen]
pub fn quant_max_pool2d(x: u32, kernel: &[u32], stride: &[u32], padding: &[u32]) -> R<u32> {
    let op = "quant_max_pool2d";
    out(quant::qmax_pool2d(&*t(x)?, fixed(op, "kernel", kernel)?, fixed(op, "stride", stride)?,
        fixed(op, "padding [top, bottom, left, right]", padding)?))
}

#[wasm_bindgen]
pub fn quant_avg_pool2d(x: u32, kernel: &[u32], stride: &[u32], padding: &[u32], count_include_pad: bool, zero_point: i32) -> R<u32> {
    let op = "quant_avg_pool2d";
    out(quant::qavg_pool2d(&*t(x)?, fixed(op, "kernel", kernel)?, fixed(op, "stride", stride)?,
        fixed(op, "padding [top, bottom, left, right]", padding)?, count_include_pad, zero_point))
}

#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn quant_add(a: u32, a_scale: f32, a_zp: i32, b: u32, b_scale: f32, b_zp: i32, out_scale: f32, out_zp: i32, relu: bool) -> R<u32> {
    out(quant::qadd(&*t(a)?, qp(a_scale, a_zp)?, &*t(b)?, qp(b_scale, b_zp)?, qp(out_scale, out_zp)?, relu))
}

#[wasm_bindgen]
pub fn quant_requantize(x: u32, in_scale: f32, in_zp: i32, out_scale: f32, out_zp: i32, relu: bool) -> R<u32> {
    out(quant::qrequantize(&*t(x)?, qp(in_scale, in_zp)?, qp(out_scale, out_zp)?, relu))
}

#[wasm_bindgen]
pub fn quant_concat(hs: &[u32], scales: &[f32], zps: &[i32], axis: i32, out_scale: f32, out_zp: i32) -> R<u32> {
    if scales.len() != hs.len() || zps.len() != hs.len() {
        return Err(arg_err(format!("quant_concat: {} tensors but {} scales and {} zero points", hs.len(), scales.len(), zps.len())));
    }
    let xs: Vec<(Tensor, QParams)> = hs.iter().zip(scales).zip(zps)
        .map(|((&h, &s), &z)| Ok((tc(h)?, qp(s, z)?))).collect::<R<_>>()?;
    out(quant::qconcat(&xs, axis as isize, qp(out_scale, out_zp)?))
}

/// `[min, max]` (NaN ignored).
#[wasm_bindgen]
pub fn quant_minmax(x: u32) -> R<Vec<f32>> {
    let (a, b) = quant::minmax(&*t(x)?).map_err(js_err)?;
    Ok(vec![a, b])
}

#[wasm_bindgen]
pub fn quant_histogram(x: u32, lo: f32, hi: f32, bins: u32) -> R<Vec<u32>> {
    quant::histogram(&*t(x)?, lo, hi, bins as usize).map_err(js_err)
}

/// method: 0 percentile (`param` = percent kept), 1 MSE-optimal. Returns `[lo, hi]`.
#[wasm_bindgen]
pub fn quant_calib_range(counts: &[f64], lo: f32, hi: f32, method: u8, param: f64) -> R<Vec<f32>> {
    let m = match method {
        0 => CalibMethod::Percentile(param),
        1 => CalibMethod::Mse,
        _ => return Err(arg_err(format!("unknown calibration method {}", method))),
    };
    let (a, b) = quant::calib_range(counts, lo, hi, m).map_err(js_err)?;
    Ok(vec![a, b])
}

#[wasm_bindgen]
pub fn quant_fake(x: u32, scale: f32, zero_point: i32) -> R<u32> {
    out(quant::fake_quant(&*t(x)?, qp(scale, zero_point)?))
}

#[wasm_bindgen]
pub fn quant_fake_per_channel(w: u32, axis: i32) -> R<u32> {
    out(quant::fake_quant_per_channel(&*t(w)?, axis as isize))
}

#[wasm_bindgen]
pub fn quant_binarize(w: u32, axis: i32) -> R<u32> {
    out(quant::binarize(&*t(w)?, axis as isize))
}

/// `[bits, alpha]`.
#[wasm_bindgen]
pub fn quant_pack_binary(w: u32, groups: u32) -> R<Vec<u32>> {
    let (b, a) = quant::pack_binary(&*t(w)?, layout(groups)).map_err(js_err)?;
    Ok(vec![handle(b)?, handle(a)?])
}

#[wasm_bindgen]
pub fn quant_binary_linear(x: u32, bits: u32, alpha: u32, bias: u32) -> R<u32> {
    let b = opt(bias)?;
    out(quant::binary_linear(&*t(x)?, &*t(bits)?, &*t(alpha)?, b.as_ref()))
}

#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn quant_binary_conv2d(x: u32, bits: u32, kernel: &[u32], alpha: u32, bias: u32, stride: &[u32], padding: &[u32],
                           dilation: &[u32], groups: u32) -> R<u32> {
    let co = conv_opts("quant_binary_conv2d", stride, padding, dilation, groups)?;
    let k = fixed("quant_binary_conv2d", "kernel", kernel)?;
    let b = opt(bias)?;
    out(quant::binary_conv2d(&*t(x)?, &*t(bits)?, k, &*t(alpha)?, b.as_ref(), &co))
}

#[wasm_bindgen]
pub fn quant_prune_masks(hs: &[u32], sparsity: f64) -> R<Vec<u32>> {
    let masks = quant::prune_masks(&tl(hs)?, sparsity).map_err(js_err)?;
    masks.into_iter().map(handle).collect()
}

#[wasm_bindgen]
pub fn quant_apply_mask_(w: u32, mask: u32) -> R<()> {
    quant::apply_mask_(&*t(w)?, &*t(mask)?).map_err(js_err)
}

#[wasm_bindgen]
pub fn quant_count_zeros(x: u32) -> R<u32> {
    Ok(quant::count_zeros(&*t(x)?).map_err(js_err)? as u32)
}

//! Quantized inference and compression: int8 tensors with scales and zero points, int8 GEMM and
//! convolution, int8 pooling / residual add / concat, calibration statistics, fake quantization
//! and binarization with straight-through gradients, bit-packed binary-weight inference, and
//! magnitude-pruning masks.
//!
//! Scheme: weights are int8 symmetric per output channel (`w ≈ s_c · q`, `q ∈ [-127, 127]`);
//! activations are int8 asymmetric per tensor (`x ≈ s · (q - zp)`, `q ∈ [-128, 127]`; uint8
//! with zero point z is the same thing shifted by 128). A layer computes in int32
//! `acc_c = Σ_k q_x·q_w + (bias_q_c - zp_x · Σ_k q_w)` and requantizes with a fixed-point
//! multiplier for `M_c = s_x·s_w_c / s_out` (see `kernels::int8`), with an optional fused ReLU
//! (clamp at the output zero point), or dequantizes (`acc · s_x·s_w_c`) at the network's edge.

use super::conv::window_out_size;
use super::{expect_f32, new_f32, Conv2dOptions};
use crate::autograd::{record, will_record, Saved};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::binary;
use crate::kernels::conv::ConvGeom;
use crate::kernels::pool::PoolGeom;
use crate::kernels::int8::{self, pack_b, packed_len, quantize_multipliers, quantize_one, EwInput, OutLayout, QEpilogue,
    Requant};
use crate::parallel::SharedMut;
use crate::shape::{check_shape_valid, fmt_shape, norm_axis, numel};
use crate::storage::{alloc_f32, alloc_i32, alloc_i8};
use crate::tensor::Tensor;
use crate::{bail, ensure};

/// Largest reduction length of an int8 product: keeps `|acc| < 2^31` with any bias.
pub const MAX_K: usize = 32768;

/// A per-tensor affine quantization: `x ≈ scale · (q - zero_point)`, `q ∈ [-128, 127]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QParams {
    pub fn new(scale: f32, zero_point: i32) -> Result<QParams> {
        ensure!(scale.is_finite() && scale > 0.0, Argument, "a quantization scale must be finite and positive, got {}", scale);
        ensure!((-128..=127).contains(&zero_point), Argument, "an int8 zero point must be in [-128, 127], got {}", zero_point);
        Ok(QParams { scale, zero_point })
    }
}

fn expect_i8(t: &Tensor, op: &str) -> Result<()> {
    ensure!(t.dtype() == DType::I8, DType, "{} expects an int8 tensor, got {}", op, t.dtype());
    Ok(())
}
fn expect_i32(t: &Tensor, op: &str) -> Result<()> {
    ensure!(t.dtype() == DType::I32, DType, "{} expects an int32 tensor, got {}", op, t.dtype());
    Ok(())
}

/// Scale and zero point covering `[lo, hi]` (widened to include 0, so 0 is exact).
pub fn choose_qparams(lo: f32, hi: f32) -> Result<QParams> {
    ensure!(lo.is_finite() && hi.is_finite() && lo <= hi, Argument,
        "choose_qparams needs a finite range lo <= hi, got [{}, {}]", lo, hi);
    let (lo, hi) = (lo.min(0.0) as f64, hi.max(0.0) as f64);
    let mut scale = ((hi - lo) / 255.0) as f32;
    if !(scale > 1e-30) || !scale.is_finite() {
        scale = 1.0;
    }
    let zp = (-128.0 - lo / scale as f64 + 0.5).floor().clamp(-128.0, 127.0) as i32;
    QParams::new(scale, zp)
}

/// f32 → int8: `clamp(floor(x / scale + 1/2) + zp, -128, 127)`.
pub fn quantize(x: &Tensor, q: QParams) -> Result<Tensor> {
    expect_f32(x, "quantize")?;
    QParams::new(q.scale, q.zero_point)?;
    let xc = x.contiguous_nograd()?;
    let mut out = alloc_i8(xc.numel());
    int8::quantize(&xc.f32s()?, q.scale, q.zero_point, &mut out);
    Tensor::from_i8(out, x.shape())
}

/// int8 → f32: `(q - zp) · scale`.
pub fn dequantize(x: &Tensor, q: QParams) -> Result<Tensor> {
    expect_i8(x, "dequantize")?;
    QParams::new(q.scale, q.zero_point)?;
    let xc = x.contiguous_nograd()?;
    let mut out = alloc_f32(xc.numel());
    int8::dequantize(&xc.i8s()?, q.scale, q.zero_point, &mut out);
    new_f32(out, x.shape())
}

/// `(outer, channels, inner)` around `axis`.
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// Per-channel symmetric scale `max|w_c| / 127` (1 for an all-zero channel).
fn channel_scales(w: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let (outer, ch, inner) = split_at_axis(shape, axis);
    let mut m = vec![0f32; ch];
    for o in 0..outer {
        for (c, mc) in m.iter_mut().enumerate() {
            for &v in &w[(o * ch + c) * inner..(o * ch + c + 1) * inner] {
                let a = v.abs();
                if a > *mc {
                    *mc = a;
                }
            }
        }
    }
    m.iter().map(|&a| if a > 0.0 && a.is_finite() { a / 127.0 } else { 1.0 }).collect()
}

/// Per-channel mean |w| (the binarization scale α), summed in index order in f64.
fn channel_abs_mean(w: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let (outer, ch, inner) = split_at_axis(shape, axis);
    let mut s = vec![0f64; ch];
    for o in 0..outer {
        for (c, sc) in s.iter_mut().enumerate() {
            for &v in &w[(o * ch + c) * inner..(o * ch + c + 1) * inner] {
                *sc += v.abs() as f64;
            }
        }
    }
    let per = (outer * inner).max(1) as f64;
    s.iter().map(|&v| (v / per) as f32).collect()
}

fn check_weight(w: &Tensor, axis: isize, op: &str) -> Result<usize> {
    expect_f32(w, op)?;
    ensure!(w.rank() >= 1, Shape, "{} needs weights of rank >= 1, got shape {}", op, fmt_shape(w.shape()));
    let a = norm_axis(axis, w.rank())?;
    let finite = w.contiguous_nograd()?.f32s()?.iter().all(|v| v.is_finite());
    ensure!(finite, Argument, "{}: the weights {} hold NaN or infinity", op, fmt_shape(w.shape()));
    Ok(a)
}

/// Symmetric per-channel int8 weights along `axis`: `(q, scales)` with `w ≈ scales[c] · q`,
/// `q ∈ [-127, 127]`.
pub fn quantize_per_channel(w: &Tensor, axis: isize) -> Result<(Tensor, Tensor)> {
    let a = check_weight(w, axis, "quantize_per_channel")?;
    let wc = w.contiguous_nograd()?;
    let wv = wc.f32s()?;
    let scales = channel_scales(&wv, w.shape(), a);
    let (outer, ch, inner) = split_at_axis(w.shape(), a);
    let mut q = alloc_i8(wv.len());
    for o in 0..outer {
        for (c, &s) in scales.iter().enumerate() {
            for i in (o * ch + c) * inner..(o * ch + c + 1) * inner {
                q[i] = quantize_one(wv[i], s, 0, -127, 127);
            }
        }
    }
    Ok((Tensor::from_i8(q, w.shape())?, new_f32(scales, &[ch])?))
}

/// How a layer's weight tensor is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[out, in]` (PyTorch's Linear): output channel axis 0.
    Linear,
    /// HWIO `[kh, kw, in/groups, out]`: output channel axis 3.
    Conv { groups: usize },
}

impl WeightLayout {
    pub fn channel_axis(self) -> usize {
        match self {
            WeightLayout::Linear => 0,
            WeightLayout::Conv { .. } => 3,
        }
    }
}

/// `(groups, k, n per group, n)` of a weight tensor, and for group g the strides
/// `(offset, row stride, column stride)` of its `[k, n_g]` view.
struct WeightDims {
    groups: usize,
    k: usize,
    ng: usize,
    n: usize,
    rs: usize,
    cs: usize,
}

fn weight_dims(shape: &[usize], layout: WeightLayout, op: &str) -> Result<WeightDims> {
    match layout {
        WeightLayout::Linear => {
            ensure!(shape.len() == 2, Shape, "{}: linear weights must be [out, in], got shape {}", op, fmt_shape(shape));
            Ok(WeightDims { groups: 1, k: shape[1], ng: shape[0], n: shape[0], rs: 1, cs: shape[1] })
        }
        WeightLayout::Conv { groups } => {
            ensure!(shape.len() == 4, Shape, "{}: conv weights must be [kh, kw, in/groups, out], got shape {}", op, fmt_shape(shape));
            ensure!(groups >= 1 && shape[3] % groups == 0, Shape,
                "{}: {} output channels (weights {}) cannot be split into {} groups", op, shape[3], fmt_shape(shape), groups);
            Ok(WeightDims { groups, k: shape[0] * shape[1] * shape[2], ng: shape[3] / groups, n: shape[3], rs: shape[3], cs: 1 })
        }
    }
}

/// Packs int8 weights for the int8 GEMM (i16 pairs in slivers of 8 columns, per group):
/// an int32 tensor `[groups, ceil(n_g/8), ceil(k/2), 8]`.
pub fn pack_weights(wq: &Tensor, layout: WeightLayout) -> Result<Tensor> {
    expect_i8(wq, "pack_weights")?;
    let d = weight_dims(wq.shape(), layout, "pack_weights")?;
    ensure!(d.k >= 1 && d.k <= MAX_K, Shape, "pack_weights: the reduction length {} (weights {}) must be in 1..={}",
        d.k, fmt_shape(wq.shape()), MAX_K);
    let wc = wq.contiguous_nograd()?;
    let wv = wc.i8s()?;
    let plen = packed_len(d.k, d.ng);
    let mut out = alloc_i32(plen * d.groups);
    for g in 0..d.groups {
        let off = match layout {
            WeightLayout::Linear => 0,
            WeightLayout::Conv { .. } => g * d.ng,
        };
        pack_b(&wv, off, d.rs, d.cs, d.k, d.ng, &mut out[g * plen..(g + 1) * plen]);
    }
    Tensor::from_i32(out, &[d.groups, d.ng.div_ceil(int8::NR), d.k.div_ceil(2), int8::NR])
}

/// The per-layer integer constants of a quantized conv/linear layer.
#[derive(Debug)]
pub struct LayerConstants {
    /// `bias_q - zp_x · Σ_k q_w` per output channel (int32 `[n]`).
    pub offsets: Tensor,
    /// Requantization multipliers (int32 `[n]`) when the output is int8.
    pub mult: Option<Tensor>,
    /// Dequantization scales `s_x · s_w` (float32 `[n]`) when the output is float.
    pub scales: Option<Tensor>,
    pub left: u32,
    pub right: u32,
}

/// Derives a layer's constants from its int8 weights, weight scales, float bias, input
/// quantization, and output quantization (None: float output).
pub fn layer_constants(wq: &Tensor, w_scales: &Tensor, bias: Option<&Tensor>, layout: WeightLayout, x: QParams,
                       out: Option<QParams>) -> Result<LayerConstants> {
    expect_i8(wq, "layer_constants (weights)")?;
    expect_f32(w_scales, "layer_constants (weight scales)")?;
    QParams::new(x.scale, x.zero_point)?;
    let d = weight_dims(wq.shape(), layout, "layer_constants")?;
    ensure!(d.k <= MAX_K, Shape, "layer_constants: reduction length {} is over {}", d.k, MAX_K);
    ensure!(w_scales.shape() == [d.n], Shape, "layer_constants: {} weight scales for {} output channels (weights {})",
        fmt_shape(w_scales.shape()), d.n, fmt_shape(wq.shape()));
    let ws = w_scales.to_vec_f32()?;
    ensure!(ws.iter().all(|s| s.is_finite() && *s > 0.0), Argument, "layer_constants: weight scales must be finite and positive");
    let b = match bias {
        Some(b) => {
            expect_f32(b, "layer_constants (bias)")?;
            ensure!(b.shape() == [d.n], Shape, "layer_constants: bias {} for {} output channels", fmt_shape(b.shape()), d.n);
            let v = b.to_vec_f32()?;
            ensure!(v.iter().all(|x| x.is_finite()), Argument, "layer_constants: the bias holds NaN or infinity");
            v
        }
        None => vec![0.0; d.n],
    };
    let wc = wq.contiguous_nograd()?;
    let wv = wc.i8s()?;
    // Column sums over k of each output channel.
    let mut colsum = vec![0i64; d.n];
    for g in 0..d.groups {
        for j in 0..d.ng {
            let c = g * d.ng + j;
            let off = match layout {
                WeightLayout::Linear => 0,
                WeightLayout::Conv { .. } => g * d.ng,
            };
            colsum[c] = (0..d.k).map(|kk| wv[off + kk * d.rs + j * d.cs] as i64).sum();
        }
    }
    let real: Vec<f64> = ws.iter().map(|&s| x.scale as f64 * s as f64).collect();
    let mut offsets = alloc_i32(d.n);
    for c in 0..d.n {
        let bq = (b[c] as f64 / real[c] + 0.5).floor().clamp(-((1u64 << 30) as f64), (1u64 << 30) as f64) as i64;
        offsets[c] = (bq - x.zero_point as i64 * colsum[c]).clamp(-(1i64 << 30), 1i64 << 30) as i32;
    }
    let offsets = Tensor::from_i32(offsets, &[d.n])?;
    match out {
        Some(o) => {
            QParams::new(o.scale, o.zero_point)?;
            let m: Vec<f64> = real.iter().map(|r| r / o.scale as f64).collect();
            let Some((mult, left, right)) = quantize_multipliers(&m) else {
                bail!(Argument, "layer_constants: the output scale {} is too small for input scale {} and weight scales up to {}",
                    o.scale, x.scale, ws.iter().cloned().fold(0f32, f32::max));
            };
            Ok(LayerConstants { offsets, mult: Some(Tensor::from_i32(mult, &[d.n])?), scales: None, left, right })
        }
        None => {
            let s: Vec<f32> = real.iter().map(|&r| r as f32).collect();
            Ok(LayerConstants { offsets, mult: None, scales: Some(new_f32(s, &[d.n])?), left: 0, right: 0 })
        }
    }
}

/// What a quantized conv/linear layer outputs.
pub enum QOutput<'a> {
    /// int8 requantized with `mult` (int32 `[n]`) and the layer's shifts; ReLU clamps at the
    /// output zero point.
    Int8 { mult: &'a Tensor, left: u32, right: u32, q: QParams, relu: bool },
    /// float32 `acc · scales[c]` (the network's output edge).
    Float { scales: &'a Tensor },
}

/// Checks the per-channel arrays of a layer with `n` outputs; returns them as vectors.
struct Epi {
    offsets: Vec<i32>,
    mult: Vec<i32>,
    scales: Vec<f32>,
    rq: Option<Requant>,
}

fn epilogue_parts(op: &str, offsets: &Tensor, out: &QOutput) -> Result<(usize, Epi)> {
    expect_i32(offsets, &format!("{} (offsets)", op))?;
    ensure!(offsets.rank() == 1, Shape, "{}: offsets must be 1-D [out], got {}", op, fmt_shape(offsets.shape()));
    let n = offsets.shape()[0];
    let offs = offsets.to_vec_i32()?;
    match out {
        QOutput::Int8 { mult, left, right, q, relu } => {
            expect_i32(mult, &format!("{} (multipliers)", op))?;
            ensure!(mult.shape() == [n], Shape, "{}: multipliers {} for {} output channels", op, fmt_shape(mult.shape()), n);
            ensure!(*left <= 22 && *right <= 30 && (*left == 0 || *right == 0), Argument,
                "{}: invalid requantization shifts left={} right={}", op, left, right);
            QParams::new(q.scale, q.zero_point)?;
            let rq = Requant { left: *left, right: *right, zero_point: q.zero_point, qmin: if *relu { q.zero_point } else { -128 }, qmax: 127 };
            Ok((n, Epi { offsets: offs, mult: mult.to_vec_i32()?, scales: vec![], rq: Some(rq) }))
        }
        QOutput::Float { scales } => {
            expect_f32(scales, &format!("{} (scales)", op))?;
            ensure!(scales.shape() == [n], Shape, "{}: scales {} for {} output channels", op, fmt_shape(scales.shape()), n);
            Ok((n, Epi { offsets: offs, mult: vec![], scales: scales.to_vec_f32()?, rq: None }))
        }
    }
}

/// Runs `f(epilogue)` and wraps the output buffer in a tensor of `shape`.
/// `max4`: the int8 epilogue max-pools runs of four rows (see `QEpilogue::Int8`).
fn with_output(e: &Epi, len: usize, shape: &[usize], max4: bool, f: impl FnOnce(&QEpilogue)) -> Result<Tensor> {
    match e.rq {
        Some(rq) => {
            let mut out = alloc_i8(len);
            f(&QEpilogue::Int8 { out: SharedMut(out.as_mut_ptr()), mult: &e.mult, rq, max4 });
            Tensor::from_i8(out, shape)
        }
        None => {
            let mut out = alloc_f32(len);
            f(&QEpilogue::F32 { out: SharedMut(out.as_mut_ptr()), scale: &e.scales });
            new_f32(out, shape)
        }
    }
}

fn check_packed(op: &str, packed: &Tensor, groups: usize, k: usize, ng: usize) -> Result<()> {
    expect_i32(packed, &format!("{} (packed weights)", op))?;
    let want = [groups, ng.div_ceil(int8::NR), k.div_ceil(2), int8::NR];
    ensure!(packed.shape() == want, Shape,
        "{}: packed weights {} do not match the layer (expected {} for k = {}, {} outputs per group, {} groups)",
        op, fmt_shape(packed.shape()), fmt_shape(&want), k, ng, groups);
    ensure!(k >= 1 && k <= MAX_K, Shape, "{}: reduction length {} must be in 1..={}", op, k, MAX_K);
    Ok(())
}

/// Quantized dense layer: int8 `x [.., in_features]` times the packed weights, `[.., n]` int8
/// or float.
pub fn qlinear(x: &Tensor, packed: &Tensor, in_features: usize, offsets: &Tensor, out: &QOutput) -> Result<Tensor> {
    expect_i8(x, "qlinear")?;
    ensure!(x.rank() >= 1, Shape, "qlinear needs an input of rank >= 1, got shape {}", fmt_shape(x.shape()));
    let (n, e) = epilogue_parts("qlinear", offsets, out)?;
    let k = x.shape()[x.rank() - 1];
    ensure!(k == in_features, Shape, "qlinear: the input {} has {} features but the layer expects {}",
        fmt_shape(x.shape()), k, in_features);
    check_packed("qlinear", packed, 1, k, n)?;
    let m = if k == 0 { 0 } else { x.numel() / k };
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = n;
    check_shape_valid(&shape)?;
    let xc = x.contiguous_nograd()?;
    let pc = packed.contiguous_nograd()?;
    let (xv, pv) = (xc.i8s()?, pc.i32s()?);
    with_output(&e, m * n, &shape, false, |epi| {
        int8::qgemm(m, n, k, int8::ASrc::Dense { data: &xv, off: 0, lda: k }, &pv, &e.offsets, epi, OutLayout { off: 0, ldc: n });
    })
}

fn conv_geom(op: &str, x: &Tensor, kernel: [usize; 2], cin_g: usize, cout: usize, o: &Conv2dOptions) -> Result<ConvGeom> {
    ensure!(x.rank() == 4, Shape, "{} expects an NHWC input of rank 4, got shape {}", op, fmt_shape(x.shape()));
    let [kh, kw] = kernel;
    let [s_h, s_w] = o.stride;
    let [d_h, d_w] = o.dilation;
    let [p_t, p_b, p_l, p_r] = o.padding;
    let groups = o.groups;
    ensure!(groups >= 1, Argument, "{}: groups must be at least 1, got {}", op, groups);
    ensure!(s_h >= 1 && s_w >= 1 && d_h >= 1 && d_w >= 1, Argument, "{}: strides and dilations must be at least 1", op);
    ensure!(kh >= 1 && kw >= 1, Shape, "{}: the kernel must be at least 1x1, got [{}, {}]", op, kh, kw);
    let (n, h, w, cin) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    ensure!(cin_g.checked_mul(groups) == Some(cin), Shape,
        "{}: the input {} has {} channels but the weights expect {} x {} groups", op, fmt_shape(x.shape()), cin, cin_g, groups);
    ensure!(cout % groups == 0, Shape, "{}: {} output channels cannot be split into {} groups", op, cout, groups);
    let oh = window_out_size(op, "height", h, p_t, p_b, kh, d_h, s_h)?;
    let ow = window_out_size(op, "width", w, p_l, p_r, kw, d_w, s_w)?;
    check_shape_valid(&[n, oh, ow, cout])?;
    // As in conv2d: a stride past the padded extent gives one output position; capped so the
    // kernels' index steps cannot overflow.
    let (s_h, s_w) = (s_h.min(h + p_t + p_b), s_w.min(w + p_l + p_r));
    Ok(ConvGeom { n, h, w, cin, kh, kw, cout, groups, sh: s_h, sw: s_w, dh: d_h, dw: d_w, pt: p_t, pl: p_l, oh, ow })
}

/// Quantized 2-D convolution: int8 NHWC `x` (zero point `x_zero_point`, what padding reads as),
/// weights `[kh, kw, cin/groups, n]` (`kernel`, the first three dims) packed per group;
/// `[N, OH, OW, n]` out. With `max_pool2` (int8 output only) the 2x2 stride-2 max pool that
/// follows is fused: `[N, OH/2, OW/2, n]` out, bitwise what `qmax_pool2d` of the plain output
/// gives, with a quarter of the requantizations and no intermediate tensor.
#[allow(clippy::too_many_arguments)]
pub fn qconv2d(x: &Tensor, x_zero_point: i32, packed: &Tensor, kernel: [usize; 3], offsets: &Tensor, o: &Conv2dOptions,
               out: &QOutput, max_pool2: bool) -> Result<Tensor> {
    expect_i8(x, "qconv2d")?;
    ensure!((-128..=127).contains(&x_zero_point), Argument, "qconv2d: input zero point {} is not an int8 value", x_zero_point);
    let (cout, e) = epilogue_parts("qconv2d", offsets, out)?;
    let g = conv_geom("qconv2d", x, [kernel[0], kernel[1]], kernel[2], cout, o)?;
    check_packed("qconv2d", packed, g.groups, g.k(), g.cout_g())?;
    if max_pool2 {
        ensure!(e.rq.is_some(), Argument, "qconv2d: a fused max pool needs an int8 output");
        ensure!(g.oh >= 2 && g.ow >= 2, Shape, "qconv2d: a fused 2x2 max pool needs an output of at least 2x2, got {}x{}", g.oh, g.ow);
        ensure!(e.mult.iter().all(|&m| m >= 0), Argument, "qconv2d: a fused max pool needs non-negative multipliers");
    }
    let shape = if max_pool2 { [g.n, g.oh / 2, g.ow / 2, g.cout] } else { [g.n, g.oh, g.ow, g.cout] };
    let xc = x.contiguous_nograd()?;
    let pc = packed.contiguous_nograd()?;
    let (xv, pv) = (xc.i8s()?, pc.i32s()?);
    with_output(&e, numel(&shape), &shape, max_pool2, |epi| {
        if g.pixels() > 0 {
            int8::qconv2d(&xv, &g, x_zero_point as i8, &pv, &e.offsets, epi);
        }
    })
}

fn qpool_geom(op: &str, x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> Result<PoolGeom> {
    expect_i8(x, op)?;
    super::pool::window_geom(op, x, kernel, stride, padding)
}

/// Max pooling on int8 NHWC (the output keeps the input's scale and zero point).
pub fn qmax_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> Result<Tensor> {
    let g = qpool_geom("qmax_pool2d", x, kernel, stride, padding)?;
    let shape = [g.n, g.oh, g.ow, g.c];
    let mut out = alloc_i8(numel(&shape));
    int8::qmax_pool(&x.contiguous_nograd()?.i8s()?, &g, &mut out);
    Tensor::from_i8(out, &shape)
}

/// Average pooling on int8 NHWC with unchanged scale and zero point (`round(Σq / count)`).
/// With `count_include_pad`, padding counts as `zero_point` (real 0).
pub fn qavg_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4], count_include_pad: bool,
                   zero_point: i32) -> Result<Tensor> {
    let g = qpool_geom("qavg_pool2d", x, kernel, stride, padding)?;
    ensure!((-128..=127).contains(&zero_point), Argument, "qavg_pool2d: zero point {} is not an int8 value", zero_point);
    let shape = [g.n, g.oh, g.ow, g.c];
    let mut out = alloc_i8(numel(&shape));
    int8::qavg_pool(&x.contiguous_nograd()?.i8s()?, &g, if count_include_pad { Some(zero_point as i8) } else { None }, &mut out);
    Tensor::from_i8(out, &shape)
}

/// Fixed-point multipliers `< 2^21` with one shift for elementwise requantization.
fn ew_multipliers(op: &str, real: &[f64]) -> Result<(Vec<i32>, u32)> {
    let max = real.iter().cloned().fold(0.0f64, f64::max);
    ensure!(real.iter().all(|r| r.is_finite() && *r > 0.0) && max < (1u64 << 19) as f64, Argument,
        "{}: input/output scale ratios {:?} are out of range", op, real);
    let mut sh = 0u32;
    while sh < 62 && max * 2f64.powi(sh as i32 + 1) < (1u64 << 21) as f64 {
        sh += 1;
    }
    Ok((real.iter().map(|r| (r * 2f64.powi(sh as i32) + 0.5).floor() as i32).collect(), sh))
}

/// `out = requant(Σ_i (q_i - zp_i) · s_i / s_out)`, optionally clamped at `out.zero_point` (ReLU).
fn requant_many(op: &str, xs: &[(&Tensor, QParams)], out: QParams, relu: bool) -> Result<Tensor> {
    QParams::new(out.scale, out.zero_point)?;
    for (x, q) in xs {
        expect_i8(x, op)?;
        QParams::new(q.scale, q.zero_point)?;
        ensure!(x.shape() == xs[0].0.shape(), Shape, "{}: shapes {} and {} differ", op, fmt_shape(xs[0].0.shape()), fmt_shape(x.shape()));
    }
    let real: Vec<f64> = xs.iter().map(|(_, q)| q.scale as f64 / out.scale as f64).collect();
    let (mult, shift) = ew_multipliers(op, &real)?;
    let cs: Vec<Tensor> = xs.iter().map(|(x, _)| x.contiguous_nograd()).collect::<Result<_>>()?;
    let vs: Vec<_> = cs.iter().map(|c| c.i8s()).collect::<Result<_>>()?;
    let inputs: Vec<EwInput> = vs.iter().zip(xs).zip(&mult)
        .map(|((v, (_, q)), &m)| EwInput { q: v, zero_point: q.zero_point, mult: m }).collect();
    let mut o = alloc_i8(xs[0].0.numel());
    int8::requant_sum(&inputs, shift, out.zero_point, if relu { out.zero_point } else { -128 }, 127, &mut o);
    Tensor::from_i8(o, xs[0].0.shape())
}

/// Residual add of two int8 tensors of one shape with their own quantizations.
pub fn qadd(a: &Tensor, qa: QParams, b: &Tensor, qb: QParams, out: QParams, relu: bool) -> Result<Tensor> {
    requant_many("qadd", &[(a, qa), (b, qb)], out, relu)
}

/// Re-expresses an int8 tensor in another quantization (optionally with ReLU).
pub fn qrequantize(x: &Tensor, qin: QParams, out: QParams, relu: bool) -> Result<Tensor> {
    requant_many("qrequantize", &[(x, qin)], out, relu)
}

/// Concatenation of int8 tensors along `axis`, each first requantized to `out` when its own
/// quantization differs.
pub fn qconcat(xs: &[(Tensor, QParams)], axis: isize, out: QParams) -> Result<Tensor> {
    ensure!(!xs.is_empty(), Argument, "qconcat needs at least one tensor");
    let rank = xs[0].0.rank();
    ensure!(rank >= 1, Shape, "qconcat needs tensors of rank >= 1");
    let a = norm_axis(axis, rank)?;
    let mut parts = Vec::with_capacity(xs.len());
    for (i, (x, q)) in xs.iter().enumerate() {
        expect_i8(x, "qconcat")?;
        ensure!(x.rank() == rank && (0..rank).all(|d| d == a || x.shape()[d] == xs[0].0.shape()[d]), Shape,
            "qconcat along axis {}: tensor {} has shape {} but tensor 0 has shape {}", a, i, fmt_shape(x.shape()), fmt_shape(xs[0].0.shape()));
        parts.push(if *q == out { x.contiguous_nograd()? } else { qrequantize(x, *q, out, false)? });
    }
    let total: usize = parts.iter().map(|p| p.shape()[a]).sum();
    let mut shape = parts[0].shape().to_vec();
    shape[a] = total;
    check_shape_valid(&shape)?;
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a + 1..].iter().product();
    let mut o = alloc_i8(numel(&shape));
    let mut col = 0;
    for p in &parts {
        let v = p.i8s()?;
        let w = p.shape()[a] * inner;
        for r in 0..outer {
            o[r * total * inner + col..r * total * inner + col + w].copy_from_slice(&v[r * w..(r + 1) * w]);
        }
        col += w;
    }
    Tensor::from_i8(o, &shape)
}

// ------------------------------------------------------------------ calibration statistics

/// `(min, max)` of a float tensor, NaN ignored; `(0, 0)` when there is nothing.
pub fn minmax(x: &Tensor) -> Result<(f32, f32)> {
    expect_f32(x, "minmax")?;
    let xc = x.contiguous_nograd()?;
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in xc.f32s()?.iter() {
        if v < lo {
            lo = v;
        }
        if v > hi {
            hi = v;
        }
    }
    Ok(if lo > hi { (0.0, 0.0) } else { (lo, hi) })
}

/// Counts of `x` in `bins` equal bins over `[lo, hi]` (values outside go to the end bins, NaN
/// is skipped).
pub fn histogram(x: &Tensor, lo: f32, hi: f32, bins: usize) -> Result<Vec<u32>> {
    expect_f32(x, "histogram")?;
    ensure!(bins >= 1 && bins <= 1 << 16, Argument, "histogram: bins must be in 1..=65536, got {}", bins);
    ensure!(lo.is_finite() && hi.is_finite() && lo < hi, Argument, "histogram needs a finite range lo < hi, got [{}, {}]", lo, hi);
    let xc = x.contiguous_nograd()?;
    let mut h = vec![0u32; bins];
    let w = (hi as f64 - lo as f64) / bins as f64;
    for &v in xc.f32s()?.iter() {
        if v.is_nan() {
            continue;
        }
        let b = ((v as f64 - lo as f64) / w).floor();
        let i = if b < 0.0 { 0 } else if b >= bins as f64 { bins - 1 } else { b as usize };
        h[i] = h[i].saturating_add(1);
    }
    Ok(h)
}

/// How `calib_range` picks a range from a histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibMethod {
    /// Keep the central `p` percent (e.g. 99.99): the `(100-p)/2` and `100-(100-p)/2` quantiles.
    Percentile(f64),
    /// The range minimising the expected squared quantization error (clipping + rounding).
    Mse,
}

/// Squared error of quantizing the histogram's mass (each bin at its centre) with range [a, b].
fn quant_mse(counts: &[f64], lo: f64, w: f64, a: f64, b: f64) -> f64 {
    let (a, b) = (a.min(0.0), b.max(0.0));
    let scale = ((b - a) / 255.0).max(1e-30);
    let zp = (-128.0 - a / scale + 0.5).floor().clamp(-128.0, 127.0);
    let mut err = 0.0;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0.0 {
            continue;
        }
        let v = lo + (i as f64 + 0.5) * w;
        let q = ((v / scale + 0.5).floor() + zp).clamp(-128.0, 127.0);
        let d = v - (q - zp) * scale;
        err += c * d * d;
    }
    err
}

/// A range `[lo', hi']` inside `[lo, hi]` chosen from histogram `counts` of bins over `[lo, hi]`.
pub fn calib_range(counts: &[f64], lo: f32, hi: f32, method: CalibMethod) -> Result<(f32, f32)> {
    ensure!(!counts.is_empty() && counts.iter().all(|c| c.is_finite() && *c >= 0.0), Argument,
        "calib_range needs non-negative finite counts");
    ensure!(lo.is_finite() && hi.is_finite() && lo <= hi, Argument, "calib_range needs a finite range, got [{}, {}]", lo, hi);
    let total: f64 = counts.iter().sum();
    if total == 0.0 || lo == hi {
        return Ok((lo, hi));
    }
    let (l, h) = (lo as f64, hi as f64);
    let w = (h - l) / counts.len() as f64;
    match method {
        CalibMethod::Percentile(p) => {
            ensure!(p > 50.0 && p <= 100.0, Argument, "calib_range: percentile must be in (50, 100], got {}", p);
            let tail = total * (100.0 - p) / 200.0;
            let (mut acc, mut a) = (0.0, l);
            for (i, &c) in counts.iter().enumerate() {
                if acc + c > tail {
                    a = l + i as f64 * w;
                    break;
                }
                acc += c;
            }
            let (mut acc, mut b) = (0.0, h);
            for (i, &c) in counts.iter().enumerate().rev() {
                if acc + c > tail {
                    b = l + (i + 1) as f64 * w;
                    break;
                }
                acc += c;
            }
            Ok((a as f32, b.max(a) as f32))
        }
        CalibMethod::Mse => {
            // Coordinate search over the lower and upper bound, as fractions of the full range.
            const STEPS: usize = 64;
            let frac = |i: usize| (i as f64 + 1.0) / STEPS as f64;
            let (mut a, mut b) = (l, h);
            for _ in 0..2 {
                let mut best = (quant_mse(counts, l, w, a, b), b);
                for i in 0..STEPS {
                    let cand = if h > 0.0 { h * frac(i) } else { h };
                    let e = quant_mse(counts, l, w, a, cand);
                    if e < best.0 {
                        best = (e, cand);
                    }
                }
                b = best.1;
                let mut best = (quant_mse(counts, l, w, a, b), a);
                for i in 0..STEPS {
                    let cand = if l < 0.0 { l * frac(i) } else { l };
                    let e = quant_mse(counts, l, w, cand, b);
                    if e < best.0 {
                        best = (e, cand);
                    }
                }
                a = best.1;
            }
            Ok((a as f32, b as f32))
        }
    }
}

// ------------------------------------------------------------------ fake quantization (QAT)

/// Fake quantization `dequantize(quantize(x, q))` with a straight-through gradient: the gradient
/// passes where the value was inside the representable range, and is zero where it was clipped.
pub fn fake_quant(x: &Tensor, q: QParams) -> Result<Tensor> {
    expect_f32(x, "fake_quant")?;
    QParams::new(q.scale, q.zero_point)?;
    let xc = x.contiguous_nograd()?;
    let mut out = alloc_f32(xc.numel());
    {
        let xv = xc.f32s()?;
        for (o, &v) in out.iter_mut().zip(xv.iter()) {
            *o = (quantize_one(v, q.scale, q.zero_point, -128, 127) as i32 - q.zero_point) as f32 * q.scale;
        }
    }
    let out = new_f32(out, x.shape())?;
    if !will_record(&[x]) {
        return Ok(out);
    }
    let xs = Saved::new(x);
    Ok(record(out, "fake_quant", &[x], move |g, _| {
        let xc = xs.get()?.contiguous_nograd()?;
        let gc = g.contiguous_nograd()?;
        let mut d = alloc_f32(xc.numel());
        let (xv, gv) = (xc.f32s()?, gc.f32s()?);
        for ((o, &v), &gg) in d.iter_mut().zip(xv.iter()).zip(gv.iter()) {
            let t = (v / q.scale + 0.5).floor() + q.zero_point as f32;
            *o = if (-128.0..=127.0).contains(&t) { gg } else { 0.0 };
        }
        Ok(vec![Some(new_f32(d, xc.shape())?)])
    }))
}

/// Per-channel symmetric fake quantization of weights along `axis` (scales from the current
/// `max|w_c| / 127`), exactly what `quantize_per_channel` then dequantization give. Straight-
/// through gradient (every weight is inside its channel's range).
pub fn fake_quant_per_channel(w: &Tensor, axis: isize) -> Result<Tensor> {
    let a = check_weight(w, axis, "fake_quant_per_channel")?;
    let wc = w.contiguous_nograd()?;
    let mut out = alloc_f32(wc.numel());
    {
        let wv = wc.f32s()?;
        let scales = channel_scales(&wv, w.shape(), a);
        let (outer, ch, inner) = split_at_axis(w.shape(), a);
        for o in 0..outer {
            for (c, &s) in scales.iter().enumerate() {
                for i in (o * ch + c) * inner..(o * ch + c + 1) * inner {
                    out[i] = quantize_one(wv[i], s, 0, -127, 127) as f32 * s;
                }
            }
        }
    }
    let out = new_f32(out, w.shape())?;
    Ok(record(out, "fake_quant_per_channel", &[w], |g, _| Ok(vec![Some(g.clone())])))
}

/// Binarized weights `α_c · sign(w)` (`sign(0) = +1`, `α_c` the channel's mean |w| along `axis`),
/// with the BinaryConnect straight-through gradient `g · 1[|w| <= 1]`.
pub fn binarize(w: &Tensor, axis: isize) -> Result<Tensor> {
    let a = check_weight(w, axis, "binarize")?;
    let wc = w.contiguous_nograd()?;
    let mut out = alloc_f32(wc.numel());
    {
        let wv = wc.f32s()?;
        let alpha = channel_abs_mean(&wv, w.shape(), a);
        let (outer, ch, inner) = split_at_axis(w.shape(), a);
        for o in 0..outer {
            for (c, &al) in alpha.iter().enumerate() {
                for i in (o * ch + c) * inner..(o * ch + c + 1) * inner {
                    out[i] = if wv[i] < 0.0 { -al } else { al };
                }
            }
        }
    }
    let out = new_f32(out, w.shape())?;
    if !will_record(&[w]) {
        return Ok(out);
    }
    let ws = Saved::new(w);
    Ok(record(out, "binarize", &[w], move |g, _| {
        let wc = ws.get()?.contiguous_nograd()?;
        let gc = g.contiguous_nograd()?;
        let mut d = alloc_f32(wc.numel());
        for ((o, &v), &gg) in d.iter_mut().zip(wc.f32s()?.iter()).zip(gc.f32s()?.iter()) {
            *o = if v.abs() <= 1.0 { gg } else { 0.0 };
        }
        Ok(vec![Some(new_f32(d, wc.shape())?)])
    }))
}

// ------------------------------------------------------------------ binary-weight inference

/// Bit-packs the signs of float weights and computes their per-channel scales α (mean |w|):
/// `(bits int8 [groups, ceil(n_g/8), k], alpha float32 [n])`.
pub fn pack_binary(w: &Tensor, layout: WeightLayout) -> Result<(Tensor, Tensor)> {
    let axis = layout.channel_axis() as isize;
    check_weight(w, axis, "pack_binary")?;
    let d = weight_dims(w.shape(), layout, "pack_binary")?;
    ensure!(d.k >= 1, Shape, "pack_binary: empty reduction in weights {}", fmt_shape(w.shape()));
    let wc = w.contiguous_nograd()?;
    let wv = wc.f32s()?;
    let alpha = channel_abs_mean(&wv, w.shape(), layout.channel_axis());
    let blen = binary::bits_len(d.k, d.ng);
    let mut bits = alloc_i8(blen * d.groups);
    for g in 0..d.groups {
        let off = match layout {
            WeightLayout::Linear => 0,
            WeightLayout::Conv { .. } => g * d.ng,
        };
        binary::pack_bits(&wv, off, d.rs, d.cs, d.k, d.ng, &mut bits[g * blen..(g + 1) * blen]);
    }
    Ok((Tensor::from_i8(bits, &[d.groups, d.ng.div_ceil(int8::NR), d.k])?, new_f32(alpha, &[d.n])?))
}

fn binary_parts(op: &str, bits: &Tensor, alpha: &Tensor, bias: Option<&Tensor>, groups: usize, k: usize) -> Result<(usize, Vec<f32>, Option<Vec<f32>>)> {
    expect_i8(bits, &format!("{} (bits)", op))?;
    expect_f32(alpha, &format!("{} (alpha)", op))?;
    ensure!(alpha.rank() == 1, Shape, "{}: alpha must be 1-D [out], got {}", op, fmt_shape(alpha.shape()));
    let n = alpha.shape()[0];
    ensure!(n % groups == 0, Shape, "{}: {} outputs cannot be split into {} groups", op, n, groups);
    let want = [groups, (n / groups).div_ceil(int8::NR), k];
    ensure!(bits.shape() == want, Shape, "{}: packed bits {} do not match the layer (expected {})", op,
        fmt_shape(bits.shape()), fmt_shape(&want));
    let b = match bias {
        Some(b) => {
            expect_f32(b, &format!("{} (bias)", op))?;
            ensure!(b.shape() == [n], Shape, "{}: bias {} for {} outputs", op, fmt_shape(b.shape()), n);
            Some(b.to_vec_f32()?)
        }
        None => None,
    };
    Ok((n, alpha.to_vec_f32()?, b))
}

/// Dense layer with bit-packed binary weights: float `x [.., k]` → `[.., n]`.
pub fn binary_linear(x: &Tensor, bits: &Tensor, alpha: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    expect_f32(x, "binary_linear")?;
    ensure!(x.rank() >= 1, Shape, "binary_linear needs an input of rank >= 1");
    let k = x.shape()[x.rank() - 1];
    let (n, al, b) = binary_parts("binary_linear", bits, alpha, bias, 1, k)?;
    let m = if k == 0 { 0 } else { x.numel() / k };
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = n;
    let xc = x.contiguous_nograd()?;
    let bc = bits.contiguous_nograd()?;
    let mut out = alloc_f32(m * n);
    binary::binary_gemm(m, n, k, int8::ASrc::Dense { data: &xc.f32s()?, off: 0, lda: k }, &bc.i8s()?, &al, b.as_deref(),
        SharedMut(out.as_mut_ptr()), OutLayout { off: 0, ldc: n });
    new_f32(out, &shape)
}

/// 2-D convolution with bit-packed binary weights (HWIO `[kernel, cin/groups, n]` packed).
pub fn binary_conv2d(x: &Tensor, bits: &Tensor, kernel: [usize; 2], alpha: &Tensor, bias: Option<&Tensor>,
                     o: &Conv2dOptions) -> Result<Tensor> {
    expect_f32(x, "binary_conv2d")?;
    ensure!(x.rank() == 4, Shape, "binary_conv2d expects an NHWC input of rank 4, got shape {}", fmt_shape(x.shape()));
    ensure!(o.groups >= 1 && x.shape()[3] % o.groups == 0, Shape,
        "binary_conv2d: {} input channels cannot be split into {} groups", x.shape()[3], o.groups);
    let cin_g = x.shape()[3] / o.groups;
    let (n, al, b) = binary_parts("binary_conv2d", bits, alpha, bias, o.groups, kernel[0] * kernel[1] * cin_g)?;
    let g = conv_geom("binary_conv2d", x, kernel, cin_g, n, o)?;
    let shape = [g.n, g.oh, g.ow, g.cout];
    let xc = x.contiguous_nograd()?;
    let bc = bits.contiguous_nograd()?;
    let mut out = alloc_f32(numel(&shape));
    if g.pixels() > 0 {
        binary::binary_conv2d(&xc.f32s()?, &g, &bc.i8s()?, &al, b.as_deref(), &mut out);
    }
    new_f32(out, &shape)
}

// ------------------------------------------------------------------ pruning

/// Magnitude-pruning masks (1.0 keep, 0.0 pruned) over all `ws` together: exactly
/// `floor(sparsity · total)` smallest |w| are pruned, ties broken by position (tensor order,
/// then element order). Pass one tensor for layer-wise pruning.
pub fn prune_masks(ws: &[Tensor], sparsity: f64) -> Result<Vec<Tensor>> {
    ensure!(!ws.is_empty(), Argument, "prune_masks needs at least one tensor");
    ensure!((0.0..=1.0).contains(&sparsity), Argument, "sparsity must be in [0, 1], got {}", sparsity);
    let mut keys: Vec<u64> = Vec::new();
    let mut total = 0u64;
    for (i, w) in ws.iter().enumerate() {
        expect_f32(w, &format!("prune_masks (tensor {})", i))?;
        let c = w.contiguous_nograd()?;
        for &v in c.f32s()?.iter() {
            keys.push(((v.abs().to_bits() as u64) << 32) | total);
            total += 1;
        }
    }
    ensure!(total < 1 << 32, Argument, "prune_masks: too many weights ({})", total);
    let k = ((sparsity * total as f64) + 1e-9).floor() as usize;
    keys.sort_unstable();
    let mut flat = vec![1f32; total as usize];
    for key in &keys[..k.min(keys.len())] {
        flat[(key & 0xffff_ffff) as usize] = 0.0;
    }
    let mut out = Vec::with_capacity(ws.len());
    let mut start = 0;
    for w in ws {
        let n = w.numel();
        out.push(new_f32(flat[start..start + n].to_vec(), w.shape())?);
        start += n;
    }
    Ok(out)
}

/// `w *= mask` in place (same shape; bumps w's version like an optimizer step).
pub fn apply_mask_(w: &Tensor, mask: &Tensor) -> Result<()> {
    expect_f32(w, "apply_mask_")?;
    expect_f32(mask, "apply_mask_ (mask)")?;
    ensure!(w.shape() == mask.shape(), Shape, "apply_mask_: mask {} for a tensor of shape {}", fmt_shape(mask.shape()), fmt_shape(w.shape()));
    let mc = mask.contiguous_nograd()?;
    let mv = mc.f32s()?.to_vec();
    let mut wv = w.f32s_mut()?;
    for (x, m) in wv.iter_mut().zip(mv) {
        *x *= m;
    }
    Ok(())
}

/// Number of elements equal to zero.
pub fn count_zeros(x: &Tensor) -> Result<usize> {
    let c = x.contiguous_nograd()?;
    Ok(match c.dtype() {
        DType::F32 => c.f32s()?.iter().filter(|v| **v == 0.0).count(),
        DType::I32 => c.i32s()?.iter().filter(|v| **v == 0).count(),
        DType::I8 => c.i8s()?.iter().filter(|v| **v == 0).count(),
    })
}

//! Attention: scaled dot-product attention with masks, returning the weights of every head.
//!
//! `attention(q, k, v)` is `softmax(scale * q kᵀ, masked) v` built from `bmm` (which reads kᵀ in
//! place, never copying a transpose) and one fused masked-softmax op, so the weights it returns
//! are the very tensor the output was computed from (and are differentiable).
//!
//! Masks are keep-masks: nonzero = may attend, 0 = blocked (the convention of PyTorch's
//! `scaled_dot_product_attention` with a boolean mask, and of Keras). A mask broadcasts to the
//! scores `[..., Tq, Tk]`: a key-padding mask is `[B, 1, 1, Tk]`, a full one `[B, H, Tq, Tk]`.
//! `causal` additionally blocks key j for query i when `j > i + Tk - Tq`.

use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record, Saved};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::attention::{masked_softmax_backward, masked_softmax_forward, packed_self_attention_forward, MaskRef, ScoreDims};
use crate::shape::{broadcast_shapes, broadcast_strides, fmt_shape};
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::ensure;

/// A keep-mask checked against the scores' shape (`layout` names its axes in the error): float32
/// and broadcastable to `scores`. Returns it contiguous, with its strides over `scores`.
fn checked_mask(m: &Tensor, scores: &[usize], op: &str, layout: &str) -> Result<(Tensor, Vec<usize>)> {
    ensure!(m.dtype() == DType::F32, DType, "{}: the mask must be float32 (1 = attend, 0 = blocked), got {}", op, m.dtype());
    let b = broadcast_shapes(m.shape(), scores);
    ensure!(b.as_deref().ok() == Some(scores), Shape,
        "attention mask of shape {} does not broadcast to the scores' shape {} ({})", fmt_shape(m.shape()), fmt_shape(scores), layout);
    Ok((m.contiguous_nograd()?, broadcast_strides(m.shape(), scores)))
}

/// `softmax(scale * x)` over the last axis, restricted to the keys each row may attend (see the
/// module docs for `mask` and `causal`). Rows that may attend nothing are all zeros.
pub fn masked_softmax(x: &Tensor, mask: Option<&Tensor>, causal: bool, scale: f32) -> Result<Tensor> {
    const OP: &str = "masked_softmax";
    expect_f32(x, OP)?;
    ensure!(x.rank() >= 2, Shape, "{} needs scores of rank >= 2 ([..., queries, keys]), got shape {}", OP, fmt_shape(x.shape()));
    ensure!(scale.is_finite(), Argument, "{}: scale must be finite, got {}", OP, scale);
    let shape = x.shape().to_vec();
    let mask_c = mask.map(|m| checked_mask(m, &shape, OP, "[..., queries, keys]")).transpose()?;
    let xc = x.contiguous_nograd()?;
    let mut out = alloc_f32(xc.numel());
    {
        let xv = xc.f32s()?;
        let mv = mask_c.as_ref().map(|(m, _)| m.f32s()).transpose()?;
        let mref = mask_c.as_ref().zip(mv.as_deref()).map(|((_, strides), data)| MaskRef { data, strides });
        masked_softmax_forward(&xv, ScoreDims { shape: &shape }, scale, mref, causal, &mut out);
    }
    let out = new_f32(out, &shape)?;
    if !will_record(&[x]) {
        return Ok(out);
    }
    let ps = Saved::new(&out);
    let tk = shape[shape.len() - 1];
    Ok(record(out, OP, &[x], move |g, _| {
        let p = ps.get()?;
        let gc = g.contiguous_nograd()?;
        let mut dx = alloc_f32(p.numel());
        masked_softmax_backward(&p.f32s()?, &gc.f32s()?, tk, scale, &mut dx);
        Ok(vec![Some(new_f32(dx, p.shape())?)])
    }))
}

/// Scaled dot-product attention. `q [..., Tq, D]`, `k [..., Tk, D]`, `v [..., Tk, Dv]` (leading
/// dims broadcast, typically `[B, heads]`); `scale` defaults to `1 / sqrt(D)`. Returns
/// `(output [..., Tq, Dv], weights [..., Tq, Tk])`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, causal: bool, scale: Option<f32>) -> Result<(Tensor, Tensor)> {
    for (t, n) in [(q, "query"), (k, "key"), (v, "value")] {
        expect_f32(t, "attention")?;
        ensure!(t.rank() >= 2, Shape, "attention: the {} must have rank >= 2 ([..., length, dim]), got shape {}", n, fmt_shape(t.shape()));
    }
    let (rq, rk, rv) = (q.rank(), k.rank(), v.rank());
    let d = q.shape()[rq - 1];
    ensure!(k.shape()[rk - 1] == d, Shape,
        "attention: queries have dimension {} but keys have {} (query shape {}, key shape {})",
        d, k.shape()[rk - 1], fmt_shape(q.shape()), fmt_shape(k.shape()));
    ensure!(k.shape()[rk - 2] == v.shape()[rv - 2], Shape,
        "attention: {} keys but {} values (key shape {}, value shape {})",
        k.shape()[rk - 2], v.shape()[rv - 2], fmt_shape(k.shape()), fmt_shape(v.shape()));
    let scale = scale.unwrap_or(1.0 / (d.max(1) as f32).sqrt());
    let scores = super::bmm(q, k, false, true)?;
    let weights = masked_softmax(&scores, mask, causal, scale)?;
    let out = super::bmm(&weights, v, false, false)?;
    Ok((out, weights))
}

/// Multi-head self-attention for inference from the packed input projection `qkv [B, T, 3E]`
/// (queries, keys, values side by side, `E = heads * D`): returns `[B, T, E]`, the heads' outputs
/// merged, in one call without materialising the heads or the merged copy. Bitwise equal to
/// splitting `qkv` into `[B, heads, T, D]` heads, `attention` and merging them back (the kernel
/// runs the same gemm and softmax arithmetic). `mask` broadcasts to `[B, heads, T, T]`. Inference
/// only: it records no gradient, so it refuses an input that autograd would track.
pub fn packed_self_attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>, causal: bool, scale: f32) -> Result<Tensor> {
    const OP: &str = "packed_self_attention";
    expect_f32(qkv, OP)?;
    ensure!(!will_record(&[qkv]), Autograd, "{} records no gradient: call it without autograd recording (noGrad, or inputs that need no gradient)", OP);
    ensure!(heads >= 1, Argument, "{}: heads must be at least 1, got {}", OP, heads);
    ensure!(scale.is_finite(), Argument, "{}: scale must be finite, got {}", OP, scale);
    ensure!(qkv.rank() == 3 && qkv.shape()[2] % (3 * heads) == 0, Shape,
        "{} needs [batch, length, 3 * embed] with embed a multiple of {} heads, got shape {}", OP, heads, fmt_shape(qkv.shape()));
    let (b, t, e) = (qkv.shape()[0], qkv.shape()[1], qkv.shape()[2] / 3);
    let scores_shape = [b, heads, t, t];
    let mask_c = mask.map(|m| checked_mask(m, &scores_shape, OP, "[batch, heads, queries, keys]")).transpose()?;
    let xc = qkv.contiguous_nograd()?;
    let mut out = alloc_f32(b * t * e);
    if b * t * e > 0 {
        let xv = xc.f32s()?;
        let mv = mask_c.as_ref().map(|(m, _)| m.f32s()).transpose()?;
        let mref = mask_c.as_ref().zip(mv.as_deref()).map(|((_, strides), data)| MaskRef { data, strides });
        packed_self_attention_forward(&xv, b, t, heads, scale, mref, causal, &mut out);
    }
    new_f32(out, &[b, t, e])
}

/// A linear layer's `[out, in]` weight and optional bias (as `linear` takes them).
pub type LinearRef<'a> = (&'a Tensor, Option<&'a Tensor>);
/// A LayerNorm over the last axis: optional weight and bias, and eps.
pub type NormRef<'a> = (Option<&'a Tensor>, Option<&'a Tensor>, f32);

/// The activation between a Transformer MLP's two linear layers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FfActivation {
    Relu,
    Gelu,
    GeluTanh,
}

impl FfActivation {
    /// 0 relu, 1 exact GELU, 2 tanh GELU (the wasm boundary's codes).
    pub fn from_code(code: u8) -> Option<FfActivation> {
        Some(match code {
            0 => FfActivation::Relu,
            1 => FfActivation::Gelu,
            2 => FfActivation::GeluTanh,
            _ => return None,
        })
    }
}

/// The parameters of one Transformer encoder layer (PyTorch's `TransformerEncoderLayer`).
pub struct EncoderLayerRef<'a> {
    /// Packed `[3E, E]` query/key/value projection.
    pub in_proj: LinearRef<'a>,
    pub out_proj: LinearRef<'a>,
    pub linear1: LinearRef<'a>,
    pub linear2: LinearRef<'a>,
    pub norm1: NormRef<'a>,
    pub norm2: NormRef<'a>,
    pub heads: usize,
    pub activation: FfActivation,
    /// Pre-LN (`x + sa(norm1(x))`, `x + ff(norm2(x))`) instead of post-LN.
    pub norm_first: bool,
}

/// One Transformer encoder layer's inference forward in one call, `x [B, T, E]` -> `[B, T, E]`:
/// the same ops the SDK's module forward issues one by one in evaluation mode (linear, packed
/// self-attention, residual adds, LayerNorms, the MLP), in the same order on the same tensors,
/// so the result is bitwise that forward's. Inference only: it refuses inputs autograd would track.
pub fn encoder_layer_infer(x: &Tensor, l: &EncoderLayerRef, mask: Option<&Tensor>, causal: bool, scale: f32) -> Result<Tensor> {
    const OP: &str = "encoder_layer_infer";
    let mut all: Vec<&Tensor> = vec![x, l.in_proj.0, l.out_proj.0, l.linear1.0, l.linear2.0];
    all.extend([l.in_proj.1, l.out_proj.1, l.linear1.1, l.linear2.1, l.norm1.0, l.norm1.1, l.norm2.0, l.norm2.1].into_iter().flatten());
    ensure!(!will_record(&all), Autograd, "{} records no gradient: call it without autograd recording (noGrad, or inputs that need no gradient)", OP);
    ensure!(x.rank() == 3, Shape, "{} needs [batch, length, embed], got shape {}", OP, fmt_shape(x.shape()));
    let lin = |h: &Tensor, (w, b): LinearRef| super::linear(h, w, b, false);
    let norm = |h: &Tensor, (g, b, eps): NormRef| super::layer_norm(h, g, b, 1, eps);
    let add = |a: &Tensor, b: &Tensor| super::binary(super::BinaryOp::Add, a, b);
    let sa = |h: &Tensor| -> Result<Tensor> {
        let qkv = lin(h, l.in_proj)?;
        lin(&packed_self_attention(&qkv, l.heads, mask, causal, scale)?, l.out_proj)
    };
    let ff = |h: &Tensor| -> Result<Tensor> {
        let h1 = lin(h, l.linear1)?;
        let h2 = match l.activation {
            FfActivation::Relu => super::unary(super::UnaryOp::Relu, &h1)?,
            FfActivation::Gelu => super::activation(super::Activation::Gelu, &h1, 0.0)?,
            FfActivation::GeluTanh => super::activation(super::Activation::GeluTanh, &h1, 0.0)?,
        };
        drop(h1);
        lin(&h2, l.linear2)
    };
    if l.norm_first {
        let x1 = add(x, &sa(&norm(x, l.norm1)?)?)?;
        add(&x1, &ff(&norm(&x1, l.norm2)?)?)
    } else {
        let x1 = norm(&add(x, &sa(x)?)?, l.norm1)?;
        norm(&add(&x1, &ff(&x1)?)?, l.norm2)
    }
}

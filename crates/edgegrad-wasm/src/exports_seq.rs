//! Exports for recurrent layers and attention. Optional tensors are passed as handle 0 ("none").

use crate::exports::{arg_err, js_err, out, t, tc, R};
use crate::handles;
use edgegrad_core::ops::{self, RnnCell, RnnWeights};
use edgegrad_core::Tensor;
use wasm_bindgen::prelude::*;

fn opt(h: u32) -> R<Option<Tensor>> {
    if h == 0 {
        Ok(None)
    } else {
        tc(h).map(Some)
    }
}

/// One recurrent layer, one direction, over a whole `[B, T, I]` sequence in one call.
/// cell: 0 rnn_tanh, 1 rnn_relu, 2 lstm, 3 gru, 4 gru (reset before). Returns the packed
/// `[B*T + S*B, H]` tensor: outputs, final h, and (LSTM) final c. h0, c0, biases and mask may be 0.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn op_rnn(cell: u8, x: u32, h0: u32, c0: u32, w_ih: u32, w_hh: u32, b_ih: u32, b_hh: u32, mask: u32, reverse: bool) -> R<u32> {
    let cell = RnnCell::from_code(cell).ok_or_else(|| arg_err(format!("unknown recurrent cell {}", cell)))?;
    let (h0, c0, b_ih, b_hh, mask) = (opt(h0)?, opt(c0)?, opt(b_ih)?, opt(b_hh)?, opt(mask)?);
    let (w_ih, w_hh) = (t(w_ih)?, t(w_hh)?);
    let w = RnnWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: b_ih.as_ref(), b_hh: b_hh.as_ref() };
    out(ops::rnn(cell, &*t(x)?, h0.as_ref(), c0.as_ref(), w, mask.as_ref(), reverse))
}

/// Fused `softmax(scale * x)` over the last axis with a keep-mask (0 = none) and a causal limit.
#[wasm_bindgen]
pub fn op_masked_softmax(x: u32, mask: u32, causal: bool, scale: f32) -> R<u32> {
    let m = opt(mask)?;
    out(ops::masked_softmax(&*t(x)?, m.as_ref(), causal, scale))
}

/// Inference self-attention from the packed projection `[B, T, 3E]`: returns the merged heads'
/// output `[B, T, E]` (mask 0 = none; bitwise equal to the unfused ops).
#[wasm_bindgen]
pub fn op_packed_self_attention(qkv: u32, heads: u32, mask: u32, causal: bool, scale: f32) -> R<u32> {
    let m = opt(mask)?;
    out(ops::packed_self_attention(&*t(qkv)?, heads as usize, m.as_ref(), causal, scale))
}

/// A Transformer encoder layer's inference forward in one call (`ops::encoder_layer_infer`):
/// biases, LayerNorm weights and the mask may be 0 (none); `activation` 0 relu, 1 GELU, 2 tanh GELU.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn op_encoder_layer_infer(
    x: u32, in_w: u32, in_b: u32, out_w: u32, out_b: u32, w1: u32, b1: u32, w2: u32, b2: u32,
    g1: u32, be1: u32, eps1: f32, g2: u32, be2: u32, eps2: f32,
    heads: u32, activation: u8, norm_first: bool, mask: u32, causal: bool, scale: f32,
) -> R<u32> {
    let activation = ops::FfActivation::from_code(activation).ok_or_else(|| arg_err(format!("unknown feed-forward activation {}", activation)))?;
    let (in_w, out_w, w1, w2) = (t(in_w)?, t(out_w)?, t(w1)?, t(w2)?);
    let (in_b, out_b, b1, b2) = (opt(in_b)?, opt(out_b)?, opt(b1)?, opt(b2)?);
    let (g1, be1, g2, be2, m) = (opt(g1)?, opt(be1)?, opt(g2)?, opt(be2)?, opt(mask)?);
    let l = ops::EncoderLayerRef {
        in_proj: (&in_w, in_b.as_ref()),
        out_proj: (&out_w, out_b.as_ref()),
        linear1: (&w1, b1.as_ref()),
        linear2: (&w2, b2.as_ref()),
        norm1: (g1.as_ref(), be1.as_ref(), eps1),
        norm2: (g2.as_ref(), be2.as_ref(), eps2),
        heads: heads as usize,
        activation,
        norm_first,
    };
    out(ops::encoder_layer_infer(&*t(x)?, &l, m.as_ref(), causal, scale))
}

/// Scaled dot-product attention in one call: returns `[output, weights]` handles. `scale` NaN
/// means the default 1 / sqrt(head dim).
#[wasm_bindgen]
pub fn op_attention(q: u32, k: u32, v: u32, mask: u32, causal: bool, scale: f32) -> R<Vec<u32>> {
    let m = opt(mask)?;
    let s = if scale.is_nan() { None } else { Some(scale) };
    let (o, w) = ops::attention(&*t(q)?, &*t(k)?, &*t(v)?, m.as_ref(), causal, s).map_err(js_err)?;
    let ho = handles::insert(o).map_err(js_err)?;
    match handles::insert(w) {
        Ok(hw) => Ok(vec![ho, hw]),
        Err(e) => {
            let _ = handles::remove(ho);
            Err(js_err(e))
        }
    }
}

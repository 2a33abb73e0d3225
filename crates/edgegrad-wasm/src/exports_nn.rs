//! Exports for activations, normalisation and optimizers. Optional tensors are passed as handle 0
//! ("none"). Optimizer steps and the `_`-suffixed helpers update their tensors in place.

use crate::exports::{arg_err, js_err, out, t, tc, tl, R};
use edgegrad_core::ops::{self, optim, Activation};
use edgegrad_core::Tensor;
use wasm_bindgen::prelude::*;

/// The tensor behind `h`, or None for handle 0.
fn opt(h: u32) -> R<Option<Tensor>> {
    if h == 0 {
        Ok(None)
    } else {
        tc(h).map(Some)
    }
}

/// code: 0 leaky_relu, 1 elu, 2 gelu (erf), 3 gelu (tanh), 4 silu, 5 softplus, 6 log1p.
/// `alpha` is the negative slope (leaky_relu) or scale (elu); ignored by the others.
#[wasm_bindgen]
pub fn op_activation(code: u8, x: u32, alpha: f32) -> R<u32> {
    let kind = Activation::from_code(code).ok_or_else(|| arg_err(format!("unknown activation {}", code)))?;
    out(ops::activation(kind, &*t(x)?, alpha))
}

/// Channels-last batch norm; gamma, beta, running_mean, running_var may be 0. In training mode the
/// running statistics (when given) are updated in place.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn op_batch_norm(
    x: u32, gamma: u32, beta: u32, running_mean: u32, running_var: u32, training: bool, momentum: f32, eps: f32,
    unbiased_running_var: bool,
) -> R<u32> {
    let (g, b, rm, rv) = (opt(gamma)?, opt(beta)?, opt(running_mean)?, opt(running_var)?);
    out(ops::batch_norm(&*t(x)?, g.as_ref(), b.as_ref(), rm.as_ref(), rv.as_ref(), training, momentum, eps,
        unbiased_running_var))
}

/// Layer norm over the last `normalized_dims` dimensions; gamma and beta may be 0.
#[wasm_bindgen]
pub fn op_layer_norm(x: u32, gamma: u32, beta: u32, normalized_dims: u32, eps: f32) -> R<u32> {
    let (g, b) = (opt(gamma)?, opt(beta)?);
    out(ops::layer_norm(&*t(x)?, g.as_ref(), b.as_ref(), normalized_dims as usize, eps))
}

/// In-place SGD step; `buf` (momentum buffer) may be 0 when momentum is 0.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn optim_sgd(
    p: u32, g: u32, buf: u32, lr: f32, momentum: f32, dampening: f32, weight_decay: f32, nesterov: bool,
    first_step: bool,
) -> R<()> {
    let b = opt(buf)?;
    optim::sgd_step(&*t(p)?, &*t(g)?, b.as_ref(), lr, momentum, dampening, weight_decay, nesterov, first_step)
        .map_err(js_err)
}

/// In-place Adam (decoupled = false) or AdamW (decoupled = true) step; `step` counts from 1.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn optim_adam(
    p: u32, g: u32, m: u32, v: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, decoupled: bool,
    step: u32,
) -> R<()> {
    optim::adam_step(&*t(p)?, &*t(g)?, &*t(m)?, &*t(v)?, lr, beta1, beta2, eps, weight_decay, decoupled, step)
        .map_err(js_err)
}

/// In-place RMSprop step; `buf` may be 0 when momentum is 0, `grad_avg` when not centered.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn optim_rmsprop(
    p: u32, g: u32, square_avg: u32, buf: u32, grad_avg: u32, lr: f32, alpha: f32, eps: f32, weight_decay: f32,
    momentum: f32, centered: bool,
) -> R<()> {
    let (b, a) = (opt(buf)?, opt(grad_avg)?);
    optim::rmsprop_step(&*t(p)?, &*t(g)?, &*t(square_avg)?, b.as_ref(), a.as_ref(), lr, alpha, eps, weight_decay,
        momentum, centered)
        .map_err(js_err)
}

/// In-place Adagrad step; `step` counts from 1.
#[allow(clippy::too_many_arguments)]
#[wasm_bindgen]
pub fn optim_adagrad(
    p: u32, g: u32, sum: u32, lr: f32, lr_decay: f32, weight_decay: f32, eps: f32, step: u32,
) -> R<()> {
    optim::adagrad_step(&*t(p)?, &*t(g)?, &*t(sum)?, lr, lr_decay, weight_decay, eps, step).map_err(js_err)
}

/// sqrt of the sum of squares of every element of every tensor (for clip-by-global-norm).
#[wasm_bindgen]
pub fn grad_global_norm(handles: &[u32]) -> R<f32> {
    optim::global_grad_norm(&tl(handles)?).map_err(js_err)
}

/// `t *= s` in place.
#[wasm_bindgen]
pub fn tensor_scale_(h: u32, s: f32) -> R<()> {
    optim::scale_(&*t(h)?, s).map_err(js_err)
}

/// Clamps into `[lo, hi]` in place.
#[wasm_bindgen]
pub fn tensor_clamp_(h: u32, lo: f32, hi: f32) -> R<()> {
    optim::clamp_(&*t(h)?, lo, hi).map_err(js_err)
}

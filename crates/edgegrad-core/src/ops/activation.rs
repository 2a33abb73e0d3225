//! Activation functions beyond the basic unary ops (leaky ReLU, ELU, GELU, SiLU, softplus).
//!
//! Each is one vectorised pass forward and one backward (`d = g * f'(x)` from the saved input),
//! float32 only, computed with `kernels::math` (never platform libm), so results are the same bits
//! in every engine and for every thread count.

use super::{expect_f32, map_f32, zip_f32};
use crate::autograd::{record, will_record, Saved};
use crate::ensure;
use crate::error::Result;
use crate::kernels::math;
use crate::simd::F32x4;
use crate::tensor::Tensor;

/// The activations reachable through `activation` (and the `op_activation` export).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x > 0 ? x : alpha * x`
    LeakyRelu,
    /// `x > 0 ? x : alpha * (exp(x) - 1)`
    Elu,
    /// `0.5 x (1 + erf(x / sqrt 2))`
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    GeluTanh,
    /// `x * sigmoid(x)`
    Silu,
    /// `max(x, 0) + log1p(exp(-|x|))`
    Softplus,
    /// `ln(1 + x)`
    Log1p,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::LeakyRelu => "leaky_relu",
            Activation::Elu => "elu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Log1p => "log1p",
        }
    }
    /// The code used at the wasm boundary: 0 leaky_relu, 1 elu, 2 gelu (erf), 3 gelu (tanh),
    /// 4 silu, 5 softplus, 6 log1p.
    pub fn from_code(code: u8) -> Option<Activation> {
        Some(match code {
            0 => Activation::LeakyRelu,
            1 => Activation::Elu,
            2 => Activation::Gelu,
            3 => Activation::GeluTanh,
            4 => Activation::Silu,
            5 => Activation::Softplus,
            6 => Activation::Log1p,
            _ => return None,
        })
    }
}

/// Applies `kind` to `x`. `alpha` is the negative slope of leaky ReLU and the scale of ELU; the
/// other activations ignore it.
pub fn activation(kind: Activation, x: &Tensor, alpha: f32) -> Result<Tensor> {
    match kind {
        Activation::LeakyRelu => leaky_relu(x, alpha),
        Activation::Elu => elu(x, alpha),
        Activation::Gelu => gelu(x, false),
        Activation::GeluTanh => gelu(x, true),
        Activation::Silu => silu(x),
        Activation::Softplus => softplus(x),
        Activation::Log1p => log1p(x),
    }
}

/// One elementwise forward pass plus a backward `g * f'(x)` computed from the saved input.
fn pointwise(
    name: &'static str,
    x: &Tensor,
    forward: impl Fn(F32x4) -> F32x4 + Sync,
    derivative: impl Fn(F32x4) -> F32x4 + Sync + 'static,
) -> Result<Tensor> {
    expect_f32(x, name)?;
    let out = map_f32(x, forward)?;
    if !will_record(&[x]) {
        return Ok(out);
    }
    let xs = Saved::new(x);
    // DeepLift's rescale rule needs the outputs too; saved only while it is the rule.
    let ys = (crate::autograd::backward_rule() == crate::autograd::BackwardRule::Rescale).then(|| Saved::new(&out));
    Ok(record(out, name, &[x], move |g, _| {
        let normal = zip_f32(g, xs.get()?, |g, x| g.mul(derivative(x)))?;
        match &ys {
            Some(ys) => Ok(vec![Some(super::attribution::elementwise_rule(name, false, g, normal, xs.get()?, ys.get()?)?)]),
            None => Ok(vec![Some(normal)]),
        }
    }))
}

fn check_alpha(name: &str, alpha: f32) -> Result<()> {
    ensure!(alpha.is_finite(), Argument, "{}: alpha must be finite, got {}", name, alpha);
    Ok(())
}

/// `x > 0 ? x : alpha * x` (PyTorch's gradient at 0 is alpha, as here).
pub fn leaky_relu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    check_alpha("leaky_relu", alpha)?;
    let a = F32x4::splat(alpha);
    pointwise("leaky_relu", x,
        move |v| F32x4::select(v.gt(F32x4::zero()), v, v.mul(a)),
        move |v| F32x4::select(v.gt(F32x4::zero()), F32x4::splat(1.0), a))
}

/// `x > 0 ? x : alpha * (exp(x) - 1)`, with an accurate `expm1` for small negative x.
pub fn elu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    check_alpha("elu", alpha)?;
    let a = F32x4::splat(alpha);
    pointwise("elu", x,
        move |v| F32x4::select(v.gt(F32x4::zero()), v, a.mul(math::expm1(v))),
        move |v| F32x4::select(v.gt(F32x4::zero()), F32x4::splat(1.0), a.mul(math::exp(v))))
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi)
const INV_SQRT_2PI: f32 = 0.398_942_3;
/// sqrt(2 / pi)
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// GELU. Exact: `0.5 x (1 + erf(x / sqrt 2))`; `approximate`: the tanh form
/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (PyTorch's `approximate='tanh'`).
pub fn gelu(x: &Tensor, approximate: bool) -> Result<Tensor> {
    let half = F32x4::splat(0.5);
    let one = F32x4::splat(1.0);
    if approximate {
        let (k, c) = (F32x4::splat(SQRT_2_OVER_PI), F32x4::splat(GELU_CUBIC));
        let inner = move |v: F32x4| k.mul(v.add(c.mul(v).mul(v).mul(v)));
        pointwise("gelu_tanh", x,
            move |v| half.mul(v).mul(one.add(math::tanh(inner(v)))),
            move |v| {
                // 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
                let t = math::tanh(inner(v));
                let dinner = k.mul(one.add(F32x4::splat(3.0 * GELU_CUBIC).mul(v).mul(v)));
                half.mul(one.add(t)).add(half.mul(v).mul(one.sub(t.mul(t))).mul(dinner))
            })
    } else {
        let r = F32x4::splat(FRAC_1_SQRT_2);
        pointwise("gelu", x,
            move |v| half.mul(v).mul(one.add(math::erf(v.mul(r)))),
            move |v| {
                // Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
                let cdf = half.mul(one.add(math::erf(v.mul(r))));
                let pdf = F32x4::splat(INV_SQRT_2PI).mul(math::exp(v.mul(v).mul(half).neg()));
                cdf.add(v.mul(pdf))
            })
    }
}

/// `x * sigmoid(x)` (also called swish). `silu(-inf)` is -0, not NaN.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    let one = F32x4::splat(1.0);
    pointwise("silu", x,
        |v| {
            let y = v.mul(math::sigmoid(v));
            F32x4::select(v.eq(F32x4::splat(f32::NEG_INFINITY)), F32x4::splat(-0.0), y)
        },
        move |v| {
            // s (1 + x (1 - s))
            let s = math::sigmoid(v);
            s.mul(one.add(v.mul(one.sub(s))))
        })
}

/// `ln(1 + exp(x))`, computed as `max(x, 0) + log1p(exp(-|x|))` so it neither overflows for large
/// x nor loses the tiny result for very negative x. The derivative is `sigmoid(x)`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    pointwise("softplus", x,
        |v| v.pmax(F32x4::zero()).add(math::log1p(math::exp(v.abs().neg()))),
        math::sigmoid)
}

/// `ln(1 + x)`, accurate for tiny x. The derivative is `1 / (1 + x)`.
pub fn log1p(x: &Tensor) -> Result<Tensor> {
    let one = F32x4::splat(1.0);
    pointwise("log1p", x, math::log1p, move |v| one.div(one.add(v)))
}

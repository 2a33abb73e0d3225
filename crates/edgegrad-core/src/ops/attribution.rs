//! Backward rules of attribution methods (`autograd::BackwardRule`), applied by the ops that own
//! a nonlinearity: guided backpropagation (ReLU passes only positive gradients) and DeepLift's
//! rescale rule. For DeepLift the batch stacks the inputs over their baselines: row `i` of the
//! first half pairs with row `i` of the second (Captum's convention), so each half is a contiguous
//! run of `numel / 2` elements.

use super::{map_f32, new_f32};
use crate::autograd::{backward_rule, BackwardRule};
use crate::ensure;
use crate::error::Result;
use crate::kernels::pool::{max_pool_backward, PoolGeom};
use crate::shape::fmt_shape;
use crate::simd::F32x4;
use crate::storage::alloc_f32;
use crate::tensor::Tensor;

/// Below this |Δx| a pair keeps its plain gradient (Captum's eps).
const EPS: f32 = 1e-10;

/// Elements per half of a stacked [inputs; baselines] tensor.
fn half(op: &str, t: &Tensor) -> Result<usize> {
    ensure!(t.rank() >= 1 && t.shape()[0] % 2 == 0, Argument,
        "DeepLift's rescale rule: {} got shape {}; the batch must stack the inputs over their baselines (an even first dimension)",
        op, fmt_shape(t.shape()));
    Ok(t.numel() / 2)
}

/// The gradient an elementwise nonlinearity `y = f(x)` passes back under the current rule, given
/// the incoming gradient `g` and the true one `normal = g · f'(x)`.
pub(crate) fn elementwise_rule(op: &str, is_relu: bool, g: &Tensor, normal: Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    match backward_rule() {
        BackwardRule::Gradient => Ok(normal),
        BackwardRule::Guided if is_relu => map_f32(&normal, |v| v.pmax(F32x4::zero())),
        BackwardRule::Guided => Ok(normal),
        BackwardRule::Rescale => rescale(op, g, &normal, x, y),
    }
}

/// DeepLift's rescale rule: both rows of a pair get `g · (y − y₀) / (x − x₀)`, or their true
/// gradient where |x − x₀| < EPS.
fn rescale(op: &str, g: &Tensor, normal: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let h = half(op, x)?;
    let (gc, nc, xc, yc) = (g.contiguous_nograd()?, normal.contiguous_nograd()?, x.contiguous_nograd()?, y.contiguous_nograd()?);
    let (gv, nv, xv, yv) = (gc.f32s()?, nc.f32s()?, xc.f32s()?, yc.f32s()?);
    let mut out = alloc_f32(2 * h);
    for j in 0..h {
        let dx = xv[j] - xv[h + j];
        if dx.abs() < EPS {
            out[j] = nv[j];
            out[h + j] = nv[h + j];
        } else {
            let m = (yv[j] - yv[h + j]) / dx;
            out[j] = gv[j] * m;
            out[h + j] = gv[h + j] * m;
        }
    }
    new_f32(out, x.shape())
}

/// Captum's DeepLift rule for max pooling: the output differences `max(y, y₀) − y₀` (inputs'
/// half) and `y − max(y, y₀)` (baselines' half), times the incoming gradient, go back to each
/// half's maximum; the two halves are summed per position and divided by `x − x₀` (the true
/// gradient where |x − x₀| < EPS). `idx` holds the forward's window positions.
pub(crate) fn max_pool_rule(g: &Tensor, normal: Tensor, x: &Tensor, y: &Tensor, idx: &Tensor, geo: &PoolGeom) -> Result<Tensor> {
    if backward_rule() != BackwardRule::Rescale {
        return Ok(normal);
    }
    let hi = half("max_pool2d", x)?;
    let ho = half("max_pool2d", y)?;
    let (gc, yc) = (g.contiguous_nograd()?, y.contiguous_nograd()?);
    let (gv, yv) = (gc.f32s()?, yc.f32s()?);
    let mut dy = alloc_f32(2 * ho);
    for j in 0..ho {
        let (a, b) = (yv[j], yv[ho + j]);
        let m = a.max(b);
        dy[j] = gv[j] * (m - b);
        dy[ho + j] = gv[ho + j] * (a - m);
    }
    let mut un = alloc_f32(2 * hi);
    max_pool_backward(&dy, &idx.f32s()?, geo, &mut un);
    let (xc, nc) = (x.contiguous_nograd()?, normal.contiguous_nograd()?);
    let (xv, nv) = (xc.f32s()?, nc.f32s()?);
    let mut out = alloc_f32(2 * hi);
    for j in 0..hi {
        let dx = xv[j] - xv[hi + j];
        if dx.abs() < EPS {
            out[j] = nv[j];
            out[hi + j] = nv[hi + j];
        } else {
            let s = (un[j] + un[hi + j]) / dx;
            out[j] = s;
            out[hi + j] = s;
        }
    }
    new_f32(out, x.shape())
}

#[cfg(test)]
mod tests {
    use crate::autograd::{backward, set_backward_rule, BackwardRule};
    use crate::error::ErrorKind;
    use crate::tensor::Tensor;

    fn leaf(v: &[f32], shape: &[usize]) -> Tensor {
        let t = Tensor::from_f32(v.to_vec(), shape).unwrap();
        t.set_requires_grad(true).unwrap();
        t
    }

    /// Gradient of `<f(x), g>` with respect to `x` under `rule` (forward and backward both under it).
    fn grad(rule: BackwardRule, x: &[f32], shape: &[usize], g: &[f32], f: impl Fn(&Tensor) -> crate::error::Result<Tensor>) -> crate::error::Result<Vec<f32>> {
        set_backward_rule(rule);
        let xt = leaf(x, shape);
        let res = f(&xt).and_then(|y| {
            let gt = Tensor::from_f32(g.to_vec(), y.shape())?;
            backward(&y, Some(gt), false)
        });
        set_backward_rule(BackwardRule::Gradient);
        res?;
        xt.grad().unwrap().to_vec_f32()
    }

    #[test]
    fn rescale_passes_the_secant_slope_to_both_rows_of_a_pair() {
        // Row 0 is the input, row 1 its baseline.
        let x = [1.0, -2.0, 0.5, -1.0, 3.0, 0.5];
        let got = grad(BackwardRule::Rescale, &x, &[2, 3], &[1.0; 6], crate::ops::relu).unwrap();
        // (relu(1) - relu(-1)) / 2 = 0.5; (0 - 3) / (-5) = 0.6; equal inputs keep relu' = 1.
        assert_eq!(got, vec![0.5, 0.6, 1.0, 0.5, 0.6, 1.0]);
        let t = grad(BackwardRule::Rescale, &[0.0, 2.0], &[2, 1], &[1.0, 0.0], crate::ops::tanh).unwrap();
        assert_eq!(t[0], (0.0f32.tanh() - crate::ops::tanh(&Tensor::from_f32(vec![2.0], &[1]).unwrap()).unwrap().to_vec_f32().unwrap()[0]) / -2.0);
        assert_eq!(t[1], 0.0);
        // The plain gradient is unchanged without a rule.
        assert_eq!(grad(BackwardRule::Gradient, &x, &[2, 3], &[1.0; 6], crate::ops::relu).unwrap(), vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn rescale_needs_stacked_pairs() {
        let e = grad(BackwardRule::Rescale, &[1.0, 2.0, 3.0], &[3, 1], &[1.0; 3], crate::ops::sigmoid).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Argument);
        assert!(e.message.contains("even first dimension"), "{}", e.message);
    }

    #[test]
    fn guided_relu_drops_negative_gradients() {
        let got = grad(BackwardRule::Guided, &[1.0, -2.0, 3.0], &[1, 3], &[-1.0, 5.0, 2.0], crate::ops::relu).unwrap();
        assert_eq!(got, vec![0.0, 0.0, 2.0]);
        // Other activations keep their gradient.
        let s = grad(BackwardRule::Guided, &[0.0], &[1, 1], &[-4.0], crate::ops::sigmoid).unwrap();
        assert_eq!(s, vec![-1.0]);
        // A fused linear + ReLU follows the rule too.
        let w = Tensor::from_f32(vec![1.0, -1.0], &[2, 1]).unwrap();
        let got = grad(BackwardRule::Guided, &[2.0], &[1, 1], &[-1.0, 1.0], |x| crate::ops::linear(x, &w, None, true)).unwrap();
        // Outputs [2, -2]: only the first unit is open and its gradient (-1) is negative.
        assert_eq!(got, vec![0.0]);
    }

    #[test]
    fn max_pool_rule_gives_deeplift_contributions_that_sum_to_the_output_difference() {
        // One pair, a 1x2 window over [3, 1] (input) and [0, 2] (baseline): y = 3, y0 = 2.
        let x = [3.0, 1.0, 0.0, 2.0];
        let got = grad(BackwardRule::Rescale, &x, &[2, 1, 2, 1], &[1.0, 0.0], |x| crate::ops::max_pool2d(x, [1, 2], [1, 2], [0; 4])).unwrap();
        let contrib = [(x[0] - x[2]) * got[0], (x[1] - x[3]) * got[1]];
        assert_eq!(contrib[0] + contrib[1], 1.0);
        assert_eq!(contrib, [1.0, 0.0]);
    }
}

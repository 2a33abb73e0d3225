//! PyTorch conventions at the edges that finite differences cannot see (the full parity suite
//! against PyTorch's own numbers is tests/parity-torch.test.ts).

use edgegrad_core::autograd::backward;
use edgegrad_core::ops;
use edgegrad_core::Tensor;

fn clamp_grad(xs: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    let x = Tensor::from_f32(xs.to_vec(), &[xs.len()]).unwrap();
    x.set_requires_grad(true).unwrap();
    let y = ops::sum(&ops::clamp(&x, lo, hi).unwrap(), &[], false).unwrap();
    backward(&y, None, false).unwrap();
    x.grad().unwrap().to_vec_f32().unwrap()
}

#[test]
fn clamp_gradient_is_zero_at_the_bounds() {
    // torch.clamp: the gradient passes strictly inside (min < x < max), as relu's at 0.
    let xs = [-2.0, -1.0, -0.5, 0.0, 1.0, 2.0];
    assert_eq!(clamp_grad(&xs, -1.0, 1.0), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert_eq!(clamp_grad(&xs, 0.0, 0.0), vec![0.0; 6]);
    // an infinite bound is no bound: clamp(min=None) passes everything below max, -inf included
    let inf = f32::INFINITY;
    assert_eq!(clamp_grad(&[-inf, -1.0, 1.0, inf], -inf, 1.0), vec![1.0, 1.0, 0.0, 0.0]);
    assert_eq!(clamp_grad(&[-inf, -1.0, 1.0, inf], -1.0, inf), vec![0.0, 0.0, 1.0, 1.0]);
    assert_eq!(clamp_grad(&[f32::NAN, 0.5], -inf, inf), vec![0.0, 1.0]);
}

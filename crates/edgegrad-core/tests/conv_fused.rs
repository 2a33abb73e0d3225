//! `conv2d_relu_max_pool2`: bitwise `max_pool2d(conv2d_act(.., relu))` on every geometry (fused
//! kernel or not), with signed zeros and NaN, with and without a gradient to record.

use edgegrad_core::autograd::backward;
use edgegrad_core::ops::{self, Conv2dOptions};
use edgegrad_core::parallel;
use edgegrad_core::Tensor;

mod common;
use common::v;

fn t(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_f32(data, shape).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.f32s().unwrap().iter().map(|x| x.to_bits()).collect()
}

fn check(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: &Conv2dOptions) {
    let want = ops::max_pool2d(&ops::conv2d_act(x, w, b, o, true).unwrap(), [2, 2], [2, 2], [0; 4]).unwrap();
    let got = ops::conv2d_relu_max_pool2(x, w, b, o).unwrap();
    assert_eq!(got.shape(), want.shape());
    assert_eq!(bits(&got), bits(&want), "x {:?} w {:?} {:?}", x.shape(), w.shape(), o);
}

#[test]
fn fused_conv_relu_pool_is_bitwise_the_two_ops() {
    // (x shape, kernel, stride, padding, dilation, groups, cout): the benchmark's layers, odd
    // sizes (last row/column dropped by the pool), batches, strides, groups, K past 256, the
    // direct-kernel geometries (K <= 32, pooled in the direct kernel) and one too large for the
    // implicit kernel (more than 4096 output pixels).
    let cases: &[([usize; 4], [usize; 2], [usize; 2], [usize; 4], [usize; 2], usize, usize)] = &[
        ([1, 14, 14, 16], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, 32),
        ([1, 28, 28, 1], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, 16),
        ([2, 9, 11, 5], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, 13),
        ([3, 7, 7, 8], [2, 3], [2, 1], [0, 1, 1, 0], [1, 2], 2, 10),
        ([1, 6, 6, 40], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, 9),
        ([1, 5, 4, 12], [3, 3], [1, 1], [0, 0, 0, 0], [1, 1], 1, 8),
        ([2, 8, 8, 6], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 3, 6),
        ([1, 70, 70, 4], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, 8),
        ([2, 5, 7, 3], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, 20),
    ];
    for (seed, &(xs, k, s, p, d, groups, cout)) in cases.iter().enumerate() {
        let o = Conv2dOptions { stride: s, padding: p, dilation: d, groups };
        let x = t(v(xs.iter().product(), seed as u64), &xs);
        let ws = [k[0], k[1], xs[3] / groups, cout];
        let w = t(v(ws.iter().product(), 100 + seed as u64), &ws);
        let b = t(v(cout, 200 + seed as u64), &[cout]);
        check(&x, &w, Some(&b), &o);
        check(&x, &w, None, &o);
    }
}

#[test]
fn fused_conv_relu_pool_keeps_nan_and_signed_zeros() {
    let o = Conv2dOptions { stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 };
    let mut xd = v(8 * 8 * 6, 5);
    xd[7] = f32::NAN;
    xd[100] = f32::INFINITY;
    let x = t(xd, &[1, 8, 8, 6]);
    let w = t(v(9 * 6 * 8, 6), &[3, 3, 6, 8]);
    check(&x, &w, None, &o);
    // All -0 inputs and negative weights: every output is a (ReLU'd) signed zero.
    let x0 = t(vec![-0.0; 8 * 8 * 6], &[1, 8, 8, 6]);
    let wn = t(v(9 * 6 * 8, 7).iter().map(|x| -x.abs()).collect(), &[3, 3, 6, 8]);
    check(&x0, &wn, None, &o);
}

#[test]
fn fused_conv_relu_pool_is_the_same_for_any_thread_count_and_differentiable() {
    let o = Conv2dOptions { stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 };
    let x = t(v(2 * 12 * 12 * 8, 9), &[2, 12, 12, 8]);
    let w = t(v(9 * 8 * 16, 10), &[3, 3, 8, 16]);
    let b = t(v(16, 11), &[16]);
    parallel::set_num_threads(1);
    let one = bits(&ops::conv2d_relu_max_pool2(&x, &w, Some(&b), &o).unwrap());
    parallel::set_num_threads(3);
    let three = bits(&ops::conv2d_relu_max_pool2(&x, &w, Some(&b), &o).unwrap());
    parallel::set_num_threads(1);
    assert_eq!(one, three);
    // With a gradient to record it runs the two ops: the weights get the unfused gradient.
    w.set_requires_grad(true).unwrap();
    let y = ops::conv2d_relu_max_pool2(&x, &w, Some(&b), &o).unwrap();
    assert_eq!(bits(&y), one);
    backward(&ops::sum(&y, &[], false).unwrap(), None, false).unwrap();
    assert!(w.grad().is_some());
}

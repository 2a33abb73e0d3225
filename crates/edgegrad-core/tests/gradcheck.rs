//! Finite-difference gradient checks for every differentiable op, plus shape-error checks.

use edgegrad_core::autograd::backward;
use edgegrad_core::ops::{self, CompareOp};
use edgegrad_core::{DType, ErrorKind, Result, Tensor};

mod common;
use common::{away_from_zero, gradcheck, rand_vec, v};

#[test]
fn arithmetic_with_broadcasting() {
    gradcheck("add", vec![(v(12, 1), vec![3, 4]), (v(4, 2), vec![4])], |x| ops::add(&x[0], &x[1]));
    gradcheck("sub", vec![(v(6, 3), vec![2, 3, 1]), (v(12, 4), vec![3, 4])], |x| ops::sub(&x[0], &x[1]));
    gradcheck("mul", vec![(v(12, 5), vec![3, 4]), (v(3, 6), vec![3, 1])], |x| ops::mul(&x[0], &x[1]));
    gradcheck("div", vec![(v(12, 7), vec![3, 4]), (away_from_zero(4, 8, 0.5, 2.0), vec![1, 4])], |x| ops::div(&x[0], &x[1]));
    gradcheck("pow", vec![(rand_vec(6, 9, 0.5, 2.0), vec![2, 3]), (v(3, 10), vec![3])], |x| ops::pow(&x[0], &x[1]));
    gradcheck("maximum", vec![(v(8, 11), vec![8]), (v(8, 12), vec![8])], |x| ops::maximum(&x[0], &x[1]));
    gradcheck("minimum", vec![(v(8, 13), vec![2, 4]), (v(4, 14), vec![4])], |x| ops::minimum(&x[0], &x[1]));
    gradcheck("scalar ops", vec![(v(5, 15), vec![5])], |x| ops::affine_scalar(&ops::mul_scalar(&ops::add_scalar(&x[0], 0.3)?, 2.0)?, -1.5, 0.25));
    gradcheck("same tensor twice", vec![(v(5, 16), vec![5])], |x| ops::mul(&x[0], &x[0]));
}

#[test]
fn unary_math() {
    gradcheck("neg", vec![(v(6, 20), vec![2, 3])], |x| ops::neg(&x[0]));
    gradcheck("exp", vec![(v(6, 21), vec![2, 3])], |x| ops::exp(&x[0]));
    gradcheck("log", vec![(rand_vec(6, 22, 0.2, 3.0), vec![6])], |x| ops::log(&x[0]));
    gradcheck("sqrt", vec![(rand_vec(6, 23, 0.2, 3.0), vec![6])], |x| ops::sqrt(&x[0]));
    gradcheck("abs", vec![(away_from_zero(6, 24, 0.1, 1.0), vec![6])], |x| ops::abs(&x[0]));
    gradcheck("pow scalar", vec![(rand_vec(6, 25, 0.2, 2.0), vec![6])], |x| ops::pow_scalar(&x[0], 2.5));
    gradcheck("pow 2", vec![(v(6, 26), vec![6])], |x| ops::pow_scalar(&x[0], 2.0));
    gradcheck("clamp", vec![(away_from_zero(8, 27, 0.1, 2.0), vec![8])], |x| ops::clamp(&x[0], -0.8, 0.9));
    gradcheck("relu", vec![(away_from_zero(8, 28, 0.05, 1.0), vec![8])], |x| ops::relu(&x[0]));
    gradcheck("sigmoid", vec![(rand_vec(8, 29, -4.0, 4.0), vec![8])], |x| ops::sigmoid(&x[0]));
    gradcheck("tanh", vec![(rand_vec(8, 30, -2.0, 2.0), vec![8])], |x| ops::tanh(&x[0]));
}

#[test]
fn matmul_variants() {
    gradcheck("matmul 2d", vec![(v(12, 40), vec![3, 4]), (v(20, 41), vec![4, 5])], |x| ops::matmul(&x[0], &x[1]));
    gradcheck("matmul batched", vec![(v(24, 42), vec![2, 3, 4]), (v(40, 43), vec![2, 4, 5])], |x| ops::matmul(&x[0], &x[1]));
    gradcheck("matmul broadcast", vec![(v(24, 44), vec![2, 3, 4]), (v(20, 45), vec![4, 5])], |x| ops::matmul(&x[0], &x[1]));
    gradcheck("matmul vec", vec![(v(4, 46), vec![4]), (v(20, 47), vec![4, 5])], |x| ops::matmul(&x[0], &x[1]));
    gradcheck("bmm transposed", vec![(v(12, 48), vec![4, 3]), (v(20, 49), vec![5, 4])], |x| ops::bmm(&x[0], &x[1], true, true));
}

#[test]
fn fused_linear_and_conv_relu() {
    gradcheck("linear", vec![(v(12, 90), vec![3, 4]), (v(20, 91), vec![5, 4]), (v(5, 92), vec![5])],
        |x| ops::linear(&x[0], &x[1], Some(&x[2]), false));
    gradcheck("linear relu", vec![(v(24, 93), vec![2, 3, 4]), (v(20, 94), vec![5, 4]), (away_from_zero(5, 95, 0.3, 1.0), vec![5])],
        |x| ops::linear(&x[0], &x[1], Some(&x[2]), true));
    gradcheck("linear m=1 no bias", vec![(v(4, 96), vec![1, 4]), (v(12, 97), vec![3, 4])], |x| ops::linear(&x[0], &x[1], None, false));
    let o = ops::Conv2dOptions { stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 };
    gradcheck("conv relu (direct path)", vec![(v(2 * 4 * 4 * 2, 98), vec![2, 4, 4, 2]), (v(3 * 3 * 2 * 3, 99), vec![3, 3, 2, 3]), (away_from_zero(3, 100, 0.3, 1.0), vec![3])],
        |x| ops::conv2d_act(&x[0], &x[1], Some(&x[2]), &o, true));
    gradcheck("conv relu (gemm path)", vec![(v(1 * 3 * 3 * 5, 101), vec![1, 3, 3, 5]), (v(3 * 3 * 5 * 2, 102), vec![3, 3, 5, 2]), (away_from_zero(2, 103, 0.3, 1.0), vec![2])],
        |x| ops::conv2d_act(&x[0], &x[1], Some(&x[2]), &o, true));
    // forward equals the unfused composition
    let x = Tensor::from_f32(v(2 * 5 * 5 * 3, 104), &[2, 5, 5, 3]).unwrap();
    let w = Tensor::from_f32(v(3 * 3 * 3 * 7, 105), &[3, 3, 3, 7]).unwrap();
    let fused = ops::conv2d_act(&x, &w, None, &o, true).unwrap().to_vec_f32().unwrap();
    let plain = ops::relu(&ops::conv2d(&x, &w, None, &o).unwrap()).unwrap().to_vec_f32().unwrap();
    for (a, b) in fused.iter().zip(&plain) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn layout_ops() {
    gradcheck("reshape", vec![(v(12, 50), vec![3, 4])], |x| ops::reshape(&ops::mul_scalar(&x[0], 2.0)?, &[2, 6]));
    gradcheck("permute", vec![(v(24, 51), vec![2, 3, 4])], |x| ops::contiguous(&ops::permute(&x[0], &[2, 0, 1])?));
    gradcheck("transpose", vec![(v(12, 52), vec![3, 4])], |x| ops::transpose(&x[0], 0, 1));
    gradcheck("slice", vec![(v(24, 53), vec![4, 6])], |x| ops::slice(&x[0], &[1, 0], &[4, 6], &[2, 2]));
    gradcheck("concat", vec![(v(6, 54), vec![2, 3]), (v(4, 55), vec![2, 2])], |x| ops::concat(&[x[0].clone(), x[1].clone()], 1));
    gradcheck("index_select", vec![(v(12, 56), vec![4, 3])], |x| {
        let idx = Tensor::from_i32(vec![3, 0, 3, 1], &[2, 2])?;
        ops::index_select(&x[0], 0, &idx)
    });
    gradcheck("gather", vec![(v(12, 57), vec![3, 4])], |x| {
        let idx = Tensor::from_i32(vec![0, 3, 1, 1, 2, 0], &[3, 2])?;
        ops::gather(&x[0], 1, &idx)
    });
    gradcheck("expand", vec![(v(3, 58), vec![3, 1])], |x| ops::expand(&x[0], &[2, 3, 4]));
    gradcheck("where", vec![(v(6, 59), vec![6]), (v(6, 60), vec![6])], |x| {
        let c = Tensor::from_f32(vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0], &[6])?;
        ops::where_(&c, &x[0], &x[1])
    });
}

#[test]
fn reductions_and_softmax() {
    gradcheck("sum all", vec![(v(12, 70), vec![3, 4])], |x| ops::sum(&x[0], &[], false));
    gradcheck("sum axis", vec![(v(24, 71), vec![2, 3, 4])], |x| ops::sum(&x[0], &[1], true));
    gradcheck("sum axes 0,2", vec![(v(24, 72), vec![2, 3, 4])], |x| ops::sum(&x[0], &[0, 2], false));
    gradcheck("mean", vec![(v(24, 73), vec![2, 3, 4])], |x| ops::mean(&x[0], &[-1], false));
    gradcheck("max", vec![(v(24, 74), vec![2, 3, 4])], |x| ops::max(&x[0], &[1], false));
    gradcheck("min", vec![(v(24, 75), vec![2, 3, 4])], |x| ops::min(&x[0], &[0, 2], true));
    gradcheck("softmax", vec![(v(12, 76), vec![3, 4])], |x| ops::softmax(&x[0], -1));
    gradcheck("softmax axis 0", vec![(v(12, 77), vec![3, 4])], |x| ops::softmax(&x[0], 0));
    gradcheck("log_softmax", vec![(v(12, 78), vec![3, 4])], |x| ops::log_softmax(&x[0], 1));
}

#[test]
fn forward_values() {
    let a = Tensor::from_f32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    assert_eq!(ops::sum(&a, &[0], false).unwrap().to_vec_f32().unwrap(), vec![5.0, 7.0, 9.0]);
    assert_eq!(ops::max(&a, &[1], false).unwrap().to_vec_f32().unwrap(), vec![3.0, 6.0]);
    assert_eq!(ops::argmax(&a, 1, false).unwrap().to_vec_i32().unwrap(), vec![2, 2]);
    let s = ops::softmax(&Tensor::from_f32(vec![1000.0, 1000.0], &[2]).unwrap(), 0).unwrap().to_vec_f32().unwrap();
    assert_eq!(s, vec![0.5, 0.5]);
    let ls = ops::log_softmax(&Tensor::from_f32(vec![0.0, -1e4], &[2]).unwrap(), 0).unwrap().to_vec_f32().unwrap();
    assert!(ls[0].abs() < 1e-6 && (ls[1] + 1e4).abs() < 1e-1);
    let t = ops::transpose(&a, 0, 1).unwrap();
    assert!(!t.is_contiguous());
    assert_eq!(t.to_vec_f32().unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let c = ops::compare(CompareOp::Gt, &a, &Tensor::scalar(3.0)).unwrap().to_vec_f32().unwrap();
    assert_eq!(c, vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
}

#[test]
fn shape_errors_are_typed() {
    let a = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    let b = Tensor::zeros(&[4, 5], DType::F32).unwrap();
    let i = Tensor::zeros(&[2], DType::I32).unwrap();
    let kind = |r: Result<Tensor>| r.unwrap_err().kind;
    assert_eq!(kind(ops::add(&a, &b)), ErrorKind::Shape);
    assert_eq!(kind(ops::matmul(&a, &b)), ErrorKind::Shape);
    assert_eq!(kind(ops::reshape(&a, &[4, 2])), ErrorKind::Shape);
    assert_eq!(kind(ops::sum(&a, &[2], false)), ErrorKind::Shape);
    assert_eq!(kind(ops::softmax(&a, 5)), ErrorKind::Shape);
    assert_eq!(kind(ops::concat(&[a.clone(), b.clone()], 0)), ErrorKind::Shape);
    assert_eq!(kind(ops::permute(&a, &[0, 0])), ErrorKind::Shape);
    assert_eq!(kind(ops::exp(&i)), ErrorKind::DType);
    assert_eq!(kind(ops::index_select(&a, 0, &Tensor::from_i32(vec![5], &[1]).unwrap())), ErrorKind::Argument);
    assert_eq!(kind(ops::clamp(&a, 1.0, 0.0)), ErrorKind::Argument);
}

#[test]
fn autograd_semantics() {
    let x = Tensor::from_f32(vec![1.0, 2.0], &[2]).unwrap();
    x.set_requires_grad(true).unwrap();
    // accumulation over two backward passes
    for _ in 0..2 {
        let y = ops::sum(&ops::mul_scalar(&x, 3.0).unwrap(), &[], false).unwrap();
        backward(&y, None, false).unwrap();
    }
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![6.0, 6.0]);
    x.zero_grad();
    // a freed graph refuses a second backward
    let y = ops::sum(&ops::exp(&x).unwrap(), &[], false).unwrap();
    backward(&y, None, false).unwrap();
    assert_eq!(backward(&y, None, false).unwrap_err().kind, ErrorKind::Autograd);
    // retained graph allows it
    let y = ops::sum(&ops::exp(&x).unwrap(), &[], false).unwrap();
    backward(&y, None, true).unwrap();
    backward(&y, None, false).unwrap();
    // non-scalar backward needs a gradient
    let z = ops::exp(&x).unwrap();
    assert_eq!(backward(&z, None, false).unwrap_err().kind, ErrorKind::Autograd);
    // no_grad records nothing
    let w = {
        let _g = edgegrad_core::autograd::NoGradGuard::new();
        ops::exp(&x).unwrap()
    };
    assert!(!w.requires_grad());
    // in-place modification of a saved tensor is caught (mul saves its inputs)
    let y = ops::sum(&ops::mul(&x, &x).unwrap(), &[], false).unwrap();
    x.f32s_mut().unwrap()[0] = 5.0;
    assert_eq!(backward(&y, None, false).unwrap_err().kind, ErrorKind::Autograd);
}

//! Activations, batch / layer norm and optimizer steps: finite-difference gradient checks, forward
//! values against hand computations and f64 references, typed errors, and bitwise identity across
//! thread counts.

use edgegrad_core::autograd::backward;
use edgegrad_core::ops::{self, optim, Activation};
use edgegrad_core::{parallel, DType, ErrorKind, Result, Tensor};

mod common;
use common::{away_from_zero, gradcheck, rand_vec, v};

fn t(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_f32(data, shape).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec_f32().unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    vals(t).iter().map(|x| x.to_bits()).collect()
}

fn assert_close(name: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= atol + rtol * w.abs(), "{name}[{i}]: got {g}, want {w}");
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.unwrap_err().kind
}

fn message<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.unwrap_err().message
}

// ---------------------------------------------------------------- activations

#[test]
fn activation_gradients() {
    gradcheck("leaky_relu", vec![(away_from_zero(12, 1, 0.05, 2.0), vec![3, 4])], |x| ops::leaky_relu(&x[0], 0.1));
    gradcheck("leaky_relu alpha 1.7", vec![(away_from_zero(7, 2, 0.05, 2.0), vec![7])], |x| ops::leaky_relu(&x[0], 1.7));
    gradcheck("elu", vec![(away_from_zero(12, 3, 0.05, 3.0), vec![12])], |x| ops::elu(&x[0], 1.3));
    gradcheck("gelu", vec![(rand_vec(13, 4, -4.0, 4.0), vec![13])], |x| ops::gelu(&x[0], false));
    gradcheck("gelu tanh", vec![(rand_vec(13, 5, -4.0, 4.0), vec![13])], |x| ops::gelu(&x[0], true));
    gradcheck("silu", vec![(rand_vec(13, 6, -6.0, 6.0), vec![13])], |x| ops::silu(&x[0]));
    gradcheck("softplus", vec![(rand_vec(13, 7, -6.0, 6.0), vec![13])], |x| ops::softplus(&x[0]));
    gradcheck("log1p", vec![(rand_vec(13, 8, -0.6, 3.0), vec![13])], |x| ops::log1p(&x[0]));
    // a non-contiguous input
    gradcheck("gelu of a transpose", vec![(rand_vec(12, 9, -3.0, 3.0), vec![3, 4])],
        |x| ops::gelu(&ops::transpose(&x[0], 0, 1)?, false));
}

#[test]
fn activation_dispatch_matches_direct_calls() {
    let x = t(rand_vec(37, 10, -5.0, 5.0), &[37]);
    let direct = [
        ops::leaky_relu(&x, 0.2).unwrap(),
        ops::elu(&x, 0.2).unwrap(),
        ops::gelu(&x, false).unwrap(),
        ops::gelu(&x, true).unwrap(),
        ops::silu(&x).unwrap(),
        ops::softplus(&x).unwrap(),
        ops::log1p(&ops::abs(&x).unwrap()).unwrap(),
    ];
    for code in 0..7u8 {
        let kind = Activation::from_code(code).unwrap();
        let input = if kind == Activation::Log1p { ops::abs(&x).unwrap() } else { x.clone() };
        let y = ops::activation(kind, &input, 0.2).unwrap();
        assert_eq!(bits(&y), bits(&direct[code as usize]), "{}", kind.name());
    }
    assert!(Activation::from_code(7).is_none());
}

#[test]
fn activation_forward_values() {
    let x = t(vec![-2.0, -0.5, 0.0, 1.0, 3.0], &[5]);
    let want_f64 = |f: &dyn Fn(f64) -> f64| -> Vec<f64> { vals(&x).iter().map(|&v| f(v as f64)).collect() };
    assert_eq!(vals(&ops::leaky_relu(&x, 0.1).unwrap()), vec![-0.2, -0.05, 0.0, 1.0, 3.0]);
    assert_close("elu", &vals(&ops::elu(&x, 1.5).unwrap()),
        &want_f64(&|v| if v > 0.0 { v } else { 1.5 * v.exp_m1() }), 3e-7, 0.0);
    assert_close("silu", &vals(&ops::silu(&x).unwrap()), &want_f64(&|v| v / (1.0 + (-v).exp())), 5e-7, 0.0);
    assert_close("softplus", &vals(&ops::softplus(&x).unwrap()), &want_f64(&|v| v.exp().ln_1p()), 3e-7, 0.0);
    let gelu_tanh = |v: f64| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh());
    assert_close("gelu tanh", &vals(&ops::gelu(&x, true).unwrap()), &want_f64(&gelu_tanh), 1e-6, 1e-7);

    // gelu(1) = Phi(1) = 0.841344746...
    let one = t(vec![1.0], &[1]);
    let g1 = vals(&ops::gelu(&one, false).unwrap())[0];
    assert!((g1 as f64 - 0.841_344_746_068_543).abs() < 1e-7, "gelu(1) = {g1}");
    assert!((vals(&ops::gelu(&one, true).unwrap())[0] as f64 - 0.841_191_990_607_477).abs() < 2e-7);
    let gm = vals(&ops::gelu(&t(vec![-1.0, -10.0, 10.0, 0.0], &[4]), false).unwrap());
    assert!((gm[0] as f64 + 0.158_655_253_931_457).abs() < 1e-7, "gelu(-1) = {}", gm[0]);
    assert_eq!(&gm[1..], &[-0.0, 10.0, 0.0]);

    // softplus neither overflows nor loses the tiny result
    let sp = vals(&ops::softplus(&t(vec![100.0, -100.0, 0.0, 1e-8], &[4])).unwrap());
    assert_eq!(sp[0], 100.0);
    let tiny = (-100f64).exp(); // 3.72e-44, subnormal in float32
    assert!(sp[1] > 0.0 && ((sp[1] as f64 - tiny) / tiny).abs() < 0.05, "softplus(-100) = {:e}", sp[1]);
    assert!((sp[2] as f64 - 2f64.ln()).abs() < 1e-7);
    assert!((sp[3] as f64 - (1e-8f32 as f64).exp().ln_1p()).abs() < 1e-7);

    // log1p keeps tiny values
    let l = vals(&ops::log1p(&t(vec![1e-10, -1e-10, 0.0, 1.0, -1.0], &[5])).unwrap());
    assert_eq!(l[0], 1e-10);
    assert_eq!(l[1], -1e-10);
    assert_eq!(l[2], 0.0);
    assert!((l[3] as f64 - 2f64.ln()).abs() < 1e-7);
    assert_eq!(l[4], f32::NEG_INFINITY);

    // elu keeps accuracy for small negative inputs (expm1, not exp - 1)
    let e = vals(&ops::elu(&t(vec![-1e-6], &[1]), 1.0).unwrap())[0] as f64;
    assert!((e - (-1e-6f32 as f64).exp_m1()).abs() < 1e-13, "elu(-1e-6) = {e}");
    // NaN propagates, silu(-inf) is 0
    let nan = t(vec![f32::NAN], &[1]);
    for code in 0..7 {
        let y = ops::activation(Activation::from_code(code).unwrap(), &nan, 0.5).unwrap();
        assert!(vals(&y)[0].is_nan(), "code {code}");
    }
    assert_eq!(vals(&ops::silu(&t(vec![f32::NEG_INFINITY, f32::INFINITY], &[2])).unwrap()), vec![0.0, f32::INFINITY]);
}

// ---------------------------------------------------------------- batch norm

fn bn_train(x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>) -> Result<Tensor> {
    ops::batch_norm(x, gamma, beta, None, None, true, 0.1, 1e-5, true)
}

#[test]
fn batch_norm_gradients() {
    gradcheck("batch_norm 2-D affine", vec![(v(18, 20), vec![6, 3]), (rand_vec(3, 21, 0.5, 1.5), vec![3]), (v(3, 22), vec![3])],
        |x| bn_train(&x[0], Some(&x[1]), Some(&x[2])));
    gradcheck("batch_norm 2-D plain", vec![(v(20, 23), vec![4, 5])], |x| bn_train(&x[0], None, None));
    gradcheck("batch_norm 2-D, 7 channels", vec![(v(35, 24), vec![5, 7]), (rand_vec(7, 25, 0.5, 1.5), vec![7])],
        |x| bn_train(&x[0], Some(&x[1]), None));
    gradcheck("batch_norm 4-D affine", vec![(v(48, 26), vec![2, 3, 2, 4]), (rand_vec(4, 27, 0.5, 1.5), vec![4]), (v(4, 28), vec![4])],
        |x| {
            // running statistics are updated in place and must not disturb the gradient
            let rm = Tensor::zeros(&[4], DType::F32)?;
            let rv = Tensor::ones(&[4], DType::F32)?;
            ops::batch_norm(&x[0], Some(&x[1]), Some(&x[2]), Some(&rm), Some(&rv), true, 0.1, 1e-5, false)
        });
    gradcheck("batch_norm 4-D plain", vec![(v(36, 29), vec![3, 2, 2, 3])], |x| bn_train(&x[0], None, None));
    gradcheck("batch_norm 4-D beta only", vec![(v(24, 30), vec![2, 2, 3, 2]), (v(2, 31), vec![2])],
        |x| bn_train(&x[0], None, Some(&x[1])));
    gradcheck("batch_norm eval affine", vec![(v(15, 32), vec![5, 3]), (rand_vec(3, 33, 0.5, 1.5), vec![3]), (v(3, 34), vec![3])],
        |x| {
            let rm = t(vec![0.1, -0.2, 0.3], &[3]);
            let rv = t(vec![0.5, 1.5, 2.0], &[3]);
            ops::batch_norm(&x[0], Some(&x[1]), Some(&x[2]), Some(&rm), Some(&rv), false, 0.1, 1e-3, true)
        });
    gradcheck("batch_norm eval 4-D plain", vec![(v(24, 35), vec![2, 2, 2, 3])], |x| {
        let rm = t(vec![0.1, -0.2, 0.3], &[3]);
        let rv = t(vec![0.5, 1.5, 2.0], &[3]);
        ops::batch_norm(&x[0], None, None, Some(&rm), Some(&rv), false, 0.1, 1e-3, true)
    });
}

#[test]
fn batch_norm_running_stats_both_conventions() {
    // channel 0: 1 2 3 4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1: 2 4 6 8 (5, 5, 20/3)
    let x = t(vec![1.0, 2.0, 2.0, 4.0, 3.0, 6.0, 4.0, 8.0], &[4, 2]);
    for (unbiased, var) in [(true, [5.0 / 3.0, 20.0 / 3.0]), (false, [1.25, 5.0])] {
        let rm = t(vec![0.0, 1.0], &[2]);
        let rv = t(vec![1.0, 2.0], &[2]);
        let y = ops::batch_norm(&x, None, None, Some(&rm), Some(&rv), true, 0.1, 1e-5, unbiased).unwrap();
        assert_close("running_mean", &vals(&rm), &[0.9 * 0.0 + 0.1 * 2.5, 0.9 * 1.0 + 0.1 * 5.0], 1e-7, 0.0);
        assert_close("running_var", &vals(&rv), &[0.9 * 1.0 + 0.1 * var[0], 0.9 * 2.0 + 0.1 * var[1]], 1e-7, 0.0);
        // the output always uses the biased batch variance
        let want: Vec<f64> = [1.0, 2.0, 2.0, 4.0, 3.0, 6.0, 4.0, 8.0].iter().enumerate()
            .map(|(i, &x)| if i % 2 == 0 { (x - 2.5) / (1.25f64 + 1e-5).sqrt() } else { (x - 5.0) / (5.0f64 + 1e-5).sqrt() })
            .collect();
        assert_close("batch_norm output", &vals(&y), &want, 1e-6, 1e-6);
    }
    // Keras convention: momentum 0.01 here = Keras momentum 0.99
    let rm = t(vec![0.5, 0.5], &[2]);
    let rv = t(vec![1.0, 1.0], &[2]);
    ops::batch_norm(&x, None, None, Some(&rm), Some(&rv), true, 0.01, 1e-3, false).unwrap();
    assert_close("keras running_mean", &vals(&rm), &[0.99 * 0.5 + 0.01 * 2.5, 0.99 * 0.5 + 0.01 * 5.0], 1e-7, 0.0);
    assert_close("keras running_var", &vals(&rv), &[0.99 + 0.01 * 1.25, 0.99 + 0.01 * 5.0], 1e-7, 0.0);

    // eval: normalises with the running statistics and leaves them alone
    let gamma = t(vec![2.0, 0.5], &[2]);
    let beta = t(vec![1.0, -1.0], &[2]);
    let rm = t(vec![1.0, 2.0], &[2]);
    let rv = t(vec![4.0, 9.0], &[2]);
    let y = ops::batch_norm(&x, Some(&gamma), Some(&beta), Some(&rm), Some(&rv), false, 0.1, 0.0, true).unwrap();
    let want: Vec<f64> = [1.0, 2.0, 2.0, 4.0, 3.0, 6.0, 4.0, 8.0].iter().enumerate()
        .map(|(i, &x)| if i % 2 == 0 { (x - 1.0) / 2.0 * 2.0 + 1.0 } else { (x - 2.0) / 3.0 * 0.5 - 1.0 })
        .collect();
    assert_close("eval output", &vals(&y), &want, 1e-6, 1e-6);
    assert_eq!(vals(&rm), vec![1.0, 2.0]);
    assert_eq!(vals(&rv), vec![4.0, 9.0]);
    // the running statistics are buffers: updating them does not break a later backward
    let xg = t(vec![1.0, 2.0, 2.0, 4.0, 3.0, 6.0, 4.0, 8.0], &[4, 2]);
    xg.set_requires_grad(true).unwrap();
    let y = ops::batch_norm(&xg, None, None, Some(&rm), Some(&rv), true, 0.1, 1e-5, true).unwrap();
    backward(&ops::sum(&ops::mul(&y, &y).unwrap(), &[], false).unwrap(), None, false).unwrap();
    assert!(xg.grad().is_some());
}

/// Channels-last batch norm in f64: (output, dx, dgamma, dbeta) for upstream gradient `g`.
#[allow(clippy::type_complexity)]
fn batch_norm_ref(x: &[f32], g: &[f32], gamma: &[f32], beta: &[f32], c: usize, eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = x.len() / c;
    let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
    for (i, &v) in x.iter().enumerate() {
        mean[i % c] += v as f64 / m as f64;
    }
    for (i, &v) in x.iter().enumerate() {
        var[i % c] += (v as f64 - mean[i % c]).powi(2) / m as f64;
    }
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let xhat: Vec<f64> = x.iter().enumerate().map(|(i, &v)| (v as f64 - mean[i % c]) * invstd[i % c]).collect();
    let y = xhat.iter().enumerate().map(|(i, h)| h * gamma[i % c] as f64 + beta[i % c] as f64).collect();
    let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
    for i in 0..x.len() {
        db[i % c] += g[i] as f64;
        dg[i % c] += g[i] as f64 * xhat[i];
    }
    let dx = (0..x.len()).map(|i| {
        let ch = i % c;
        gamma[ch] as f64 * invstd[ch] * (g[i] as f64 - db[ch] / m as f64 - xhat[i] * dg[ch] / m as f64)
    }).collect();
    (y, dx, dg, db)
}

#[test]
fn batch_norm_matches_f64_reference_on_large_inputs() {
    // 600 channels (two column blocks), 70 rows (several row chunks); then 3 channels, many rows.
    for (shape, seed) in [(vec![70usize, 600], 40u64), (vec![4, 30, 50, 3], 41), (vec![9, 5, 5, 13], 42)] {
        let c = *shape.last().unwrap();
        let n: usize = shape.iter().product();
        let xv: Vec<f32> = rand_vec(n, seed, -2.0, 3.0);
        let gv = rand_vec(n, seed + 1, -1.0, 1.0);
        let gamma_v = rand_vec(c, seed + 2, 0.5, 1.5);
        let beta_v = rand_vec(c, seed + 3, -1.0, 1.0);
        let x = t(xv.clone(), &shape);
        let gamma = t(gamma_v.clone(), &[c]);
        let beta = t(beta_v.clone(), &[c]);
        for p in [&x, &gamma, &beta] {
            p.set_requires_grad(true).unwrap();
        }
        let y = bn_train(&x, Some(&gamma), Some(&beta)).unwrap();
        backward(&y, Some(t(gv.clone(), &shape)), false).unwrap();
        let (ry, rdx, rdg, rdb) = batch_norm_ref(&xv, &gv, &gamma_v, &beta_v, c, 1e-5);
        assert_close("bn y", &vals(&y), &ry, 1e-5, 1e-5);
        assert_close("bn dx", &vals(&x.grad().unwrap()), &rdx, 1e-4, 1e-4);
        assert_close("bn dgamma", &vals(&gamma.grad().unwrap()), &rdg, 1e-4, 1e-3);
        assert_close("bn dbeta", &vals(&beta.grad().unwrap()), &rdb, 1e-4, 1e-3);
    }
}

// ---------------------------------------------------------------- layer norm

#[test]
fn layer_norm_gradients() {
    gradcheck("layer_norm 1 dim affine", vec![(v(20, 50), vec![4, 5]), (rand_vec(5, 51, 0.5, 1.5), vec![5]), (v(5, 52), vec![5])],
        |x| ops::layer_norm(&x[0], Some(&x[1]), Some(&x[2]), 1, 1e-5));
    gradcheck("layer_norm 1 dim plain", vec![(v(21, 53), vec![3, 7])], |x| ops::layer_norm(&x[0], None, None, 1, 1e-5));
    gradcheck("layer_norm 1 dim, 37 wide", vec![(v(74, 54), vec![2, 37]), (rand_vec(37, 55, 0.5, 1.5), vec![37])],
        |x| ops::layer_norm(&x[0], Some(&x[1]), None, 1, 1e-5));
    gradcheck("layer_norm 2 dims affine", vec![(v(24, 56), vec![2, 3, 4]), (rand_vec(12, 57, 0.5, 1.5), vec![3, 4]), (v(12, 58), vec![3, 4])],
        |x| ops::layer_norm(&x[0], Some(&x[1]), Some(&x[2]), 2, 1e-5));
    gradcheck("layer_norm 2 dims beta only", vec![(v(30, 59), vec![3, 2, 5]), (v(10, 60), vec![2, 5])],
        |x| ops::layer_norm(&x[0], None, Some(&x[1]), 2, 1e-5));
    gradcheck("layer_norm all dims", vec![(v(12, 61), vec![3, 4])], |x| ops::layer_norm(&x[0], None, None, 2, 1e-5));
}

#[test]
fn layer_norm_values() {
    let x = t(vec![1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0], &[2, 4]);
    let gamma = t(vec![1.0, 2.0, 3.0, 4.0], &[4]);
    let beta = t(vec![0.5, 0.0, 0.0, -0.5], &[4]);
    let y = vals(&ops::layer_norm(&x, Some(&gamma), Some(&beta), 1, 1e-5).unwrap());
    let s = (1.25f64 + 1e-5).sqrt();
    let want = [-1.5 / s + 0.5, -0.5 / s * 2.0, 0.5 / s * 3.0, 1.5 / s * 4.0 - 0.5, 0.5, 0.0, 0.0, -0.5];
    assert_close("layer_norm", &y, &want, 1e-6, 1e-6);

    // larger rows against f64 (body of 16 lanes + tail), with gradients
    let (rows, d) = (33usize, 75usize);
    let xv = rand_vec(rows * d, 62, -2.0, 4.0);
    let gv = rand_vec(rows * d, 63, -1.0, 1.0);
    let gam = rand_vec(d, 64, 0.5, 1.5);
    let x = t(xv.clone(), &[rows, 3, 25]);
    let gamma = t(gam.clone(), &[3, 25]);
    x.set_requires_grad(true).unwrap();
    gamma.set_requires_grad(true).unwrap();
    let y = ops::layer_norm(&x, Some(&gamma), None, 2, 1e-5).unwrap();
    backward(&y, Some(t(gv.clone(), &[rows, 3, 25])), false).unwrap();
    let (mut ry, mut rdx, mut rdg) = (vec![0.0; rows * d], vec![0.0; rows * d], vec![0.0; d]);
    for r in 0..rows {
        let row = &xv[r * d..(r + 1) * d];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let is = 1.0 / (var + 1e-5).sqrt();
        let xhat: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * is).collect();
        let dy: Vec<f64> = (0..d).map(|j| gv[r * d + j] as f64 * gam[j] as f64).collect();
        let (s1, s2) = (dy.iter().sum::<f64>() / d as f64, dy.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d as f64);
        for j in 0..d {
            ry[r * d + j] = xhat[j] * gam[j] as f64;
            rdx[r * d + j] = is * (dy[j] - s1 - xhat[j] * s2);
            rdg[j] += gv[r * d + j] as f64 * xhat[j];
        }
    }
    assert_close("ln y", &vals(&y), &ry, 1e-5, 1e-5);
    assert_close("ln dx", &vals(&x.grad().unwrap()), &rdx, 1e-4, 1e-4);
    assert_close("ln dgamma", &vals(&gamma.grad().unwrap()), &rdg, 1e-4, 1e-4);
}

// ---------------------------------------------------------------- optimizers

/// Parameters, gradients per step, and the f32 tensors of one optimizer run.
struct Case {
    p0: Vec<f32>,
    grads: Vec<Vec<f32>>,
}

fn case(n: usize, steps: usize, seed: u64) -> Case {
    Case { p0: rand_vec(n, seed, -1.0, 1.0), grads: (0..steps).map(|s| rand_vec(n, seed + 1 + s as u64, -1.0, 1.0)).collect() }
}

/// A float32 hyper-parameter as the kernels see it, widened for the f64 references.
fn f(x: f32) -> f64 {
    x as f64
}

fn zeros(n: usize) -> Tensor {
    Tensor::zeros(&[n], DType::F32).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn sgd_ref(p: &mut [f64], buf: &mut [f64], g: &[f32], lr: f64, mom: f64, damp: f64, wd: f64, nesterov: bool, first: bool) {
    for i in 0..p.len() {
        let mut d = g[i] as f64 + wd * p[i];
        if mom != 0.0 {
            buf[i] = if first { d } else { mom * buf[i] + (1.0 - damp) * d };
            d = if nesterov { d + mom * buf[i] } else { buf[i] };
        }
        p[i] -= lr * d;
    }
}

#[test]
fn sgd_matches_reference() {
    let n = 37;
    for (mom, damp, wd, nesterov) in [(0.0, 0.0, 0.0, false), (0.0, 0.0, 0.01, false), (0.9, 0.0, 0.0, false),
        (0.9, 0.1, 0.001, false), (0.8, 0.0, 0.01, true)] {
        let c = case(n, 5, 70);
        let p = t(c.p0.clone(), &[n]);
        let buf = zeros(n);
        let (mut rp, mut rb): (Vec<f64>, Vec<f64>) = (c.p0.iter().map(|&x| x as f64).collect(), vec![0.0; n]);
        for (s, g) in c.grads.iter().enumerate() {
            let b = if mom != 0.0 { Some(&buf) } else { None };
            optim::sgd_step(&p, &t(g.clone(), &[n]), b, 0.05, mom, damp, wd, nesterov, s == 0).unwrap();
            sgd_ref(&mut rp, &mut rb, g, f(0.05), f(mom), f(damp), f(wd), nesterov, s == 0);
            if s == 0 {
                assert_close("sgd one step", &vals(&p), &rp, 3e-7, 1e-8);
            }
        }
        assert_close(&format!("sgd momentum={mom} dampening={damp} wd={wd} nesterov={nesterov}"), &vals(&p), &rp, 2e-6, 1e-8);
        if mom != 0.0 {
            assert_close("sgd buffer", &vals(&buf), &rb, 1e-5, 1e-6);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn adam_ref(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f32], lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, decoupled: bool, step: i32) {
    for i in 0..p.len() {
        let mut g = g[i] as f64;
        if decoupled {
            p[i] *= 1.0 - lr * wd;
        } else {
            g += wd * p[i];
        }
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let mh = m[i] / (1.0 - b1.powi(step));
        let vh = v[i] / (1.0 - b2.powi(step));
        p[i] -= lr * mh / (vh.sqrt() + eps);
    }
}

#[test]
fn adam_matches_reference() {
    let n = 37;
    for (wd, decoupled) in [(0.0, false), (0.01, false), (0.01, true), (0.0, true)] {
        let c = case(n, 6, 80);
        let (p, m, v) = (t(c.p0.clone(), &[n]), zeros(n), zeros(n));
        let mut rp: Vec<f64> = c.p0.iter().map(|&x| x as f64).collect();
        let (mut rm, mut rv) = (vec![0.0; n], vec![0.0; n]);
        for (s, g) in c.grads.iter().enumerate() {
            let step = s as u32 + 1;
            optim::adam_step(&p, &t(g.clone(), &[n]), &m, &v, 1e-2, 0.9, 0.999, 1e-8, wd, decoupled, step).unwrap();
            adam_ref(&mut rp, &mut rm, &mut rv, g, f(1e-2), f(0.9), f(0.999), f(1e-8), f(wd), decoupled, step as i32);
            if s == 0 {
                // the first step moves every parameter by about lr * sign(g)
                assert_close("adam one step", &vals(&p), &rp, 3e-7, 1e-8);
            }
        }
        let name = format!("adam wd={wd} decoupled={decoupled}");
        assert_close(&name, &vals(&p), &rp, 2e-6, 1e-8);
        assert_close(&format!("{name} m"), &vals(&m), &rm, 1e-5, 1e-7);
        assert_close(&format!("{name} v"), &vals(&v), &rv, 1e-5, 1e-9);
    }
    // a late step: the bias corrections are close to 1 and computed in f64
    let n = 8;
    let c = case(n, 1, 85);
    let (p, m, v) = (t(c.p0.clone(), &[n]), t(vec![0.1; n], &[n]), t(vec![0.01; n], &[n]));
    let mut rp: Vec<f64> = c.p0.iter().map(|&x| x as f64).collect();
    let (mut rm, mut rv) = (vec![0.1f32 as f64; n], vec![0.01f32 as f64; n]);
    optim::adam_step(&p, &t(c.grads[0].clone(), &[n]), &m, &v, 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 100_000).unwrap();
    adam_ref(&mut rp, &mut rm, &mut rv, &c.grads[0], f(1e-3), f(0.9), f(0.999), f(1e-8), 0.0, false, 100_000);
    assert_close("adam step 100000", &vals(&p), &rp, 1e-6, 1e-7);
}

#[allow(clippy::too_many_arguments)]
fn rmsprop_ref(p: &mut [f64], sq: &mut [f64], buf: &mut [f64], ga: &mut [f64], g: &[f32], lr: f64, alpha: f64, eps: f64, wd: f64, mom: f64, centered: bool) {
    for i in 0..p.len() {
        let g = g[i] as f64 + wd * p[i];
        sq[i] = alpha * sq[i] + (1.0 - alpha) * g * g;
        let avg = if centered {
            ga[i] = alpha * ga[i] + (1.0 - alpha) * g;
            (sq[i] - ga[i] * ga[i]).sqrt() + eps
        } else {
            sq[i].sqrt() + eps
        };
        if mom > 0.0 {
            buf[i] = mom * buf[i] + g / avg;
            p[i] -= lr * buf[i];
        } else {
            p[i] -= lr * g / avg;
        }
    }
}

#[test]
fn rmsprop_matches_reference() {
    let n = 37;
    for (mom, centered, wd) in [(0.0, false, 0.0), (0.9, false, 0.0), (0.0, true, 0.01), (0.5, true, 0.001)] {
        let c = case(n, 5, 90);
        let (p, sq, buf, ga) = (t(c.p0.clone(), &[n]), zeros(n), zeros(n), zeros(n));
        let mut rp: Vec<f64> = c.p0.iter().map(|&x| x as f64).collect();
        let (mut rsq, mut rb, mut rga) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for (s, g) in c.grads.iter().enumerate() {
            let b = if mom > 0.0 { Some(&buf) } else { None };
            let a = if centered { Some(&ga) } else { None };
            optim::rmsprop_step(&p, &t(g.clone(), &[n]), &sq, b, a, 1e-3, 0.99, 1e-8, wd, mom, centered).unwrap();
            rmsprop_ref(&mut rp, &mut rsq, &mut rb, &mut rga, g, f(1e-3), f(0.99), f(1e-8), f(wd), f(mom), centered);
            if s == 0 {
                assert_close("rmsprop one step", &vals(&p), &rp, 3e-7, 1e-8);
            }
        }
        let name = format!("rmsprop momentum={mom} centered={centered} wd={wd}");
        assert_close(&name, &vals(&p), &rp, 2e-6, 1e-8);
        assert_close(&format!("{name} square_avg"), &vals(&sq), &rsq, 1e-5, 1e-9);
        if mom > 0.0 {
            assert_close(&format!("{name} buffer"), &vals(&buf), &rb, 1e-4, 1e-4);
        }
        if centered {
            assert_close(&format!("{name} grad_avg"), &vals(&ga), &rga, 1e-5, 1e-8);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn adagrad_ref(p: &mut [f64], sum: &mut [f64], g: &[f32], lr: f64, lr_decay: f64, wd: f64, eps: f64, step: u32) {
    let clr = lr / (1.0 + (step as f64 - 1.0) * lr_decay);
    for i in 0..p.len() {
        let g = g[i] as f64 + wd * p[i];
        sum[i] += g * g;
        p[i] -= clr * g / (sum[i].sqrt() + eps);
    }
}

#[test]
fn adagrad_matches_reference() {
    let n = 37;
    for (lr_decay, wd, init) in [(0.0, 0.0, 0.0), (0.01, 0.0, 0.1), (0.1, 0.05, 0.0)] {
        let c = case(n, 5, 100);
        let p = t(c.p0.clone(), &[n]);
        let sum = t(vec![init; n], &[n]);
        let mut rp: Vec<f64> = c.p0.iter().map(|&x| x as f64).collect();
        let mut rs = vec![init as f64; n];
        for (s, g) in c.grads.iter().enumerate() {
            let step = s as u32 + 1;
            optim::adagrad_step(&p, &t(g.clone(), &[n]), &sum, 0.1, lr_decay, wd, 1e-10, step).unwrap();
            adagrad_ref(&mut rp, &mut rs, g, f(0.1), f(lr_decay), f(wd), f(1e-10), step);
            if s == 0 {
                assert_close("adagrad one step", &vals(&p), &rp, 3e-7, 1e-8);
            }
        }
        let name = format!("adagrad lr_decay={lr_decay} wd={wd}");
        assert_close(&name, &vals(&p), &rp, 2e-6, 1e-8);
        assert_close(&format!("{name} sum"), &vals(&sum), &rs, 1e-5, 1e-7);
    }
}

#[test]
fn clipping_helpers() {
    let a = t(vec![3.0, 4.0], &[2]);
    let b = t(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]);
    let n = optim::global_grad_norm(&[a.clone(), b.clone()]).unwrap();
    assert!((n as f64 - 50f64.sqrt()).abs() < 1e-6, "{n}");
    // a non-contiguous view counts the same elements
    let bt = ops::transpose(&b, 0, 1).unwrap();
    assert_eq!(optim::global_grad_norm(&[a.clone(), bt]).unwrap(), n);
    assert_eq!(optim::global_grad_norm(&[]).unwrap(), 0.0);
    // squares are summed in f64: no overflow for large float32 gradients
    let big = t(vec![3e20, 4e20], &[2]);
    assert!((optim::global_grad_norm(&[big]).unwrap() / 5e20 - 1.0).abs() < 1e-6);
    assert!(optim::global_grad_norm(&[t(vec![1.0, f32::NAN], &[2])]).unwrap().is_nan());
    assert_eq!(optim::global_grad_norm(&[t(vec![1.0, f32::INFINITY], &[2])]).unwrap(), f32::INFINITY);

    let s = 2.0 / n;
    optim::scale_(&a, s).unwrap();
    assert_eq!(vals(&a), vec![3.0 * s, 4.0 * s]);
    let c = t(vec![-3.0, -0.5, 0.25, 7.0, f32::NAN], &[5]);
    optim::clamp_(&c, -1.0, 1.0).unwrap();
    let cv = vals(&c);
    assert_eq!(&cv[..4], &[-1.0, -0.5, 0.25, 1.0]);
    assert!(cv[4].is_nan());
    optim::clamp_(&c, f32::NEG_INFINITY, 0.5).unwrap();
    assert_eq!(&vals(&c)[..4], &[-1.0, -0.5, 0.25, 0.5]);
}

#[test]
fn updates_bump_the_version_of_saved_tensors() {
    // mul saves its inputs: after an in-place step on p the old graph refuses to run backward
    let p = t(vec![1.0, 2.0], &[2]);
    p.set_requires_grad(true).unwrap();
    let y = ops::sum(&ops::mul(&p, &p).unwrap(), &[], false).unwrap();
    optim::sgd_step(&p, &t(vec![1.0, 1.0], &[2]), None, 0.1, 0.0, 0.0, 0.0, false, true).unwrap();
    assert_eq!(kind(backward(&y, None, false)), ErrorKind::Autograd);
    let y = ops::sum(&ops::gelu(&p, false).unwrap(), &[], false).unwrap();
    optim::scale_(&p, 0.5).unwrap();
    assert_eq!(kind(backward(&y, None, false)), ErrorKind::Autograd);
}

// ---------------------------------------------------------------- errors

#[test]
fn activation_and_norm_errors_are_typed() {
    let i = Tensor::zeros(&[4], DType::I32).unwrap();
    let x = Tensor::zeros(&[4, 3], DType::F32).unwrap();
    for code in 0..7 {
        assert_eq!(kind(ops::activation(Activation::from_code(code).unwrap(), &i, 0.1)), ErrorKind::DType);
    }
    assert_eq!(kind(ops::leaky_relu(&x, f32::NAN)), ErrorKind::Argument);
    assert_eq!(kind(ops::elu(&x, f32::INFINITY)), ErrorKind::Argument);

    let c3 = Tensor::ones(&[3], DType::F32).unwrap();
    let c4 = Tensor::ones(&[4], DType::F32).unwrap();
    let bn = |x: &Tensor, g: Option<&Tensor>, rm: Option<&Tensor>, rv: Option<&Tensor>, training: bool, mom: f32, eps: f32| {
        ops::batch_norm(x, g, None, rm, rv, training, mom, eps, true)
    };
    assert_eq!(kind(bn(&Tensor::zeros(&[4], DType::F32).unwrap(), None, None, None, true, 0.1, 1e-5)), ErrorKind::Shape);
    assert_eq!(kind(bn(&i, None, None, None, true, 0.1, 1e-5)), ErrorKind::DType);
    let msg = message(bn(&x, Some(&c4), None, None, true, 0.1, 1e-5));
    assert!(msg.contains("gamma") && msg.contains("[4]") && msg.contains("[4, 3]") && msg.contains("[3]"), "{msg}");
    assert_eq!(kind(bn(&x, Some(&c4), None, None, true, 0.1, 1e-5)), ErrorKind::Shape);
    assert_eq!(kind(bn(&x, Some(&Tensor::ones(&[3], DType::I32).unwrap()), None, None, true, 0.1, 1e-5)), ErrorKind::DType);
    assert_eq!(kind(bn(&x, None, Some(&c3), None, true, 0.1, 1e-5)), ErrorKind::Argument);
    assert_eq!(kind(bn(&x, None, None, None, false, 0.1, 1e-5)), ErrorKind::Argument);
    assert!(message(bn(&x, None, None, None, false, 0.1, 1e-5)).contains("eval"));
    assert_eq!(kind(bn(&x, None, Some(&c3), Some(&c4), true, 0.1, 1e-5)), ErrorKind::Shape);
    assert_eq!(kind(bn(&x, None, None, None, true, 1.5, 1e-5)), ErrorKind::Argument);
    assert_eq!(kind(bn(&x, None, None, None, true, f32::NAN, 1e-5)), ErrorKind::Argument);
    assert_eq!(kind(bn(&x, None, None, None, true, 0.1, -1.0)), ErrorKind::Argument);
    // one value per channel: fine without running statistics, not for an unbiased running variance
    let one_row = Tensor::ones(&[1, 3], DType::F32).unwrap();
    assert!(bn(&one_row, None, None, None, true, 0.1, 1e-5).is_ok());
    let (rm, rv) = (Tensor::zeros(&[3], DType::F32).unwrap(), Tensor::ones(&[3], DType::F32).unwrap());
    assert_eq!(kind(bn(&one_row, None, Some(&rm), Some(&rv), true, 0.1, 1e-5)), ErrorKind::Shape);
    assert!(ops::batch_norm(&one_row, None, None, Some(&rm), Some(&rv), true, 0.1, 1e-5, false).is_ok());
    // a non-contiguous running statistic cannot be updated in place
    let rm6 = Tensor::zeros(&[6], DType::F32).unwrap();
    let strided = ops::slice(&rm6, &[0], &[6], &[2]).unwrap();
    assert_eq!(kind(bn(&x, None, Some(&strided), Some(&rv), true, 0.1, 1e-5)), ErrorKind::Argument);

    let ln = |x: &Tensor, g: Option<&Tensor>, d: usize, eps: f32| ops::layer_norm(x, g, None, d, eps);
    assert_eq!(kind(ln(&x, None, 0, 1e-5)), ErrorKind::Shape);
    assert_eq!(kind(ln(&x, None, 3, 1e-5)), ErrorKind::Shape);
    assert_eq!(kind(ln(&i, None, 1, 1e-5)), ErrorKind::DType);
    assert_eq!(kind(ln(&x, Some(&c4), 1, 1e-5)), ErrorKind::Shape);
    assert!(message(ln(&x, Some(&c4), 1, 1e-5)).contains("[4]"));
    assert_eq!(kind(ln(&x, Some(&c3), 2, 1e-5)), ErrorKind::Shape);
    assert_eq!(kind(ln(&x, None, 1, f32::NAN)), ErrorKind::Argument);
    assert!(ln(&x, Some(&Tensor::ones(&[4, 3], DType::F32).unwrap()), 2, 1e-5).is_ok());
}

#[test]
fn optimizer_errors_are_typed() {
    let p = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    let g = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    let s1 = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    let s2 = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    let wrong = Tensor::zeros(&[3, 2], DType::F32).unwrap();
    let int = Tensor::zeros(&[2, 3], DType::I32).unwrap();

    // shapes and dtypes, named in the message
    let msg = message(optim::sgd_step(&p, &wrong, None, 0.1, 0.0, 0.0, 0.0, false, true));
    assert!(msg.contains("grad") && msg.contains("[3, 2]") && msg.contains("[2, 3]"), "{msg}");
    assert_eq!(kind(optim::sgd_step(&p, &wrong, None, 0.1, 0.0, 0.0, 0.0, false, true)), ErrorKind::Shape);
    assert_eq!(kind(optim::sgd_step(&int, &g, None, 0.1, 0.0, 0.0, 0.0, false, true)), ErrorKind::DType);
    assert_eq!(kind(optim::sgd_step(&p, &int, None, 0.1, 0.0, 0.0, 0.0, false, true)), ErrorKind::DType);
    assert_eq!(kind(optim::adam_step(&p, &g, &wrong, &s2, 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1)), ErrorKind::Shape);
    assert!(message(optim::adam_step(&p, &g, &s1, &wrong, 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1)).contains("exp_avg_sq"));
    assert_eq!(kind(optim::adam_step(&p, &g, &s1, &int, 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1)), ErrorKind::DType);
    assert_eq!(kind(optim::rmsprop_step(&p, &g, &s1, Some(&wrong), None, 1e-3, 0.99, 1e-8, 0.0, 0.9, false)), ErrorKind::Shape);
    assert_eq!(kind(optim::rmsprop_step(&p, &g, &s1, None, Some(&int), 1e-3, 0.99, 1e-8, 0.0, 0.0, true)), ErrorKind::DType);
    assert_eq!(kind(optim::adagrad_step(&p, &g, &wrong, 0.1, 0.0, 0.0, 1e-10, 1)), ErrorKind::Shape);
    // non-contiguous tensors cannot be updated in place
    let pt = ops::transpose(&wrong, 0, 1).unwrap();
    assert_eq!(kind(optim::sgd_step(&pt, &g, None, 0.1, 0.0, 0.0, 0.0, false, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::adam_step(&p, &g, &pt, &s2, 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1)), ErrorKind::Argument);

    // hyper-parameters
    assert_eq!(kind(optim::sgd_step(&p, &g, None, -0.1, 0.0, 0.0, 0.0, false, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::sgd_step(&p, &g, None, f32::NAN, 0.0, 0.0, 0.0, false, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::sgd_step(&p, &g, None, 0.1, 0.9, 0.0, 0.0, false, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::sgd_step(&p, &g, Some(&s1), 0.1, 0.9, 0.1, 0.0, true, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::sgd_step(&p, &g, None, 0.1, 0.0, 0.0, 0.0, true, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::sgd_step(&p, &g, None, 0.1, 0.0, 0.0, -1.0, false, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::adam_step(&p, &g, &s1, &s2, 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 0)), ErrorKind::Argument);
    assert_eq!(kind(optim::adam_step(&p, &g, &s1, &s2, 1e-3, 1.0, 0.999, 1e-8, 0.0, false, 1)), ErrorKind::Argument);
    assert_eq!(kind(optim::adam_step(&p, &g, &s1, &s2, 1e-3, 0.9, -0.1, 1e-8, 0.0, false, 1)), ErrorKind::Argument);
    assert_eq!(kind(optim::adam_step(&p, &g, &s1, &s2, 1e-3, 0.9, 0.999, -1e-8, 0.0, false, 1)), ErrorKind::Argument);
    assert_eq!(kind(optim::adam_step(&p, &g, &s1, &s2, 1e-3, 0.9, 0.999, 1e-8, f32::INFINITY, true, 1)), ErrorKind::Argument);
    assert_eq!(kind(optim::rmsprop_step(&p, &g, &s1, None, None, 1e-3, 0.99, 1e-8, 0.0, 0.9, false)), ErrorKind::Argument);
    assert_eq!(kind(optim::rmsprop_step(&p, &g, &s1, None, None, 1e-3, 0.99, 1e-8, 0.0, 0.0, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::rmsprop_step(&p, &g, &s1, None, None, 1e-3, -0.5, 1e-8, 0.0, 0.0, false)), ErrorKind::Argument);
    assert_eq!(kind(optim::adagrad_step(&p, &g, &s1, 0.1, -0.1, 0.0, 1e-10, 1)), ErrorKind::Argument);
    assert_eq!(kind(optim::adagrad_step(&p, &g, &s1, 0.1, 0.0, 0.0, 1e-10, 0)), ErrorKind::Argument);

    // aliasing: a state may not share storage with the parameter, the gradient or another state
    assert_eq!(kind(optim::sgd_step(&p, &p, None, 0.1, 0.0, 0.0, 0.0, false, true)), ErrorKind::Argument);
    assert_eq!(kind(optim::adam_step(&p, &g, &s1, &s1, 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1)), ErrorKind::Argument);
    assert!(message(optim::adam_step(&p, &g, &s1, &s1.detach(), 1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1)).contains("share storage"));

    // clipping helpers
    assert_eq!(kind(optim::global_grad_norm(&[g.clone(), int.clone()])), ErrorKind::DType);
    assert_eq!(kind(optim::clamp_(&p, 1.0, -1.0)), ErrorKind::Argument);
    assert_eq!(kind(optim::clamp_(&p, f32::NAN, 1.0)), ErrorKind::Argument);
    assert_eq!(kind(optim::scale_(&int, 2.0)), ErrorKind::DType);
    assert_eq!(kind(optim::scale_(&pt, 2.0)), ErrorKind::Argument);

    // nothing was modified by the failed calls
    for s in [&p, &g, &s1, &s2] {
        assert!(vals(s).iter().all(|&x| x == 0.0));
    }
}

// ---------------------------------------------------------------- determinism

/// Runs `f` with 1 and then 4 threads and checks the results are bitwise identical.
fn same_bits_1_vs_4(name: &str, f: impl Fn() -> Vec<Vec<u32>>) {
    parallel::set_num_threads(1);
    let one = f();
    parallel::set_num_threads(4);
    let four = f();
    parallel::set_num_threads(1);
    assert_eq!(one.len(), four.len());
    for (i, (a, b)) in one.iter().zip(&four).enumerate() {
        assert!(a == b, "{name}: result {i} differs between 1 and 4 threads");
    }
}

/// Forward output and input gradients of `f` for a fixed upstream gradient.
fn fwd_bwd(inputs: &[(Vec<f32>, Vec<usize>)], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) -> Vec<Vec<u32>> {
    let xs: Vec<Tensor> = inputs.iter().map(|(v, s)| {
        let x = t(v.clone(), s);
        x.set_requires_grad(true).unwrap();
        x
    }).collect();
    let y = f(&xs).unwrap();
    let g = t(rand_vec(y.numel(), 7, -1.0, 1.0), y.shape());
    backward(&y, Some(g), false).unwrap();
    let mut out = vec![bits(&y)];
    out.extend(xs.iter().map(|x| bits(&x.grad().unwrap())));
    out
}

/// One optimizer step: (param, grad, states, step number from 1).
type StepFn<'a> = &'a dyn Fn(&Tensor, &Tensor, &[Tensor], u32);

#[test]
fn bitwise_identical_across_thread_counts() {
    let n = 70_001; // several elementwise chunks of 16384, and a ragged tail
    for code in 0..7u8 {
        let kind = Activation::from_code(code).unwrap();
        let lo = if kind == Activation::Log1p { -0.9 } else { -6.0 };
        same_bits_1_vs_4(kind.name(), || fwd_bwd(&[(rand_vec(n, 200, lo, 6.0), vec![n])], &|x| ops::activation(kind, &x[0], 0.3)));
    }

    // batch norm: many rows / few channels, wide channels (two column blocks), 4-D; training with
    // running statistics, and eval
    for shape in [vec![23_335usize, 3], vec![60, 1000], vec![8, 30, 30, 13]] {
        let c = *shape.last().unwrap();
        let numel: usize = shape.iter().product();
        let inputs = vec![(rand_vec(numel, 201, -2.0, 3.0), shape.clone()), (rand_vec(c, 202, 0.5, 1.5), vec![c]), (rand_vec(c, 203, -1.0, 1.0), vec![c])];
        same_bits_1_vs_4("batch_norm train", || {
            let (rm, rv) = (Tensor::zeros(&[c], DType::F32).unwrap(), Tensor::ones(&[c], DType::F32).unwrap());
            let mut r = fwd_bwd(&inputs, &|x| ops::batch_norm(&x[0], Some(&x[1]), Some(&x[2]), Some(&rm), Some(&rv), true, 0.1, 1e-5, true));
            r.push(bits(&rm));
            r.push(bits(&rv));
            r
        });
        same_bits_1_vs_4("batch_norm eval", || {
            let (rm, rv) = (t(rand_vec(c, 204, -1.0, 1.0), &[c]), t(rand_vec(c, 205, 0.5, 2.0), &[c]));
            fwd_bwd(&inputs, &|x| ops::batch_norm(&x[0], Some(&x[1]), Some(&x[2]), Some(&rm), Some(&rv), false, 0.1, 1e-5, true))
        });
    }

    // layer norm: narrow rows, wide rows
    for (shape, dims) in [(vec![7000usize, 10], 1usize), (vec![30, 40, 77], 2)] {
        let numel: usize = shape.iter().product();
        let nshape = shape[shape.len() - dims..].to_vec();
        let d: usize = nshape.iter().product();
        let inputs = vec![(rand_vec(numel, 206, -2.0, 3.0), shape.clone()), (rand_vec(d, 207, 0.5, 1.5), nshape.clone()), (rand_vec(d, 208, -1.0, 1.0), nshape)];
        same_bits_1_vs_4("layer_norm", || fwd_bwd(&inputs, &|x| ops::layer_norm(&x[0], Some(&x[1]), Some(&x[2]), dims, 1e-5)));
    }

    // optimizers: three steps each, every state compared
    let grads: Vec<Vec<f32>> = (0..3).map(|s| rand_vec(n, 210 + s, -1.0, 1.0)).collect();
    let p0 = rand_vec(n, 209, -1.0, 1.0);
    let run = |step: StepFn| -> Vec<Vec<u32>> {
        let p = t(p0.clone(), &[n]);
        let states: Vec<Tensor> = (0..3).map(|_| zeros(n)).collect();
        for (s, g) in grads.iter().enumerate() {
            step(&p, &t(g.clone(), &[n]), &states, s as u32 + 1);
        }
        let mut r = vec![bits(&p)];
        r.extend(states.iter().map(bits));
        r
    };
    same_bits_1_vs_4("sgd", || run(&|p, g, s, k| optim::sgd_step(p, g, Some(&s[0]), 0.1, 0.9, 0.0, 0.01, true, k == 1).unwrap()));
    same_bits_1_vs_4("adam", || run(&|p, g, s, k| optim::adam_step(p, g, &s[0], &s[1], 1e-3, 0.9, 0.999, 1e-8, 0.01, true, k).unwrap()));
    same_bits_1_vs_4("rmsprop", || run(&|p, g, s, _| optim::rmsprop_step(p, g, &s[0], Some(&s[1]), Some(&s[2]), 1e-3, 0.99, 1e-8, 0.01, 0.9, true).unwrap()));
    same_bits_1_vs_4("adagrad", || run(&|p, g, s, k| optim::adagrad_step(p, g, &s[0], 0.1, 0.01, 0.01, 1e-10, k).unwrap()));
    same_bits_1_vs_4("clipping", || {
        let ts: Vec<Tensor> = grads.iter().map(|g| t(g.clone(), &[n])).collect();
        let norm = optim::global_grad_norm(&ts).unwrap();
        optim::scale_(&ts[0], 1.0 / norm).unwrap();
        optim::clamp_(&ts[1], -0.5, 0.5).unwrap();
        vec![vec![norm.to_bits()], bits(&ts[0]), bits(&ts[1])]
    });
}

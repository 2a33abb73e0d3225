//! Helpers shared by the integration tests: seeded random inputs and the finite-difference
//! gradient check.
#![allow(dead_code)] // each test crate uses its own subset

use edgegrad_core::autograd::backward;
use edgegrad_core::ops;
use edgegrad_core::rng::Generator;
use edgegrad_core::{Result, Tensor};

pub fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    Generator::new(seed).uniform(n, lo, hi)
}

pub fn v(n: usize, seed: u64) -> Vec<f32> {
    rand_vec(n, seed, -1.0, 1.0)
}

/// Values in ±[lo, hi], away from 0 (keeps kinks of relu/abs/clamp out of the finite difference).
pub fn away_from_zero(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mag = rand_vec(n, seed, lo, hi);
    let sign = rand_vec(n, seed + 1000, 0.0, 1.0);
    mag.iter().zip(&sign).map(|(m, s)| if *s < 0.5 { -m } else { *m }).collect()
}

/// Checks d(sum(f(xs) * w))/dx against central differences for every element of every input.
pub fn gradcheck(name: &str, inputs: Vec<(Vec<f32>, Vec<usize>)>, f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let eps = 1e-3f32;
    let make = |vals: &[(Vec<f32>, Vec<usize>)], grad: bool| -> Vec<Tensor> {
        vals.iter().map(|(v, s)| {
            let t = Tensor::from_f32(v.clone(), s).unwrap();
            if grad { t.set_requires_grad(true).unwrap(); }
            t
        }).collect()
    };
    let xs = make(&inputs, true);
    let out = f(&xs).unwrap();
    let w = Tensor::from_f32(rand_vec(out.numel(), 99, -1.0, 1.0), out.shape()).unwrap();
    let loss = ops::sum(&ops::mul(&out, &w).unwrap(), &[], false).unwrap();
    backward(&loss, None, false).unwrap();
    let objective = |vals: &[(Vec<f32>, Vec<usize>)]| -> f64 {
        let ts = make(vals, false);
        let o = f(&ts).unwrap().to_vec_f32().unwrap();
        let wv = w.to_vec_f32().unwrap();
        o.iter().zip(&wv).map(|(a, b)| *a as f64 * *b as f64).sum()
    };
    for (ii, x) in xs.iter().enumerate() {
        let analytic = x.grad().unwrap_or_else(|| panic!("{name}: input {ii} got no gradient")).to_vec_f32().unwrap();
        for j in 0..inputs[ii].0.len() {
            let mut plus = inputs.clone();
            plus[ii].0[j] += eps;
            let mut minus = inputs.clone();
            minus[ii].0[j] -= eps;
            let numeric = (objective(&plus) - objective(&minus)) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            let tol = 2e-2 * numeric.abs().max(a.abs()) + 2e-3;
            assert!((a - numeric).abs() <= tol, "{name}: input {ii} element {j}: analytic {a}, numeric {numeric}");
        }
    }
}

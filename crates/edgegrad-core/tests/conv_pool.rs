//! conv2d / max_pool2d / avg_pool2d: finite-difference gradient checks, forward and backward
//! values against direct-loop references, typed errors, and bitwise determinism across thread
//! counts.

use edgegrad_core::autograd::backward;
use edgegrad_core::ops::{self, Conv2dOptions};
use edgegrad_core::parallel;
use edgegrad_core::rng::Generator;
use edgegrad_core::{DType, ErrorKind, Result, Tensor};

mod common;
use common::{gradcheck, v};

/// Distinct values spaced 0.05 apart in random order: no two elements of a pooling window are
/// within a finite-difference step of each other, so the max never switches under perturbation.
fn distinct(n: usize, seed: u64) -> Vec<f32> {
    Generator::new(seed).permutation(n).iter().map(|&i| i as f32 * 0.05 - n as f32 * 0.025).collect()
}

fn opts(stride: [usize; 2], padding: [usize; 4], dilation: [usize; 2], groups: usize) -> Conv2dOptions {
    Conv2dOptions { stride, padding, dilation, groups }
}

// ------------------------------------------------------------------ direct-loop references

struct Geo {
    n: usize, h: usize, w: usize, cin: usize, kh: usize, kw: usize, cig: usize, cout: usize,
    oh: usize, ow: usize, o: Conv2dOptions,
}

fn geo(xs: &[usize], ws: &[usize], o: &Conv2dOptions) -> Geo {
    let [sh, sw] = o.stride;
    let [dh, dw] = o.dilation;
    let [pt, pb, pl, pr] = o.padding;
    let oh = (xs[1] + pt + pb - dh * (ws[0] - 1) - 1) / sh + 1;
    let ow = (xs[2] + pl + pr - dw * (ws[1] - 1) - 1) / sw + 1;
    Geo { n: xs[0], h: xs[1], w: xs[2], cin: xs[3], kh: ws[0], kw: ws[1], cig: ws[2], cout: ws[3], oh, ow, o: *o }
}

impl Geo {
    /// Calls `f(out_index, x_index, w_index)` for every term of the convolution sum.
    fn for_each_term(&self, mut f: impl FnMut(usize, usize, usize)) {
        let cog = self.cout / self.o.groups;
        for n in 0..self.n {
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    for co in 0..self.cout {
                        let grp = co / cog;
                        let oi = ((n * self.oh + oy) * self.ow + ox) * self.cout + co;
                        for ky in 0..self.kh {
                            let iy = (oy * self.o.stride[0] + ky * self.o.dilation[0]) as isize - self.o.padding[0] as isize;
                            if iy < 0 || iy >= self.h as isize { continue; }
                            for kx in 0..self.kw {
                                let ix = (ox * self.o.stride[1] + kx * self.o.dilation[1]) as isize - self.o.padding[2] as isize;
                                if ix < 0 || ix >= self.w as isize { continue; }
                                for ci in 0..self.cig {
                                    let xi = ((n * self.h + iy as usize) * self.w + ix as usize) * self.cin + grp * self.cig + ci;
                                    let wi = ((ky * self.kw + kx) * self.cig + ci) * self.cout + co;
                                    f(oi, xi, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn naive_conv(x: &[f32], xs: &[usize], w: &[f32], ws: &[usize], b: Option<&[f32]>, o: &Conv2dOptions) -> (Vec<f64>, Vec<usize>) {
    let g = geo(xs, ws, o);
    let mut out = vec![0.0f64; g.n * g.oh * g.ow * g.cout];
    g.for_each_term(|oi, xi, wi| out[oi] += x[xi] as f64 * w[wi] as f64);
    if let Some(b) = b {
        for (i, o) in out.iter_mut().enumerate() {
            *o += b[i % g.cout] as f64;
        }
    }
    (out, vec![g.n, g.oh, g.ow, g.cout])
}

/// (dx, dw) of sum(conv(x, w) * dy).
fn naive_conv_grads(x: &[f32], xs: &[usize], w: &[f32], ws: &[usize], dy: &[f32], o: &Conv2dOptions) -> (Vec<f64>, Vec<f64>) {
    let g = geo(xs, ws, o);
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    g.for_each_term(|oi, xi, wi| {
        dx[xi] += dy[oi] as f64 * w[wi] as f64;
        dw[wi] += dy[oi] as f64 * x[xi] as f64;
    });
    (dx, dw)
}

fn assert_close(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!((a as f64 - b).abs() <= tol * (1.0 + b.abs()), "{name}: element {i}: got {a}, want {b}");
    }
}

fn t(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_f32(data, shape).unwrap()
}

// ------------------------------------------------------------------ conv2d gradients

#[test]
fn conv2d_gradients_plain_and_bias() {
    let o = Conv2dOptions::default();
    gradcheck("conv2d 3x3", vec![(v(2 * 5 * 6 * 3, 1), vec![2, 5, 6, 3]), (v(3 * 3 * 3 * 4, 2), vec![3, 3, 3, 4])],
        |x| ops::conv2d(&x[0], &x[1], None, &o));
    let o = opts([1, 1], [1, 1, 1, 1], [1, 1], 1);
    gradcheck("conv2d 3x3 same + bias", vec![
        (v(5 * 4 * 3, 3), vec![1, 5, 4, 3]), (v(3 * 3 * 3 * 5, 4), vec![3, 3, 3, 5]), (v(5, 5), vec![5]),
    ], |x| ops::conv2d(&x[0], &x[1], Some(&x[2]), &o));
    gradcheck("conv2d 2x3 kernel", vec![(v(2 * 4 * 5 * 2, 6), vec![2, 4, 5, 2]), (v(2 * 3 * 2 * 3, 7), vec![2, 3, 2, 3])],
        |x| ops::conv2d(&x[0], &x[1], None, &Conv2dOptions::default()));
}

#[test]
fn conv2d_gradients_stride_padding_dilation() {
    let o = opts([2, 2], [1, 1, 1, 1], [1, 1], 1);
    gradcheck("conv2d stride 2", vec![
        (v(2 * 7 * 6 * 3, 10), vec![2, 7, 6, 3]), (v(3 * 3 * 3 * 4, 11), vec![3, 3, 3, 4]), (v(4, 12), vec![4]),
    ], |x| ops::conv2d(&x[0], &x[1], Some(&x[2]), &o));
    let o = opts([1, 2], [2, 0, 0, 1], [1, 1], 1);
    gradcheck("conv2d asymmetric padding, stride [1, 2]", vec![(v(6 * 7 * 2, 13), vec![1, 6, 7, 2]), (v(3 * 2 * 2 * 3, 14), vec![3, 2, 2, 3])],
        |x| ops::conv2d(&x[0], &x[1], None, &o));
    let o = opts([1, 1], [1, 2, 2, 1], [2, 2], 1);
    gradcheck("conv2d dilation 2", vec![
        (v(2 * 6 * 6 * 2, 15), vec![2, 6, 6, 2]), (v(3 * 3 * 2 * 3, 16), vec![3, 3, 2, 3]), (v(3, 17), vec![3]),
    ], |x| ops::conv2d(&x[0], &x[1], Some(&x[2]), &o));
    let o = opts([3, 2], [0, 1, 1, 0], [2, 1], 1);
    gradcheck("conv2d stride 3x2, dilation [2, 1]", vec![(v(9 * 8 * 3, 18), vec![1, 9, 8, 3]), (v(2 * 3 * 3 * 2, 19), vec![2, 3, 3, 2])],
        |x| ops::conv2d(&x[0], &x[1], None, &o));
}

#[test]
fn conv2d_gradients_groups_and_depthwise() {
    let o = opts([1, 1], [1, 1, 1, 1], [1, 1], 2);
    gradcheck("conv2d groups 2", vec![
        (v(2 * 4 * 5 * 4, 20), vec![2, 4, 5, 4]), (v(3 * 3 * 2 * 6, 21), vec![3, 3, 2, 6]), (v(6, 22), vec![6]),
    ], |x| ops::conv2d(&x[0], &x[1], Some(&x[2]), &o));
    let o = opts([2, 1], [0, 1, 2, 0], [1, 2], 3);
    gradcheck("conv2d groups 3, stride, dilation", vec![(v(7 * 6 * 6, 23), vec![1, 7, 6, 6]), (v(2 * 2 * 2 * 3, 24), vec![2, 2, 2, 3])],
        |x| ops::conv2d(&x[0], &x[1], None, &o));
    let o = opts([1, 1], [1, 1, 1, 1], [1, 1], 5);
    gradcheck("depthwise", vec![
        (v(2 * 5 * 4 * 5, 25), vec![2, 5, 4, 5]), (v(3 * 3 * 5, 26), vec![3, 3, 1, 5]), (v(5, 27), vec![5]),
    ], |x| ops::conv2d(&x[0], &x[1], Some(&x[2]), &o));
    let o = opts([2, 2], [1, 0, 0, 1], [2, 1], 6);
    gradcheck("depthwise stride 2, dilation, asymmetric padding", vec![(v(7 * 6 * 6, 28), vec![1, 7, 6, 6]), (v(3 * 2 * 6, 29), vec![3, 2, 1, 6])],
        |x| ops::conv2d(&x[0], &x[1], None, &o));
    let o = opts([1, 1], [1, 1, 1, 1], [1, 1], 3);
    gradcheck("depthwise multiplier 2", vec![(v(4 * 4 * 3, 30), vec![1, 4, 4, 3]), (v(3 * 3 * 6, 31), vec![3, 3, 1, 6])],
        |x| ops::conv2d(&x[0], &x[1], None, &o));
}

#[test]
fn conv2d_gradients_pointwise() {
    gradcheck("1x1 + bias", vec![
        (v(2 * 3 * 4 * 5, 40), vec![2, 3, 4, 5]), (v(5 * 3, 41), vec![1, 1, 5, 3]), (v(3, 42), vec![3]),
    ], |x| ops::conv2d(&x[0], &x[1], Some(&x[2]), &Conv2dOptions::default()));
    let o = opts([2, 2], [0, 1, 0, 1], [1, 1], 1);
    gradcheck("1x1 stride 2 padded", vec![(v(5 * 5 * 2, 43), vec![1, 5, 5, 2]), (v(2 * 3, 44), vec![1, 1, 2, 3])],
        |x| ops::conv2d(&x[0], &x[1], None, &o));
}

// ------------------------------------------------------------------ conv2d values

#[test]
fn conv2d_forward_matches_direct_loops() {
    type Case = (&'static str, [usize; 4], [usize; 4], bool, Conv2dOptions);
    let cases: Vec<Case> = vec![
        ("3x3 valid", [2, 7, 9, 3], [3, 3, 3, 5], true, Conv2dOptions::default()),
        ("5x3 same-ish", [1, 11, 6, 4], [5, 3, 4, 7], true, opts([1, 1], [2, 2, 1, 1], [1, 1], 1)),
        ("stride 2 odd", [3, 9, 7, 5], [3, 3, 5, 6], false, opts([2, 2], [1, 1, 1, 1], [1, 1], 1)),
        ("stride [3,1] dil [1,3]", [2, 13, 10, 2], [2, 3, 2, 9], true, opts([3, 1], [0, 2, 3, 0], [1, 3], 1)),
        ("groups 3", [2, 6, 5, 9], [3, 2, 3, 12], true, opts([1, 2], [1, 1, 0, 1], [2, 1], 3)),
        ("groups 2 odd channels", [1, 8, 8, 6], [3, 3, 3, 10], false, opts([1, 1], [1, 1, 1, 1], [1, 1], 2)),
        ("depthwise 7 ch", [2, 9, 8, 7], [3, 3, 1, 7], true, opts([1, 1], [1, 1, 1, 1], [1, 1], 7)),
        ("depthwise stride 2", [1, 10, 11, 13], [5, 5, 1, 13], false, opts([2, 2], [2, 2, 2, 2], [1, 1], 13)),
        ("depthwise multiplier 3", [1, 6, 7, 4], [3, 3, 1, 12], true, opts([1, 1], [1, 1, 1, 1], [1, 1], 4)),
        ("pointwise", [2, 5, 7, 9], [1, 1, 9, 11], true, Conv2dOptions::default()),
        ("1x1 with bottom padding", [1, 4, 4, 3], [1, 1, 3, 2], true, opts([1, 1], [0, 2, 0, 1], [1, 1], 1)),
        ("single channel", [3, 8, 8, 1], [3, 3, 1, 1], true, opts([1, 1], [1, 1, 1, 1], [1, 1], 1)),
        ("Cin 1, many outputs", [2, 9, 9, 1], [3, 3, 1, 16], true, Conv2dOptions::default()),
        ("padding bigger than kernel", [1, 3, 3, 2], [2, 2, 2, 3], true, opts([1, 1], [3, 3, 3, 3], [1, 1], 1)),
    ];
    for (i, (name, xs, ws, with_bias, o)) in cases.iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let xv = v(xs.iter().product(), seed);
        let wv = v(ws.iter().product(), seed + 1);
        let bv = v(ws[3], seed + 2);
        let b = if *with_bias { Some(t(bv.clone(), &[ws[3]])) } else { None };
        let y = ops::conv2d(&t(xv.clone(), xs), &t(wv.clone(), ws), b.as_ref(), o).unwrap();
        let (want, shape) = naive_conv(&xv, xs, &wv, ws, if *with_bias { Some(&bv) } else { None }, o);
        assert_eq!(y.shape(), shape.as_slice(), "{name}: shape");
        assert_close(name, &y.to_vec_f32().unwrap(), &want, 1e-5 * (ws[0] * ws[1] * ws[2]) as f64);
    }
}

/// Shapes whose im2col spans several chunks (chunk boundaries inside an image), checked in full
/// against direct loops, forward and backward.
#[test]
fn conv2d_multi_chunk_forward_and_backward_match_direct_loops() {
    let cases = [
        ("groups 1, 2 chunks", [2usize, 31, 30, 64], [3usize, 3, 64, 8], opts([1, 1], [1, 1, 1, 1], [1, 1], 1)),
        ("groups 2, dilation 2", [1, 50, 43, 128], [3, 3, 64, 8], opts([1, 1], [2, 0, 1, 1], [2, 2], 2)),
        ("stride 2", [2, 61, 60, 64], [3, 3, 64, 4], opts([2, 2], [1, 1, 1, 1], [1, 1], 1)),
    ];
    for (i, (name, xs, ws, o)) in cases.iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let xv = v(xs.iter().product(), seed);
        let wv = v(ws.iter().product(), seed + 1);
        let bv = v(ws[3], seed + 2);
        let (x, w, b) = (t(xv.clone(), xs), t(wv.clone(), ws), t(bv.clone(), &[ws[3]]));
        for p in [&x, &w, &b] {
            p.set_requires_grad(true).unwrap();
        }
        let y = ops::conv2d(&x, &w, Some(&b), o).unwrap();
        let (want, shape) = naive_conv(&xv, xs, &wv, ws, Some(&bv), o);
        assert_eq!(y.shape(), shape.as_slice());
        let k = (ws[0] * ws[1] * ws[2]) as f64;
        assert_close(name, &y.to_vec_f32().unwrap(), &want, 1e-5 * k);
        let dyv = v(y.numel(), seed + 3);
        backward(&y, Some(t(dyv.clone(), y.shape())), false).unwrap();
        let (dx, dw) = naive_conv_grads(&xv, xs, &wv, ws, &dyv, o);
        assert_close(&format!("{name} dx"), &x.grad().unwrap().to_vec_f32().unwrap(), &dx, 1e-5 * (ws[0] * ws[1] * ws[3]) as f64);
        let pixels = (y.numel() / ws[3]) as f64;
        assert_close(&format!("{name} dw"), &w.grad().unwrap().to_vec_f32().unwrap(), &dw, 1e-6 * pixels);
        let mut db = vec![0.0f64; ws[3]];
        for (i, g) in dyv.iter().enumerate() {
            db[i % ws[3]] += *g as f64;
        }
        assert_close(&format!("{name} db"), &b.grad().unwrap().to_vec_f32().unwrap(), &db, 1e-6 * pixels);
    }
}

#[test]
fn conv2d_non_contiguous_inputs_and_no_grad() {
    // x built as a permuted view (NCHW data seen as NHWC), w as a transposed view.
    let xn = t(v(2 * 3 * 5 * 6, 60), &[2, 3, 5, 6]);
    let x = ops::permute(&xn, &[0, 2, 3, 1]).unwrap();
    assert!(!x.is_contiguous());
    let w0 = t(v(3 * 3 * 4 * 3, 61), &[3, 3, 4, 3]);
    let w = ops::transpose(&w0, 2, 3).unwrap();
    let o = opts([1, 1], [1, 1, 1, 1], [1, 1], 1);
    let y = ops::conv2d(&x, &w, None, &o).unwrap();
    let xc = x.to_vec_f32().unwrap();
    let wc = w.to_vec_f32().unwrap();
    let (want, _) = naive_conv(&xc, x.shape(), &wc, w.shape(), None, &o);
    assert_close("non-contiguous", &y.to_vec_f32().unwrap(), &want, 1e-4);
    assert!(!y.requires_grad());
    assert_eq!(y.grad_fn_name(), None);
}

#[test]
fn conv2d_empty_batch_and_zero_channels() {
    let o = opts([1, 1], [1, 1, 1, 1], [1, 1], 1);
    let x = Tensor::zeros(&[0, 4, 4, 3], DType::F32).unwrap();
    let w = t(v(3 * 3 * 3 * 2, 70), &[3, 3, 3, 2]);
    let b = t(vec![1.0, 2.0], &[2]);
    x.set_requires_grad(true).unwrap();
    w.set_requires_grad(true).unwrap();
    b.set_requires_grad(true).unwrap();
    let y = ops::conv2d(&x, &w, Some(&b), &o).unwrap();
    assert_eq!(y.shape(), &[0, 4, 4, 2]);
    let loss = ops::sum(&y, &[], false).unwrap();
    backward(&loss, None, false).unwrap();
    assert!(w.grad().unwrap().to_vec_f32().unwrap().iter().all(|&g| g == 0.0));
    assert_eq!(b.grad().unwrap().to_vec_f32().unwrap(), vec![0.0, 0.0]);
    // No input channels: the output is just the bias.
    let x = Tensor::zeros(&[1, 2, 2, 0], DType::F32).unwrap();
    let w = Tensor::zeros(&[3, 3, 0, 2], DType::F32).unwrap();
    let y = ops::conv2d(&x, &w, Some(&b), &o).unwrap();
    assert_eq!(y.to_vec_f32().unwrap(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
}

// ------------------------------------------------------------------ pooling

fn naive_pool(x: &[f32], xs: &[usize], k: [usize; 2], s: [usize; 2], p: [usize; 4], avg: bool, include_pad: bool) -> (Vec<f64>, Vec<usize>) {
    let (n, h, w, c) = (xs[0], xs[1], xs[2], xs[3]);
    let oh = (h + p[0] + p[1] - k[0]) / s[0] + 1;
    let ow = (w + p[2] + p[3] - k[1]) / s[1] + 1;
    let mut out = Vec::with_capacity(n * oh * ow * c);
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let (mut acc, mut cnt, mut best) = (0.0f64, 0usize, f64::NEG_INFINITY);
                    for ky in 0..k[0] {
                        let iy = (oy * s[0] + ky) as isize - p[0] as isize;
                        if iy < 0 || iy >= h as isize { continue; }
                        for kx in 0..k[1] {
                            let ix = (ox * s[1] + kx) as isize - p[2] as isize;
                            if ix < 0 || ix >= w as isize { continue; }
                            let val = x[((b * h + iy as usize) * w + ix as usize) * c + ch] as f64;
                            acc += val;
                            cnt += 1;
                            best = best.max(val);
                        }
                    }
                    out.push(if avg { acc / if include_pad { (k[0] * k[1]) as f64 } else { cnt as f64 } } else { best });
                }
            }
        }
    }
    (out, vec![n, oh, ow, c])
}

#[test]
fn pool_forward_matches_direct_loops() {
    type Case = ([usize; 4], [usize; 2], [usize; 2], [usize; 4]);
    let cases: Vec<Case> = vec![
        ([2, 7, 9, 3], [2, 2], [2, 2], [0, 0, 0, 0]),
        ([1, 9, 8, 5], [3, 3], [2, 2], [1, 1, 1, 1]),
        ([3, 6, 7, 9], [3, 2], [1, 3], [2, 0, 0, 1]),
        ([1, 5, 5, 4], [5, 5], [1, 1], [2, 2, 2, 2]),
        ([2, 11, 10, 1], [3, 4], [3, 2], [1, 2, 3, 0]),
        ([1, 4, 4, 17], [4, 4], [4, 4], [0, 0, 0, 0]),
    ];
    for (i, (xs, k, s, p)) in cases.iter().enumerate() {
        let xv = v(xs.iter().product(), 400 + i as u64);
        let x = t(xv.clone(), xs);
        let y = ops::max_pool2d(&x, *k, *s, *p).unwrap();
        let (want, shape) = naive_pool(&xv, xs, *k, *s, *p, false, false);
        assert_eq!(y.shape(), shape.as_slice());
        assert_close(&format!("max case {i}"), &y.to_vec_f32().unwrap(), &want, 0.0);
        for include_pad in [false, true] {
            let y = ops::avg_pool2d(&x, *k, *s, *p, include_pad).unwrap();
            let (want, _) = naive_pool(&xv, xs, *k, *s, *p, true, include_pad);
            assert_close(&format!("avg case {i} include_pad {include_pad}"), &y.to_vec_f32().unwrap(), &want, 1e-6);
        }
    }
}

#[test]
fn pool_gradients() {
    gradcheck("max_pool 3x3 s2 padded", vec![(distinct(2 * 7 * 6 * 3, 80), vec![2, 7, 6, 3])],
        |x| ops::max_pool2d(&x[0], [3, 3], [2, 2], [1, 1, 1, 1]));
    gradcheck("max_pool overlapping, asymmetric padding, 5 channels", vec![(distinct(6 * 5 * 5, 81), vec![1, 6, 5, 5])],
        |x| ops::max_pool2d(&x[0], [2, 3], [1, 2], [1, 0, 0, 2]));
    gradcheck("max_pool 2x2", vec![(distinct(4 * 4 * 4, 82), vec![1, 4, 4, 4])],
        |x| ops::max_pool2d(&x[0], [2, 2], [2, 2], [0, 0, 0, 0]));
    for include_pad in [false, true] {
        gradcheck("avg_pool 3x3 s2 padded", vec![(v(2 * 7 * 6 * 3, 83), vec![2, 7, 6, 3])],
            |x| ops::avg_pool2d(&x[0], [3, 3], [2, 2], [1, 1, 1, 1], include_pad));
        gradcheck("avg_pool asymmetric", vec![(v(6 * 5 * 5, 84), vec![1, 6, 5, 5])],
            |x| ops::avg_pool2d(&x[0], [2, 3], [1, 2], [1, 0, 0, 2], include_pad));
    }
}

#[test]
fn max_pool_ties_nan_and_padding() {
    // Ties: the gradient goes to the first maximum in row-major window order.
    let x = t(vec![1.0, 5.0, 5.0, 5.0], &[1, 2, 2, 1]);
    x.set_requires_grad(true).unwrap();
    let y = ops::max_pool2d(&x, [2, 2], [2, 2], [0; 4]).unwrap();
    assert_eq!(y.to_vec_f32().unwrap(), vec![5.0]);
    backward(&ops::sum(&y, &[], false).unwrap(), None, false).unwrap();
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![0.0, 1.0, 0.0, 0.0]);

    // NaN propagates (in vector lanes and in the scalar channel tail) and takes the gradient.
    let nan = f32::NAN;
    // 5 channels: lanes 0..4 vectorised, lane 4 scalar. Window of 4 pixels.
    let mut data = vec![0.0f32; 4 * 5];
    for p in 0..4 {
        for c in 0..5 {
            data[p * 5 + c] = (p * 5 + c) as f32;
        }
    }
    data[2 * 5 + 1] = nan; // channel 1: NaN at pixel 2 after larger values? pixel 3 is larger
    data[5 + 4] = nan; // channel 4 (scalar tail): NaN at pixel 1
    data[3 * 5 + 4] = nan; // and again at pixel 3: the first NaN wins
    let x = t(data, &[1, 2, 2, 5]);
    x.set_requires_grad(true).unwrap();
    let y = ops::max_pool2d(&x, [2, 2], [1, 1], [0; 4]).unwrap();
    let yv = y.to_vec_f32().unwrap();
    assert_eq!(yv[0], 15.0);
    assert!(yv[1].is_nan() && yv[4].is_nan());
    assert_eq!(&yv[2..4], &[17.0, 18.0]);
    backward(&ops::sum(&y, &[], false).unwrap(), None, false).unwrap();
    let g = x.grad().unwrap().to_vec_f32().unwrap();
    let at = |p: usize, c: usize| g[p * 5 + c];
    assert_eq!((at(3, 0), at(2, 1), at(3, 1), at(1, 4), at(3, 4)), (1.0, 1.0, 0.0, 1.0, 0.0));
    assert_eq!(g.iter().sum::<f32>(), 5.0);

    // Padding is -infinity: an all-negative input never pools to 0.
    let x = t(vec![-3.0, -2.0, -4.0, -5.0], &[1, 2, 2, 1]);
    let y = ops::max_pool2d(&x, [2, 2], [1, 1], [1, 1, 1, 1]).unwrap();
    assert_eq!(y.to_vec_f32().unwrap(), vec![-3.0, -2.0, -2.0, -3.0, -2.0, -2.0, -4.0, -4.0, -5.0]);
}

#[test]
fn avg_pool_divisor() {
    let x = Tensor::ones(&[1, 3, 3, 2], DType::F32).unwrap();
    let y = ops::avg_pool2d(&x, [3, 3], [1, 1], [1, 1, 1, 1], false).unwrap();
    assert!(y.to_vec_f32().unwrap().iter().all(|&v| v == 1.0));
    let y = ops::avg_pool2d(&x, [3, 3], [1, 1], [1, 1, 1, 1], true).unwrap().to_vec_f32().unwrap();
    let want = [4.0f32, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0].map(|c| c / 9.0);
    for (i, w) in want.iter().enumerate() {
        assert_eq!((y[2 * i], y[2 * i + 1]), (*w, *w));
    }
}

// ------------------------------------------------------------------ errors

#[test]
fn errors_are_typed() {
    let kind = |r: Result<Tensor>| r.unwrap_err().kind;
    let x = Tensor::zeros(&[1, 5, 5, 4], DType::F32).unwrap();
    let w = Tensor::zeros(&[3, 3, 4, 6], DType::F32).unwrap();
    let d = Conv2dOptions::default();
    assert_eq!(kind(ops::conv2d(&Tensor::zeros(&[5, 5, 4], DType::F32).unwrap(), &w, None, &d)), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &Tensor::zeros(&[3, 4, 6], DType::F32).unwrap(), None, &d)), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &Tensor::zeros(&[3, 3, 3, 6], DType::F32).unwrap(), None, &d)), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &Tensor::zeros(&[0, 3, 4, 6], DType::F32).unwrap(), None, &d)), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &Tensor::zeros(&[3, 3, 2, 5], DType::F32).unwrap(), None, &opts([1, 1], [0; 4], [1, 1], 2))), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &Tensor::zeros(&[3, 3, 3, 6], DType::F32).unwrap(), None, &opts([1, 1], [0; 4], [1, 1], 2))), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &w, Some(&Tensor::zeros(&[5], DType::F32).unwrap()), &d)), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &w, Some(&Tensor::zeros(&[1, 6], DType::F32).unwrap()), &d)), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&x, &w, None, &opts([0, 1], [0; 4], [1, 1], 1))), ErrorKind::Argument);
    assert_eq!(kind(ops::conv2d(&x, &w, None, &opts([1, 1], [0; 4], [1, 0], 1))), ErrorKind::Argument);
    assert_eq!(kind(ops::conv2d(&x, &w, None, &opts([1, 1], [0; 4], [1, 1], 0))), ErrorKind::Argument);
    assert_eq!(kind(ops::conv2d(&x, &w, None, &opts([1, 1], [usize::MAX, 1, 0, 0], [1, 1], 1))), ErrorKind::Argument);
    assert_eq!(kind(ops::conv2d(&x, &w, None, &opts([1, 1], [0; 4], [usize::MAX, 1], 1))), ErrorKind::Shape);
    assert_eq!(kind(ops::conv2d(&Tensor::zeros(&[1, 5, 5, 4], DType::I32).unwrap(), &w, None, &d)), ErrorKind::DType);
    assert_eq!(kind(ops::conv2d(&x, &w, Some(&Tensor::zeros(&[6], DType::I32).unwrap()), &d)), ErrorKind::DType);
    // The output-size error names the input size, kernel and padding.
    let small = Tensor::zeros(&[1, 2, 9, 4], DType::F32).unwrap();
    let e = ops::conv2d(&small, &w, None, &opts([1, 1], [0, 0, 1, 1], [1, 1], 1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(e.message.contains("height 3") && e.message.contains("input height 2") && e.message.contains("padding 0+0"), "{}", e.message);
    let e = ops::conv2d(&x, &w, None, &opts([1, 1], [0; 4], [3, 1], 1)).unwrap_err();
    assert!(e.message.contains("dilation 3"), "{}", e.message);

    for max in [true, false] {
        let pool = |x: &Tensor, k: [usize; 2], s: [usize; 2], p: [usize; 4]| {
            if max { ops::max_pool2d(x, k, s, p) } else { ops::avg_pool2d(x, k, s, p, false) }
        };
        assert_eq!(kind(pool(&x, [0, 2], [1, 1], [0; 4])), ErrorKind::Argument);
        assert_eq!(kind(pool(&x, [2, 2], [1, 0], [0; 4])), ErrorKind::Argument);
        assert_eq!(kind(pool(&x, [6, 2], [1, 1], [0; 4])), ErrorKind::Shape);
        assert_eq!(kind(pool(&x, [2, 2], [1, 1], [2, 0, 0, 0])), ErrorKind::Argument);
        assert_eq!(kind(pool(&x, [2, 2], [3, 3], [0, 3, 0, 0])), ErrorKind::Argument);
        assert_eq!(kind(pool(&Tensor::zeros(&[5, 5, 4], DType::F32).unwrap(), [2, 2], [1, 1], [0; 4])), ErrorKind::Shape);
        assert_eq!(kind(pool(&Tensor::zeros(&[1, 5, 5, 4], DType::I32).unwrap(), [2, 2], [1, 1], [0; 4])), ErrorKind::DType);
        assert!(pool(&x, [2, 2], [1, 1], [1, 1, 1, 1]).is_ok());
    }
}

// ------------------------------------------------------------------ determinism

/// Forward output and all gradients, as bits.
fn conv_run(xs: &[usize], ws: &[usize], o: &Conv2dOptions, seed: u64) -> Vec<Vec<u32>> {
    let x = t(v(xs.iter().product(), seed), xs);
    let w = t(v(ws.iter().product(), seed + 1), ws);
    let b = t(v(ws[3], seed + 2), &[ws[3]]);
    for p in [&x, &w, &b] {
        p.set_requires_grad(true).unwrap();
    }
    let y = ops::conv2d(&x, &w, Some(&b), o).unwrap();
    let dy = t(v(y.numel(), seed + 3), y.shape());
    backward(&y, Some(dy), false).unwrap();
    let bits = |t: &Tensor| t.to_vec_f32().unwrap().iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
    vec![bits(&y), bits(&x.grad().unwrap()), bits(&w.grad().unwrap()), bits(&b.grad().unwrap())]
}

fn pool_run(seed: u64) -> Vec<Vec<u32>> {
    let x = t(v(2 * 33 * 31 * 20, seed), &[2, 33, 31, 20]);
    x.set_requires_grad(true).unwrap();
    let a = ops::max_pool2d(&x, [3, 3], [2, 2], [1, 1, 1, 1]).unwrap();
    let b = ops::avg_pool2d(&x, [3, 2], [1, 2], [1, 1, 0, 1], false).unwrap();
    let loss = ops::add(&ops::sum(&ops::mul(&a, &a).unwrap(), &[], false).unwrap(),
        &ops::sum(&ops::mul(&b, &b).unwrap(), &[], false).unwrap()).unwrap();
    backward(&loss, None, false).unwrap();
    let bits = |t: &Tensor| t.to_vec_f32().unwrap().iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
    vec![bits(&a), bits(&b), bits(&x.grad().unwrap())]
}

#[test]
fn bitwise_identical_for_any_thread_count() {
    let cases = [
        ([2usize, 28, 27, 32], [3usize, 3, 32, 40], opts([1, 1], [1, 1, 1, 1], [1, 1], 1)),
        // several chunks
        ([2, 33, 31, 64], [3, 3, 64, 16], opts([1, 1], [1, 1, 1, 1], [1, 1], 1)),
        ([2, 30, 29, 32], [3, 3, 16, 24], opts([2, 1], [1, 0, 2, 1], [1, 2], 2)),
        ([2, 40, 38, 32], [3, 3, 1, 32], opts([1, 1], [1, 1, 1, 1], [1, 1], 32)),
        ([3, 30, 30, 48], [1, 1, 48, 40], Conv2dOptions::default()),
    ];
    let mut runs: Vec<Vec<Vec<Vec<u32>>>> = Vec::new();
    for threads in [1, 4, 3] {
        parallel::set_num_threads(threads);
        let mut r: Vec<Vec<Vec<u32>>> = cases.iter().enumerate().map(|(i, (xs, ws, o))| conv_run(xs, ws, o, 500 + 10 * i as u64)).collect();
        r.push(pool_run(600));
        runs.push(r);
    }
    parallel::set_num_threads(1);
    for (i, r) in runs.iter().enumerate().skip(1) {
        for (case, (a, b)) in runs[0].iter().zip(r).enumerate() {
            for (j, (ta, tb)) in a.iter().zip(b).enumerate() {
                assert!(ta == tb, "run {i} case {case} tensor {j} differs from the 1-thread result");
            }
        }
    }
}

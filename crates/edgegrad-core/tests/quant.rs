//! Quantized inference and compression ops: int8 GEMM/conv against exact integer references,
//! requantization against real arithmetic, pooling/add/concat, calibration ranges, fake-quant and
//! binarize gradients, binary-weight inference, pruning masks, typed errors, and bitwise
//! determinism across thread counts.

use edgegrad_core::autograd::backward;
use edgegrad_core::kernels::int8::Requant;
use edgegrad_core::ops::quant::{self, CalibMethod, QOutput, QParams, WeightLayout};
use edgegrad_core::ops::{self, Conv2dOptions};
use edgegrad_core::parallel;
use edgegrad_core::rng::Generator;
use edgegrad_core::{ErrorKind, Tensor};

fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    Generator::new(seed).uniform(n, lo, hi)
}

fn i8s(n: usize, seed: u64) -> Vec<i8> {
    uniform(n, seed, -128.0, 128.0).iter().map(|v| v.floor().clamp(-128.0, 127.0) as i8).collect()
}

fn kind<T: std::fmt::Debug>(r: edgegrad_core::Result<T>) -> ErrorKind {
    r.expect_err("expected an error").kind
}

/// Exact i64 reference of `offsets + x·W` for Linear weights `[n, k]`, rows of x `[m, k]`.
fn ref_acc(x: &[i8], w: &[i8], off: &[i32], m: usize, n: usize, k: usize) -> Vec<i64> {
    let mut out = vec![0i64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = off[j] as i64;
            for kk in 0..k {
                s += x[i * k + kk] as i64 * w[j * k + kk] as i64;
            }
            out[i * n + j] = s;
        }
    }
    out
}

/// A linear layer's int8 pieces for float weights `[n, k]`, bias, and input/output quantization.
struct QLayer {
    wq: Tensor,
    packed: Tensor,
    offsets: Tensor,
    mult: Option<Tensor>,
    scales: Option<Tensor>,
    left: u32,
    right: u32,
}

fn qlayer(w: &Tensor, bias: Option<&Tensor>, layout: WeightLayout, x: QParams, out: Option<QParams>) -> QLayer {
    let (wq, ws) = quant::quantize_per_channel(w, layout.channel_axis() as isize).unwrap();
    let packed = quant::pack_weights(&wq, layout).unwrap();
    let c = quant::layer_constants(&wq, &ws, bias, layout, x, out).unwrap();
    QLayer { wq, packed, offsets: c.offsets, mult: c.mult, scales: c.scales, left: c.left, right: c.right }
}

#[test]
fn qlinear_matches_exact_integer_reference() {
    for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (65, 17, 300), (4, 8, 256), (130, 70, 513), (1, 300, 40), (67, 9, 2)] {
        let w = Tensor::from_f32(uniform(n * k, 1, -0.5, 0.5), &[n, k]).unwrap();
        let b = Tensor::from_f32(uniform(n, 2, -0.2, 0.2), &[n]).unwrap();
        let xq = Tensor::from_i8(i8s(m * k, 3), &[m, k]).unwrap();
        let xp = QParams::new(0.02, -7).unwrap();
        let op = QParams::new(0.05, 3).unwrap();
        let l = qlayer(&w, Some(&b), WeightLayout::Linear, xp, Some(op));
        let y = quant::qlinear(&xq, &l.packed, k, &l.offsets,
            &QOutput::Int8 { mult: l.mult.as_ref().unwrap(), left: l.left, right: l.right, q: op, relu: false }).unwrap();
        assert_eq!(y.shape(), &[m, n]);
        let acc = ref_acc(&xq.to_vec_i8().unwrap(), &l.wq.to_vec_i8().unwrap(), &l.offsets.to_vec_i32().unwrap(), m, n, k);
        let mult = l.mult.as_ref().unwrap().to_vec_i32().unwrap();
        let rq = Requant { left: l.left, right: l.right, zero_point: 3, qmin: -128, qmax: 127 };
        let got = y.to_vec_i8().unwrap();
        for i in 0..m * n {
            assert!(acc[i].abs() < 1 << 31);
            assert_eq!(got[i] as i32, rq.apply(acc[i] as i32, mult[i % n]), "{m}x{n}x{k} element {i}");
        }
        // The raw-accumulator path agrees with the float path (dequantized output).
        let yf = quant::qlinear(&xq, &l.packed, k, &l.offsets, &QOutput::Float { scales: l.scales.as_ref().unwrap_or(&quant::layer_constants(
            &l.wq, &quant::quantize_per_channel(&w, 0).unwrap().1, Some(&b), WeightLayout::Linear, xp, None).unwrap().scales.unwrap()) }).unwrap();
        let yfv = yf.to_vec_f32().unwrap();
        let sc = quant::quantize_per_channel(&w, 0).unwrap().1.to_vec_f32().unwrap();
        for i in 0..m * n {
            let want = acc[i] as f32 * (0.02f32 * sc[i % n]);
            assert!((yfv[i] - want).abs() <= 1e-4 * (1.0 + want.abs()), "float output {i}: {} vs {want}", yfv[i]);
        }
    }
}

#[test]
fn int8_linear_tracks_the_float_layer() {
    let (m, n, k) = (32, 24, 96);
    let xf = Tensor::from_f32(uniform(m * k, 5, -1.0, 1.0), &[m, k]).unwrap();
    let w = Tensor::from_f32(uniform(n * k, 6, -0.3, 0.3), &[n, k]).unwrap();
    let b = Tensor::from_f32(uniform(n, 7, -0.1, 0.1), &[n]).unwrap();
    let want = ops::relu(&ops::add(&ops::bmm(&xf, &w, false, true).unwrap(), &b).unwrap()).unwrap().to_vec_f32().unwrap();
    let (lo, hi) = quant::minmax(&xf).unwrap();
    let xp = quant::choose_qparams(lo, hi).unwrap();
    let hi_out = want.iter().cloned().fold(0.0f32, f32::max);
    let op = quant::choose_qparams(0.0, hi_out).unwrap();
    let l = qlayer(&w, Some(&b), WeightLayout::Linear, xp, Some(op));
    let xq = quant::quantize(&xf, xp).unwrap();
    let y = quant::qlinear(&xq, &l.packed, k, &l.offsets,
        &QOutput::Int8 { mult: l.mult.as_ref().unwrap(), left: l.left, right: l.right, q: op, relu: true }).unwrap();
    let got = quant::dequantize(&y, op).unwrap().to_vec_f32().unwrap();
    let max_err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(max_err < 4.0 * op.scale, "max error {max_err} vs output scale {}", op.scale);
    assert!(got.iter().all(|v| *v >= 0.0), "fused relu");
}

#[test]
fn requant_covers_large_multipliers() {
    // Output scale below input*weight scale: M ~ 0.98 takes the left-shift path.
    let w = Tensor::from_f32(vec![1.0, -1.0, 0.5, 0.25], &[2, 2]).unwrap();
    let xp = QParams::new(0.5, 0).unwrap();
    let op = QParams::new(0.004, 0).unwrap();
    let l = qlayer(&w, None, WeightLayout::Linear, xp, Some(op));
    assert!(l.left > 0 && l.right == 0, "left {} right {}", l.left, l.right);
    let xv: Vec<i8> = vec![0, 1, 1, 0, -1, 0, 100, -100, 2, 3];
    let xq = Tensor::from_i8(xv.clone(), &[5, 2]).unwrap();
    let y = quant::qlinear(&xq, &l.packed, 2, &l.offsets,
        &QOutput::Int8 { mult: l.mult.as_ref().unwrap(), left: l.left, right: l.right, q: op, relu: false }).unwrap().to_vec_i8().unwrap();
    let wq = l.wq.to_vec_i8().unwrap();
    let ws = quant::quantize_per_channel(&w, 0).unwrap().1.to_vec_f32().unwrap();
    for i in 0..5 {
        for j in 0..2 {
            let acc = xv[2 * i] as f64 * wq[2 * j] as f64 + xv[2 * i + 1] as f64 * wq[2 * j + 1] as f64;
            let want = (acc * 0.5 * ws[j] as f64 / 0.004 + 0.5).floor().clamp(-128.0, 127.0) as i32;
            assert!((y[2 * i + j] as i32 - want).abs() <= 1, "({i}, {j}): {} vs {want}", y[2 * i + j]);
        }
    }
}

fn conv_ref(x: &[i8], xzp: i32, w: &[i8], off: &[i32], n: usize, h: usize, wd: usize, cin: usize, kh: usize, kw: usize,
            cout: usize, o: &Conv2dOptions) -> (Vec<i64>, [usize; 4]) {
    let [s_h, s_w] = o.stride;
    let [d_h, d_w] = o.dilation;
    let [pt, pb, pl, pr] = o.padding;
    let g = o.groups;
    let (cig, cog) = (cin / g, cout / g);
    let oh = (h + pt + pb - d_h * (kh - 1) - 1) / s_h + 1;
    let ow = (wd + pl + pr - d_w * (kw - 1) - 1) / s_w + 1;
    let mut out = vec![0i64; n * oh * ow * cout];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..cout {
                    let grp = co / cog;
                    let mut s = off[co] as i64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            for ci in 0..cig {
                                let iy = (oy * s_h + ky * d_h) as isize - pt as isize;
                                let ix = (ox * s_w + kx * d_w) as isize - pl as isize;
                                let xv = if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    xzp
                                } else {
                                    x[((b * h + iy as usize) * wd + ix as usize) * cin + grp * cig + ci] as i32
                                };
                                s += xv as i64 * w[((ky * kw + kx) * cig + ci) * cout + co] as i64;
                            }
                        }
                    }
                    out[((b * oh + oy) * ow + ox) * cout + co] = s;
                }
            }
        }
    }
    (out, [n, oh, ow, cout])
}

#[test]
fn qconv2d_matches_exact_integer_reference() {
    let cases: Vec<(usize, usize, usize, usize, usize, usize, usize, Conv2dOptions)> = vec![
        (2, 8, 8, 3, 3, 3, 16, Conv2dOptions { padding: [1, 1, 1, 1], ..Default::default() }),
        (1, 7, 9, 4, 3, 2, 10, Conv2dOptions { stride: [2, 1], padding: [0, 1, 1, 0], dilation: [1, 2], groups: 1 }),
        (2, 5, 5, 8, 1, 1, 12, Conv2dOptions::default()),
        (1, 6, 6, 6, 3, 3, 9, Conv2dOptions { padding: [1, 1, 1, 1], groups: 3, ..Default::default() }),
        (3, 4, 4, 32, 3, 3, 64, Conv2dOptions { padding: [1, 1, 1, 1], ..Default::default() }),
    ];
    for (n, h, wd, cin, kh, kw, cout, o) in cases {
        let w = Tensor::from_f32(uniform(kh * kw * (cin / o.groups) * cout, 11, -0.5, 0.5), &[kh, kw, cin / o.groups, cout]).unwrap();
        let b = Tensor::from_f32(uniform(cout, 12, -0.3, 0.3), &[cout]).unwrap();
        let xq = Tensor::from_i8(i8s(n * h * wd * cin, 13), &[n, h, wd, cin]).unwrap();
        let xp = QParams::new(0.03, 9).unwrap();
        let op = QParams::new(0.1, -20).unwrap();
        let lay = WeightLayout::Conv { groups: o.groups };
        let l = qlayer(&w, Some(&b), lay, xp, Some(op));
        let y = quant::qconv2d(&xq, 9, &l.packed, [kh, kw, cin / o.groups], &l.offsets, &o,
            &QOutput::Int8 { mult: l.mult.as_ref().unwrap(), left: l.left, right: l.right, q: op, relu: true }, false).unwrap();
        let (acc, shape) = conv_ref(&xq.to_vec_i8().unwrap(), 9, &l.wq.to_vec_i8().unwrap(), &l.offsets.to_vec_i32().unwrap(),
            n, h, wd, cin, kh, kw, cout, &o);
        assert_eq!(y.shape(), &shape);
        let mult = l.mult.as_ref().unwrap().to_vec_i32().unwrap();
        let rq = Requant { left: l.left, right: l.right, zero_point: -20, qmin: -20, qmax: 127 };
        let got = y.to_vec_i8().unwrap();
        for (i, a) in acc.iter().enumerate() {
            assert_eq!(got[i] as i32, rq.apply(*a as i32, mult[i % cout]), "conv element {i}");
        }
        // The fused 2x2 max pool gives exactly the pooled plain output (odd edges dropped).
        let fused = quant::qconv2d(&xq, 9, &l.packed, [kh, kw, cin / o.groups], &l.offsets, &o,
            &QOutput::Int8 { mult: l.mult.as_ref().unwrap(), left: l.left, right: l.right, q: op, relu: true }, true).unwrap();
        let pooled = quant::qmax_pool2d(&y, [2, 2], [2, 2], [0; 4]).unwrap();
        assert_eq!(fused.shape(), pooled.shape());
        assert_eq!(fused.to_vec_i8().unwrap(), pooled.to_vec_i8().unwrap(), "fused pool, case {:?}", shape);
    }
}

#[test]
fn int8_kernels_are_bitwise_identical_across_threads() {
    let run = || {
        let w = Tensor::from_f32(uniform(3 * 3 * 16 * 32, 21, -0.4, 0.4), &[3, 3, 16, 32]).unwrap();
        let xq = Tensor::from_i8(i8s(4 * 12 * 12 * 16, 22), &[4, 12, 12, 16]).unwrap();
        let xp = QParams::new(0.05, 1).unwrap();
        let op = QParams::new(0.2, -5).unwrap();
        let l = qlayer(&w, None, WeightLayout::Conv { groups: 1 }, xp, Some(op));
        let o = Conv2dOptions { padding: [1, 1, 1, 1], ..Default::default() };
        let q8 = QOutput::Int8 { mult: l.mult.as_ref().unwrap(), left: l.left, right: l.right, q: op, relu: false };
        let y = quant::qconv2d(&xq, 1, &l.packed, [3, 3, 16], &l.offsets, &o, &q8, false).unwrap();
        let yp = quant::qconv2d(&xq, 1, &l.packed, [3, 3, 16], &l.offsets, &o, &q8, true).unwrap();
        let w2 = Tensor::from_f32(uniform(200 * 300, 23, -0.1, 0.1), &[200, 300]).unwrap();
        let x2 = Tensor::from_i8(i8s(150 * 300, 24), &[150, 300]).unwrap();
        let l2 = qlayer(&w2, None, WeightLayout::Linear, xp, None);
        let y2 = quant::qlinear(&x2, &l2.packed, 300, &l2.offsets, &QOutput::Float { scales: l2.scales.as_ref().unwrap() }).unwrap();
        let xf = Tensor::from_f32(uniform(150 * 300, 25, -1.0, 1.0), &[150, 300]).unwrap();
        let (bits, alpha) = quant::pack_binary(&w2, WeightLayout::Linear).unwrap();
        let y3 = quant::binary_linear(&xf, &bits, &alpha, None).unwrap();
        (y.to_vec_i8().unwrap(), y2.to_vec_f32().unwrap(), y3.to_vec_f32().unwrap(), yp.to_vec_i8().unwrap())
    };
    parallel::set_num_threads(1);
    let a = run();
    parallel::set_num_threads(4);
    let b = run();
    parallel::set_num_threads(1);
    assert_eq!(a.0, b.0);
    assert_eq!(a.3, b.3);
    assert!(a.1.iter().zip(&b.1).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert!(a.2.iter().zip(&b.2).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn quantize_roundtrip_and_qparams() {
    let q = quant::choose_qparams(-1.0, 3.0).unwrap();
    assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
    assert_eq!(q.zero_point, -128 + 64);
    // Zero is exact.
    let z = quant::quantize(&Tensor::from_f32(vec![0.0], &[1]).unwrap(), q).unwrap();
    assert_eq!(z.to_vec_i8().unwrap(), vec![q.zero_point as i8]);
    let x = Tensor::from_f32(uniform(1000, 31, -1.0, 3.0), &[1000]).unwrap();
    let back = quant::dequantize(&quant::quantize(&x, q).unwrap(), q).unwrap().to_vec_f32().unwrap();
    for (a, b) in back.iter().zip(x.to_vec_f32().unwrap()) {
        assert!((a - b).abs() <= q.scale / 2.0 + 1e-6);
    }
    // A one-sided range keeps 0 inside it.
    let r = quant::choose_qparams(2.0, 5.0).unwrap();
    assert_eq!(r.zero_point, -128);
    assert_eq!(kind(quant::choose_qparams(f32::NAN, 1.0)), ErrorKind::Argument);
    assert_eq!(kind(QParams::new(0.0, 0)), ErrorKind::Argument);
    assert_eq!(kind(QParams::new(1.0, 200)), ErrorKind::Argument);
}

#[test]
fn per_channel_weights_are_symmetric() {
    let w = Tensor::from_f32(vec![1.0, -2.0, 0.5, 4.0, 0.0, 0.0], &[3, 2]).unwrap();
    let (q, s) = quant::quantize_per_channel(&w, 0).unwrap();
    assert_eq!(s.to_vec_f32().unwrap(), vec![2.0 / 127.0, 4.0 / 127.0, 1.0]);
    assert_eq!(q.to_vec_i8().unwrap(), vec![64, -127, 16, 127, 0, 0]);
    let (_, s1) = quant::quantize_per_channel(&w, -1).unwrap();
    assert_eq!(s1.shape(), &[2]);
}

#[test]
fn pooling_add_concat_requantize() {
    let x = Tensor::from_i8(vec![1, -5, 3, 7, -128, 2, 9, 0], &[1, 2, 2, 2]).unwrap();
    let m = quant::qmax_pool2d(&x, [2, 2], [2, 2], [0; 4]).unwrap();
    assert_eq!(m.to_vec_i8().unwrap(), vec![9, 7]);
    let a = quant::qavg_pool2d(&x, [2, 2], [2, 2], [0; 4], false, 0).unwrap();
    // (1+3-128+9)/4 = -28.75 -> -29; (-5+7+2+0)/4 = 1
    assert_eq!(a.to_vec_i8().unwrap(), vec![-29, 1]);
    let a2 = quant::qavg_pool2d(&x, [2, 2], [1, 1], [0, 1, 0, 1], true, 4).unwrap();
    assert_eq!(a2.shape(), &[1, 2, 2, 2]);
    // Bottom-right window: x[1,1] = (9, 0) plus three pads of 4: (9+12)/4 = 5.25 -> 5, 12/4 = 3
    assert_eq!(&a2.to_vec_i8().unwrap()[6..], &[5, 3]);

    let qa = QParams::new(0.1, 0).unwrap();
    let qb = QParams::new(0.2, 10).unwrap();
    let qo = QParams::new(0.3, -3).unwrap();
    let ta = Tensor::from_i8(vec![10, -20, 100, 0], &[4]).unwrap();
    let tb = Tensor::from_i8(vec![10, 20, -100, 127], &[4]).unwrap();
    let s = quant::qadd(&ta, qa, &tb, qb, qo, false).unwrap().to_vec_i8().unwrap();
    let r = quant::qadd(&ta, qa, &tb, qb, qo, true).unwrap().to_vec_i8().unwrap();
    let av = [1.0f32, -2.0, 10.0, 0.0];
    let bv = [0.0f32, 2.0, -22.0, 23.4];
    for i in 0..4 {
        let want = ((av[i] + bv[i]) / 0.3 + 0.5).floor() as i32 - 3;
        assert!((s[i] as i32 - want.clamp(-128, 127)).abs() <= 1, "add {i}: {} vs {want}", s[i]);
        assert_eq!(r[i] as i32, (s[i] as i32).max(-3));
    }
    let c = quant::qconcat(&[(ta.clone(), qa), (tb.clone(), qo)], 0, qo).unwrap().to_vec_i8().unwrap();
    assert_eq!(&c[4..], &tb.to_vec_i8().unwrap()[..]);
    let rq = quant::qrequantize(&ta, qa, qo, false).unwrap().to_vec_i8().unwrap();
    assert_eq!(&c[..4], &rq[..]);
    assert_eq!(rq, vec![0, -10, 30, -3]);
    assert_eq!(kind(quant::qadd(&ta, qa, &Tensor::from_i8(vec![0; 3], &[3]).unwrap(), qb, qo, false)), ErrorKind::Shape);
}

#[test]
fn calibration_ranges() {
    let x = Tensor::from_f32((0..10000).map(|i| (i as f32 / 10000.0) * 2.0 - 1.0).chain([50.0]).collect(), &[10001]).unwrap();
    let (lo, hi) = quant::minmax(&x).unwrap();
    assert_eq!((lo, hi), (-1.0, 50.0));
    let h = quant::histogram(&x, lo, hi, 2048).unwrap();
    assert_eq!(h.iter().map(|&c| c as u64).sum::<u64>(), 10001);
    let counts: Vec<f64> = h.iter().map(|&c| c as f64).collect();
    let (a, b) = quant::calib_range(&counts, lo, hi, CalibMethod::Percentile(99.9)).unwrap();
    assert!(a <= -0.99 && a >= -1.0 && b < 1.1 && b > 0.9, "percentile range [{a}, {b}]");
    // Laplace(0, 1) samples: the MSE-optimal 8-bit range clips the sparse tails.
    let u = uniform(100_000, 61, -0.5, 0.5);
    let lap: Vec<f32> = u.iter().map(|&v| -v.signum() * (1.0 - 2.0 * v.abs()).max(1e-12).ln()).collect();
    let t = Tensor::from_f32(lap, &[100_000]).unwrap();
    let (lo, hi) = quant::minmax(&t).unwrap();
    let counts: Vec<f64> = quant::histogram(&t, lo, hi, 2048).unwrap().iter().map(|&c| c as f64).collect();
    let (a, b) = quant::calib_range(&counts, lo, hi, CalibMethod::Mse).unwrap();
    assert!(a > lo && b < hi && a < -4.0 && b > 4.0, "mse range [{a}, {b}] of [{lo}, {hi}]");
    assert_eq!(kind(quant::histogram(&x, 1.0, 1.0, 10)), ErrorKind::Argument);
}

#[test]
fn fake_quant_and_binarize_gradients() {
    let q = QParams::new(0.1, 0).unwrap();
    let x = Tensor::from_f32(vec![0.04, 0.06, -0.3, 20.0, -20.0], &[5]).unwrap();
    x.set_requires_grad(true).unwrap();
    let y = quant::fake_quant(&x, q).unwrap();
    let yv = y.to_vec_f32().unwrap();
    assert_eq!(yv[0], 0.0);
    assert!((yv[1] - 0.1).abs() < 1e-6 && (yv[2] + 0.3).abs() < 1e-6 && (yv[3] - 12.7).abs() < 1e-5 && (yv[4] + 12.8).abs() < 1e-5);
    backward(&ops::sum(&y, &[], false).unwrap(), None, false).unwrap();
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![1.0, 1.0, 1.0, 0.0, 0.0]);

    let w = Tensor::from_f32(vec![0.5, -1.5, 0.0, -0.25, 2.0, 1.0], &[2, 3]).unwrap();
    w.set_requires_grad(true).unwrap();
    let b = quant::binarize(&w, 0).unwrap();
    let a0 = (0.5 + 1.5 + 0.0) / 3.0;
    let a1 = (0.25 + 2.0 + 1.0) / 3.0;
    let bv = b.to_vec_f32().unwrap();
    let want = [a0, -a0, a0, -a1, a1, a1];
    for i in 0..6 {
        assert!((bv[i] - want[i]).abs() < 1e-6);
    }
    backward(&ops::sum(&b, &[], false).unwrap(), None, false).unwrap();
    assert_eq!(w.grad().unwrap().to_vec_f32().unwrap(), vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);

    let wf = Tensor::from_f32(vec![0.3, -0.2, 0.01, 1.0], &[2, 2]).unwrap();
    wf.set_requires_grad(true).unwrap();
    let f = quant::fake_quant_per_channel(&wf, 1).unwrap();
    let (qw, s) = quant::quantize_per_channel(&wf, 1).unwrap();
    let deq: Vec<f32> = qw.to_vec_i8().unwrap().iter().enumerate().map(|(i, &v)| v as f32 * s.to_vec_f32().unwrap()[i % 2]).collect();
    assert_eq!(f.to_vec_f32().unwrap(), deq);
    backward(&ops::sum(&f, &[], false).unwrap(), None, false).unwrap();
    assert_eq!(wf.grad().unwrap().to_vec_f32().unwrap(), vec![1.0; 4]);
}

#[test]
fn binary_weights_match_the_float_computation() {
    let (m, n, k) = (37, 19, 70);
    let w = Tensor::from_f32(uniform(n * k, 41, -1.0, 1.0), &[n, k]).unwrap();
    let x = Tensor::from_f32(uniform(m * k, 42, -1.0, 1.0), &[m, k]).unwrap();
    let b = Tensor::from_f32(uniform(n, 43, -1.0, 1.0), &[n]).unwrap();
    let (bits, alpha) = quant::pack_binary(&w, WeightLayout::Linear).unwrap();
    assert_eq!(bits.numel(), 3 * k); // 19 outputs -> 3 slivers of 8 columns, one byte per k
    let y = quant::binary_linear(&x, &bits, &alpha, Some(&b)).unwrap().to_vec_f32().unwrap();
    let wb = quant::binarize(&w, 0).unwrap();
    let want = ops::add(&ops::bmm(&x, &wb, false, true).unwrap(), &b).unwrap().to_vec_f32().unwrap();
    for i in 0..m * n {
        assert!((y[i] - want[i]).abs() < 1e-4 * (1.0 + want[i].abs()), "{i}: {} vs {}", y[i], want[i]);
    }
    // Convolution.
    let wc = Tensor::from_f32(uniform(3 * 3 * 4 * 12, 44, -1.0, 1.0), &[3, 3, 4, 12]).unwrap();
    let xc = Tensor::from_f32(uniform(2 * 6 * 6 * 4, 45, -1.0, 1.0), &[2, 6, 6, 4]).unwrap();
    let o = Conv2dOptions { padding: [1, 1, 1, 1], stride: [2, 2], ..Default::default() };
    let (bits, alpha) = quant::pack_binary(&wc, WeightLayout::Conv { groups: 1 }).unwrap();
    let yc = quant::binary_conv2d(&xc, &bits, [3, 3], &alpha, None, &o).unwrap();
    let want = ops::conv2d(&xc, &quant::binarize(&wc, 3).unwrap(), None, &o).unwrap();
    assert_eq!(yc.shape(), want.shape());
    for (a, b) in yc.to_vec_f32().unwrap().iter().zip(want.to_vec_f32().unwrap()) {
        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()));
    }
}

#[test]
fn pruning_masks() {
    let a = Tensor::from_f32(vec![0.1, -0.5, 0.3, 0.0], &[2, 2]).unwrap();
    let b = Tensor::from_f32(vec![0.2, -0.05, 0.9, 0.3], &[4]).unwrap();
    let m = quant::prune_masks(&[a.clone(), b.clone()], 0.5).unwrap();
    assert_eq!(m[0].to_vec_f32().unwrap(), vec![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(m[1].to_vec_f32().unwrap(), vec![0.0, 0.0, 1.0, 1.0]);
    let l = quant::prune_masks(&[b.clone()], 0.75).unwrap();
    assert_eq!(l[0].to_vec_f32().unwrap(), vec![0.0, 0.0, 1.0, 0.0]);
    quant::apply_mask_(&b, &l[0]).unwrap();
    assert_eq!(b.to_vec_f32().unwrap(), vec![0.0, -0.0, 0.9, 0.0]);
    assert_eq!(quant::count_zeros(&b).unwrap(), 3);
    assert_eq!(kind(quant::prune_masks(&[a.clone()], 1.5)), ErrorKind::Argument);
    assert_eq!(kind(quant::apply_mask_(&a, &b)), ErrorKind::Shape);
}

#[test]
fn errors_are_typed() {
    let w = Tensor::from_f32(uniform(8 * 16, 51, -1.0, 1.0), &[8, 16]).unwrap();
    let xp = QParams::new(0.1, 0).unwrap();
    let l = qlayer(&w, None, WeightLayout::Linear, xp, Some(xp));
    let out = QOutput::Int8 { mult: l.mult.as_ref().unwrap(), left: l.left, right: l.right, q: xp, relu: false };
    let xf = Tensor::from_f32(vec![0.0; 16], &[1, 16]).unwrap();
    assert_eq!(kind(quant::qlinear(&xf, &l.packed, 16, &l.offsets, &out)), ErrorKind::DType);
    let xbad = Tensor::from_i8(vec![0; 15], &[1, 15]).unwrap();
    let e = quant::qlinear(&xbad, &l.packed, 16, &l.offsets, &out).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(e.message.contains("[1, 15]"), "{}", e.message);
    let x4 = Tensor::from_i8(vec![0; 16], &[1, 2, 2, 4]).unwrap();
    let cw = Tensor::from_f32(uniform(3 * 3 * 4 * 8, 52, -1.0, 1.0), &[3, 3, 4, 8]).unwrap();
    let cl = qlayer(&cw, None, WeightLayout::Conv { groups: 1 }, xp, Some(xp));
    let co = QOutput::Int8 { mult: cl.mult.as_ref().unwrap(), left: cl.left, right: cl.right, q: xp, relu: false };
    assert_eq!(kind(quant::qconv2d(&x4, 0, &cl.packed, [3, 3, 4], &cl.offsets, &Conv2dOptions::default(), &co, false)), ErrorKind::Shape);
    assert_eq!(kind(quant::qconv2d(&x4, 300, &cl.packed, [3, 3, 4], &cl.offsets, &Conv2dOptions::default(), &co, false)), ErrorKind::Argument);
    assert_eq!(kind(quant::qconv2d(&x4, 0, &l.packed, [3, 3, 4], &cl.offsets,
        &Conv2dOptions { padding: [1, 1, 1, 1], ..Default::default() }, &co, false)), ErrorKind::Shape);
    // A fused 2x2 max pool needs an int8 output of at least 2x2.
    let x3 = Tensor::from_i8(vec![0; 36], &[1, 3, 3, 4]).unwrap();
    let same = Conv2dOptions { padding: [1, 1, 1, 1], ..Default::default() };
    assert_eq!(kind(quant::qconv2d(&x3, 0, &cl.packed, [3, 3, 4], &cl.offsets, &Conv2dOptions::default(), &co, true)), ErrorKind::Shape);
    let fl = qlayer(&cw, None, WeightLayout::Conv { groups: 1 }, xp, None);
    let fo = QOutput::Float { scales: fl.scales.as_ref().unwrap() };
    assert!(quant::qconv2d(&x3, 0, &fl.packed, [3, 3, 4], &fl.offsets, &same, &fo, false).is_ok());
    assert_eq!(kind(quant::qconv2d(&x3, 0, &fl.packed, [3, 3, 4], &fl.offsets, &same, &fo, true)), ErrorKind::Argument);
    assert_eq!(kind(quant::pack_weights(&w, WeightLayout::Linear)), ErrorKind::DType);
    assert_eq!(kind(quant::quantize_per_channel(&Tensor::from_f32(vec![f32::NAN], &[1]).unwrap(), 0)), ErrorKind::Argument);
    assert_eq!(kind(quant::qmax_pool2d(&x4, [3, 3], [1, 1], [0; 4])), ErrorKind::Shape);
    // An output scale far too small for the inputs is refused, not wrapped.
    let (wq, ws) = quant::quantize_per_channel(&w, 0).unwrap();
    assert_eq!(kind(quant::layer_constants(&wq, &ws, None, WeightLayout::Linear, QParams::new(1e3, 0).unwrap(),
        Some(QParams::new(1e-9, 0).unwrap()))), ErrorKind::Argument);
}

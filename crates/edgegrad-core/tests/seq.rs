//! Recurrent layers and attention: forward values against f64 references of PyTorch's formulas,
//! finite-difference gradient checks (backward through time, masks, reverse direction), typed
//! errors, and bitwise identity across thread counts.

use edgegrad_core::autograd::backward;
use edgegrad_core::ops::{self, RnnCell, RnnWeights};
use edgegrad_core::{parallel, ErrorKind, Result, Tensor};

mod common;
use common::{gradcheck, rand_vec, v};

fn t(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_f32(data, shape).unwrap()
}

// ---------------------------------------------------------------- f64 reference cells

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

struct Ref {
    b: usize,
    t: usize,
    i: usize,
    h: usize,
}

/// PyTorch's formulas in f64: returns (outputs [B,T,H] with zeros at masked steps, h_n, c_n).
#[allow(clippy::too_many_arguments)]
fn reference(cell: RnnCell, d: &Ref, x: &[f32], w_ih: &[f32], w_hh: &[f32], b_ih: &[f32], b_hh: &[f32], h0: &[f32], c0: &[f32],
    mask: Option<&[f32]>, reverse: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let g = cell.gates();
    let gh = g * d.h;
    let mut y = vec![0.0; d.b * d.t * d.h];
    let mut hn = vec![0.0; d.b * d.h];
    let mut cn = vec![0.0; d.b * d.h];
    for b in 0..d.b {
        let mut hs: Vec<f64> = h0[b * d.h..(b + 1) * d.h].iter().map(|&v| v as f64).collect();
        let mut cs: Vec<f64> = if c0.is_empty() { vec![0.0; d.h] } else { c0[b * d.h..(b + 1) * d.h].iter().map(|&v| v as f64).collect() };
        for s in 0..d.t {
            let tt = if reverse { d.t - 1 - s } else { s };
            if mask.is_some_and(|m| m[b * d.t + tt] == 0.0) {
                continue;
            }
            let xr = &x[(b * d.t + tt) * d.i..(b * d.t + tt + 1) * d.i];
            let xi: Vec<f64> = (0..gh).map(|j| b_ih[j] as f64 + (0..d.i).map(|k| w_ih[j * d.i + k] as f64 * xr[k] as f64).sum::<f64>()).collect();
            let hh = |hv: &[f64]| -> Vec<f64> { (0..gh).map(|j| b_hh[j] as f64 + (0..d.h).map(|k| w_hh[j * d.h + k] as f64 * hv[k]).sum::<f64>()).collect() };
            let hr = hh(&hs);
            let h = d.h;
            let new_h: Vec<f64> = match cell {
                RnnCell::RnnTanh => (0..h).map(|j| (xi[j] + hr[j]).tanh()).collect(),
                RnnCell::RnnRelu => (0..h).map(|j| (xi[j] + hr[j]).max(0.0)).collect(),
                RnnCell::Lstm => {
                    let mut nh = vec![0.0; h];
                    for j in 0..h {
                        let (i, f, gg, o) = (sig(xi[j] + hr[j]), sig(xi[h + j] + hr[h + j]), (xi[2 * h + j] + hr[2 * h + j]).tanh(), sig(xi[3 * h + j] + hr[3 * h + j]));
                        cs[j] = f * cs[j] + i * gg;
                        nh[j] = o * cs[j].tanh();
                    }
                    nh
                }
                RnnCell::Gru => (0..h).map(|j| {
                    let r = sig(xi[j] + hr[j]);
                    let z = sig(xi[h + j] + hr[h + j]);
                    let n = (xi[2 * h + j] + r * hr[2 * h + j]).tanh();
                    (1.0 - z) * n + z * hs[j]
                }).collect(),
                RnnCell::GruResetBefore => {
                    let r: Vec<f64> = (0..h).map(|j| sig(xi[j] + hr[j])).collect();
                    let rh: Vec<f64> = (0..h).map(|j| r[j] * hs[j]).collect();
                    let hr2 = hh(&rh);
                    (0..h).map(|j| {
                        let z = sig(xi[h + j] + hr[h + j]);
                        let n = (xi[2 * h + j] + hr2[2 * h + j]).tanh();
                        (1.0 - z) * n + z * hs[j]
                    }).collect()
                }
            };
            hs = new_h;
            y[(b * d.t + tt) * d.h..(b * d.t + tt + 1) * d.h].copy_from_slice(&hs);
        }
        hn[b * d.h..(b + 1) * d.h].copy_from_slice(&hs);
        cn[b * d.h..(b + 1) * d.h].copy_from_slice(&cs);
    }
    (y, hn, cn)
}

const CELLS: [RnnCell; 5] = [RnnCell::RnnTanh, RnnCell::RnnRelu, RnnCell::Lstm, RnnCell::Gru, RnnCell::GruResetBefore];

#[test]
fn forward_matches_f64_reference_of_every_cell() {
    let d = Ref { b: 3, t: 5, i: 4, h: 6 };
    let mask: Vec<f32> = (0..d.b * d.t).map(|k| if k == 4 || k == 13 || k == 14 || k == 7 { 0.0 } else { 1.0 }).collect();
    for cell in CELLS {
        let gh = cell.gates() * d.h;
        let x = v(d.b * d.t * d.i, 1);
        let (wi, wh, bi, bh) = (rand_vec(gh * d.i, 2, -0.6, 0.6), rand_vec(gh * d.h, 3, -0.6, 0.6), v(gh, 4), v(gh, 5));
        let h0 = v(d.b * d.h, 6);
        let c0 = if cell == RnnCell::Lstm { v(d.b * d.h, 7) } else { vec![] };
        for (reverse, m) in [(false, None), (true, None), (false, Some(&mask)), (true, Some(&mask))] {
            let (wit, wht, bit, bht) = (t(wi.clone(), &[gh, d.i]), t(wh.clone(), &[gh, d.h]), t(bi.clone(), &[gh]), t(bh.clone(), &[gh]));
            let h0t = t(h0.clone(), &[d.b, d.h]);
            let c0t = (!c0.is_empty()).then(|| t(c0.clone(), &[d.b, d.h]));
            let mt = m.map(|m| t(m.clone(), &[d.b, d.t]));
            let out = ops::rnn(cell, &t(x.clone(), &[d.b, d.t, d.i]), Some(&h0t), c0t.as_ref(),
                RnnWeights { w_ih: &wit, w_hh: &wht, b_ih: Some(&bit), b_hh: Some(&bht) }, mt.as_ref(), reverse).unwrap();
            let s = if cell == RnnCell::Lstm { 2 } else { 1 };
            assert_eq!(out.shape(), &[d.b * d.t + s * d.b, d.h]);
            let got = out.to_vec_f32().unwrap();
            let (y, hn, cn) = reference(cell, &d, &x, &wi, &wh, &bi, &bh, &h0, &c0, m.map(|m| m.as_slice()), reverse);
            let mut want = y;
            want.extend(hn);
            if s == 2 {
                want.extend(cn);
            }
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((*a as f64 - b).abs() < 2e-6, "{:?} reverse={reverse} masked={}: element {k}: {a} vs {b}", cell, m.is_some());
            }
        }
    }
}

#[test]
fn gradients_through_time_for_every_cell() {
    let (b, tt, i, h) = (2, 3, 3, 3);
    let mask = vec![1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    for cell in CELLS {
        let gh = cell.gates() * h;
        for (reverse, masked) in [(false, false), (true, true)] {
            let m = masked.then(|| t(mask.clone(), &[b, tt]));
            let mut inputs = vec![
                (v(b * tt * i, 10), vec![b, tt, i]),
                (rand_vec(gh * i, 11, -0.8, 0.8), vec![gh, i]),
                (rand_vec(gh * h, 12, -0.8, 0.8), vec![gh, h]),
                (v(gh, 13), vec![gh]),
                (v(gh, 14), vec![gh]),
                (v(b * h, 15), vec![b, h]),
            ];
            let lstm = cell == RnnCell::Lstm;
            if lstm {
                inputs.push((v(b * h, 16), vec![b, h]));
            }
            // relu's kink: keep pre-activations away from 0 by using positive inputs only.
            if cell == RnnCell::RnnRelu {
                inputs[0].0 = rand_vec(b * tt * i, 17, 0.2, 1.0);
                inputs[3].0 = rand_vec(gh, 18, 0.3, 0.6);
            }
            gradcheck(&format!("{:?} reverse={reverse} masked={masked}", cell), inputs, |x| {
                ops::rnn(cell, &x[0], Some(&x[5]), if lstm { Some(&x[6]) } else { None },
                    RnnWeights { w_ih: &x[1], w_hh: &x[2], b_ih: Some(&x[3]), b_hh: Some(&x[4]) }, m.as_ref(), reverse)
            });
        }
    }
}

#[test]
fn optional_biases_and_initial_state() {
    let (b, tt, i, h) = (2, 4, 3, 5);
    gradcheck("lstm without biases or initial state", vec![
        (v(b * tt * i, 20), vec![b, tt, i]),
        (rand_vec(4 * h * i, 21, -0.5, 0.5), vec![4 * h, i]),
        (rand_vec(4 * h * h, 22, -0.5, 0.5), vec![4 * h, h]),
    ], |x| ops::rnn(RnnCell::Lstm, &x[0], None, None, RnnWeights { w_ih: &x[1], w_hh: &x[2], b_ih: None, b_hh: None }, None, false));
}

#[test]
fn typed_errors_name_the_problem() {
    let x = t(v(2 * 3 * 4, 1), &[2, 3, 4]);
    let wi = t(v(8 * 4, 2), &[8, 4]);
    let wh = t(v(8 * 2, 3), &[8, 2]);
    let w = |wi: &Tensor, wh: &Tensor| -> Result<Tensor> {
        ops::rnn(RnnCell::Lstm, &x, None, None, RnnWeights { w_ih: wi, w_hh: wh, b_ih: None, b_hh: None }, None, false)
    };
    assert!(w(&wi, &wh).is_ok());
    let e = w(&t(v(8 * 3, 2), &[8, 3]), &wh).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(e.message.contains("weight_ih") && e.message.contains("[8, 3]"), "{}", e.message);
    let e = w(&wi, &t(v(8 * 3, 3), &[8, 3])).unwrap_err();
    assert!(e.message.contains("weight_hh"), "{}", e.message);
    let e = ops::rnn(RnnCell::Gru, &x, None, Some(&t(v(4, 1), &[2, 2])),
        RnnWeights { w_ih: &t(v(6 * 4, 1), &[6, 4]), w_hh: &t(v(12, 1), &[6, 2]), b_ih: None, b_hh: None }, None, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Argument);
    let e = ops::rnn(RnnCell::Lstm, &t(v(12, 1), &[3, 4]), None, None, RnnWeights { w_ih: &wi, w_hh: &wh, b_ih: None, b_hh: None }, None, false).unwrap_err();
    assert!(e.kind == ErrorKind::Shape && e.message.contains("[batch, time, features]"), "{}", e.message);
    let e = ops::rnn(RnnCell::Lstm, &x, None, None, RnnWeights { w_ih: &wi, w_hh: &wh, b_ih: None, b_hh: None }, Some(&t(v(3, 1), &[3, 1])), false).unwrap_err();
    assert!(e.kind == ErrorKind::Shape && e.message.contains("mask"), "{}", e.message);
    let e = ops::rnn(RnnCell::Lstm, &x, Some(&t(v(6, 1), &[3, 2])), None, RnnWeights { w_ih: &wi, w_hh: &wh, b_ih: None, b_hh: None }, None, false).unwrap_err();
    assert!(e.message.contains("initial hidden state"), "{}", e.message);
}

/// Forward and all gradients of a run, as raw bits.
fn rnn_bits(cell: RnnCell, threads: usize) -> Vec<u32> {
    parallel::set_num_threads(threads);
    let (b, tt, i, h) = (24, 6, 40, 64);
    let gh = cell.gates() * h;
    let leaf = |d: Vec<f32>, s: &[usize]| {
        let x = t(d, s);
        x.set_requires_grad(true).unwrap();
        x
    };
    let x = leaf(v(b * tt * i, 30), &[b, tt, i]);
    let wi = leaf(rand_vec(gh * i, 31, -0.2, 0.2), &[gh, i]);
    let wh = leaf(rand_vec(gh * h, 32, -0.2, 0.2), &[gh, h]);
    let bi = leaf(v(gh, 33), &[gh]);
    let mask = t((0..b * tt).map(|k| if k % 7 == 3 { 0.0 } else { 1.0 }).collect(), &[b, tt]);
    let out = ops::rnn(cell, &x, None, None, RnnWeights { w_ih: &wi, w_hh: &wh, b_ih: Some(&bi), b_hh: None }, Some(&mask), true).unwrap();
    let w = t(v(out.numel(), 34), out.shape());
    backward(&ops::sum(&ops::mul(&out, &w).unwrap(), &[], false).unwrap(), None, false).unwrap();
    parallel::set_num_threads(1);
    let mut bits: Vec<u32> = out.to_vec_f32().unwrap().iter().map(|f| f.to_bits()).collect();
    for p in [&x, &wi, &wh, &bi] {
        bits.extend(p.grad().unwrap().to_vec_f32().unwrap().iter().map(|f| f.to_bits()));
    }
    bits
}

#[test]
fn recurrent_results_are_bitwise_identical_for_any_thread_count() {
    for cell in [RnnCell::Lstm, RnnCell::Gru, RnnCell::GruResetBefore] {
        assert!(rnn_bits(cell, 1) == rnn_bits(cell, 4), "{:?} differs between 1 and 4 threads", cell);
    }
}

// ---------------------------------------------------------------- attention

#[test]
fn attention_matches_a_hand_computed_case() {
    // One query, two keys: scores q·k / sqrt(2) = [1/sqrt2 * 1, 1/sqrt2 * 3]... chosen so that
    // the weights are exactly softmax([0, ln 3]) = [1/4, 3/4].
    let d = 2.0f32;
    let ln3 = 3.0f32.ln();
    let q = t(vec![1.0, 0.0], &[1, 1, 2]);
    let k = t(vec![0.0, 5.0, ln3 * d.sqrt(), 5.0], &[1, 2, 2]);
    let vv = t(vec![10.0, -2.0, 2.0, 6.0], &[1, 2, 2]);
    let (out, w) = ops::attention(&q, &k, &vv, None, false, None).unwrap();
    let w = w.to_vec_f32().unwrap();
    assert!((w[0] - 0.25).abs() < 1e-6 && (w[1] - 0.75).abs() < 1e-6, "{w:?}");
    let o = out.to_vec_f32().unwrap();
    assert!((o[0] - 4.0).abs() < 1e-5 && (o[1] - 4.0).abs() < 1e-5, "{o:?}");
    // Blocking the second key leaves all the weight on the first.
    let mask = t(vec![1.0, 0.0], &[1, 1, 2]);
    let (out, w) = ops::attention(&q, &k, &vv, Some(&mask), false, None).unwrap();
    assert_eq!(w.to_vec_f32().unwrap(), vec![1.0, 0.0]);
    assert_eq!(out.to_vec_f32().unwrap(), vec![10.0, -2.0]);
}

#[test]
fn causal_and_padding_masks() {
    let (tq, tk) = (3, 3);
    let x = t(v(2 * tq * tk, 40), &[2, tq, tk]);
    let p = ops::masked_softmax(&x, None, true, 0.5).unwrap().to_vec_f32().unwrap();
    for b in 0..2 {
        for i in 0..tq {
            let row = &p[(b * tq + i) * tk..(b * tq + i + 1) * tk];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            for (j, &pj) in row.iter().enumerate() {
                assert_eq!(pj == 0.0, j > i, "row {i}: {row:?}");
            }
        }
    }
    // Fewer queries than keys: the last query sees every key (incremental decoding).
    let p = ops::masked_softmax(&t(v(2 * 4, 41), &[1, 2, 4]), None, true, 1.0).unwrap().to_vec_f32().unwrap();
    assert!(p[3] == 0.0 && p[2] > 0.0 && p[7] > 0.0, "{p:?}");
    // A padding mask [B, 1, Tk] broadcast over queries, and a row with nothing to attend.
    let pad = t(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0], &[2, 1, 3]);
    let p = ops::masked_softmax(&x, Some(&pad), false, 1.0).unwrap().to_vec_f32().unwrap();
    for i in 0..tq {
        assert_eq!(p[i * tk + 2], 0.0);
        assert!((p[i * tk] + p[i * tk + 1] - 1.0).abs() < 1e-6);
        assert!(p[(tq + i) * tk..(tq + i + 1) * tk].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn attention_gradients() {
    let mask = vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    gradcheck("masked_softmax", vec![(v(2 * 3 * 4, 50), vec![2, 3, 4])], |x| {
        ops::masked_softmax(&x[0], Some(&t(mask.clone(), &[2, 1, 4])), true, 0.7)
    });
    gradcheck("attention (q, k, v)", vec![
        (v(2 * 2 * 3 * 4, 51), vec![2, 2, 3, 4]),
        (v(2 * 2 * 5 * 4, 52), vec![2, 2, 5, 4]),
        (v(2 * 2 * 5 * 3, 53), vec![2, 2, 5, 3]),
    ], |x| Ok(ops::attention(&x[0], &x[1], &x[2], Some(&t(vec![1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0], &[2, 1, 1, 5])), false, None)?.0));
    gradcheck("causal self-attention", vec![(v(3 * 4 * 2, 54), vec![3, 4, 2])], |x| Ok(ops::attention(&x[0], &x[0], &x[0], None, true, Some(0.9))?.0));
}

#[test]
fn attention_errors_and_determinism() {
    let q = t(v(2 * 3 * 4, 60), &[2, 3, 4]);
    let e = ops::attention(&q, &t(v(2 * 3 * 5, 61), &[2, 3, 5]), &q, None, false, None).unwrap_err();
    assert!(e.kind == ErrorKind::Shape && e.message.contains("dimension 4"), "{}", e.message);
    let e = ops::attention(&q, &q, &t(v(2 * 2 * 4, 62), &[2, 2, 4]), None, false, None).unwrap_err();
    assert!(e.kind == ErrorKind::Shape && e.message.contains("values"), "{}", e.message);
    let e = ops::masked_softmax(&q, Some(&t(v(2, 1), &[2, 1])), false, 1.0).unwrap_err();
    assert!(e.kind == ErrorKind::Shape && e.message.contains("does not broadcast"), "{}", e.message);

    let run = |threads: usize| -> Vec<u32> {
        parallel::set_num_threads(threads);
        let q = t(v(4 * 4 * 64 * 16, 63), &[4, 4, 64, 16]);
        q.set_requires_grad(true).unwrap();
        let (o, w) = ops::attention(&q, &q, &q, None, true, None).unwrap();
        backward(&ops::sum(&ops::mul(&o, &o).unwrap(), &[], false).unwrap(), None, false).unwrap();
        parallel::set_num_threads(1);
        let mut bits: Vec<u32> = o.to_vec_f32().unwrap().iter().map(|f| f.to_bits()).collect();
        bits.extend(w.to_vec_f32().unwrap().iter().map(|f| f.to_bits()));
        bits.extend(q.grad().unwrap().to_vec_f32().unwrap().iter().map(|f| f.to_bits()));
        bits
    };
    assert!(run(1) == run(3), "attention differs between 1 and 3 threads");
}

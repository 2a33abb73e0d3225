//! The inference self-attention kernel from a packed projection (`ops::packed_self_attention`)
//! against the op sequence it replaces (split heads, `attention`, merge heads): bitwise equal over
//! shapes on both gemm paths (<= 3 and > 3 queries, more than one k block), every mask layout,
//! causality and thread counts; and its typed errors.

use edgegrad_core::ops;
use edgegrad_core::{autograd, parallel, ErrorKind, Tensor};

mod common;
use common::v;

fn t(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_f32(data, shape).unwrap()
}

/// What MultiHeadAttention did before: `[B, T, 3E]` -> heads `[3, B, H, T, D]` -> attention -> `[B, T, E]`.
fn unfused(qkv: &Tensor, heads: usize, mask: Option<&Tensor>, causal: bool, scale: f32) -> Tensor {
    let (b, tt, e) = (qkv.shape()[0], qkv.shape()[1], qkv.shape()[2] / 3);
    let d = e / heads;
    let r = ops::reshape(qkv, &[b, tt, 3, heads, d]).unwrap();
    let p = ops::permute(&r, &[2, 0, 3, 1, 4]).unwrap();
    let part = |i: isize| ops::slice(&p, &[i, 0, 0, 0, 0], &[i + 1, b as isize, heads as isize, tt as isize, d as isize], &[1, 1, 1, 1, 1]).unwrap();
    let mask5 = mask.map(|m| {
        let mut s = vec![1];
        s.extend_from_slice(m.shape());
        ops::reshape(m, &s).unwrap()
    });
    let (o, _) = ops::attention(&part(0), &part(1), &part(2), mask5.as_ref(), causal, Some(scale)).unwrap();
    let merged = ops::permute(&o, &[0, 1, 3, 2, 4]).unwrap();
    ops::contiguous(&ops::reshape(&ops::contiguous(&merged).unwrap(), &[b, tt, e]).unwrap()).unwrap()
}

fn bits(x: &Tensor) -> Vec<u32> {
    x.to_vec_f32().unwrap().iter().map(|f| f.to_bits()).collect()
}

/// Keep-mask with about a quarter of the entries blocked (some rows fully blocked).
fn mask(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    t(v(n, seed).iter().map(|x| if *x < -0.5 { 0.0 } else { 1.0 }).collect(), shape)
}

#[test]
fn packed_self_attention_equals_the_unfused_ops_bitwise() {
    let mut cases = 0;
    for &(b, tt, heads, d) in &[(1, 1, 1, 1), (1, 2, 2, 3), (1, 3, 4, 8), (1, 4, 4, 32), (2, 5, 3, 7), (1, 16, 4, 32), (2, 17, 2, 16), (1, 64, 4, 32), (1, 300, 2, 4)] {
        let e = heads * d;
        let qkv = t(v(b * tt * 3 * e, (b * 131 + tt * 7 + heads) as u64).iter().map(|x| 3.0 * x).collect(), &[b, tt, 3 * e]);
        let masks: Vec<Option<Tensor>> = vec![
            None,
            Some(mask(&[b, 1, 1, tt], 5)),
            Some(mask(&[tt, tt], 6)),
            Some(mask(&[b, 1, tt, tt], 7)),
            Some(mask(&[b, heads, tt, tt], 8)),
        ];
        for m in &masks {
            for causal in [false, true] {
                for threads in [1, 2] {
                    parallel::set_num_threads(threads);
                    let scale = 1.0 / (d as f32).sqrt();
                    let got = ops::packed_self_attention(&qkv, heads, m.as_ref(), causal, scale).unwrap();
                    let want = unfused(&qkv, heads, m.as_ref(), causal, scale);
                    parallel::set_num_threads(1);
                    assert_eq!(got.shape(), &[b, tt, e]);
                    assert!(bits(&got) == bits(&want), "b{b} t{tt} h{heads} d{d} mask {:?} causal {causal} threads {threads}", m.as_ref().map(|m| m.shape().to_vec()));
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 9 * 5 * 2 * 2);
}

#[test]
fn packed_self_attention_errors() {
    let qkv = t(v(2 * 3 * 12, 1), &[2, 3, 12]);
    let e = ops::packed_self_attention(&qkv, 3, None, false, 1.0).unwrap_err();
    assert!(e.kind == ErrorKind::Shape && e.message.contains("multiple of 3 heads"), "{}", e.message);
    let e = ops::packed_self_attention(&qkv, 0, None, false, 1.0).unwrap_err();
    assert!(e.kind == ErrorKind::Argument, "{}", e.message);
    let e = ops::packed_self_attention(&qkv, 2, None, false, f32::NAN).unwrap_err();
    assert!(e.kind == ErrorKind::Argument && e.message.contains("finite"), "{}", e.message);
    let e = ops::packed_self_attention(&qkv, 2, Some(&mask(&[3, 3, 3], 2)), false, 1.0).unwrap_err();
    assert!(e.kind == ErrorKind::Shape && e.message.contains("does not broadcast"), "{}", e.message);
    let e = ops::packed_self_attention(&t(v(12, 1), &[1, 12]), 2, None, false, 1.0).unwrap_err();
    assert!(e.kind == ErrorKind::Shape, "{}", e.message);
    qkv.set_requires_grad(true).unwrap();
    let e = ops::packed_self_attention(&qkv, 2, None, false, 1.0).unwrap_err();
    assert!(e.kind == ErrorKind::Autograd, "{}", e.message);
    // Without recording the same tensor is accepted.
    {
        let _g = autograd::NoGradGuard::new();
        assert!(ops::packed_self_attention(&qkv, 2, None, false, 1.0).is_ok());
    }
    let empty = t(vec![], &[1, 0, 12]);
    assert_eq!(ops::packed_self_attention(&empty, 2, None, true, 1.0).unwrap().shape(), &[1, 0, 4]);
}

#[test]
fn encoder_layer_infer_equals_its_ops_and_refuses_recording() {
    let (b, tt, e, heads, ff) = (2, 5, 8, 2, 12);
    let p = |n: usize, shape: &[usize], seed: u64| t(v(n, seed), shape);
    let (in_w, in_b, out_w, out_b) = (p(3 * e * e, &[3 * e, e], 1), p(3 * e, &[3 * e], 2), p(e * e, &[e, e], 3), p(e, &[e], 4));
    let (w1, b1, w2) = (p(ff * e, &[ff, e], 5), p(ff, &[ff], 6), p(e * ff, &[e, ff], 7));
    let (g, be) = (p(e, &[e], 9), p(e, &[e], 10));
    let x = p(b * tt * e, &[b, tt, e], 11);
    let l = ops::EncoderLayerRef {
        in_proj: (&in_w, Some(&in_b)), out_proj: (&out_w, Some(&out_b)), linear1: (&w1, Some(&b1)), linear2: (&w2, None),
        norm1: (Some(&g), Some(&be), 1e-5), norm2: (None, None, 1e-3), heads, activation: ops::FfActivation::Gelu, norm_first: false,
    };
    let got = ops::encoder_layer_infer(&x, &l, None, true, 0.5).unwrap();
    // Post-LN by hand from the same ops.
    let add = |a: &Tensor, c: &Tensor| ops::binary(ops::BinaryOp::Add, a, c).unwrap();
    let qkv = ops::linear(&x, &in_w, Some(&in_b), false).unwrap();
    let sa = ops::linear(&ops::packed_self_attention(&qkv, heads, None, true, 0.5).unwrap(), &out_w, Some(&out_b), false).unwrap();
    let x1 = ops::layer_norm(&add(&x, &sa), Some(&g), Some(&be), 1, 1e-5).unwrap();
    let h = ops::activation(ops::Activation::Gelu, &ops::linear(&x1, &w1, Some(&b1), false).unwrap(), 0.0).unwrap();
    let want = ops::layer_norm(&add(&x1, &ops::linear(&h, &w2, None, false).unwrap()), None, None, 1, 1e-3).unwrap();
    assert_eq!(got.shape(), &[b, tt, e]);
    assert!(bits(&got) == bits(&want), "encoder_layer_infer differs from its ops");
    let e1 = ops::encoder_layer_infer(&t(v(e, 1), &[1, e]), &l, None, false, 0.5).unwrap_err();
    assert!(e1.kind == ErrorKind::Shape, "{}", e1.message);
    g.set_requires_grad(true).unwrap();
    let e2 = ops::encoder_layer_infer(&x, &l, None, false, 0.5).unwrap_err();
    assert!(e2.kind == ErrorKind::Autograd, "{}", e2.message);
}

//! No user argument can panic the engine: every op below is called over a grid of shapes
//! (rank 0, empty and size-1 dimensions) and argument values (axes out of range, huge sizes and
//! steps, wrapping counts), and must return Ok or a typed error. Run in the test profile, where
//! integer overflow panics, so a size that would silently wrap in the wasm build fails here.

use edgegrad_core::ops::{self, BinaryOp, CompareOp};
use edgegrad_core::shape::MAX_ELEMENTS;
use edgegrad_core::{DType, ErrorKind, Result, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn shapes() -> Vec<Vec<usize>> {
    vec![vec![], vec![0], vec![1], vec![3], vec![2, 0], vec![0, 3], vec![1, 1], vec![2, 3], vec![2, 1, 3], vec![1, 0, 2]]
}

fn t(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32((0..n).map(|i| i as f32 * 0.5 - 1.0).collect(), shape).unwrap()
}

const AXES: [isize; 9] = [-4, -3, -2, -1, 0, 1, 2, 3, isize::MIN];
const BIG: [isize; 7] = [isize::MIN, -(1 << 30), -1, 0, 1, 1 << 30, isize::MAX];

/// Runs `f`, failing the test with `what` if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Option<Result<T>> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            eprintln!("PANIC: {}", what);
            None
        }
    }
}

#[test]
fn ops_never_panic_on_bad_arguments() {
    // Quiet the default hook's output for the panics we are hunting (each one is reported).
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = Vec::new();
    let mut check = |what: String, ok: bool| {
        if !ok {
            panics.push(what);
        }
    };
    for s in shapes() {
        let x = t(&s);
        for &a in &AXES {
            check(format!("sum({:?}, {})", s, a), no_panic("", || ops::sum(&x, &[a], false)).is_some());
            check(format!("mean({:?}, {})", s, a), no_panic("", || ops::mean(&x, &[a], true)).is_some());
            check(format!("max({:?}, {})", s, a), no_panic("", || ops::max(&x, &[a], false)).is_some());
            check(format!("argmax({:?}, {})", s, a), no_panic("", || ops::argmax(&x, a, false)).is_some());
            check(format!("softmax({:?}, {})", s, a), no_panic("", || ops::softmax(&x, a)).is_some());
            check(format!("transpose({:?}, {}, 0)", s, a), no_panic("", || ops::transpose(&x, a, 0)).is_some());
            check(format!("transpose({:?}, {}, {})", s, a, a), no_panic("", || ops::transpose(&x, a, a)).is_some());
            check(format!("concat({:?}, {})", s, a), no_panic("", || ops::concat(&[x.clone(), x.clone()], a)).is_some());
            let idx = Tensor::from_i32(vec![0, 1, -1, 5], &[4]).unwrap();
            let idx0 = Tensor::from_i32(vec![0], &[]).unwrap();
            check(format!("index_select({:?}, {})", s, a), no_panic("", || ops::index_select(&x, a, &idx)).is_some());
            check(format!("index_select({:?}, {}, scalar)", s, a), no_panic("", || ops::index_select(&x, a, &idx0)).is_some());
            let gi = Tensor::from_i32(vec![0; x.numel()], x.shape()).unwrap();
            check(format!("gather({:?}, {})", s, a), no_panic("", || ops::gather(&x, a, &gi)).is_some());
            check(format!("permute({:?}, [{}])", s, a), no_panic("", || ops::permute(&x, &[a])).is_some());
        }
        check(format!("sum({:?}, all)", s), no_panic("", || ops::sum(&x, &[], false)).is_some());
        check(format!("max({:?}, all)", s), no_panic("", || ops::max(&x, &[], false)).is_some());
        for &b in &BIG {
            for &e in &BIG {
                for &st in &[1isize, 2, 1 << 30, isize::MAX, 0, -1] {
                    let r = x.rank();
                    let (bs, es, ss) = (vec![b; r], vec![e; r], vec![st; r]);
                    let res = no_panic("", || ops::slice(&x, &bs, &es, &ss));
                    check(format!("slice({:?}, {}, {}, {})", s, b, e, st), res.is_some());
                    if let Some(Ok(y)) = res {
                        // The view must be readable and within its storage.
                        check(format!("slice read({:?}, {}, {}, {})", s, b, e, st), no_panic("", || y.to_vec_f32()).is_some());
                    }
                }
            }
        }
        for spec in [vec![-1isize], vec![-1, -1], vec![0, -1], vec![isize::MAX, 2], vec![1 << 20, 1 << 20, -1], vec![]] {
            check(format!("reshape({:?}, {:?})", s, spec),
                no_panic("", || ops::infer_shape(&spec, x.numel(), x.shape()).and_then(|sh| ops::reshape(&x, &sh))).is_some());
        }
        for target in [vec![1usize << 16, 1 << 16], vec![usize::MAX], vec![MAX_ELEMENTS, 2, 3], vec![3, 0, 1 << 31]] {
            let mut full = target.clone();
            full.extend_from_slice(&s);
            check(format!("expand({:?}, {:?})", s, full), no_panic("", || ops::expand(&x, &full)).is_some());
            check(format!("zeros({:?})", full), no_panic("", || Tensor::zeros(&full, DType::F32)).is_some());
        }
        for y in shapes() {
            let yt = t(&y);
            check(format!("matmul({:?}, {:?})", s, y), no_panic("", || ops::matmul(&x, &yt)).is_some());
            check(format!("add({:?}, {:?})", s, y), no_panic("", || ops::add(&x, &yt)).is_some());
            check(format!("less({:?}, {:?})", s, y), no_panic("", || ops::compare(CompareOp::Lt, &x, &yt)).is_some());
            check(format!("where({:?}, {:?})", s, y), no_panic("", || ops::where_(&x, &yt, &x)).is_some());
            if let Some(&last) = y.last() {
                let w = t(&[2, last]);
                check(format!("linear({:?}, {:?})", y, w.shape()), no_panic("", || ops::linear(&yt, &w, None, false)).is_some());
            }
        }
    }
    // Broadcasting [n, 1] against [1, n] past the element limit: refused before allocating.
    let tall = ops::expand(&t(&[1]), &[1 << 16, 1]).unwrap();
    let wide = ops::expand(&t(&[1]), &[1, 1 << 16]).unwrap();
    for (what, r) in [
        ("add(tall, wide)", no_panic("", || ops::binary(BinaryOp::Add, &tall, &wide))),
        ("compare(tall, wide)", no_panic("", || ops::compare(CompareOp::Lt, &tall, &wide))),
        ("matmul(tall, wide)", no_panic("", || ops::matmul(&tall, &wide))),
    ] {
        check(what.into(), matches!(r, Some(Err(_))));
    }
    // Many expanded views concatenated past usize.
    let huge = ops::expand(&t(&[1]), &[MAX_ELEMENTS]).unwrap();
    let many: Vec<Tensor> = (0..9).map(|_| huge.clone()).collect();
    check("concat(9 x 2^29)".into(), no_panic("", || ops::concat(&many, 0)).is_some());
    for (a, b, st) in [(0.0, 1e10, 1.0), (0.0, 1e300, 1e-300), (-1e308, 1e308, 1.0), (3e9, 3e9 + 2.0, 1.0), (0.0, 5.0, -1.0)] {
        check(format!("arange({}, {}, {})", a, b, st), no_panic("", || Tensor::arange(a, b, st, DType::I32)).is_some());
        check(format!("arange({}, {}, {})", a, b, st), no_panic("", || Tensor::arange(a, b, st, DType::F32)).is_some());
    }
    let _ = std::panic::take_hook();
    assert!(panics.is_empty(), "{} calls panicked:\n{}", panics.len(), panics.join("\n"));
}

#[test]
fn typed_errors_for_the_reported_cases() {
    let kind = |r: Result<Tensor>| r.err().map(|e| e.kind);
    // arange(0, 1e10): refused by count, before any allocation.
    let e = Tensor::arange(0.0, 1e10, 1.0, DType::F32).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Argument);
    assert!(e.message.contains("10000000000"), "{}", e.message);
    // int32 arange outside the int32 range no longer saturates.
    assert_eq!(kind(Tensor::arange(3e9, 3e9 + 2.0, 1.0, DType::I32)), Some(ErrorKind::Argument));
    // scalar(1).sum(0): a scalar has no axis 0.
    assert_eq!(kind(ops::sum(&Tensor::scalar(1.0), &[0], false)), Some(ErrorKind::Shape));
    assert_eq!(kind(ops::argmax(&Tensor::scalar(1.0), -1, false)), Some(ErrorKind::Shape));
    // Sizes whose product passes 2^32 are refused, not wrapped.
    assert_eq!(kind(Tensor::zeros(&[1 << 16, 1 << 16, 2], DType::F32)), Some(ErrorKind::Shape));
    let one = t(&[1]);
    assert_eq!(kind(ops::expand(&one, &[1 << 16, 1 << 16])), Some(ErrorKind::Shape));
}

#[test]
fn empty_reductions_follow_pytorch() {
    // sum of nothing is 0, mean of nothing is NaN, max of nothing is an error.
    let x = t(&[2, 0]);
    assert_eq!(ops::sum(&x, &[1], false).unwrap().to_vec_f32().unwrap(), vec![0.0, 0.0]);
    let m = ops::mean(&x, &[1], false).unwrap().to_vec_f32().unwrap();
    assert!(m.len() == 2 && m.iter().all(|v| v.is_nan()));
    assert!(ops::mean(&t(&[0]), &[], false).unwrap().to_vec_f32().unwrap()[0].is_nan());
    assert_eq!(ops::max(&x, &[1], false).unwrap_err().kind, ErrorKind::Shape);
    // Reducing the non-empty axis of an empty tensor is an empty result, not an error.
    assert_eq!(ops::max(&x, &[0], false).unwrap().shape(), &[0]);
}

#[test]
fn empty_operands_give_empty_or_bias_results() {
    // [3] + [0, 3] broadcasts to an empty [0, 3] (this used to divide by zero in the kernel).
    let y = ops::add(&t(&[3]), &t(&[0, 3])).unwrap();
    assert_eq!(y.shape(), &[0, 3]);
    // A linear layer with zero input features gives the bias for every row.
    let b = Tensor::from_f32(vec![1.0, 2.0], &[2]).unwrap();
    let y = ops::linear(&t(&[3, 0]), &t(&[2, 0]), Some(&b), false).unwrap();
    assert_eq!(y.shape(), &[3, 2]);
    assert_eq!(y.to_vec_f32().unwrap(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
}

#[test]
fn nn_ops_never_panic_on_bad_arguments() {
    use edgegrad_core::ops::Conv2dOptions;
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = Vec::new();
    let nhwc = [vec![1usize, 4, 4, 2], vec![0, 4, 4, 2], vec![1, 0, 4, 2], vec![1, 4, 4, 0], vec![2, 1, 1, 1], vec![4, 4], vec![]];
    let sizes = [0usize, 1, 2, 3, 5, 1 << 20, usize::MAX];
    for s in &nhwc {
        let x = t(s);
        for &k in &sizes {
            for &st in &[0usize, 1, 2, usize::MAX] {
                for &p in &[0usize, 1, 1 << 30, usize::MAX] {
                    let w = Tensor::zeros(&[k.min(3), k.min(3), 2, 3], DType::F32).unwrap();
                    let o = Conv2dOptions { stride: [st, st], padding: [p, 0, p, 0], dilation: [k.max(1), 1], groups: k };
                    for (what, ok) in [
                        ("max_pool2d", no_panic("", || ops::max_pool2d(&x, [k, k], [st, st], [p, 0, 0, p])).is_some()),
                        ("avg_pool2d", no_panic("", || ops::avg_pool2d(&x, [k, 1], [st, 1], [0, p, p, 0], true)).is_some()),
                        ("conv2d", no_panic("", || ops::conv2d(&x, &w, None, &o)).is_some()),
                    ] {
                        if !ok {
                            panics.push(format!("{}({:?}, k={}, stride={}, pad={})", what, s, k, st, p));
                        }
                    }
                }
            }
        }
        for &nd in &[0usize, 1, 2, 4, 5, usize::MAX] {
            if no_panic("", || ops::layer_norm(&x, None, None, nd, 1e-5)).is_none() {
                panics.push(format!("layer_norm({:?}, {})", s, nd));
            }
        }
        for &eps in &[0.0f32, -1.0, f32::NAN, f32::INFINITY] {
            if no_panic("", || ops::layer_norm(&x, None, None, 1, eps)).is_none() {
                panics.push(format!("layer_norm({:?}, eps={})", s, eps));
            }
            let (m, v) = (t(&[s.last().copied().unwrap_or(1)]), t(&[s.last().copied().unwrap_or(1)]));
            if no_panic("", || ops::batch_norm(&x, None, None, Some(&m), Some(&v), true, 0.1, eps, true)).is_none() {
                panics.push(format!("batch_norm({:?}, eps={})", s, eps));
            }
        }
        for &scale in &[1.0f32, 0.0, f32::NAN] {
            for causal in [false, true] {
                if no_panic("", || ops::masked_softmax(&x, None, causal, scale)).is_none() {
                    panics.push(format!("masked_softmax({:?}, causal={}, scale={})", s, causal, scale));
                }
                if no_panic("", || ops::attention(&x, &x, &x, None, causal, Some(scale))).is_none() {
                    panics.push(format!("attention({:?}, causal={})", s, causal));
                }
            }
        }
        for &alpha in &[0.0f32, -1.0, f32::NAN, f32::INFINITY] {
            if no_panic("", || ops::leaky_relu(&x, alpha).and_then(|_| ops::elu(&x, alpha))).is_none() {
                panics.push(format!("leaky_relu/elu({:?}, {})", s, alpha));
            }
        }
        for &(lo, hi) in &[(0.0f32, 1.0f32), (1.0, 0.0), (f32::NAN, 1.0), (f32::NEG_INFINITY, f32::INFINITY)] {
            if no_panic("", || ops::clamp(&x, lo, hi)).is_none() {
                panics.push(format!("clamp({:?}, {}, {})", s, lo, hi));
            }
        }
        for &p in &[0.0f32, 0.5, -1.0, f32::NAN, f32::INFINITY, 1e30] {
            if no_panic("", || ops::pow_scalar(&x, p)).is_none() {
                panics.push(format!("pow_scalar({:?}, {})", s, p));
            }
        }
        for d in [DType::F32, DType::I32, DType::I8] {
            if no_panic("", || ops::cast(&x, d).and_then(|y| ops::cast(&y, DType::F32))).is_none() {
                panics.push(format!("cast({:?}, {:?})", s, d));
            }
        }
    }
    let _ = std::panic::take_hook();
    assert!(panics.is_empty(), "{} calls panicked:\n{}", panics.len(), panics.join("\n"));
}

#[test]
fn qconv2d_with_a_huge_stride_gives_one_output_position() {
    use edgegrad_core::ops::quant::{self, QOutput, QParams, WeightLayout};
    use edgegrad_core::ops::Conv2dOptions;
    std::panic::set_hook(Box::new(|_| {}));
    let w = t(&[1, 1, 2, 3]);
    let (wq, ws) = quant::quantize_per_channel(&w, 3).unwrap();
    let lay = WeightLayout::Conv { groups: 1 };
    let packed = quant::pack_weights(&wq, lay).unwrap();
    let xp = QParams::new(0.1, 0).unwrap();
    let c = quant::layer_constants(&wq, &ws, None, lay, xp, None).unwrap();
    let x = Tensor::from_i8(vec![1; 32], &[1, 4, 4, 2]).unwrap();
    let scales = c.scales.clone().unwrap();
    for st in [usize::MAX, 1 << 31, 5] {
        let o = Conv2dOptions { stride: [st, st], ..Default::default() };
        let r = no_panic("qconv2d", || quant::qconv2d(&x, 0, &packed, [1, 1, 2], &c.offsets, &o, &QOutput::Float { scales: &scales }, false));
        let y = r.unwrap_or_else(|| panic!("qconv2d with stride {} panicked", st)).unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 3]);
    }
    let _ = std::panic::take_hook();
}

//! Per-example gradients of layer weights (differential privacy, `eg.privacy`), from what a layer
//! saw in the forward (its input) and got in the backward (its output's gradient). Each is one
//! kernel over the whole batch, never a loop of batch-size-1 backward passes. These ops are
//! terminal (they record no autograd history): their results feed clipping and the optimizer.

use super::conv::{window_out_size, Conv2dOptions};
use super::{expect_f32, new_f32};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::conv::{conv2d_backward, ConvGeom};
use crate::kernels::grad_sample::{self as k, Batch};
use crate::shape::{check_shape_valid, fmt_shape};
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::ensure;

/// `(B, T, K)` of a `[B, ..., K]` tensor: the middle dims are positions (a sequence, pixels).
fn btk(x: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    ensure!(x.rank() >= 2, Shape, "{}: expected [batch, ..., features], got shape {}", what, fmt_shape(x.shape()));
    let s = x.shape();
    Ok((s[0], s[1..s.len() - 1].iter().product(), s[s.len() - 1]))
}

fn outer_args(a: &Tensor, g: &Tensor, op: &str) -> Result<(usize, usize, usize, usize)> {
    expect_f32(a, op)?;
    expect_f32(g, op)?;
    let (b, t, kk) = btk(a, op)?;
    let (b2, t2, n) = btk(g, op)?;
    ensure!(b == b2 && t == t2 && a.shape()[..a.rank() - 1] == g.shape()[..g.rank() - 1], Shape,
        "{}: inputs {} and output gradients {} must agree on every dimension but the last",
        op, fmt_shape(a.shape()), fmt_shape(g.shape()));
    Ok((b, t, kk, n))
}

/// Per-example sums of outer products: `a [B, ..., K]`, `g [B, ..., N]` (same leading dims) give
/// `[B, K, N]` with `out[i] = Σ_t a[i,t]ᵀ g[i,t]`. For a Linear layer (`y = x Wᵀ`), the per-example
/// weight gradients `[B, out, in]` are `grad_sample_outer(dy, x)`.
pub fn grad_sample_outer(a: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (b, t, kk, n) = outer_args(a, g, "grad_sample_outer")?;
    let shape = [b, kk, n];
    check_shape_valid(&shape)?;
    let (ac, gc) = (a.contiguous_nograd()?, g.contiguous_nograd()?);
    let (av, gv) = (ac.f32s()?, gc.f32s()?);
    let mut out = alloc_f32(b * kk * n);
    k::outer_per_example(b, t, kk, n, Batch { data: &av, off: 0, bs: t * kk, rs: kk },
        Batch { data: &gv, off: 0, bs: t * n, rs: n }, &mut out);
    new_f32(out, &shape)
}

/// Squared Frobenius norms `[B]` of `grad_sample_outer(a, g)`, without materialising it (ghost
/// clipping: the Gram trick over positions when cheaper, bounded chunks otherwise).
pub fn grad_sample_outer_norms_sq(a: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (b, t, kk, n) = outer_args(a, g, "grad_sample_outer_norms_sq")?;
    let (ac, gc) = (a.contiguous_nograd()?, g.contiguous_nograd()?);
    let (av, gv) = (ac.f32s()?, gc.f32s()?);
    let mut out = alloc_f32(b);
    k::outer_norms_sq(b, t, kk, n, Batch { data: &av, off: 0, bs: t * kk, rs: kk },
        Batch { data: &gv, off: 0, bs: t * n, rs: n }, &mut out, false);
    new_f32(out, &[b])
}

/// Squared norms `[B]` of materialised per-example gradients `g [B, ...]` (each example's whole
/// gradient), summed in f64 without a squared copy.
pub fn per_example_norms_sq(g: &Tensor) -> Result<Tensor> {
    expect_f32(g, "per_example_norms_sq")?;
    ensure!(g.rank() >= 1, Shape, "per_example_norms_sq: expected [batch, ...], got a scalar");
    let b = g.shape()[0];
    let len = g.shape()[1..].iter().product();
    let gc = g.contiguous_nograd()?;
    let mut out = alloc_f32(b);
    k::rows_norms_sq(&gc.f32s()?, b, len, &mut out);
    new_f32(out, &[b])
}

/// The geometry of a convolution whose input is `x` and output gradient `dy`, checked.
fn conv_geom(x: &Tensor, dy: &Tensor, kernel: [usize; 2], o: &Conv2dOptions, op: &str) -> Result<ConvGeom> {
    expect_f32(x, op)?;
    expect_f32(dy, op)?;
    ensure!(x.rank() == 4, Shape, "{}: expected an NHWC input of rank 4, got shape {}", op, fmt_shape(x.shape()));
    ensure!(dy.rank() == 4, Shape, "{}: expected an NHWC output gradient of rank 4, got shape {}", op, fmt_shape(dy.shape()));
    let [kh, kw] = kernel;
    let [s_h, s_w] = o.stride;
    let [d_h, d_w] = o.dilation;
    let [p_t, p_b, p_l, p_r] = o.padding;
    let groups = o.groups;
    ensure!(kh >= 1 && kw >= 1, Argument, "{}: the kernel must be at least 1x1, got [{}, {}]", op, kh, kw);
    ensure!(groups >= 1, Argument, "{}: groups must be at least 1, got {}", op, groups);
    ensure!(s_h >= 1 && s_w >= 1, Argument, "{}: strides must be at least 1, got [{}, {}]", op, s_h, s_w);
    ensure!(d_h >= 1 && d_w >= 1, Argument, "{}: dilations must be at least 1, got [{}, {}]", op, d_h, d_w);
    let (n, h, wd, cin) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let cout = dy.shape()[3];
    ensure!(cin % groups == 0 && cout % groups == 0, Shape,
        "{}: {} input and {} output channels cannot be split into {} groups", op, cin, cout, groups);
    let oh = window_out_size(op, "height", h, p_t, p_b, kh, d_h, s_h)?;
    let ow = window_out_size(op, "width", wd, p_l, p_r, kw, d_w, s_w)?;
    ensure!(dy.shape() == [n, oh, ow, cout], Shape,
        "{}: the output gradient has shape {} but the convolution of input {} gives [{}, {}, {}, {}]",
        op, fmt_shape(dy.shape()), fmt_shape(x.shape()), n, oh, ow, cout);
    let (s_h, s_w) = (s_h.min(h + p_t + p_b), s_w.min(wd + p_l + p_r));
    Ok(ConvGeom { n, h, w: wd, cin, kh, kw, cout, groups, sh: s_h, sw: s_w, dh: d_h, dw: d_w, pt: p_t, pl: p_l, oh, ow })
}

/// Per-example weight gradients of `conv2d` (HWIO): `[B, KH, KW, Cin/groups, Cout]`, example i's
/// being `unfold(x_i)ᵀ · dy_i` per group.
pub fn grad_sample_conv2d(x: &Tensor, dy: &Tensor, kernel: [usize; 2], o: &Conv2dOptions) -> Result<Tensor> {
    let g = conv_geom(x, dy, kernel, o, "grad_sample_conv2d")?;
    let shape = [g.n, g.kh, g.kw, g.cin_g(), g.cout];
    check_shape_valid(&shape)?;
    let (xc, dc) = (x.contiguous_nograd()?, dy.contiguous_nograd()?);
    let mut out = alloc_f32(g.n * g.k() * g.cout);
    k::conv2d_per_example(&xc.f32s()?, &dc.f32s()?, &g, &mut out);
    new_f32(out, &shape)
}

/// Squared norms `[B]` of `grad_sample_conv2d(...)` without materialising it.
pub fn grad_sample_conv2d_norms_sq(x: &Tensor, dy: &Tensor, kernel: [usize; 2], o: &Conv2dOptions) -> Result<Tensor> {
    let g = conv_geom(x, dy, kernel, o, "grad_sample_conv2d_norms_sq")?;
    let (xc, dc) = (x.contiguous_nograd()?, dy.contiguous_nograd()?);
    let mut out = alloc_f32(g.n);
    k::conv2d_norms_sq(&xc.f32s()?, &dc.f32s()?, &g, &mut out);
    new_f32(out, &[g.n])
}

/// The weight gradient of `conv2d` for output gradient `dy` with example i's rows scaled by
/// `coef[i]` (`Σ_i coef_i · dW_i`; all ones without `coef`): the clipped sum of ghost clipping,
/// computed by the convolution's own backward kernel.
pub fn conv2d_weight_grad(x: &Tensor, dy: &Tensor, kernel: [usize; 2], o: &Conv2dOptions, coef: Option<&Tensor>) -> Result<Tensor> {
    let g = conv_geom(x, dy, kernel, o, "conv2d_weight_grad")?;
    let shape = [g.kh, g.kw, g.cin_g(), g.cout];
    let (xc, dc) = (x.contiguous_nograd()?, dy.contiguous_nograd()?);
    let per = g.oh * g.ow * g.cout;
    let scaled = match coef {
        Some(c) => {
            expect_f32(c, "conv2d_weight_grad (coefficients)")?;
            ensure!(c.shape() == [g.n], Shape, "conv2d_weight_grad: coefficients of shape {} for a batch of {} (expected [{}])",
                fmt_shape(c.shape()), g.n, g.n);
            let cv = c.to_vec_f32()?;
            let d = dc.f32s()?;
            let mut s = alloc_f32(d.len());
            for (i, &ci) in cv.iter().enumerate() {
                for (o, &v) in s[i * per..(i + 1) * per].iter_mut().zip(&d[i * per..(i + 1) * per]) {
                    *o = v * ci;
                }
            }
            Some(s)
        }
        None => None,
    };
    let mut dw = alloc_f32(g.k() * g.cout);
    // The backward kernel reads weights only for dx, which is not asked for.
    let w = vec![0.0f32; g.k() * g.cout];
    {
        let d = dc.f32s()?;
        let dyv: &[f32] = scaled.as_deref().unwrap_or(&d);
        conv2d_backward(&xc.f32s()?, &w, dyv, &g, None, Some(&mut dw));
    }
    new_f32(dw, &shape)
}

fn embedding_args(idx: &Tensor, g: &Tensor, op: &str) -> Result<(usize, usize, usize)> {
    ensure!(idx.dtype() == DType::I32, DType, "{}: indices must be int32, got {}", op, idx.dtype());
    expect_f32(g, op)?;
    ensure!(idx.rank() >= 1, Shape, "{}: indices need a batch dimension, got a scalar", op);
    ensure!(g.rank() == idx.rank() + 1 && g.shape()[..idx.rank()] == *idx.shape(), Shape,
        "{}: output gradients {} must be the indices' shape {} plus the embedding dimension",
        op, fmt_shape(g.shape()), fmt_shape(idx.shape()));
    let b = idx.shape()[0];
    let t = idx.shape()[1..].iter().product();
    Ok((b, t, g.shape()[g.rank() - 1]))
}

/// Per-example gradients `[B, V, D]` of an embedding table `[V, D]` looked up with `idx [B, ...]`:
/// the output gradients `g [B, ..., D]` scattered onto their rows, per example.
pub fn grad_sample_embedding(idx: &Tensor, g: &Tensor, num_embeddings: usize) -> Result<Tensor> {
    let (b, t, d) = embedding_args(idx, g, "grad_sample_embedding")?;
    let shape = [b, num_embeddings, d];
    check_shape_valid(&shape)?;
    let (ic, gc) = (idx.contiguous_nograd()?, g.contiguous_nograd()?);
    let iv = ic.i32s()?;
    if let Some(bad) = iv.iter().find(|&&v| v < 0 || v as usize >= num_embeddings) {
        crate::bail!(Argument, "grad_sample_embedding: index {} is out of range for {} embeddings", bad, num_embeddings);
    }
    let mut out = alloc_f32(b * num_embeddings * d);
    k::embedding_per_example(&iv, &gc.f32s()?, b, t, d, num_embeddings, &mut out);
    new_f32(out, &shape)
}

/// Squared norms `[B]` of `grad_sample_embedding(idx, g, V)` without materialising the tables.
pub fn grad_sample_embedding_norms_sq(idx: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (b, t, d) = embedding_args(idx, g, "grad_sample_embedding_norms_sq")?;
    let (ic, gc) = (idx.contiguous_nograd()?, g.contiguous_nograd()?);
    let mut out = alloc_f32(b);
    k::embedding_norms_sq(&ic.i32s()?, &gc.f32s()?, b, t, d, &mut out);
    new_f32(out, &[b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn t(shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32((0..n).map(|i| (i % 7) as f32 - 3.0).collect(), shape).unwrap()
    }

    #[test]
    fn refuses_mismatched_inputs_with_typed_errors() {
        let kind = |r: Result<Tensor>| r.err().map(|e| e.kind);
        assert_eq!(kind(grad_sample_outer(&t(&[2, 3, 4]), &t(&[2, 4, 5]))), Some(ErrorKind::Shape));
        assert_eq!(kind(grad_sample_outer(&t(&[4]), &t(&[4]))), Some(ErrorKind::Shape));
        let idx = Tensor::from_i32(vec![0, 1, 5, 2], &[2, 2]).unwrap();
        assert_eq!(kind(grad_sample_embedding(&idx, &t(&[2, 2, 3]), 5)), Some(ErrorKind::Argument));
        assert_eq!(kind(grad_sample_embedding(&t(&[2, 2]), &t(&[2, 2, 3]), 5)), Some(ErrorKind::DType));
        assert_eq!(kind(grad_sample_embedding_norms_sq(&idx, &t(&[2, 3, 3]))), Some(ErrorKind::Shape));
        let o = Conv2dOptions { stride: [2, 2], ..Default::default() };
        // A 3x3 kernel with stride 2 on 7x7 gives 3x3 outputs, not 4x4.
        assert_eq!(kind(grad_sample_conv2d(&t(&[2, 7, 7, 2]), &t(&[2, 4, 4, 3]), [3, 3], &o)), Some(ErrorKind::Shape));
        assert_eq!(kind(grad_sample_conv2d(&t(&[2, 7, 7, 3]), &t(&[2, 3, 3, 4]), [3, 3], &Conv2dOptions { groups: 2, ..o })), Some(ErrorKind::Shape));
        let c = t(&[3]);
        assert_eq!(kind(conv2d_weight_grad(&t(&[2, 7, 7, 2]), &t(&[2, 3, 3, 3]), [3, 3], &o, Some(&c))), Some(ErrorKind::Shape));
        assert!(grad_sample_conv2d(&t(&[2, 7, 7, 2]), &t(&[2, 3, 3, 3]), [3, 3], &o).is_ok());
    }

    /// The weighted weight gradient with unit coefficients is the batch weight gradient, which is
    /// the sum of the per-example ones; the norms are those of the per-example gradients.
    #[test]
    fn conv_weighted_sum_and_norms_agree_with_per_example() {
        let o = Conv2dOptions { stride: [1, 2], padding: [1, 0, 1, 1], ..Default::default() };
        let (x, dy) = (t(&[3, 6, 5, 2]), t(&[3, 6, 3, 4]));
        let per = grad_sample_conv2d(&x, &dy, [2, 3], &o).unwrap().to_vec_f32().unwrap();
        let ones = Tensor::from_f32(vec![1.0, 0.5, 2.0], &[3]).unwrap();
        let sum = conv2d_weight_grad(&x, &dy, [2, 3], &o, Some(&ones)).unwrap().to_vec_f32().unwrap();
        let norms = grad_sample_conv2d_norms_sq(&x, &dy, [2, 3], &o).unwrap().to_vec_f32().unwrap();
        let len = sum.len();
        for j in 0..len {
            let want = per[j] + 0.5 * per[len + j] + 2.0 * per[2 * len + j];
            assert!((sum[j] - want).abs() <= 1e-4 * (1.0 + want.abs()), "{} vs {}", sum[j], want);
        }
        for i in 0..3 {
            let want: f32 = per[i * len..(i + 1) * len].iter().map(|v| v * v).sum();
            assert!((norms[i] - want).abs() <= 1e-5 * want);
        }
        let sq = per_example_norms_sq(&Tensor::from_f32(per.clone(), &[3, len]).unwrap()).unwrap().to_vec_f32().unwrap();
        for i in 0..3 {
            assert!((sq[i] - norms[i]).abs() <= 1e-5 * norms[i]);
        }
    }
}

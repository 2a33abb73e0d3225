//! Matrix products: `matmul` (NumPy semantics, batched and broadcast) on top of `bmm`, which can
//! read either operand transposed in place. Backward uses the transposed paths, never a copy.

use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record, Saved};
use crate::error::Result;
use crate::kernels::gemm::{gemm_batched, Mat};
use crate::shape::{broadcast_shapes, check_shape_valid, fmt_shape, numel, Shape};
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::ensure;

/// Matrix dims of a rank >= 2 tensor, with `t` meaning "use the transpose of the last two dims".
fn mat_dims(x: &Tensor, t: bool) -> (usize, usize) {
    let r = x.rank();
    let (a, b) = (x.shape()[r - 2], x.shape()[r - 1]);
    if t { (b, a) } else { (a, b) }
}

/// Batched product of the last two dims of `a` and `b` (each optionally transposed), with the
/// leading (batch) dims broadcast. Both inputs need rank >= 2.
pub fn bmm(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    expect_f32(a, "matmul")?;
    expect_f32(b, "matmul")?;
    ensure!(a.rank() >= 2 && b.rank() >= 2, Shape, "matmul needs matrices, got shapes {} and {}",
        fmt_shape(a.shape()), fmt_shape(b.shape()));
    let (m, k) = mat_dims(a, ta);
    let (k2, n) = mat_dims(b, tb);
    ensure!(k == k2, Shape, "matmul: inner dimensions differ: {} x {} (shapes {}{} and {}{})",
        k, k2, fmt_shape(a.shape()), if ta { "ᵀ" } else { "" }, fmt_shape(b.shape()), if tb { "ᵀ" } else { "" });
    let (ba, bb) = (&a.shape()[..a.rank() - 2], &b.shape()[..b.rank() - 2]);
    let batch_shape = broadcast_shapes(ba, bb)
        .map_err(|e| crate::error::Error::new(e.kind, format!("matmul batch dimensions: {}", e.message)))?;
    let batch = numel(&batch_shape);
    // Operands whose batch dims are not exactly the output's get expanded (rare: true broadcasting).
    let prep = |x: &Tensor, bx: &[usize]| -> Result<(Tensor, usize)> {
        let r = x.rank();
        let mat = x.shape()[r - 2] * x.shape()[r - 1];
        if numel(bx) == 1 {
            Ok((x.contiguous_nograd()?, 0))
        } else if bx == batch_shape.as_slice() {
            Ok((x.contiguous_nograd()?, mat))
        } else {
            let mut full: Shape = batch_shape.clone();
            full.extend_from_slice(&x.shape()[r - 2..]);
            Ok((super::expand(&x.detach(), &full)?.contiguous_nograd()?, mat))
        }
    };
    let (ac, sa) = prep(a, ba)?;
    let (bc, sb) = prep(b, bb)?;
    let mut out_shape = batch_shape.clone();
    out_shape.push(m);
    out_shape.push(n);
    check_shape_valid(&out_shape)?;
    let mut out = alloc_f32(numel(&out_shape));
    {
        let (av, bv) = (ac.f32s()?, bc.f32s()?);
        let (ar, ac_) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
        let (_, bc_) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
        let _ = ar;
        let am = if ta { Mat::transposed(&av, ac_) } else { Mat::row_major(&av, ac_) };
        let bm = if tb { Mat::transposed(&bv, bc_) } else { Mat::row_major(&bv, bc_) };
        gemm_batched(batch, m, n, k, am, sa, bm, sb, &mut out, m * n, false);
    }
    let out = new_f32(out, &out_shape)?;
    if !will_record(&[a, b]) {
        return Ok(out);
    }
    let (xa, xb) = (Saved::new(a), Saved::new(b));
    let (sha, shb) = (a.shape().to_vec(), b.shape().to_vec());
    Ok(record(out, "matmul", &[a, b], move |g, needs| {
        let (a, b) = (xa.get()?, xb.get()?);
        let ga = if needs[0] {
            let d = if !ta { bmm(g, b, false, !tb)? } else { bmm(b, g, tb, true)? };
            Some(super::sum_to_shape(&d, &sha)?)
        } else {
            None
        };
        let gb = if needs[1] {
            let d = if !tb { bmm(a, g, !ta, false)? } else { bmm(g, a, true, ta)? };
            Some(super::sum_to_shape(&d, &shb)?)
        } else {
            None
        };
        Ok(vec![ga, gb])
    }))
}

/// NumPy `matmul`: 1-D operands are promoted to a row (left) or column (right) and the added
/// dimension is dropped from the result; leading dims broadcast.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    ensure!(a.rank() >= 1 && b.rank() >= 1, Shape, "matmul needs at least 1-D operands, got shapes {} and {}",
        fmt_shape(a.shape()), fmt_shape(b.shape()));
    let a2 = if a.rank() == 1 { super::reshape(a, &[1, a.shape()[0]])? } else { a.clone() };
    let b2 = if b.rank() == 1 { super::reshape(b, &[b.shape()[0], 1])? } else { b.clone() };
    let out = bmm(&a2, &b2, false, false)?;
    if a.rank() == 1 || b.rank() == 1 {
        let mut s = out.shape().to_vec();
        let r = s.len();
        if b.rank() == 1 {
            s.remove(r - 1);
        }
        if a.rank() == 1 {
            s.remove(r - 2);
        }
        return super::reshape(&out, &s);
    }
    Ok(out)
}

/// The dense layer in one op: `x · wᵀ + bias`, then ReLU if `relu`, with `w` in PyTorch's
/// `[out, in]` layout (read transposed in place). `x` is `[..., in]`. The bias is written into
/// the output before the product accumulates onto it, and ReLU runs over the result in place.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    // Under an attribution rule the ReLU runs as its own op, whose backward follows the rule.
    if relu && crate::autograd::backward_rule() != crate::autograd::BackwardRule::Gradient {
        return super::relu(&linear(x, w, bias, false)?);
    }
    expect_f32(x, "linear")?;
    expect_f32(w, "linear (weight)")?;
    ensure!(w.rank() == 2, Shape, "linear: the weight must be [out, in], got shape {}", fmt_shape(w.shape()));
    let (outf, inf) = (w.shape()[0], w.shape()[1]);
    ensure!(x.rank() >= 1 && x.shape()[x.rank() - 1] == inf, Shape,
        "linear: input {} does not match weight [out, in] = {}", fmt_shape(x.shape()), fmt_shape(w.shape()));
    if let Some(b) = bias {
        expect_f32(b, "linear (bias)")?;
        ensure!(b.shape() == [outf], Shape, "linear: bias of shape {} for {} outputs", fmt_shape(b.shape()), outf);
    }
    // Not x.numel() / inf: with inf == 0 that loses the rows.
    let rows: usize = x.shape()[..x.rank() - 1].iter().product();
    let mut out_shape = x.shape().to_vec();
    *out_shape.last_mut().unwrap() = outf;
    check_shape_valid(&out_shape)?;
    let mut out = alloc_f32(rows * outf);
    {
        let (xc, wc) = (x.contiguous_nograd()?, w.contiguous_nograd()?);
        let (xv, wv) = (xc.f32s()?, wc.f32s()?);
        match bias {
            Some(b) => {
                let bc = b.contiguous_nograd()?;
                let bv = bc.f32s()?;
                for r in out.chunks_mut(outf.max(1)) {
                    r.copy_from_slice(&bv);
                }
            }
            None => {}
        }
        crate::kernels::gemm::gemm(rows, outf, inf, Mat::row_major(&xv, inf), Mat::transposed(&wv, inf), &mut out, 0, outf, bias.is_some());
        if relu {
            crate::kernels::elementwise::unary_inplace(&mut out, |v| v.pmax(crate::simd::F32x4::zero()));
        }
    }
    let out = new_f32(out, &out_shape)?;
    let inputs: Vec<&Tensor> = match bias {
        Some(b) => vec![x, w, b],
        None => vec![x, w],
    };
    if !will_record(&inputs) {
        return Ok(out);
    }
    let (xs, ws) = (Saved::new(x), Saved::new(w));
    let ys = if relu { Some(Saved::new(&out)) } else { None };
    let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
    Ok(record(out, if relu { "linear_relu" } else { "linear" }, &inputs, move |g, needs| {
        use crate::simd::F32x4;
        let gm = match &ys {
            Some(y) => crate::ops::zip_f32(g, y.get()?, |g, y| F32x4::select(y.gt(F32x4::zero()), g, F32x4::zero()))?,
            None => g.contiguous_nograd()?,
        };
        let gv = gm.f32s()?;
        let mut grads = Vec::with_capacity(3);
        if needs[0] {
            let wc = ws.get()?.contiguous_nograd()?;
            let mut dx = alloc_f32(rows * inf);
            crate::kernels::gemm::gemm(rows, inf, outf, Mat::row_major(&gv, outf), Mat::row_major(&wc.f32s()?, inf), &mut dx, 0, inf, false);
            grads.push(Some(new_f32(dx, &x_shape)?));
        } else {
            grads.push(None);
        }
        if needs[1] {
            let xc = xs.get()?.contiguous_nograd()?;
            let mut dw = alloc_f32(outf * inf);
            crate::kernels::gemm::gemm(outf, inf, rows, Mat::transposed(&gv, outf), Mat::row_major(&xc.f32s()?, inf), &mut dw, 0, inf, false);
            grads.push(Some(new_f32(dw, &w_shape)?));
        } else {
            grads.push(None);
        }
        if needs.len() == 3 {
            grads.push(if needs[2] {
                let mut db = alloc_f32(outf);
                if rows == 0 {
                    db.fill(0.0);
                } else {
                    crate::kernels::reduce::reduce_mid(&gv, 1, rows, outf, crate::kernels::reduce::ReduceOp::Sum, &mut db);
                }
                Some(new_f32(db, &[outf])?)
            } else {
                None
            });
        }
        Ok(grads)
    }))
}

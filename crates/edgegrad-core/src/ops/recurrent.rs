//! Recurrent layers: SimpleRNN, LSTM and GRU sequences with the time loop in Rust.
//!
//! `rnn` runs one layer in one direction over a whole `[B, T, I]` sequence and returns a single
//! packed tensor of shape `[B*T + S*B, H]`: rows `0..B*T` are the outputs `[B, T, H]` (row
//! `b*T + t`), the next `B` rows the final hidden state, and for the LSTM the last `B` rows the
//! final cell state (S = 2 for the LSTM, 1 otherwise). Callers take contiguous views of the parts
//! (slice rows, reshape); gradients flowing into any of them reach the packed tensor and run
//! backward through time in one recorded node.
//!
//! Weights use PyTorch's layouts and gate orders (`w_ih [G*H, I]`, `w_hh [G*H, H]`, LSTM i, f, g,
//! o; GRU r, z, n), so PyTorch state dicts load unchanged. Masked steps (`mask[b, t] == 0`) carry
//! the state over and output 0.

use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record, Saved};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::gemm::{gemm, Mat};
use crate::kernels::reduce::{reduce_mid, ReduceOp};
use crate::kernels::rnn::{recycle, seq_backward, seq_forward, Cell, SeqBackward, SeqCache, SeqDims, SeqForward};
use crate::shape::fmt_shape;
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::{bail, ensure};

pub use crate::kernels::rnn::Cell as RnnCell;

/// The tensors of one recurrent layer (one direction).
pub struct RnnWeights<'a> {
    pub w_ih: &'a Tensor,
    pub w_hh: &'a Tensor,
    pub b_ih: Option<&'a Tensor>,
    pub b_hh: Option<&'a Tensor>,
}

fn check_shape(what: &str, cell: Cell, t: &Tensor, want: &[usize], hint: &str) -> Result<()> {
    ensure!(t.dtype() == DType::F32, DType, "{}: {} must be float32, got {}", cell.name(), what, t.dtype());
    ensure!(t.shape() == want, Shape, "{}: {} has shape {} but this layer needs {}{}", cell.name(), what,
        fmt_shape(t.shape()), fmt_shape(want), hint);
    Ok(())
}

/// Runs a recurrent layer over `x` `[B, T, I]` (see the module docs for the packed result).
/// `h0`/`c0` are `[B, H]` (zeros when absent; `c0` only for the LSTM), `mask` is `[B, T]` with 0
/// marking steps to skip, `reverse` processes time from T-1 down to 0 (outputs stay at their
/// time positions).
pub fn rnn(cell: Cell, x: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>, w: RnnWeights, mask: Option<&Tensor>, reverse: bool) -> Result<Tensor> {
    let name = cell.name();
    expect_f32(x, name)?;
    ensure!(x.rank() == 3, Shape, "{} expects input [batch, time, features], got shape {}", name, fmt_shape(x.shape()));
    let (b_n, t_n, i_n) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    ensure!(b_n > 0 && t_n > 0 && i_n > 0, Shape,
        "{} needs a non-empty batch, at least one time step and one feature, got input shape {}", name, fmt_shape(x.shape()));
    let g = cell.gates();
    ensure!(w.w_ih.rank() == 2 && w.w_ih.shape()[0] % g == 0 && w.w_ih.shape()[0] > 0, Shape,
        "{}: weight_ih must be [{} * hidden, input], got shape {}", name, g, fmt_shape(w.w_ih.shape()));
    let h = w.w_ih.shape()[0] / g;
    let gh = g * h;
    let gate_hint = match cell {
        Cell::Lstm => " (gates i, f, g, o stacked)",
        Cell::Gru | Cell::GruResetBefore => " (gates r, z, n stacked)",
        _ => "",
    };
    check_shape("weight_ih", cell, w.w_ih, &[gh, i_n], &format!(" for input size {}{}", i_n, gate_hint))?;
    check_shape("weight_hh", cell, w.w_hh, &[gh, h], gate_hint)?;
    if let Some(b) = w.b_ih {
        check_shape("bias_ih", cell, b, &[gh], gate_hint)?;
    }
    if let Some(b) = w.b_hh {
        check_shape("bias_hh", cell, b, &[gh], gate_hint)?;
    }
    if let Some(h0) = h0 {
        check_shape("initial hidden state", cell, h0, &[b_n, h], " ([batch, hidden])")?;
    }
    match (cell.has_cell_state(), c0) {
        (true, Some(c0)) => check_shape("initial cell state", cell, c0, &[b_n, h], " ([batch, hidden])")?,
        (false, Some(_)) => bail!(Argument, "{} has no cell state: pass an initial cell state only to an LSTM", name),
        _ => {}
    }
    let mask_v = match mask {
        Some(m) => {
            ensure!(m.dtype() == DType::F32, DType, "{}: the mask must be float32 (1 = valid step, 0 = skipped), got {}", name, m.dtype());
            ensure!(m.shape() == [b_n, t_n], Shape, "{}: the mask has shape {} but the input [batch, time] is {}",
                name, fmt_shape(m.shape()), fmt_shape(&[b_n, t_n]));
            Some(m.to_vec_f32()?)
        }
        None => None,
    };

    let dims = SeqDims { batch: b_n, steps: t_n, hidden: h };
    let xc = x.contiguous_nograd()?;
    let wih = w.w_ih.contiguous_nograd()?;
    let whh = w.w_hh.contiguous_nograd()?;
    let b_ih = w.b_ih.map(|b| b.to_vec_f32()).transpose()?;
    let b_hh = w.b_hh.map(|b| b.to_vec_f32()).transpose()?;

    // Input projection of every step in one GEMM, plus the biases outside the reset gate.
    let rows = b_n * t_n;
    let mut xw = alloc_f32(rows * gh);
    gemm(rows, gh, i_n, Mat::row_major(&xc.f32s()?, i_n), Mat::transposed(&wih.f32s()?, i_n), &mut xw, 0, gh, false);
    let mut bias = vec![0.0f32; gh];
    let mut b_hn = vec![0.0f32; h];
    if let Some(b) = &b_ih {
        bias.iter_mut().zip(b).for_each(|(s, v)| *s += v);
    }
    if let Some(b) = &b_hh {
        let split = if cell == Cell::Gru { 2 * h } else { gh };
        bias[..split].iter_mut().zip(&b[..split]).for_each(|(s, v)| *s += v);
        if cell == Cell::Gru {
            b_hn.copy_from_slice(&b[2 * h..]);
        }
    }
    if b_ih.is_some() || b_hh.is_some() {
        for r in xw.chunks_exact_mut(gh) {
            r.iter_mut().zip(&bias).for_each(|(v, b)| *v += b);
        }
    }
    // W_hh transposed once, so each step's product reads contiguous rows.
    let mut whh_t = alloc_f32(h * gh);
    {
        let wv = whh.f32s()?;
        for j in 0..gh {
            for k in 0..h {
                whh_t[k * gh + j] = wv[j * h + k];
            }
        }
    }
    let h0v = match h0 {
        Some(t) => t.to_vec_f32()?,
        None => vec![0.0; b_n * h],
    };
    let c0v = match c0 {
        Some(t) => t.to_vec_f32()?,
        None => vec![0.0; if cell.has_cell_state() { b_n * h } else { 0 }],
    };
    let s_n = if cell.has_cell_state() { 2 } else { 1 };
    let mut out = alloc_f32((rows + s_n * b_n) * h);
    let mut cache = SeqCache::new(cell, dims);
    let mut hw = alloc_f32(b_n * gh);
    {
        let (y, rest) = out.split_at_mut(rows * h);
        let (h_last, c_last) = rest.split_at_mut(b_n * h);
        let args = SeqForward {
            cell, dims, xw: &xw, whh_t: &whh_t, b_hn: &b_hn, h0: &h0v, c0: &c0v, mask: mask_v.as_deref(), reverse,
        };
        seq_forward(&args, y, h_last, c_last, &mut cache, &mut hw);
    }
    recycle(xw);
    recycle(whh_t);
    recycle(hw);
    let out = new_f32(out, &[rows + s_n * b_n, h])?;

    // Autograd inputs: x, w_ih, w_hh, then the optional ones in a fixed order.
    let mut ins: Vec<&Tensor> = vec![x, w.w_ih, w.w_hh];
    let mut slots = [None; 4];
    for (k, t) in [w.b_ih, w.b_hh, h0, c0].into_iter().enumerate() {
        if let Some(t) = t {
            slots[k] = Some(ins.len());
            ins.push(t);
        }
    }
    let [i_bih, i_bhh, i_h0, i_c0] = slots;
    if !will_record(&ins) {
        return Ok(out);
    }
    let (xs, wihs, whhs) = (Saved::new(&xc), Saved::new(&wih), Saved::new(&whh));
    let n_in = ins.len();
    Ok(record(out, name, &ins, move |grad, needs| {
        let gc = grad.contiguous_nograd()?;
        let gv = gc.f32s()?;
        let (gy, rest) = gv.split_at(rows * h);
        let (gh_last, gc_last) = rest.split_at(b_n * h);
        let whh = whhs.get()?;
        let whh_v = whh.f32s()?;
        let two = cell == Cell::Gru;
        let mut dgi = alloc_f32(rows * gh);
        let mut dgh = alloc_f32(if two { rows * gh } else { 0 });
        let mut dh0 = alloc_f32(b_n * h);
        let mut dc0 = alloc_f32(if cell.has_cell_state() { b_n * h } else { 0 });
        let args = SeqBackward {
            cell, dims, cache: &cache, whh: &whh_v, mask: mask_v.as_deref(), reverse, gy, gh_last, gc_last,
        };
        seq_backward(&args, &mut dgi, &mut dgh, &mut dh0, &mut dc0);
        let dgh_ref: &[f32] = if two { &dgh } else { &dgi };
        let mut grads: Vec<Option<Tensor>> = vec![None; n_in];
        if needs[0] {
            // dx = dG_i W_ih
            let wih = wihs.get()?;
            let mut dx = alloc_f32(rows * i_n);
            gemm(rows, i_n, gh, Mat::row_major(&dgi, gh), Mat::row_major(&wih.f32s()?, i_n), &mut dx, 0, i_n, false);
            grads[0] = Some(new_f32(dx, &[b_n, t_n, i_n])?);
        }
        if needs[1] {
            // dW_ih = dG_iᵀ x
            let xc = xs.get()?;
            let mut dw = alloc_f32(gh * i_n);
            gemm(gh, i_n, rows, Mat::transposed(&dgi, gh), Mat::row_major(&xc.f32s()?, i_n), &mut dw, 0, i_n, false);
            grads[1] = Some(new_f32(dw, &[gh, i_n])?);
        }
        if needs[2] {
            // dW_hh = dG_hᵀ h_prev (reset-before GRU: its n rows pair with r * h_prev instead)
            let mut dw = alloc_f32(gh * h);
            if cell == Cell::GruResetBefore {
                gemm(2 * h, h, rows, Mat::transposed(dgh_ref, gh), Mat::row_major(&cache.hprev, h), &mut dw, 0, h, false);
                gemm(h, h, rows, Mat::transposed(dgh_ref, gh).at_offset(2 * h), Mat::row_major(&cache.extra, h),
                    &mut dw, 2 * h * h, h, false);
            } else {
                gemm(gh, h, rows, Mat::transposed(dgh_ref, gh), Mat::row_major(&cache.hprev, h), &mut dw, 0, h, false);
            }
            grads[2] = Some(new_f32(dw, &[gh, h])?);
        }
        let colsum = |d: &[f32]| -> Result<Tensor> {
            let mut s = alloc_f32(gh);
            reduce_mid(d, 1, rows, gh, ReduceOp::Sum, &mut s);
            new_f32(s, &[gh])
        };
        if let Some(i) = i_bih.filter(|&i| needs[i]) {
            grads[i] = Some(colsum(&dgi)?);
        }
        if let Some(i) = i_bhh.filter(|&i| needs[i]) {
            grads[i] = Some(colsum(dgh_ref)?);
        }
        if let Some(i) = i_h0.filter(|&i| needs[i]) {
            grads[i] = Some(new_f32(std::mem::take(&mut dh0), &[b_n, h])?);
        }
        if let Some(i) = i_c0.filter(|&i| needs[i]) {
            grads[i] = Some(new_f32(std::mem::take(&mut dc0), &[b_n, h])?);
        }
        recycle(dgi);
        recycle(dgh);
        recycle(dh0);
        recycle(dc0);
        Ok(grads)
    }))
}

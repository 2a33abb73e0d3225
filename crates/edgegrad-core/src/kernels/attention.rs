//! Fused masked, scaled softmax over the last axis of attention scores `[..., Tq, Tk]`, and its
//! backward. One pass per row applies the scale, the (broadcast) keep-mask and the causal limit,
//! and normalises; sums run in `row_sum`'s fixed order and rows are split over the pool by shape
//! only, so results are bitwise identical for any thread count.

use crate::kernels::elementwise::GRAIN;
use crate::kernels::gemm::{gemm, gemm_in_task, reserve_in_tasks, Mat};
use crate::kernels::math;
use crate::kernels::reduce::{row_max, row_sum};
use crate::parallel::{current_thread, for_each, num_threads, tasks_for, SharedMut};
use crate::scratch::{self, Slot};
use crate::simd::F32x4;

/// A keep-mask (nonzero = attend) read through broadcast strides over the scores' shape.
#[derive(Clone, Copy)]
pub struct MaskRef<'a> {
    pub data: &'a [f32],
    /// One stride per dimension of the scores (0 on broadcast dimensions).
    pub strides: &'a [usize],
}

/// Layout of a `[..., Tq, Tk]` block of scores.
#[derive(Clone, Copy)]
pub struct ScoreDims<'a> {
    pub shape: &'a [usize],
}

impl ScoreDims<'_> {
    fn tk(&self) -> usize {
        self.shape[self.shape.len() - 1]
    }
    fn tq(&self) -> usize {
        self.shape[self.shape.len() - 2]
    }
    fn rows(&self) -> usize {
        self.shape[..self.shape.len() - 1].iter().product()
    }
}

/// Offset of row `r`'s mask entries (the row's multi-index dotted with the mask strides).
#[inline]
fn mask_row_offset(shape: &[usize], strides: &[usize], mut r: usize) -> usize {
    let lead = shape.len() - 1;
    let mut off = 0;
    for d in (0..lead).rev() {
        off += (r % shape[d]) * strides[d];
        r /= shape[d];
    }
    off
}

/// Columns `j < limit` may be attended by query `i` (the causal limit aligns the last query with
/// the last key, so `Tq < Tk` works for incremental decoding).
#[inline]
fn causal_limit(i: usize, tq: usize, tk: usize) -> usize {
    (i as isize + tk as isize - tq as isize + 1).clamp(0, tk as isize) as usize
}

/// `out = softmax(scale * x)` per row over the keys a row may attend; blocked keys get 0, and a
/// row that may attend nothing is all zeros.
pub fn masked_softmax_forward(x: &[f32], dims: ScoreDims, scale: f32, mask: Option<MaskRef>, causal: bool, out: &mut [f32]) {
    let (tk, tq, rows) = (dims.tk(), dims.tq(), dims.rows());
    if tk == 0 {
        return;
    }
    let optr = SharedMut(out.as_mut_ptr());
    let per = (GRAIN / tk).max(1);
    let sv = F32x4::splat(scale);
    let ninf = F32x4::splat(f32::NEG_INFINITY);
    for_each(tasks_for(rows, per), &|task, _| {
        for r in task * per..((task + 1) * per).min(rows) {
            // SAFETY: row r of `out` belongs to this task only and is in bounds.
            let dst = unsafe { optr.slice(r * tk, tk) };
            let src = &x[r * tk..(r + 1) * tk];
            let lim = if causal { causal_limit(r % tq, tq, tk) } else { tk };
            let (d, tail) = dst.split_at_mut(lim);
            tail.fill(0.0);
            let s = &src[..lim];
            match mask {
                None => math::map1(s, d, |v| v.mul(sv)),
                Some(m) => {
                    let off = mask_row_offset(dims.shape, m.strides, r);
                    let sj = m.strides[m.strides.len() - 1];
                    for (j, (o, &v)) in d.iter_mut().zip(s).enumerate() {
                        *o = if m.data[off + j * sj] != 0.0 { v * scale } else { f32::NEG_INFINITY };
                    }
                }
            }
            let mx = if lim == 0 { f32::NEG_INFINITY } else { row_max(d) };
            if mx == f32::NEG_INFINITY {
                d.fill(0.0);
                continue;
            }
            let mv = F32x4::splat(mx);
            // exp(-inf - max) is replaced by an exact 0 (the vector exp would give a subnormal).
            math::map1_inplace(d, |v| F32x4::select(v.eq(ninf), F32x4::zero(), math::exp(v.sub(mv))));
            let total = F32x4::splat(row_sum(d));
            math::map1_inplace(d, |v| v.div(total));
        }
    });
}

/// Gradient of `masked_softmax_forward` w.r.t. its input: `scale * p * (g - sum(g * p))` per row
/// (0 wherever p is 0, so blocked keys get no gradient).
pub fn masked_softmax_backward(p: &[f32], g: &[f32], tk: usize, scale: f32, out: &mut [f32]) {
    if tk == 0 {
        return;
    }
    let rows = p.len() / tk;
    let optr = SharedMut(out.as_mut_ptr());
    let per = (GRAIN / tk).max(1);
    let sv = F32x4::splat(scale);
    for_each(tasks_for(rows, per), &|task, _| {
        for r in task * per..((task + 1) * per).min(rows) {
            // SAFETY: row r of `out` belongs to this task only and is in bounds.
            let dst = unsafe { optr.slice(r * tk, tk) };
            let (pr, gr) = (&p[r * tk..(r + 1) * tk], &g[r * tk..(r + 1) * tk]);
            math::map2(gr, pr, dst, |g, p| g.mul(p));
            let dot = F32x4::splat(row_sum(dst));
            math::map2(gr, pr, dst, |g, p| sv.mul(p).mul(g.sub(dot)));
        }
    });
}

/// Self-attention for inference straight from a packed projection: `qkv` is `[b, t, 3e]`
/// (queries, keys and values side by side, `e = heads * d`), `out` is `[b, t, e]` with the heads
/// already merged. Each head's `Q Kᵀ` and `P V` run through `gemm` on strided views of `qkv`
/// (heads are never copied out) and its scores through `masked_softmax_forward`, so every output
/// element is bitwise what `bmm` + `masked_softmax` + `bmm` give on the materialised heads: gemm's
/// sum order does not depend on strides, and a contiguous head reads as the same path (A rows
/// with unit column stride, Kᵀ with unit row stride, V rows with unit column stride).
/// `mask` strides address `[b, heads, t, t]`. Scores live in per-thread scratch.
///
/// With at least as many (batch, head) pairs as threads, each pair is one task (its products on
/// that thread): at inference lengths a head's products are a few µs, too small to split, and a
/// split per product would cost the pool four joins per head. Fewer pairs (long sequences, few
/// heads) run in order with each product split over the pool. Same bits either way.
#[allow(clippy::too_many_arguments)]
pub fn packed_self_attention_forward(qkv: &[f32], b: usize, t: usize, heads: usize, scale: f32, mask: Option<MaskRef>, causal: bool, out: &mut [f32]) {
    let e = out.len() / (b * t).max(1);
    let d = e / heads.max(1);
    let row = 3 * e;
    assert!(qkv.len() == b * t * row && out.len() == b * t * e && d * heads == e, "packed_self_attention_forward: sizes do not fit");
    let out_len = out.len();
    let optr = SharedMut(out.as_mut_ptr());
    // One (batch, head) pair on pool thread `thread`, its scores and probabilities in that
    // thread's scratch; `split` lets the products use the whole pool (only outside a task).
    let pair = |pi: usize, thread: usize, split: bool| {
        let (bi, h) = (pi / heads, pi % heads);
        let base = bi * t * row;
        let q = Mat { data: qkv, offset: base + h * d, rs: row, cs: 1 };
        let kt = Mat { data: qkv, offset: base + e + h * d, rs: 1, cs: row };
        let v = Mat { data: qkv, offset: base + 2 * e + h * d, rs: row, cs: 1 };
        // SAFETY: `thread` is the pool index of the thread running this closure, and nothing
        // else borrows its Misc slot meanwhile (gemm and the softmax use other slots or none).
        let buf = unsafe { scratch::per_thread(Slot::Misc, thread, 2 * t * t) };
        let (s, p) = buf[..2 * t * t].split_at_mut(t * t);
        let head_mask = mask.map(|m| {
            let r = m.strides.len();
            MaskRef { data: &m.data[bi * m.strides[r - 4] + h * m.strides[r - 3]..], strides: &m.strides[r - 2..] }
        });
        // One product into C (`c_len` floats behind `c`): split over the pool, or on this thread.
        let product = |m: usize, n: usize, k: usize, a: Mat, b: Mat, c: SharedMut<f32>, c_len: usize, c_off: usize, ldc: usize| {
            // SAFETY: `c` is this thread's score scratch or `out`; the pair writes only its own
            // head's columns h*d..(h+1)*d of batch bi's rows, which no other pair writes, and a
            // split product runs outside any task, as the only writer.
            unsafe {
                if split {
                    gemm(m, n, k, a, b, c.slice(0, c_len), c_off, ldc, false);
                } else {
                    gemm_in_task(thread, m, n, k, a, b, c, c_len, c_off, ldc, false);
                }
            }
        };
        product(t, t, d, q, kt, SharedMut(s.as_mut_ptr()), t * t, 0, t);
        masked_softmax_forward(s, ScoreDims { shape: &[t, t] }, scale, head_mask, causal, p);
        product(t, d, t, Mat::row_major(p, t), v, optr, out_len, bi * t * e + h * d, e);
    };
    let pairs = b * heads;
    if pairs >= num_threads() {
        reserve_in_tasks(t, t, d);
        reserve_in_tasks(t, d, t);
        // SAFETY: before the job; no Misc borrow is live.
        unsafe { scratch::reserve(Slot::Misc, 2 * t * t) };
        for_each(pairs, &|pi, thread| pair(pi, thread, false));
    } else {
        (0..pairs).for_each(|pi| pair(pi, current_thread(), true));
    }
}

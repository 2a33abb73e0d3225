//! Recurrent cell kernels (SimpleRNN, LSTM, GRU) over a whole sequence, and their backward
//! through time.
//!
//! Layouts follow PyTorch: `w_ih` is `[G*H, I]`, `w_hh` `[G*H, H]`, gates stacked in PyTorch's
//! order (LSTM i, f, g, o; GRU r, z, n). Every per-sequence buffer is batch-major with row
//! `b*T + t` (the layout of the `[B, T, ...]` input), so no transposes are needed: the input
//! projection of all steps is one GEMM before the loop, the per-step recurrent product reads the
//! rows of time `t` with a row stride of `T*H`, and the weight gradients are single GEMMs over all
//! `B*T` rows after the loop.
//!
//! The time loop allocates nothing: every buffer is sized before it starts. Per step it runs one
//! GEMM (two for the reset-before GRU) from the calling thread and one elementwise pass whose rows
//! are independent, so results are bitwise identical for any thread count.
//!
//! Masking: `mask[b, t] == 0` skips step t for sequence b: its state is carried over unchanged and
//! its output is 0 (PyTorch's packed-sequence semantics). Running the reverse direction over a
//! right-padded batch therefore starts each sequence at its own last valid step.

use crate::kernels::elementwise::GRAIN;
use crate::kernels::gemm::{gemm, Mat};
use crate::kernels::math;
use crate::parallel::{for_each, SharedMut};
use crate::simd::F32x4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// `h = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`
    RnnTanh,
    /// `h = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`
    RnnRelu,
    /// PyTorch's LSTM, gates i, f, g, o.
    Lstm,
    /// PyTorch's GRU (Keras `reset_after=True`), gates r, z, n:
    /// `n = tanh(x_n + b_in + r * (h W_hnᵀ + b_hn))`, `h' = (1 - z) n + z h`.
    Gru,
    /// Keras' original GRU (`reset_after=False`, the only form tfjs has):
    /// `n = tanh(x_n + b_in + (r * h) W_hnᵀ + b_hn)`.
    GruResetBefore,
}

impl Cell {
    pub fn gates(self) -> usize {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => 1,
            Cell::Lstm => 4,
            Cell::Gru | Cell::GruResetBefore => 3,
        }
    }
    pub fn has_cell_state(self) -> bool {
        self == Cell::Lstm
    }
    pub fn name(self) -> &'static str {
        match self {
            Cell::RnnTanh => "rnn_tanh",
            Cell::RnnRelu => "rnn_relu",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::GruResetBefore => "gru_reset_before",
        }
    }
    /// Codes at the wasm boundary: 0 rnn_tanh, 1 rnn_relu, 2 lstm, 3 gru, 4 gru (reset before).
    pub fn from_code(code: u8) -> Option<Cell> {
        Some(match code {
            0 => Cell::RnnTanh,
            1 => Cell::RnnRelu,
            2 => Cell::Lstm,
            3 => Cell::Gru,
            4 => Cell::GruResetBefore,
            _ => return None,
        })
    }
}

/// Sizes of one recurrent sequence.
#[derive(Clone, Copy, Debug)]
pub struct SeqDims {
    pub batch: usize,
    pub steps: usize,
    pub hidden: usize,
}

/// What the forward pass keeps for backward. All rows are `b*T + t`.
pub struct SeqCache {
    /// `[B*T, G*H]`: the activated gates (LSTM i, f, g, o; GRU r, z, n; RNN the new h).
    pub gates: Vec<f32>,
    /// `[B*T, H]`: the hidden state before the step at time t.
    pub hprev: Vec<f32>,
    /// LSTM: `[B*T, H]`, the cell state before the step at time t (else empty).
    pub cprev: Vec<f32>,
    /// GRU: `h W_hnᵀ + b_hn` (reset after) or `r * h` (reset before), `[B*T, H]` (else empty).
    pub extra: Vec<f32>,
}

impl SeqCache {
    pub fn new(cell: Cell, d: SeqDims) -> SeqCache {
        let rows = d.batch * d.steps;
        let h = d.hidden;
        SeqCache {
            gates: crate::storage::alloc_f32(rows * cell.gates() * h),
            hprev: crate::storage::alloc_f32(rows * h),
            cprev: if cell.has_cell_state() { crate::storage::alloc_f32(rows * h) } else { Vec::new() },
            extra: if matches!(cell, Cell::Gru | Cell::GruResetBefore) { crate::storage::alloc_f32(rows * h) } else { Vec::new() },
        }
    }
}

// ---------------------------------------------------------------- vector helpers

/// Four floats from `s[i..]`, zero-padded past the end.
#[inline(always)]
fn ld(s: &[f32], i: usize) -> F32x4 {
    if i + 4 <= s.len() {
        // SAFETY: i + 4 <= s.len().
        unsafe { F32x4::load(s.as_ptr().add(i)) }
    } else {
        let mut b = [0.0f32; 4];
        b[..s.len() - i].copy_from_slice(&s[i..]);
        // SAFETY: `b` holds 4 floats.
        unsafe { F32x4::load(b.as_ptr()) }
    }
}

/// Stores the lanes of `v` that fall inside `d[i..]`.
#[inline(always)]
fn st(v: F32x4, d: &mut [f32], i: usize) {
    if i + 4 <= d.len() {
        // SAFETY: i + 4 <= d.len().
        unsafe { v.store(d.as_mut_ptr().add(i)) }
    } else {
        let mut b = [0.0f32; 4];
        // SAFETY: `b` holds 4 floats.
        unsafe { v.store(b.as_mut_ptr()) };
        let n = d.len() - i;
        d[i..].copy_from_slice(&b[..n]);
    }
}

#[inline(always)]
fn one() -> F32x4 {
    F32x4::splat(1.0)
}

/// Runs `f(row)` for `rows` independent rows of about `work` elements each: serially when small,
/// else over the pool in chunks fixed by the shape (each row's result never depends on the split).
fn rows_par(rows: usize, work: usize, f: &(dyn Fn(usize) + Sync)) {
    let per = (GRAIN / work.max(1)).max(1);
    if rows <= per {
        (0..rows).for_each(f);
    } else {
        for_each(rows.div_ceil(per), &|task, _| {
            for r in task * per..((task + 1) * per).min(rows) {
                f(r);
            }
        });
    }
}

/// A mutable row `[start, start + len)` of a buffer shared between row tasks.
///
/// # Safety
/// The range must be in bounds and written by no other task concurrently.
#[inline(always)]
unsafe fn row_mut<'a>(p: SharedMut<f32>, start: usize, len: usize) -> &'a mut [f32] {
    p.slice(start, len)
}

// ---------------------------------------------------------------- forward

/// Inputs of a sequence forward pass. `xw` is `[B*T, G*H]`: `x W_ihᵀ` plus every bias that sits
/// outside the reset gate (all of `b_ih`; `b_hh` except, for the reset-after GRU, its n block,
/// which is `b_hn` here).
pub struct SeqForward<'a> {
    pub cell: Cell,
    pub dims: SeqDims,
    pub xw: &'a [f32],
    /// `W_hh` transposed, `[H, G*H]` row-major (so the per-step GEMM reads contiguous rows).
    pub whh_t: &'a [f32],
    /// `[H]`: the recurrent n-gate bias of the reset-after GRU (unused otherwise).
    pub b_hn: &'a [f32],
    pub h0: &'a [f32],
    pub c0: &'a [f32],
    /// `[B, T]`, nonzero = valid step.
    pub mask: Option<&'a [f32]>,
    pub reverse: bool,
}

/// Runs the sequence. Writes the outputs `[B, T, H]` into `y`, the final states `[B, H]` into
/// `h_last` / `c_last`, and fills `cache`. `hw` is scratch of `B*G*H` floats.
pub fn seq_forward(a: &SeqForward, y: &mut [f32], h_last: &mut [f32], c_last: &mut [f32], cache: &mut SeqCache, hw: &mut [f32]) {
    let SeqDims { batch: b_n, steps: t_n, hidden: h } = a.dims;
    let g = a.cell.gates();
    let gh = g * h;
    // The state before the first processed step.
    let first = if a.reverse { t_n - 1 } else { 0 };
    for b in 0..b_n {
        let r = (b * t_n + first) * h;
        cache.hprev[r..r + h].copy_from_slice(&a.h0[b * h..(b + 1) * h]);
        if a.cell.has_cell_state() {
            cache.cprev[r..r + h].copy_from_slice(&a.c0[b * h..(b + 1) * h]);
        }
    }
    let gates_p = SharedMut(cache.gates.as_mut_ptr());
    let hprev_p = SharedMut(cache.hprev.as_mut_ptr());
    let cprev_p = SharedMut(cache.cprev.as_mut_ptr());
    let extra_p = SharedMut(cache.extra.as_mut_ptr());
    let y_p = SharedMut(y.as_mut_ptr());
    let hl_p = SharedMut(h_last.as_mut_ptr());
    let cl_p = SharedMut(c_last.as_mut_ptr());
    let hw_p = SharedMut(hw.as_mut_ptr());
    for s in 0..t_n {
        let t = if a.reverse { t_n - 1 - s } else { s };
        let next = if s + 1 == t_n { None } else if a.reverse { Some(t - 1) } else { Some(t + 1) };
        // SAFETY (whole step): rows of time t are only read; rows of time `next` (or the final
        // state buffers) and row b of the output / gates / scratch are written by the task that
        // owns row b only. Every buffer outlives the step.
        {
            // Recurrent product of the rows of time t: hw = h_{t-1} W_hhᵀ (for the reset-before
            // GRU only the r and z blocks; the n block needs r first).
            let hp: &[f32] = unsafe { std::slice::from_raw_parts(hprev_p.ptr(), b_n * t_n * h) };
            let hw_s: &mut [f32] = unsafe { std::slice::from_raw_parts_mut(hw_p.ptr(), b_n * gh) };
            let a_mat = Mat { data: hp, offset: t * h, rs: t_n * h, cs: 1 };
            let n_cols = if a.cell == Cell::GruResetBefore { 2 * h } else { gh };
            gemm(b_n, n_cols, h, a_mat, Mat { data: a.whh_t, offset: 0, rs: gh, cs: 1 }, hw_s, 0, gh, false);
        }
        let mask_at = |b: usize| a.mask.map_or(true, |m| m[b * t_n + t] != 0.0);
        if a.cell == Cell::GruResetBefore {
            // r, z, then r * h_prev into `extra`, then its product with W_hn.
            rows_par(b_n, gh, &|b| unsafe {
                let row = b * t_n + t;
                let xw = &a.xw[row * gh..(row + 1) * gh];
                let hwr = row_mut(hw_p, b * gh, gh);
                let gt = row_mut(gates_p, row * gh, gh);
                let hp = std::slice::from_raw_parts(hprev_p.ptr().add(row * h), h);
                let rh = row_mut(extra_p, row * h, h);
                gru_rb_gates_rz(h, xw, hwr, hp, gt, rh);
            });
            let ex: &[f32] = unsafe { std::slice::from_raw_parts(extra_p.ptr(), b_n * t_n * h) };
            let hw_s: &mut [f32] = unsafe { std::slice::from_raw_parts_mut(hw_p.ptr(), b_n * gh) };
            gemm(b_n, h, h, Mat { data: ex, offset: t * h, rs: t_n * h, cs: 1 },
                Mat { data: a.whh_t, offset: 2 * h, rs: gh, cs: 1 }, hw_s, 2 * h, gh, false);
        }
        rows_par(b_n, gh, &|b| unsafe {
            let row = b * t_n + t;
            let hp = std::slice::from_raw_parts(hprev_p.ptr().add(row * h), h);
            let h_out = match next {
                Some(n) => row_mut(hprev_p, (b * t_n + n) * h, h),
                None => row_mut(hl_p, b * h, h),
            };
            let y_row = row_mut(y_p, row * h, h);
            let c_io = if a.cell.has_cell_state() {
                let cp = std::slice::from_raw_parts(cprev_p.ptr().add(row * h), h);
                let c_out = match next {
                    Some(n) => row_mut(cprev_p, (b * t_n + n) * h, h),
                    None => row_mut(cl_p, b * h, h),
                };
                Some((cp, c_out))
            } else {
                None
            };
            if !mask_at(b) {
                // Skipped step: the state carries over, the output is 0. (The gates of this row
                // are never read: backward gives skipped steps zero gate gradients.)
                h_out.copy_from_slice(hp);
                if let Some((cp, c_out)) = c_io {
                    c_out.copy_from_slice(cp);
                }
                y_row.fill(0.0);
                return;
            }
            let xw = &a.xw[row * gh..(row + 1) * gh];
            let hwr = std::slice::from_raw_parts(hw_p.ptr().add(b * gh), gh);
            let gt = row_mut(gates_p, row * gh, gh);
            match a.cell {
                Cell::RnnTanh | Cell::RnnRelu => {
                    rnn_row(a.cell == Cell::RnnRelu, xw, hwr, gt);
                    h_out.copy_from_slice(gt);
                }
                Cell::Lstm => {
                    let (cp, c_out) = c_io.expect("LSTM has a cell state");
                    lstm_row(h, xw, hwr, cp, gt, h_out, c_out);
                }
                Cell::Gru => gru_row(h, xw, hwr, a.b_hn, hp, gt, row_mut(extra_p, row * h, h), h_out),
                Cell::GruResetBefore => gru_rb_row_n(h, xw, hwr, hp, gt, h_out),
            }
            y_row.copy_from_slice(h_out);
        });
    }
}

/// SimpleRNN: `gates = act(xw + hw)` (the new state).
#[inline]
fn rnn_row(relu: bool, xw: &[f32], hw: &[f32], out: &mut [f32]) {
    let mut j = 0;
    while j < out.len() {
        let pre = ld(xw, j).add(ld(hw, j));
        let v = if relu { pre.pmax(F32x4::zero()) } else { math::tanh(pre) };
        st(v, out, j);
        j += 4;
    }
}

/// LSTM: gates i, f, g, o; `c = f c_prev + i g`, `h = o tanh(c)`.
#[inline]
fn lstm_row(h: usize, xw: &[f32], hw: &[f32], cp: &[f32], gates: &mut [f32], h_out: &mut [f32], c_out: &mut [f32]) {
    let mut j = 0;
    while j < h {
        let pre = |q: usize| ld(&xw[q * h..(q + 1) * h], j).add(ld(&hw[q * h..(q + 1) * h], j));
        let i = math::sigmoid(pre(0));
        let f = math::sigmoid(pre(1));
        let g = math::tanh(pre(2));
        let o = math::sigmoid(pre(3));
        let c = f.mul(ld(cp, j)).add(i.mul(g));
        st(i, &mut gates[..h], j);
        st(f, &mut gates[h..2 * h], j);
        st(g, &mut gates[2 * h..3 * h], j);
        st(o, &mut gates[3 * h..4 * h], j);
        st(c, c_out, j);
        st(o.mul(math::tanh(c)), h_out, j);
        j += 4;
    }
}

/// GRU (reset after): r, z, n and `h' = (1 - z) n + z h`; keeps `hn = h W_hnᵀ + b_hn`.
#[inline]
#[allow(clippy::too_many_arguments)]
fn gru_row(h: usize, xw: &[f32], hw: &[f32], b_hn: &[f32], hp: &[f32], gates: &mut [f32], hn_out: &mut [f32], h_out: &mut [f32]) {
    let mut j = 0;
    while j < h {
        let r = math::sigmoid(ld(&xw[..h], j).add(ld(&hw[..h], j)));
        let z = math::sigmoid(ld(&xw[h..2 * h], j).add(ld(&hw[h..2 * h], j)));
        let hn = ld(&hw[2 * h..], j).add(ld(b_hn, j));
        let n = math::tanh(ld(&xw[2 * h..], j).add(r.mul(hn)));
        let hv = ld(hp, j);
        st(r, &mut gates[..h], j);
        st(z, &mut gates[h..2 * h], j);
        st(n, &mut gates[2 * h..], j);
        st(hn, hn_out, j);
        st(one().sub(z).mul(n).add(z.mul(hv)), h_out, j);
        j += 4;
    }
}

/// GRU (reset before), first half: r, z and `r * h_prev`.
#[inline]
fn gru_rb_gates_rz(h: usize, xw: &[f32], hw: &[f32], hp: &[f32], gates: &mut [f32], rh: &mut [f32]) {
    let mut j = 0;
    while j < h {
        let r = math::sigmoid(ld(&xw[..h], j).add(ld(&hw[..h], j)));
        let z = math::sigmoid(ld(&xw[h..2 * h], j).add(ld(&hw[h..2 * h], j)));
        st(r, &mut gates[..h], j);
        st(z, &mut gates[h..2 * h], j);
        st(r.mul(ld(hp, j)), rh, j);
        j += 4;
    }
}

/// GRU (reset before), second half: `n = tanh(x_n + (r h) W_hnᵀ)`, `h' = (1 - z) n + z h`.
#[inline]
fn gru_rb_row_n(h: usize, xw: &[f32], hw: &[f32], hp: &[f32], gates: &mut [f32], h_out: &mut [f32]) {
    let mut j = 0;
    while j < h {
        let z = ld(&gates[h..2 * h], j);
        let n = math::tanh(ld(&xw[2 * h..], j).add(ld(&hw[2 * h..], j)));
        st(n, &mut gates[2 * h..], j);
        st(one().sub(z).mul(n).add(z.mul(ld(hp, j))), h_out, j);
        j += 4;
    }
}

// ---------------------------------------------------------------- backward

/// Inputs of the backward pass through time.
pub struct SeqBackward<'a> {
    pub cell: Cell,
    pub dims: SeqDims,
    pub cache: &'a SeqCache,
    /// `W_hh`, `[G*H, H]` row-major.
    pub whh: &'a [f32],
    pub mask: Option<&'a [f32]>,
    pub reverse: bool,
    /// Gradients of the outputs `[B, T, H]` and of the final states `[B, H]`.
    pub gy: &'a [f32],
    pub gh_last: &'a [f32],
    pub gc_last: &'a [f32],
}

/// Runs backward through time. Fills `dgi` (`[B*T, G*H]`, gradients of the gate pre-activations
/// as seen by `x W_ihᵀ + b_ih`) and, for the reset-after GRU, `dgh` (the same for `h W_hhᵀ +
/// b_hh`, whose n block carries the extra factor r; for the other cells it equals `dgi` and is
/// left untouched), and the gradients of the initial states.
pub fn seq_backward(a: &SeqBackward, dgi: &mut [f32], dgh: &mut [f32], dh0: &mut [f32], dc0: &mut [f32]) {
    let SeqDims { batch: b_n, steps: t_n, hidden: h } = a.dims;
    let g = a.cell.gates();
    let gh = g * h;
    let c = a.cache;
    // Carried gradients w.r.t. the state after the current step.
    let mut dh = crate::storage::alloc_f32(b_n * h);
    dh.copy_from_slice(a.gh_last);
    let mut dh_next = crate::storage::alloc_f32(b_n * h);
    let mut dc = crate::storage::alloc_f32(if a.cell.has_cell_state() { b_n * h } else { 0 });
    if a.cell.has_cell_state() {
        dc.copy_from_slice(a.gc_last);
    }
    // Reset-before GRU: gradient w.r.t. r * h_prev.
    let mut drh = crate::storage::alloc_f32(if a.cell == Cell::GruResetBefore { b_n * h } else { 0 });
    let two_buffers = a.cell == Cell::Gru;
    let dgi_p = SharedMut(dgi.as_mut_ptr());
    let dgh_p = SharedMut(dgh.as_mut_ptr());
    for s in (0..t_n).rev() {
        let t = if a.reverse { t_n - 1 - s } else { s };
        let valid = |b: usize| a.mask.map_or(true, |m| m[b * t_n + t] != 0.0);
        let dh_p = SharedMut(dh.as_mut_ptr());
        let dhn_p = SharedMut(dh_next.as_mut_ptr());
        let dc_p = SharedMut(dc.as_mut_ptr());
        // SAFETY (both passes): row b of dh, dh_next, dc, drh and row b*T+t of dgi / dgh belong to
        // the task of row b; every buffer outlives the pass.
        rows_par(b_n, gh, &|b| unsafe {
            let row = b * t_n + t;
            let dhr = row_mut(dh_p, b * h, h);
            // The output y_t = m * h_t.
            if valid(b) {
                let gyr = &a.gy[row * h..(row + 1) * h];
                let mut j = 0;
                while j < h {
                    st(ld(dhr, j).add(ld(gyr, j)), dhr, j);
                    j += 4;
                }
            }
            let dgr = row_mut(dgi_p, row * gh, gh);
            let dnext = row_mut(dhn_p, b * h, h);
            if !valid(b) {
                // The state passed through unchanged.
                dgr.fill(0.0);
                if two_buffers {
                    row_mut(dgh_p, row * gh, gh).fill(0.0);
                }
                dnext.copy_from_slice(dhr);
                return;
            }
            let gt = &c.gates[row * gh..(row + 1) * gh];
            let hp = &c.hprev[row * h..(row + 1) * h];
            match a.cell {
                Cell::RnnTanh | Cell::RnnRelu => {
                    let relu = a.cell == Cell::RnnRelu;
                    let mut j = 0;
                    while j < h {
                        let hv = ld(gt, j);
                        let d = if relu {
                            F32x4::select(hv.gt(F32x4::zero()), ld(dhr, j), F32x4::zero())
                        } else {
                            ld(dhr, j).mul(one().sub(hv.mul(hv)))
                        };
                        st(d, dgr, j);
                        j += 4;
                    }
                    dnext.fill(0.0);
                }
                Cell::Lstm => {
                    let dcr = row_mut(dc_p, b * h, h);
                    let cp = &c.cprev[row * h..(row + 1) * h];
                    let mut j = 0;
                    while j < h {
                        let i = ld(&gt[..h], j);
                        let f = ld(&gt[h..2 * h], j);
                        let gg = ld(&gt[2 * h..3 * h], j);
                        let o = ld(&gt[3 * h..], j);
                        let cpv = ld(cp, j);
                        // Recomputed with the forward's exact arithmetic: the same bits.
                        let cv = f.mul(cpv).add(i.mul(gg));
                        let tc = math::tanh(cv);
                        let dhv = ld(dhr, j);
                        let dct = ld(dcr, j).add(dhv.mul(o).mul(one().sub(tc.mul(tc))));
                        st(dct.mul(gg).mul(i).mul(one().sub(i)), &mut dgr[..h], j);
                        st(dct.mul(cpv).mul(f).mul(one().sub(f)), &mut dgr[h..2 * h], j);
                        st(dct.mul(i).mul(one().sub(gg.mul(gg))), &mut dgr[2 * h..3 * h], j);
                        st(dhv.mul(tc).mul(o).mul(one().sub(o)), &mut dgr[3 * h..], j);
                        st(dct.mul(f), dcr, j);
                        j += 4;
                    }
                    dnext.fill(0.0);
                }
                Cell::Gru => {
                    let hn = &c.extra[row * h..(row + 1) * h];
                    let dghr = row_mut(dgh_p, row * gh, gh);
                    let mut j = 0;
                    while j < h {
                        let r = ld(&gt[..h], j);
                        let z = ld(&gt[h..2 * h], j);
                        let n = ld(&gt[2 * h..], j);
                        let hv = ld(hp, j);
                        let dhv = ld(dhr, j);
                        let dn = dhv.mul(one().sub(z)).mul(one().sub(n.mul(n)));
                        let dz = dhv.mul(hv.sub(n)).mul(z).mul(one().sub(z));
                        let dr = dn.mul(ld(hn, j)).mul(r).mul(one().sub(r));
                        st(dr, &mut dgr[..h], j);
                        st(dz, &mut dgr[h..2 * h], j);
                        st(dn, &mut dgr[2 * h..], j);
                        st(dr, &mut dghr[..h], j);
                        st(dz, &mut dghr[h..2 * h], j);
                        st(dn.mul(r), &mut dghr[2 * h..], j);
                        st(dhv.mul(z), dnext, j);
                        j += 4;
                    }
                }
                Cell::GruResetBefore => {
                    // First half: n and z blocks, and the direct z * dh term.
                    let mut j = 0;
                    while j < h {
                        let z = ld(&gt[h..2 * h], j);
                        let n = ld(&gt[2 * h..], j);
                        let dhv = ld(dhr, j);
                        st(dhv.mul(one().sub(z)).mul(one().sub(n.mul(n))), &mut dgr[2 * h..], j);
                        st(dhv.mul(ld(hp, j).sub(n)).mul(z).mul(one().sub(z)), &mut dgr[h..2 * h], j);
                        st(dhv.mul(z), dnext, j);
                        j += 4;
                    }
                }
            }
        });
        if a.cell == Cell::GruResetBefore {
            // d(r h) = dn W_hn; then dr and the r * d(r h) term of dh_prev.
            let dg_all: &[f32] = unsafe { std::slice::from_raw_parts(dgi_p.ptr(), b_n * t_n * gh) };
            gemm(b_n, h, h, Mat { data: dg_all, offset: t * gh + 2 * h, rs: t_n * gh, cs: 1 },
                Mat { data: a.whh, offset: 2 * h * h, rs: h, cs: 1 }, &mut drh, 0, h, false);
            let drh_p = SharedMut(drh.as_mut_ptr());
            rows_par(b_n, gh, &|b| unsafe {
                let row = b * t_n + t;
                let dgr = row_mut(dgi_p, row * gh, gh);
                if !valid(b) {
                    return;
                }
                let gt = &c.gates[row * gh..(row + 1) * gh];
                let hp = &c.hprev[row * h..(row + 1) * h];
                let d = row_mut(drh_p, b * h, h);
                let dnext = row_mut(dhn_p, b * h, h);
                let mut j = 0;
                while j < h {
                    let r = ld(&gt[..h], j);
                    let dv = ld(d, j);
                    st(dv.mul(ld(hp, j)).mul(r).mul(one().sub(r)), &mut dgr[..h], j);
                    st(ld(dnext, j).add(dv.mul(r)), dnext, j);
                    j += 4;
                }
            });
        }
        // dh_prev += dG_h W_hh (only the r, z blocks for the reset-before GRU: its n block went
        // through r * h above).
        {
            let src: &[f32] = unsafe { std::slice::from_raw_parts(if two_buffers { dgh_p.ptr() } else { dgi_p.ptr() }, b_n * t_n * gh) };
            let k = if a.cell == Cell::GruResetBefore { 2 * h } else { gh };
            gemm(b_n, h, k, Mat { data: src, offset: t * gh, rs: t_n * gh, cs: 1 },
                Mat { data: a.whh, offset: 0, rs: h, cs: 1 }, &mut dh_next, 0, h, true);
        }
        std::mem::swap(&mut dh, &mut dh_next);
    }
    dh0.copy_from_slice(&dh);
    if a.cell.has_cell_state() {
        dc0.copy_from_slice(&dc);
    }
    for v in [dh, dh_next, dc, drh] {
        recycle(v);
    }
}

/// Returns a scratch buffer to the storage pool (so repeated calls stop allocating).
pub fn recycle(v: Vec<f32>) {
    if !v.is_empty() {
        drop(crate::storage::Storage::new(crate::storage::Buffer::F32(v)));
    }
}

impl Drop for SeqCache {
    fn drop(&mut self) {
        for v in [&mut self.gates, &mut self.hprev, &mut self.cprev, &mut self.extra] {
            recycle(std::mem::take(v));
        }
    }
}

//! f32 GEMM: C (+)= A·B with A and B given by arbitrary strides, so transposed operands (the
//! backward pass's Aᵀ·G and G·Bᵀ) are read in place, never materialised.
//!
//! BLIS-style blocking: B is packed into KC×NR column slivers, A into MR×KC row panels, and a
//! register-tiled MR×NR micro-kernel (f32x4 accumulators) runs over them. Work is split over the
//! pool by tiles of C.
//!
//! The micro-kernel is bound by instruction issue and V8's register budget, not arithmetic: at
//! MR×NR = 4×8 it keeps 8 f32x4 accumulators, 2 B vectors and one A splat live (V8 leaves 15
//! xmm registers on x64; 5×8 or 4×12 tiles spill). A values are read with `v128.load32_splat`
//! (one `vbroadcastss` from memory): in an isolated probe of this loop that beat both a
//! pre-expanded A panel (four lanes per value, plain `v128.load`s: 4x the A traffic and an extra
//! pass) and 2x k-unrolling, and folding the loads' constant offsets (Binaryen's
//! optimize-added-constants) gained nothing. Each A panel (4 KiB) stays in L1 while the B
//! slivers of the task stream past it. The sum over k always runs in the same order (KC blocks in
//! sequence, each summed in registers from 0 and then added to C), whatever the tiling or thread
//! count, so every element of C is bitwise identical for 1 or N threads.

use crate::parallel::{for_each, num_threads, SharedMut};
use crate::scratch::{self, Slot};
use crate::kernels::relaxed::mul_add;
use crate::simd::F32x4;

pub const MR: usize = 4;
pub const NR: usize = 8;
pub const KC: usize = 256;
pub const MC: usize = 64;
pub const NC: usize = 2048;
/// Below this many multiply-adds, one thread does the whole product.
const PAR_MIN_WORK: usize = 48 * 48 * 48;

/// Products with at most this many rows skip packing (matrix-vector shaped work: batch-1
/// inference, the last layers of small models), where packing B would cost as much as the product.
const SMALL_M: usize = 3;
/// Columns of C per task in the matrix-vector path.
const GEMV_COLS: usize = 64;

/// A read-only matrix: element (i, j) is `data[offset + i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        Mat { data, offset: 0, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major `rows x cols` matrix, read in place.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat { data, offset: 0, rs: 1, cs: cols }
    }
    pub fn at_offset(self, offset: usize) -> Self {
        Mat { offset: self.offset + offset, ..self }
    }
}

/// Packs rows `i0..i0+mc`, columns `pc..pc+kc` of A into MR-row panels (`pack_a`'s layout):
/// the A operand of `gemm_packing_a`, for an A that is never materialised (convolution patches).
pub type PackA<'a> = dyn Fn(usize, usize, usize, usize, &mut [f32]) + Sync + 'a;

/// Packs B[pc..pc+kc, j0..j0+nr) as one sliver: `out[p*NR + j]`, zero-padded to NR columns.
fn pack_b_sliver(b: Mat, pc: usize, kc: usize, j0: usize, nr: usize, out: &mut [f32]) {
    let base = b.offset + pc * b.rs + j0 * b.cs;
    if b.cs == 1 && nr == NR {
        for p in 0..kc {
            let src = base + p * b.rs;
            out[p * NR..p * NR + NR].copy_from_slice(&b.data[src..src + NR]);
        }
    } else if b.rs == 1 && nr == NR {
        // B read transposed (Linear's [out, in] weights): its 8 columns are contiguous runs over
        // p, so 4 steps of p are two 4x4 blocks transposed with vector shuffles.
        let body = kc / 4 * 4;
        let mut p = 0;
        while p < body {
            // SAFETY: column j has kc >= p + 4 floats from base + j*cs (B is k×n with k >= pc + kc,
            // n >= j0 + NR); the sliver holds kc*NR floats and (p + 4) * NR <= kc * NR.
            unsafe {
                let ld = |j: usize| F32x4::load(b.data.as_ptr().add(base + j * b.cs + p));
                let lo = F32x4::transpose4(ld(0), ld(1), ld(2), ld(3));
                let hi = F32x4::transpose4(ld(4), ld(5), ld(6), ld(7));
                for q in 0..4 {
                    lo[q].store(out.as_mut_ptr().add((p + q) * NR));
                    hi[q].store(out.as_mut_ptr().add((p + q) * NR + 4));
                }
            }
            p += 4;
        }
        for p in body..kc {
            for j in 0..NR {
                out[p * NR + j] = b.data[base + p + j * b.cs];
            }
        }
    } else {
        for p in 0..kc {
            let row = &mut out[p * NR..p * NR + NR];
            for (j, o) in row.iter_mut().enumerate() {
                *o = if j < nr { b.data[base + p * b.rs + j * b.cs] } else { 0.0 };
            }
        }
    }
}

/// Packs A[i0..i0+mc, pc..pc+kc) into MR-row panels: panel r holds `out[r*MR*kc + p*MR + i]`.
fn pack_a(a: Mat, i0: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
    let panels = mc.div_ceil(MR);
    for r in 0..panels {
        let panel = &mut out[r * MR * kc..(r + 1) * MR * kc];
        let rows = (mc - r * MR).min(MR);
        if MR == 4 && rows == MR && a.cs == 1 {
            // Four contiguous rows: 4x4 blocks transposed with vector shuffles.
            let base = [0, 1, 2, 3].map(|i| a.offset + (i0 + r * MR + i) * a.rs + pc);
            let body = kc / 4 * 4;
            let mut p = 0;
            while p < body {
                // SAFETY: each row has kc >= p + 4 floats from base[i] (A is m×k with k >= pc + kc);
                // the panel holds kc*MR floats and (p + 4) * MR <= kc * MR.
                unsafe {
                    let ld = |i: usize| F32x4::load(a.data.as_ptr().add(base[i] + p));
                    let t = F32x4::transpose4(ld(0), ld(1), ld(2), ld(3));
                    for (j, v) in t.iter().enumerate() {
                        v.store(panel.as_mut_ptr().add((p + j) * MR));
                    }
                }
                p += 4;
            }
            for p in body..kc {
                for (i, &b) in base.iter().enumerate() {
                    panel[p * MR + i] = a.data[b + p];
                }
            }
            continue;
        }
        for i in 0..MR {
            if i < rows {
                let base = a.offset + (i0 + r * MR + i) * a.rs + pc * a.cs;
                if a.cs == 1 {
                    let src = &a.data[base..base + kc];
                    for (p, &v) in src.iter().enumerate() {
                        panel[p * MR + i] = v;
                    }
                } else {
                    for p in 0..kc {
                        panel[p * MR + i] = a.data[base + p * a.cs];
                    }
                }
            } else {
                for p in 0..kc {
                    panel[p * MR + i] = 0.0;
                }
            }
        }
    }
}

/// `acc += Ap·Bp` over `kc` steps of one packed A panel (MR floats per step) and one packed B
/// sliver (NR floats per step): the register tile every f32 GEMM path shares (this GEMM, the
/// implicit-GEMM convolution), so they sum the same products in the same order.
///
/// # Safety
/// `a` addresses `kc * MR` readable floats and `b` `kc * NR`.
#[inline(always)]
pub(crate) unsafe fn accumulate_tile(acc: &mut [[F32x4; 2]; MR], a: *const f32, b: *const f32, kc: usize) {
    // Walking pointers (no index arithmetic in the loop); the sum over k runs p = 0, 1, ... as
    // it always has, each step one multiply then one add.
    let (mut a, mut b) = (a, b);
    let end = b.add(kc * NR);
    while b < end {
        let b0 = F32x4::load(b);
        let b1 = F32x4::load(b.add(4));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = F32x4::load_splat(a.add(r));
            // `acc + a·b`: fused in the relaxed build only (kernels/relaxed.rs).
            row[0] = mul_add(row[0], av, b0);
            row[1] = mul_add(row[1], av, b1);
        }
        a = a.add(MR);
        b = b.add(NR);
    }
}

/// C[0..mr, 0..nr] (+)= Ap·Bp for one MR×NR tile.
///
/// # Safety
/// `ax` holds `kc*MR` floats (one packed A panel), `bp` holds `kc*NR`, and `c` addresses `mr`
/// rows of `nr` writable floats at row stride `ldc` that no other thread touches during the call.
#[inline(always)]
unsafe fn micro_kernel(kc: usize, ax: *const f32, bp: *const f32, c: *mut f32, ldc: usize, mr: usize, nr: usize, overwrite: bool) {
    let mut acc = [[F32x4::zero(); 2]; MR];
    accumulate_tile(&mut acc, ax, bp, kc);
    if mr == MR && nr == NR {
        for (r, row) in acc.iter().enumerate() {
            let cr = c.add(r * ldc);
            if overwrite {
                row[0].store(cr);
                row[1].store(cr.add(4));
            } else {
                F32x4::load(cr).add(row[0]).store(cr);
                F32x4::load(cr.add(4)).add(row[1]).store(cr.add(4));
            }
        }
    } else {
        let mut tile = [0.0f32; MR * NR];
        for (r, row) in acc.iter().enumerate() {
            row[0].store(tile.as_mut_ptr().add(r * NR));
            row[1].store(tile.as_mut_ptr().add(r * NR + 4));
        }
        for r in 0..mr {
            for j in 0..nr {
                let dst = c.add(r * ldc + j);
                *dst = if overwrite { tile[r * NR + j] } else { *dst + tile[r * NR + j] };
            }
        }
    }
}

/// Where a product runs: spread over the pool, or wholly on one pool thread (inside a task).
#[derive(Clone, Copy)]
enum Mode {
    Parallel,
    Serial(usize),
}

/// C = A·B (or C += A·B with `accumulate`) for an m×n×k product. C is row-major at `c_off` with
/// row stride `ldc` inside `c`.
pub fn gemm(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], c_off: usize, ldc: usize, accumulate: bool) {
    assert!(m == 0 || n == 0 || c_off + (m - 1) * ldc + n <= c.len(), "gemm: C is too small");
    let mode = if num_threads() > 1 && m * n * k >= PAR_MIN_WORK { Mode::Parallel } else { Mode::Serial(crate::parallel::current_thread()) };
    gemm_impl(m, n, k, a, b, SharedMut(c.as_mut_ptr()), c_off, ldc, accumulate, mode);
}

/// Grows every pool thread's packing scratch for products of this shape run by `gemm_in_task`
/// (or `gemm_batched`'s tasks), before the job that runs them (see `scratch::reserve`).
pub fn reserve_in_tasks(m: usize, n: usize, k: usize) {
    if m <= SMALL_M || n == 0 || k == 0 {
        return; // the matrix-vector path uses no scratch
    }
    let kc = KC.min(k);
    // SAFETY: called before the job, outside any task (inside one, reserve does nothing).
    unsafe {
        scratch::reserve(Slot::GemmA, MC.min(m).div_ceil(MR) * MR * kc);
        scratch::reserve(Slot::GemmB, NC.min(n).div_ceil(NR) * NR * kc);
    }
}

/// `gemm` inside a pool task: the whole product on pool thread `thread` (as `for_each` gives it),
/// with that thread's scratch and no nested split; bitwise `gemm`'s result. C has `c_len`
/// elements behind `c`.
///
/// # Safety
/// The elements of C this product writes (m rows of n at `c_off`, stride `ldc`) belong to this
/// task alone while it runs, and `c` points to `c_len` valid floats.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_in_task(thread: usize, m: usize, n: usize, k: usize, a: Mat, b: Mat, c: SharedMut<f32>, c_len: usize, c_off: usize, ldc: usize, accumulate: bool) {
    assert!(m == 0 || n == 0 || c_off + (m - 1) * ldc + n <= c_len, "gemm: C is too small");
    gemm_impl(m, n, k, a, b, c, c_off, ldc, accumulate, Mode::Serial(thread));
}

/// C (+)= A·B where A (m×k) exists only as a packing function: `pack(i0, mc, pc, kc, out)` writes
/// rows `i0..i0+mc`, columns `pc..pc+kc` of A in `pack_a`'s panel layout (zero rows past `mc`).
/// Needs `m > SMALL_M` (the matrix-vector path reads A directly). The sum over k runs in the
/// same order as `gemm`'s, so results are bitwise those of `gemm` on the materialised A.
pub fn gemm_packing_a(m: usize, n: usize, k: usize, pack: &PackA, b: Mat, c: &mut [f32], c_off: usize, ldc: usize, accumulate: bool) {
    assert!(m > SMALL_M, "gemm_packing_a: m must exceed SMALL_M");
    assert!(n == 0 || c_off + (m - 1) * ldc + n <= c.len(), "gemm: C is too small");
    if n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[c_off + i * ldc..c_off + i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let mode = if num_threads() > 1 && m * n * k >= PAR_MIN_WORK { Mode::Parallel } else { Mode::Serial(crate::parallel::current_thread()) };
    gemm_blocked(m, n, k, pack, b, SharedMut(c.as_mut_ptr()), c_off, ldc, accumulate, mode);
}

/// `batch` independent products; matrix `i` of A, B and C starts at `i * stride` (0 broadcasts).
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched(
    batch: usize, m: usize, n: usize, k: usize,
    a: Mat, a_stride: usize, b: Mat, b_stride: usize,
    c: &mut [f32], c_stride: usize, accumulate: bool,
) {
    if batch == 0 {
        return;
    }
    assert!(m == 0 || n == 0 || (batch - 1) * c_stride + (m - 1) * n + n <= c.len(), "gemm_batched: C is too small");
    let cp = SharedMut(c.as_mut_ptr());
    let small = m * n * k < PAR_MIN_WORK * 4;
    if batch > 1 && small && num_threads() > 1 {
        // Many small products (attention heads): one product per task.
        reserve_in_tasks(m, n, k);
        for_each(batch, &|i, thread| {
            gemm_impl(m, n, k, a.at_offset(i * a_stride), b.at_offset(i * b_stride), cp, i * c_stride, n, accumulate, Mode::Serial(thread));
        });
    } else {
        for i in 0..batch {
            let mode = if num_threads() > 1 && m * n * k >= PAR_MIN_WORK { Mode::Parallel } else { Mode::Serial(crate::parallel::current_thread()) };
            gemm_impl(m, n, k, a.at_offset(i * a_stride), b.at_offset(i * b_stride), cp, i * c_stride, n, accumulate, mode);
        }
    }
}

/// C (+)= A·B for m <= SMALL_M without packing. Each element of C is one sum over k in a fixed
/// order (vector lanes combined in a fixed tree), computed by one task.
#[allow(clippy::too_many_arguments)]
fn gemv(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: SharedMut<f32>, c_off: usize, ldc: usize, accumulate: bool, mode: Mode) {
    let blocks = n.div_ceil(GEMV_COLS);
    let body = |t: usize, _thread: usize| {
        let (j0, j1) = (t * GEMV_COLS, ((t + 1) * GEMV_COLS).min(n));
        for i in 0..m {
            // SAFETY: this task owns columns j0..j1 of every row of C in this call.
            let crow = unsafe { c.slice(c_off + i * ldc + j0, j1 - j0) };
            let arow = |p: usize| a.data[a.offset + i * a.rs + p * a.cs];
            if b.cs == 1 {
                // Rows of B are contiguous: c_row += Σ_p a[i,p] · B[p, j0..j1], vectorised over j.
                let mut acc = [F32x4::zero(); GEMV_COLS / 4];
                let w = j1 - j0;
                let full = w / 4;
                let mut tail = [0.0f32; 4];
                for p in 0..k {
                    let av = F32x4::splat(arow(p));
                    let row = &b.data[b.offset + p * b.rs + j0..b.offset + p * b.rs + j1];
                    for (q, accq) in acc.iter_mut().enumerate().take(full) {
                        // SAFETY: 4*q + 4 <= w = row.len().
                        *accq = accq.add(av.mul(unsafe { F32x4::load(row.as_ptr().add(4 * q)) }));
                    }
                    for (e, t) in tail.iter_mut().enumerate().take(w - 4 * full) {
                        *t += arow(p) * row[4 * full + e];
                    }
                }
                for (q, accq) in acc.iter().enumerate().take(full) {
                    let mut v = [0.0f32; 4];
                    // SAFETY: `v` holds 4 floats.
                    unsafe { accq.store(v.as_mut_ptr()) };
                    for (e, x) in v.iter().enumerate() {
                        let d = &mut crow[4 * q + e];
                        *d = if accumulate { *d + x } else { *x };
                    }
                }
                for (e, x) in tail.iter().enumerate().take(w - 4 * full) {
                    let d = &mut crow[4 * full + e];
                    *d = if accumulate { *d + x } else { *x };
                }
            } else if b.rs == 1 && a.cs == 1 {
                // Columns of B and the row of A are contiguous: one dot product per element.
                let ar = &a.data[a.offset + i * a.rs..a.offset + i * a.rs + k];
                for (jj, d) in crow.iter_mut().enumerate() {
                    let col = &b.data[b.offset + (j0 + jj) * b.cs..b.offset + (j0 + jj) * b.cs + k];
                    let v = dot(ar, col);
                    *d = if accumulate { *d + v } else { v };
                }
            } else {
                for (jj, d) in crow.iter_mut().enumerate() {
                    let mut sum = 0.0f32;
                    for p in 0..k {
                        sum += arow(p) * b.data[b.offset + p * b.rs + (j0 + jj) * b.cs];
                    }
                    *d = if accumulate { *d + sum } else { sum };
                }
            }
        }
    };
    match mode {
        Mode::Parallel if blocks > 1 && m * n * k >= PAR_MIN_WORK => for_each(blocks, &body),
        Mode::Parallel => (0..blocks).for_each(|t| body(t, crate::parallel::current_thread())),
        Mode::Serial(thread) => (0..blocks).for_each(|t| body(t, thread)),
    }
}

/// Σ x·y over contiguous slices: 16 lanes, combined in a fixed order, then the tail.
#[inline]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let body = n & !15;
    let mut acc = [F32x4::zero(); 4];
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let mut i = 0;
    while i < body {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16 <= body <= len of both slices.
            unsafe { *a = a.add(F32x4::load(px.add(i + 4 * j)).mul(F32x4::load(py.add(i + 4 * j)))) };
        }
        i += 16;
    }
    let mut s = acc[0].add(acc[1]).add(acc[2].add(acc[3])).hsum();
    for t in body..n {
        s += x[t] * y[t];
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn gemm_impl(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: SharedMut<f32>, c_off: usize, ldc: usize, accumulate: bool, mode: Mode) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of C is in bounds (checked by the callers) and owned by this call.
                unsafe { c.slice(c_off + i * ldc, n).fill(0.0) };
            }
        }
        return;
    }
    if m <= SMALL_M {
        return gemv(m, n, k, a, b, c, c_off, ldc, accumulate, mode);
    }
    gemm_blocked(m, n, k, &|i0, mc, pc, kc, out: &mut [f32]| pack_a(a, i0, mc, pc, kc, out), b, c, c_off, ldc, accumulate, mode);
}

/// The packed, blocked product (m > SMALL_M, k > 0), A supplied by its packing function.
#[allow(clippy::too_many_arguments)]
fn gemm_blocked(m: usize, n: usize, k: usize, pack: &PackA, b: Mat, c: SharedMut<f32>, c_off: usize, ldc: usize, accumulate: bool, mode: Mode) {
    let run = |tasks: usize, f: &(dyn Fn(usize, usize) + Sync)| match mode {
        Mode::Parallel => for_each(tasks, f),
        Mode::Serial(thread) => (0..tasks).for_each(|t| f(t, thread)),
    };
    let mut jc = 0;
    while jc < n {
        let nc = NC.min(n - jc);
        let slivers = nc.div_ceil(NR);
        let mut pc = 0;
        while pc < k {
            let kc = KC.min(k - pc);
            let overwrite = pc == 0 && !accumulate;
            let bp_len = slivers * NR * kc;
            // SAFETY: the shared slot is only used by the caller of a parallel region; in serial
            // mode each pool thread has its own slot.
            let bp = SharedMut(unsafe {
                match mode {
                    Mode::Parallel => scratch::shared(Slot::GemmB, bp_len),
                    Mode::Serial(t) => scratch::per_thread(Slot::GemmB, t, bp_len).as_mut_ptr(),
                }
            });
            run(slivers.div_ceil(8), &|t, _| {
                for s in t * 8..((t + 1) * 8).min(slivers) {
                    let j0 = s * NR;
                    // SAFETY: sliver s owns bp[s*NR*kc .. (s+1)*NR*kc).
                    let out = unsafe { bp.slice(s * NR * kc, NR * kc) };
                    pack_b_sliver(b, pc, kc, jc + j0, NR.min(nc - j0), out);
                }
            });
            let m_tiles = m.div_ceil(MC);
            // Small m: two tiles per thread, enough to balance the pool while each A block (packed
            // once per tile) is packed few times. (One thread: one tile per row block.)
            let n_tiles = if matches!(mode, Mode::Serial(_)) { 1 } else { (2 * num_threads()).div_ceil(m_tiles).min(slivers).max(1) };
            let slivers_per_tile = slivers.div_ceil(n_tiles);
            if matches!(mode, Mode::Parallel) {
                // SAFETY: before the job; no GemmA borrow is live.
                unsafe { scratch::reserve(Slot::GemmA, MC.min(m).div_ceil(MR) * MR * kc) };
            }
            run(m_tiles * n_tiles, &|t, thread| {
                let (mi, ni) = (t / n_tiles, t % n_tiles);
                let i0 = mi * MC;
                let mc = MC.min(m - i0);
                let s0 = ni * slivers_per_tile;
                let s1 = (s0 + slivers_per_tile).min(slivers);
                if s0 >= s1 {
                    return;
                }
                let panels = mc.div_ceil(MR);
                let packed = panels * MR * kc;
                // SAFETY: `thread` is this task's pool thread; the slot is not borrowed elsewhere.
                let ap = unsafe { scratch::per_thread(Slot::GemmA, thread, packed) };
                pack(i0, mc, pc, kc, &mut ap[..packed]);
                for r in 0..panels {
                    let mr = MR.min(mc - r * MR);
                    for s in s0..s1 {
                        let j0 = s * NR;
                        let nr = NR.min(nc - j0);
                        // SAFETY: this task owns rows i0..i0+mc and columns of slivers s0..s1 of C;
                        // packed panels hold kc*MR floats, packed slivers kc*NR.
                        unsafe {
                            micro_kernel(kc, ap.as_ptr().add(r * MR * kc), bp.ptr().add(s * NR * kc),
                                c.ptr().add(c_off + (i0 + r * MR) * ldc + jc + j0), ldc, mr, nr, overwrite);
                        }
                    }
                }
            });
            pc += kc;
        }
        jc += nc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn naive(m: usize, n: usize, k: usize, a: Mat, b: Mat) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a.data[a.offset + i * a.rs + p * a.cs] as f64 * b.data[b.offset + p * b.rs + j * b.cs] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }
    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0 - 1.0).collect()
    }
    #[test]
    fn matches_naive_on_awkward_shapes() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (65, 17, 300), (4, 8, 256), (130, 70, 513), (1, 300, 40), (0, 3, 4), (3, 3, 0)] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let mut c = vec![7.0; m * n];
            gemm(m, n, k, Mat::row_major(&a, k), Mat::row_major(&b, n), &mut c, 0, n, false);
            let want = naive(m, n, k, Mat::row_major(&a, k), Mat::row_major(&b, n));
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-3 * (1.0 + y.abs()), "{m}x{n}x{k}: {x} vs {y}");
            }
        }
    }
    #[test]
    fn transposed_b_packing_matches_naive() {
        // Linear's layout: B stored n×k and read transposed; k not a multiple of 4, n of NR.
        for &(m, n, k) in &[(9, 16, 37), (20, 35, 258), (5, 8, 4)] {
            let a = data(m * k, 11);
            let bt = data(n * k, 12);
            let mut c = vec![0.0; m * n];
            gemm(m, n, k, Mat::row_major(&a, k), Mat::transposed(&bt, k), &mut c, 0, n, false);
            let want = naive(m, n, k, Mat::row_major(&a, k), Mat::transposed(&bt, k));
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-3 * (1.0 + y.abs()), "{m}x{n}x{k}: {x} vs {y}");
            }
        }
    }
    #[test]
    fn transposed_operands_and_accumulate() {
        let (m, n, k) = (37, 29, 45);
        let at = data(k * m, 3); // stored k x m, used as its transpose
        let bt = data(n * k, 4); // stored n x k
        let mut c = vec![1.0; m * n];
        gemm(m, n, k, Mat::transposed(&at, m), Mat::transposed(&bt, k), &mut c, 0, n, true);
        let want = naive(m, n, k, Mat::transposed(&at, m), Mat::transposed(&bt, k));
        for (x, y) in c.iter().zip(&want) {
            assert!((x - (y + 1.0)).abs() < 1e-3, "{x} vs {}", y + 1.0);
        }
    }
    #[test]
    fn small_m_paths_match_naive() {
        for &(m, n, k) in &[(1, 10, 1568), (2, 70, 33), (3, 130, 5), (1, 1, 1)] {
            let a = data(m * k, 7);
            let bt = data(n * k, 8); // stored n x k: used transposed (columns contiguous)
            let b = data(k * n, 9); // row-major
            for (bm, want) in [
                (Mat::transposed(&bt, k), naive(m, n, k, Mat::row_major(&a, k), Mat::transposed(&bt, k))),
                (Mat::row_major(&b, n), naive(m, n, k, Mat::row_major(&a, k), Mat::row_major(&b, n))),
            ] {
                let mut c = vec![0.5; m * n];
                gemm(m, n, k, Mat::row_major(&a, k), bm, &mut c, 0, n, true);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - (y + 0.5)).abs() < 1e-3 * (1.0 + y.abs()), "{m}x{n}x{k}: {x} vs {}", y + 0.5);
                }
            }
        }
    }
    #[test]
    fn bitwise_identical_across_threads() {
        let (m, n, k) = (200, 150, 700);
        let a = data(m * k, 5);
        let b = data(k * n, 6);
        let mut c1 = vec![0.0; m * n];
        let mut c4 = vec![0.0; m * n];
        crate::parallel::set_num_threads(1);
        gemm(m, n, k, Mat::row_major(&a, k), Mat::row_major(&b, n), &mut c1, 0, n, false);
        crate::parallel::set_num_threads(4);
        gemm(m, n, k, Mat::row_major(&a, k), Mat::row_major(&b, n), &mut c4, 0, n, false);
        crate::parallel::set_num_threads(1);
        assert!(c1.iter().zip(&c4).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

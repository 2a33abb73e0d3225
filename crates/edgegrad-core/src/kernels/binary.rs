//! Binary-weight kernels (BinaryConnect / XNOR-Net style weights `α_j · sign(w)`): weights are
//! stored as bits (1 = +1, 0 = -1; `sign(0) = +1`), 32x smaller than f32.
//!
//! `y[i][j] = α_j · Σ_k x[i][k] · s[k][j] (+ bias_j)`. The product by ±1 is exact: it flips the
//! sign bit of x (a xor), so the micro-kernel is the f32 one with the multiply replaced by a xor.
//! Bits are packed per sliver of `NR = 8` output columns, one byte per k (bit j = column j); each
//! task expands the sliver it works on into sign words (`0` or `0x8000_0000`) in a per-thread
//! scratch of `k * 8` words (transient, in L1/L2), then runs every row panel against it. The sum
//! over k runs in order 0..k inside one accumulator per output element, whatever the tiling or
//! thread count, so results are bitwise identical for 1 or N threads.

use crate::kernels::conv::ConvGeom;
use crate::kernels::int8::{load_i32, xor, ASrc, ConvRows, RowGather, OutLayout, MC, MR, NR};
use crate::parallel::{current_thread, for_each, num_threads, SharedMut};
use crate::scratch::{self, Slot};
use crate::simd::F32x4;

const PAR_MIN_WORK: usize = 48 * 48 * 48;

/// Bytes of one group's packed bits for `[k, n]` weights.
pub fn bits_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k
}

/// Packs the signs of `w(kk, j) = w[off + kk*rs + j*cs]`: byte `s*k + kk`, bit `j` is column
/// `s*NR + j` (1 when `w >= 0`). Unused bits of the last sliver are 0.
pub fn pack_bits(w: &[f32], off: usize, rs: usize, cs: usize, k: usize, n: usize, out: &mut [i8]) {
    assert!(out.len() >= bits_len(k, n), "pack_bits: output too small");
    for s in 0..n.div_ceil(NR) {
        for kk in 0..k {
            let mut byte = 0u8;
            for j in 0..NR.min(n - s * NR) {
                if !(w[off + kk * rs + (s * NR + j) * cs] < 0.0) {
                    byte |= 1 << j;
                }
            }
            out[s * k + kk] = byte as i8;
        }
    }
}

/// Packs rows `i0..i0+rows` of A into MR-row f32 panels `out[(r*k + kk)*MR + i]`, zero-padded.
fn pack_a_f32(src: ASrc<f32>, i0: usize, rows: usize, k: usize, out: &mut [f32]) {
    let mut rg = RowGather::new(src, i0);
    let data = rg.data;
    for r in 0..rows.div_ceil(MR) {
        let panel = &mut out[r * k * MR..(r + 1) * k * MR];
        let live = (rows - r * MR).min(MR);
        for i in 0..MR {
            if i >= live {
                for kk in 0..k {
                    panel[kk * MR + i] = 0.0;
                }
                continue;
            }
            let s = rg.next_start();
            for kk in 0..k {
                panel[kk * MR + i] = data[s + rg.tap(kk)];
            }
        }
    }
}

/// `MR x NR` tile of `Σ_k a[i][k] · s[k][j]`.
///
/// # Safety
/// `ap` holds `k*MR` floats and `sp` holds `k*NR` sign words.
#[inline(always)]
unsafe fn micro_kernel(k: usize, ap: *const f32, sp: *const i32) -> [[F32x4; 2]; MR] {
    let mut acc = [[F32x4::zero(); 2]; MR];
    for kk in 0..k {
        let s0 = load_i32(sp.add(kk * NR));
        let s1 = load_i32(sp.add(kk * NR + 4));
        let a = ap.add(kk * MR);
        for (r, row) in acc.iter_mut().enumerate() {
            let av = F32x4::load_splat(a.add(r)).to_bits();
            row[0] = row[0].add(xor(av, s0).from_bits());
            row[1] = row[1].add(xor(av, s1).from_bits());
        }
    }
    acc
}

/// `C[m, n] = α ⊙ (A · S) (+ bias)` for one group: A from `src` (`m x k` f32), S the signs packed
/// by `pack_bits`; `alpha`/`bias` indexed from the group's first column. The caller guarantees sizes.
#[allow(clippy::too_many_arguments)]
pub fn binary_gemm(m: usize, n: usize, k: usize, src: ASrc<f32>, bits: &[i8], alpha: &[f32], bias: Option<&[f32]>,
                   out: SharedMut<f32>, o: OutLayout) {
    assert!(bits.len() >= bits_len(k, n) && alpha.len() >= n && bias.is_none_or(|b| b.len() >= n),
        "binary_gemm: operand sizes do not match");
    if m == 0 || n == 0 {
        return;
    }
    let slivers = n.div_ceil(NR);
    let m_tiles = m.div_ceil(MC);
    let n_tiles = 8usize.div_ceil(m_tiles).min(slivers).max(1);
    let per = slivers.div_ceil(n_tiles);
    // SAFETY: before the job; no GemmA or Misc borrow is live.
    unsafe {
        scratch::reserve(Slot::GemmA, MC.min(m).div_ceil(MR) * MR * k);
        scratch::reserve(Slot::Misc, k * NR);
    }
    let task = |t: usize, thread: usize| {
        let (mi, ni) = (t / n_tiles, t % n_tiles);
        let i0 = mi * MC;
        let mc = MC.min(m - i0);
        let (s0, s1) = (ni * per, ((ni + 1) * per).min(slivers));
        if s0 >= s1 {
            return;
        }
        let panels = mc.div_ceil(MR);
        // SAFETY: `thread` is this task's pool thread; each slot is borrowed once here, and the
        // Misc slot is reinterpreted as i32 words (same size and alignment as f32).
        let (ap, signs) = unsafe {
            let ap = scratch::per_thread(Slot::GemmA, thread, panels * MR * k);
            let s = scratch::per_thread(Slot::Misc, thread, k * NR);
            (ap, std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut i32, k * NR))
        };
        pack_a_f32(src, i0, mc, k, ap);
        for s in s0..s1 {
            let j0 = s * NR;
            let nr = NR.min(n - j0);
            for kk in 0..k {
                let byte = bits[s * k + kk] as u8;
                for j in 0..NR {
                    signs[kk * NR + j] = if byte & (1 << j) != 0 { 0 } else { i32::MIN };
                }
            }
            let mut al = [0f32; NR];
            let mut bi = [0f32; NR];
            al[..nr].copy_from_slice(&alpha[j0..j0 + nr]);
            if let Some(b) = bias {
                bi[..nr].copy_from_slice(&b[j0..j0 + nr]);
            }
            // SAFETY: `al` and `bi` hold 8 floats.
            let (a0, a1, b0, b1) = unsafe {
                (F32x4::load(al.as_ptr()), F32x4::load(al.as_ptr().add(4)), F32x4::load(bi.as_ptr()), F32x4::load(bi.as_ptr().add(4)))
            };
            for r in 0..panels {
                let mr = MR.min(mc - r * MR);
                // SAFETY: panel r holds k*MR floats, `signs` k*NR words; this task owns rows
                // i0..i0+mc and the columns of slivers s0..s1 of the output.
                unsafe {
                    let acc = micro_kernel(k, ap.as_ptr().add(r * k * MR), signs.as_ptr());
                    for (i, row) in acc.iter().enumerate().take(mr) {
                        let mut v0 = row[0].mul(a0);
                        let mut v1 = row[1].mul(a1);
                        if bias.is_some() {
                            v0 = v0.add(b0);
                            v1 = v1.add(b1);
                        }
                        let dst = out.ptr().add(o.off + (i0 + r * MR + i) * o.ldc + j0);
                        if nr == NR {
                            v0.store(dst);
                            v1.store(dst.add(4));
                        } else {
                            let mut tmp = [0f32; NR];
                            v0.store(tmp.as_mut_ptr());
                            v1.store(tmp.as_mut_ptr().add(4));
                            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, nr);
                        }
                    }
                }
            }
        }
    };
    if num_threads() > 1 && m * n * k >= PAR_MIN_WORK {
        for_each(m_tiles * n_tiles, &task);
    } else {
        let me = current_thread();
        for t in 0..m_tiles * n_tiles {
            task(t, me);
        }
    }
}

/// Binary-weight convolution (NHWC, bits packed per group with `k = kh*kw*cin_g`, `n = cout_g`).
pub fn binary_conv2d(x: &[f32], g: &ConvGeom, bits: &[i8], alpha: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let (k, n) = (g.k(), g.cout_g());
    let blen = bits_len(k, n);
    assert!(x.len() == g.n * g.h * g.w * g.cin && bits.len() >= blen * g.groups && out.len() == g.pixels() * g.cout,
        "binary_conv2d: buffer sizes do not match the geometry");
    let op = SharedMut(out.as_mut_ptr());
    let conv_rows = if g.is_pointwise() { None } else { Some(ConvRows::new(x, g, 0.0)) };
    for grp in 0..g.groups {
        let src = match &conv_rows {
            None => ASrc::Dense { data: x, off: 0, lda: g.cin },
            Some(rows) => ASrc::Im2col { rows, grp, windows: false },
        };
        let c0 = grp * n;
        binary_gemm(g.pixels(), n, k, src, &bits[grp * blen..(grp + 1) * blen], &alpha[c0..], bias.map(|b| &b[c0..]),
            op, OutLayout { off: c0, ldc: g.cout });
    }
}

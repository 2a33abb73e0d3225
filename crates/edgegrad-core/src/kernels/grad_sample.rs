//! Per-example gradient kernels for differentially private training (`eg.privacy`).
//!
//! The weight gradient of a Linear or Conv2d layer is, per example i, a sum over positions t of
//! outer products: `dW_i = A_iᵀ · G_i` with `A_i [T, K]` (the layer's inputs, or the unfolded
//! input patches of a convolution) and `G_i [T, N]` (the gradients of its outputs).
//! `outer_per_example` materialises every dW_i (one batched GEMM). `outer_norms_sq` gives
//! ‖dW_i‖² without keeping them ("ghost" norms): by the Gram identity
//! ‖A_iᵀG_i‖² = ⟨A_iA_iᵀ, G_iG_iᵀ⟩ when that is cheaper (T·(K+N) < K·N, long sequences of small
//! features excluded), otherwise by materialising a bounded chunk of examples at a time.
//!
//! Determinism: every GEMM is bitwise independent of the thread count (see gemm.rs), and each
//! example's norm is summed by one task, in f64, in a fixed order.

use crate::kernels::conv::ConvGeom;
use crate::kernels::gemm::{gemm_batched, Mat};
use crate::parallel::{for_each, tasks_for, SharedMut};
use crate::scratch::{self, Slot};
use crate::simd::F32x4;
use crate::storage::alloc_f32;

/// Floats of scratch (unfolded patches, Gram matrices or per-example gradients) per chunk of
/// examples (8 MiB): bounds the memory of the ghost norms whatever the batch size.
pub const CHUNK_BUDGET: usize = 1 << 21;

/// A batch of row-major matrices: element (i, t, j) is `data[off + i*bs + t*rs + j]`.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    pub data: &'a [f32],
    pub off: usize,
    pub bs: usize,
    pub rs: usize,
}

impl<'a> Batch<'a> {
    /// Examples `i0..` of this batch.
    fn starting_at(self, i0: usize) -> Batch<'a> {
        Batch { off: self.off + i0 * self.bs, ..self }
    }
}

/// Examples per chunk when each takes `per_example` floats of scratch (at least one).
fn chunk_examples(n: usize, per_example: usize) -> usize {
    (CHUNK_BUDGET / per_example.max(1)).clamp(1, n.max(1))
}

/// `out[i] = A_iᵀ · G_i` (`[K, N]` row-major, contiguous per example) for `i < b`, with
/// `A_i [T, K]` and `G_i [T, N]`. `out` holds `b*K*N` floats and is fully overwritten.
pub fn outer_per_example(b: usize, t: usize, k: usize, n: usize, a: Batch, g: Batch, out: &mut [f32]) {
    assert!(out.len() == b * k * n, "outer_per_example: output size does not match");
    if t == 0 {
        out.fill(0.0);
        return;
    }
    if t == 1 {
        // One position (a plain Linear layer): each row is a scaled copy of g_i, written once
        // (a GEMM with an inner dimension of 1 would spend its time packing).
        let per = (crate::kernels::elementwise::GRAIN / (k * n).max(1)).max(1);
        let optr = SharedMut(out.as_mut_ptr());
        for_each(tasks_for(b, per), &|task, _| {
            for i in task * per..((task + 1) * per).min(b) {
                // SAFETY: example i's block (k*n floats) belongs to this task only.
                let dst = unsafe { optr.slice(i * k * n, k * n) };
                let (ar, gr) = (&a.data[a.off + i * a.bs..][..k], &g.data[g.off + i * g.bs..][..n]);
                for (r, &av) in ar.iter().enumerate() {
                    scale_into(&mut dst[r * n..(r + 1) * n], av, gr);
                }
            }
        });
        return;
    }
    let am = Mat { data: a.data, offset: a.off, rs: 1, cs: a.rs };
    let gm = Mat { data: g.data, offset: g.off, rs: g.rs, cs: 1 };
    gemm_batched(b, k, n, t, am, a.bs, gm, g.bs, out, k * n, false);
}

/// `dst = s * x`, vectorised (the scalar tail rounds like a vector lane).
#[inline(always)]
fn scale_into(dst: &mut [f32], s: f32, x: &[f32]) {
    let n = dst.len().min(x.len());
    let body = n & !3;
    let sv = F32x4::splat(s);
    let (d, px) = (dst.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n, and both slices hold at least n floats.
        unsafe { sv.mul(F32x4::load(px.add(i))).store(d.add(i)) };
        i += 4;
    }
    for i in body..n {
        dst[i] = s * x[i];
    }
}

/// `out[i] (+)= ‖A_iᵀ · G_i‖²_F` for `i < b` (shapes as in `outer_per_example`), never holding more
/// than `CHUNK_BUDGET` floats of intermediates.
#[allow(clippy::too_many_arguments)]
pub fn outer_norms_sq(b: usize, t: usize, k: usize, n: usize, a: Batch, g: Batch, out: &mut [f32], accumulate: bool) {
    assert!(out.len() == b, "outer_norms_sq: output size does not match");
    if !accumulate {
        out.fill(0.0);
    }
    if t == 0 || k == 0 || n == 0 || b == 0 {
        return;
    }
    let op = SharedMut(out.as_mut_ptr());
    if t == 1 {
        // One position: ‖a gᵀ‖² = ‖a‖²·‖g‖².
        let per = (crate::kernels::elementwise::GRAIN / (k + n)).max(1);
        for_each(tasks_for(b, per), &|task, _| {
            for i in task * per..((task + 1) * per).min(b) {
                let (ar, gr) = (&a.data[a.off + i * a.bs..][..k], &g.data[g.off + i * g.bs..][..n]);
                // SAFETY: out[i] belongs to this task only.
                unsafe { *op.ptr().add(i) += (sum_sq(ar) * sum_sq(gr)) as f32 };
            }
        });
        return;
    }
    // The Gram route runs small square products (padded to the GEMM's register tiles) and an f64
    // dot; it pays off when it needs clearly fewer multiply-adds, not at the break-even point.
    if 2 * t * (k + n) < k * n {
        gram_norms_sq(b, t, k, n, a, g, op);
    } else {
        materialised_norms_sq(b, t, k, n, a, g, op);
    }
}

/// Ghost norms through the Gram matrices: ‖A_iᵀG_i‖² = Σ_(s,u) (A_iA_iᵀ)_su (G_iG_iᵀ)_su.
fn gram_norms_sq(b: usize, t: usize, k: usize, n: usize, a: Batch, g: Batch, out: SharedMut<f32>) {
    let tt = t * t;
    let chunk = chunk_examples(b, 2 * tt);
    // SAFETY: called on the calling thread outside any parallel region; the Misc shared slot is
    // not borrowed elsewhere during this call (the GEMMs use their own slots).
    let buf = unsafe { std::slice::from_raw_parts_mut(scratch::shared(Slot::Misc, 2 * chunk * tt), 2 * chunk * tt) };
    let mut i0 = 0;
    while i0 < b {
        let cnt = chunk.min(b - i0);
        let (ga, gg) = buf.split_at_mut(chunk * tt);
        let (ai, gi) = (a.starting_at(i0), g.starting_at(i0));
        // A_i·A_iᵀ and G_i·G_iᵀ, [T, T] each.
        gemm_batched(cnt, t, t, k, Mat { data: ai.data, offset: ai.off, rs: ai.rs, cs: 1 }, ai.bs,
            Mat { data: ai.data, offset: ai.off, rs: 1, cs: ai.rs }, ai.bs, &mut ga[..cnt * tt], tt, false);
        gemm_batched(cnt, t, t, n, Mat { data: gi.data, offset: gi.off, rs: gi.rs, cs: 1 }, gi.bs,
            Mat { data: gi.data, offset: gi.off, rs: 1, cs: gi.rs }, gi.bs, &mut gg[..cnt * tt], tt, false);
        let (ga, gg) = (&ga[..], &gg[..]);
        for_each(tasks_for(cnt, 1), &|j, _| {
            let s = dot64(&ga[j * tt..(j + 1) * tt], &gg[j * tt..(j + 1) * tt]);
            // SAFETY: out[i0 + j] belongs to this task only.
            unsafe { *out.ptr().add(i0 + j) += s as f32 };
        });
        i0 += cnt;
    }
}

/// Norms of per-example gradients materialised one bounded chunk of examples at a time.
fn materialised_norms_sq(b: usize, t: usize, k: usize, n: usize, a: Batch, g: Batch, out: SharedMut<f32>) {
    let kn = k * n;
    let chunk = chunk_examples(b, kn);
    // SAFETY: as in `gram_norms_sq`: the calling thread's only borrow of the Misc shared slot.
    let buf = unsafe { std::slice::from_raw_parts_mut(scratch::shared(Slot::Misc, chunk * kn), chunk * kn) };
    let mut i0 = 0;
    while i0 < b {
        let cnt = chunk.min(b - i0);
        outer_per_example(cnt, t, k, n, a.starting_at(i0), g.starting_at(i0), &mut buf[..cnt * kn]);
        let grads = &buf[..];
        for_each(tasks_for(cnt, 1), &|j, _| {
            let s = sum_sq(&grads[j * kn..(j + 1) * kn]);
            // SAFETY: out[i0 + j] belongs to this task only.
            unsafe { *out.ptr().add(i0 + j) += s as f32 };
        });
        i0 += cnt;
    }
}

/// `out[i] = Σ_j x[i, j]²` for `b` rows of `len` floats (squared norms of materialised
/// per-example gradients), each row summed in f64 by one task.
pub fn rows_norms_sq(x: &[f32], b: usize, len: usize, out: &mut [f32]) {
    assert!(x.len() == b * len && out.len() == b, "rows_norms_sq: buffer sizes do not match");
    let per = (crate::kernels::elementwise::GRAIN / len.max(1)).max(1);
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(b, per), &|task, _| {
        for i in task * per..((task + 1) * per).min(b) {
            // SAFETY: out[i] belongs to this task only.
            unsafe { *op.ptr().add(i) = sum_sq(&x[i * len..(i + 1) * len]) as f32 };
        }
    });
}

/// Σ x² in f64, in index order.
fn sum_sq(x: &[f32]) -> f64 {
    x.iter().fold(0.0f64, |s, &v| s + v as f64 * v as f64)
}

/// Σ x·y in f64, in index order.
fn dot64(x: &[f32], y: &[f32]) -> f64 {
    x.iter().zip(y).fold(0.0f64, |s, (&a, &b)| s + a as f64 * b as f64)
}

// ------------------------------------------------------------------ convolution

/// Unfolds examples `n0..n0+cnt` of `x` for group `grp`: `out[j, p, (ky, kx, c)]` is input channel
/// `grp*Cin_g + c` under tap (ky, kx) of output pixel p of example `n0 + j` (0 over padding), so a
/// row matches the HWIO weight layout `[KH, KW, Cin_g]`.
pub fn unfold_examples(x: &[f32], g: &ConvGeom, grp: usize, n0: usize, cnt: usize, out: &mut [f32]) {
    let (cig, kg, pix) = (g.cin_g(), g.k(), g.oh * g.ow);
    assert!(out.len() >= cnt * pix * kg && x.len() == g.n * g.h * g.w * g.cin && n0 + cnt <= g.n,
        "unfold_examples: buffer sizes do not match the geometry");
    let rows = cnt * g.oh;
    let per = (crate::kernels::elementwise::GRAIN / (g.ow * kg).max(1)).max(1);
    let optr = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(rows, per), &|task, _| {
        for r in task * per..((task + 1) * per).min(rows) {
            let (j, oy) = (r / g.oh, r % g.oh);
            let n = n0 + j;
            // SAFETY: the rows of output row r (ow pixels of kg floats) belong to this task only.
            let dst = unsafe { optr.slice(r * g.ow * kg, g.ow * kg) };
            for ox in 0..g.ow {
                let prow = &mut dst[ox * kg..(ox + 1) * kg];
                // Whole kernel rows are contiguous in x (one group, no horizontal dilation, the
                // window inside the input): one copy of kw*cin floats per row instead of kw.
                let x0 = (ox * g.sw).checked_sub(g.pl).filter(|&v| v + g.kw <= g.w);
                let row_copy = g.groups == 1 && g.dw == 1 && x0.is_some();
                for ky in 0..g.kh {
                    let iy = (oy * g.sh + ky * g.dh).checked_sub(g.pt).filter(|&v| v < g.h);
                    if row_copy {
                        let d = &mut prow[ky * g.kw * cig..(ky + 1) * g.kw * cig];
                        match (iy, x0) {
                            (Some(iy), Some(x0)) => d.copy_from_slice(&x[((n * g.h + iy) * g.w + x0) * g.cin..][..g.kw * cig]),
                            _ => d.fill(0.0),
                        }
                        continue;
                    }
                    for kx in 0..g.kw {
                        let d = &mut prow[(ky * g.kw + kx) * cig..][..cig];
                        let ix = (ox * g.sw + kx * g.dw).checked_sub(g.pl).filter(|&v| v < g.w);
                        match (iy, ix) {
                            (Some(iy), Some(ix)) => {
                                d.copy_from_slice(&x[((n * g.h + iy) * g.w + ix) * g.cin + grp * cig..][..cig]);
                            }
                            _ => d.fill(0.0),
                        }
                    }
                }
            }
        }
    });
}

/// Per-example weight gradients of a convolution: `out[i]` (HWIO `[KH, KW, Cin_g, Cout]`) is
/// `unfold(x_i)ᵀ · dy_i`, per group. `out` holds `N * K * Cout` floats.
pub fn conv2d_per_example(x: &[f32], dy: &[f32], g: &ConvGeom, out: &mut [f32]) {
    let (kg, cgo, pix) = (g.k(), g.cout_g(), g.oh * g.ow);
    assert!(dy.len() == g.n * pix * g.cout && out.len() == g.n * kg * g.cout, "conv2d_per_example: buffer sizes do not match");
    if g.n == 0 {
        return;
    }
    let chunk = chunk_examples(g.n, pix * kg);
    let mut patches = alloc_f32(chunk * pix * kg);
    // With groups, each group's [K_g, Cout_g] block is scattered into its columns of the output.
    let mut tmp = if g.groups > 1 { alloc_f32(chunk * kg * cgo) } else { Vec::new() };
    let mut n0 = 0;
    while n0 < g.n {
        let cnt = chunk.min(g.n - n0);
        for grp in 0..g.groups {
            unfold_examples(x, g, grp, n0, cnt, &mut patches);
            let a = Batch { data: &patches, off: 0, bs: pix * kg, rs: kg };
            let gb = Batch { data: dy, off: n0 * pix * g.cout + grp * cgo, bs: pix * g.cout, rs: g.cout };
            if g.groups == 1 {
                outer_per_example(cnt, pix, kg, cgo, a, gb, &mut out[n0 * kg * g.cout..(n0 + cnt) * kg * g.cout]);
            } else {
                outer_per_example(cnt, pix, kg, cgo, a, gb, &mut tmp[..cnt * kg * cgo]);
                for j in 0..cnt {
                    for r in 0..kg {
                        let dst = (n0 + j) * kg * g.cout + r * g.cout + grp * cgo;
                        out[dst..dst + cgo].copy_from_slice(&tmp[(j * kg + r) * cgo..][..cgo]);
                    }
                }
            }
        }
        n0 += cnt;
    }
}

/// `out[i] = ‖dW_i‖²` of a convolution's per-example weight gradients, without holding them all
/// (Gram trick over the output pixels or bounded chunks, per group).
pub fn conv2d_norms_sq(x: &[f32], dy: &[f32], g: &ConvGeom, out: &mut [f32]) {
    let (kg, cgo, pix) = (g.k(), g.cout_g(), g.oh * g.ow);
    assert!(dy.len() == g.n * pix * g.cout && out.len() == g.n, "conv2d_norms_sq: buffer sizes do not match");
    out.fill(0.0);
    if g.n == 0 {
        return;
    }
    let chunk = chunk_examples(g.n, pix * kg);
    // SAFETY: calling thread; the ConvPatch shared slot is borrowed by nothing else during this
    // call (the norms use the Misc slot and the GEMMs theirs).
    let patches = unsafe { std::slice::from_raw_parts_mut(scratch::shared(Slot::ConvPatch, chunk * pix * kg), chunk * pix * kg) };
    let mut n0 = 0;
    while n0 < g.n {
        let cnt = chunk.min(g.n - n0);
        for grp in 0..g.groups {
            unfold_examples(x, g, grp, n0, cnt, patches);
            let a = Batch { data: patches, off: 0, bs: pix * kg, rs: kg };
            let gb = Batch { data: dy, off: n0 * pix * g.cout + grp * cgo, bs: pix * g.cout, rs: g.cout };
            outer_norms_sq(cnt, pix, kg, cgo, a, gb, &mut out[n0..n0 + cnt], true);
        }
        n0 += cnt;
    }
}

// ------------------------------------------------------------------ embedding

/// Per-example gradients of an embedding table `[V, D]`: `out[i, v] = Σ_(t: idx[i,t] = v) g[i, t]`.
/// `idx` is `[B, T]` (checked to lie in `0..V` by the caller), `g` `[B, T, D]`, `out` `[B, V, D]`.
pub fn embedding_per_example(idx: &[i32], g: &[f32], b: usize, t: usize, d: usize, v: usize, out: &mut [f32]) {
    assert!(idx.len() == b * t && g.len() == b * t * d && out.len() == b * v * d, "embedding_per_example: buffer sizes do not match");
    let optr = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(b, 1), &|i, _| {
        // SAFETY: example i's table (v*d floats) belongs to this task only.
        let dst = unsafe { optr.slice(i * v * d, v * d) };
        dst.fill(0.0);
        for s in 0..t {
            let row = idx[i * t + s] as usize;
            crate::kernels::conv::add_assign(&mut dst[row * d..(row + 1) * d], &g[(i * t + s) * d..][..d]);
        }
    });
}

/// `out[i] = ‖Σ_t e_(idx[i,t]) g[i,t]ᵀ‖²` without the `[V, D]` tables: the rows of example i that
/// share an index are summed (first-occurrence order) and each distinct row's squared norm added.
pub fn embedding_norms_sq(idx: &[i32], g: &[f32], b: usize, t: usize, d: usize, out: &mut [f32]) {
    assert!(idx.len() == b * t && g.len() == b * t * d && out.len() == b, "embedding_norms_sq: buffer sizes do not match");
    let optr = SharedMut(out.as_mut_ptr());
    // SAFETY: before the job; no Misc borrow is live.
    unsafe { scratch::reserve(Slot::Misc, d) };
    for_each(tasks_for(b, 1), &|i, thread| {
        // SAFETY: `thread` is this task's pool index; no other borrow of this slot is live here.
        let acc = unsafe { scratch::per_thread(Slot::Misc, thread, d) };
        let ids = &idx[i * t..(i + 1) * t];
        let mut total = 0.0f64;
        for s in 0..t {
            if ids[..s].contains(&ids[s]) {
                continue;
            }
            acc.copy_from_slice(&g[(i * t + s) * d..][..d]);
            for u in s + 1..t {
                if ids[u] == ids[s] {
                    crate::kernels::conv::add_assign(acc, &g[(i * t + u) * d..][..d]);
                }
            }
            total += sum_sq(acc);
        }
        // SAFETY: out[i] belongs to this task only.
        unsafe { *optr.ptr().add(i) = total as f32 };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(n: usize, h: usize, w: usize, cin: usize, k: usize, cout: usize, groups: usize, s: usize, p: usize, dil: usize) -> ConvGeom {
        let oh = (h + 2 * p - dil * (k - 1) - 1) / s + 1;
        let ow = (w + 2 * p - dil * (k - 1) - 1) / s + 1;
        ConvGeom { n, h, w, cin, kh: k, kw: k, cout, groups, sh: s, sw: s, dh: dil, dw: dil, pt: p, pl: p, oh, ow }
    }

    fn vals(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..len).map(|_| {
            s = s.wrapping_mul(1103515245).wrapping_add(12345);
            ((s >> 8) % 2001) as f32 / 1000.0 - 1.0
        }).collect()
    }

    /// Per-example conv gradients equal the batch weight gradient of each example alone, and
    /// the ghost norms equal the norms of the materialised ones (Gram and chunked routes).
    #[test]
    fn conv_per_example_matches_single_example_backward() {
        for &(groups, s, p, dil, cout) in &[(1, 1, 0, 1, 4), (2, 2, 1, 1, 4), (1, 1, 2, 2, 3), (4, 1, 1, 1, 4), (1, 2, 1, 1, 5)] {
            let g = geom(3, 7, 6, 4, 3, cout, groups, s, p, dil);
            let x = vals(g.n * g.h * g.w * g.cin, 1);
            let dy = vals(g.n * g.oh * g.ow * g.cout, 2);
            let kc = g.k() * g.cout;
            let mut per = vec![0.0; g.n * kc];
            conv2d_per_example(&x, &dy, &g, &mut per);
            let w = vec![0.0; kc];
            for i in 0..g.n {
                let g1 = ConvGeom { n: 1, ..g };
                let xi = &x[i * g.h * g.w * g.cin..(i + 1) * g.h * g.w * g.cin];
                let dyi = &dy[i * g.oh * g.ow * g.cout..(i + 1) * g.oh * g.ow * g.cout];
                let mut dw = vec![0.0; kc];
                crate::kernels::conv::conv2d_backward(xi, &w, dyi, &g1, None, Some(&mut dw));
                for (a, b) in per[i * kc..(i + 1) * kc].iter().zip(&dw) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "groups {}: {} vs {}", groups, a, b);
                }
            }
            let mut norms = vec![0.0; g.n];
            conv2d_norms_sq(&x, &dy, &g, &mut norms);
            for i in 0..g.n {
                let want = sum_sq(&per[i * kc..(i + 1) * kc]) as f32;
                assert!((norms[i] - want).abs() <= 1e-5 * want, "{} vs {}", norms[i], want);
            }
        }
    }

    #[test]
    fn gram_and_materialised_norms_agree() {
        // 2*T*(K+N) < K*N takes the Gram route; the other shapes the chunked one.
        for &(t, k, n) in &[(3, 16, 16), (20, 4, 5), (1, 7, 3), (5, 16, 16)] {
            let b = 5;
            let a = vals(b * t * k, 3);
            let g = vals(b * t * n, 4);
            let ab = Batch { data: &a, off: 0, bs: t * k, rs: k };
            let gb = Batch { data: &g, off: 0, bs: t * n, rs: n };
            let mut per = vec![0.0; b * k * n];
            outer_per_example(b, t, k, n, ab, gb, &mut per);
            let mut norms = vec![0.0; b];
            outer_norms_sq(b, t, k, n, ab, gb, &mut norms, false);
            for i in 0..b {
                let want = sum_sq(&per[i * k * n..(i + 1) * k * n]) as f32;
                assert!((norms[i] - want).abs() <= 1e-5 * want);
                // And the materialised gradient is Σ_t a_t g_tᵀ.
                let mut w00 = 0.0;
                for s in 0..t {
                    w00 += a[i * t * k + s * k] * g[i * t * n + s * n];
                }
                assert!((per[i * k * n] - w00).abs() <= 1e-5);
            }
        }
    }

    #[test]
    fn embedding_norms_match_tables() {
        let (b, t, d, v) = (3, 6, 4, 5);
        let idx: Vec<i32> = vec![0, 1, 0, 4, 4, 4, 2, 2, 2, 2, 2, 2, 0, 1, 2, 3, 4, 0];
        let g = vals(b * t * d, 5);
        let mut tables = vec![0.0; b * v * d];
        embedding_per_example(&idx, &g, b, t, d, v, &mut tables);
        let mut norms = vec![0.0; b];
        embedding_norms_sq(&idx, &g, b, t, d, &mut norms);
        for i in 0..b {
            let want = sum_sq(&tables[i * v * d..(i + 1) * v * d]) as f32;
            assert!((norms[i] - want).abs() <= 1e-5 * want);
        }
    }
}

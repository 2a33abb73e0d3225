//! 2-D convolution kernels: NHWC activations, HWIO weights `[KH, KW, Cin/groups, Cout]`.
//!
//! General path (any stride, padding, dilation, groups): per group, one GEMM of the implicit
//! im2col matrix `[N*OH*OW, KH*KW*Cin_g]` by the group's weight slice, whose A panels are packed
//! straight from x (`gemm_packing_a` + `pack_patch_panels`: the patch matrix never exists); the
//! output rows are pre-filled with the bias. `Mat` offsets and strides pick the group's columns
//! of W and of the output in place. (At most MR output pixels: an explicit patch and `gemm`.)
//!
//! Backward: `dW_g = patchᵀ · dY_g`, one GEMM over all pixels packing patchᵀ from x
//! (`pack_patch_t_panels`); per chunk of pixels and group, `dX += col2im(dY_g · W_gᵀ)` done as
//! a gather: each task owns whole rows of dX and adds the chunk's contributions to each element
//! in (ky, kx) order. Every dX element thus receives its terms in one order fixed by the shape
//! (chunk order, then ky, then kx), whatever the thread count.
//!
//! Special cases: a pointwise conv (1x1, stride 1, no padding, one group) is one GEMM on x viewed
//! as `[N*H*W, Cin]`; a depthwise conv (one input and one output channel per group) runs a
//! direct kernel vectorised over channels. The GEMM runs on the calling thread (it splits itself
//! over the pool), never inside our tasks, because its parallel mode uses a shared scratch slot.

use crate::kernels::elementwise::GRAIN;
use crate::kernels::gemm::{accumulate_tile, gemm, gemm_packing_a, Mat, KC as GEMM_KC, MR as GEMM_MR, NR as GEMM_NR};
use crate::kernels::pool::{max_step, takes as max_takes};
use crate::parallel::{for_each, tasks_for, SharedMut};
use crate::scratch::{self, Slot};
use crate::simd::F32x4;

/// Floats of im2col patch per chunk (4 MiB): bounds the scratch memory while keeping each GEMM
/// big enough to spread over the pool.
pub const PATCH_BUDGET: usize = 1 << 20;
/// Output channels per task in the depthwise weight-gradient reduction.
const DW_CHANNEL_BLOCK: usize = 64;

/// Everything a kernel needs to know about one convolution. `pt`/`pl` are the top/left padding;
/// bottom/right padding only enter through `oh`/`ow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub kh: usize,
    pub kw: usize,
    pub cout: usize,
    pub groups: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    pub fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    pub fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Length of one im2col row (the GEMM's inner dimension).
    pub fn k(&self) -> usize {
        self.kh * self.kw * self.cin_g()
    }
    pub fn pixels(&self) -> usize {
        self.n * self.oh * self.ow
    }
    /// 1x1, stride 1, no padding, one group: the conv is a plain matrix product.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.pt == 0 && self.pl == 0
            && self.groups == 1 && self.oh == self.h && self.ow == self.w
    }
    /// One input and one output channel per group (groups == Cin == Cout).
    pub fn is_depthwise(&self) -> bool {
        self.cin_g() == 1 && self.cout_g() == 1
    }
    /// Output pixels per chunk of the general path (depends only on the shape).
    pub fn chunk_pixels(&self) -> usize {
        let mut c = PATCH_BUDGET / self.k().max(1);
        if c >= 64 {
            c -= c % 64;
        }
        c.max(1).min(self.pixels().max(1))
    }
    /// Input row read by kernel row `ky` of output row `oy`, if it is not padding.
    #[inline(always)]
    fn in_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let t = oy * self.sh + ky * self.dh;
        if t < self.pt || t - self.pt >= self.h { None } else { Some(t - self.pt) }
    }
    #[inline(always)]
    fn in_col(&self, ox: usize, kx: usize) -> Option<usize> {
        let t = ox * self.sw + kx * self.dw;
        if t < self.pl || t - self.pl >= self.w { None } else { Some(t - self.pl) }
    }
    /// The output row whose kernel row `ky` reads input row `iy`, if any.
    #[inline(always)]
    fn out_row(&self, iy: usize, ky: usize) -> Option<usize> {
        let (t, o) = (iy + self.pt, ky * self.dh);
        if t < o || (t - o) % self.sh != 0 {
            return None;
        }
        let oy = (t - o) / self.sh;
        if oy < self.oh { Some(oy) } else { None }
    }
    #[inline(always)]
    fn out_col(&self, ix: usize, kx: usize) -> Option<usize> {
        let (t, o) = (ix + self.pl, kx * self.dw);
        if t < o || (t - o) % self.sw != 0 {
            return None;
        }
        let ox = (t - o) / self.sw;
        if ox < self.ow { Some(ox) } else { None }
    }
}

// ------------------------------------------------------------------ small vector helpers

/// `dst[i] += src[i]`. The scalar tail does the same IEEE add as a vector lane.
#[inline(always)]
pub(crate) fn add_assign(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    let body = n & !3;
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n, and both slices hold at least n floats.
        unsafe { F32x4::load(d.add(i)).add(F32x4::load(s.add(i))).store(d.add(i)) };
        i += 4;
    }
    for i in body..n {
        dst[i] += src[i];
    }
}

/// `dst[i] += a[i] * b[i]` (a multiply then an add: no fused multiply-add anywhere).
#[inline(always)]
fn mul_add_assign(dst: &mut [f32], a: &[f32], b: &[f32]) {
    let n = dst.len().min(a.len()).min(b.len());
    let body = n & !3;
    let (d, pa, pb) = (dst.as_mut_ptr(), a.as_ptr(), b.as_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n, and all three slices hold at least n floats.
        unsafe {
            let p = F32x4::load(pa.add(i)).mul(F32x4::load(pb.add(i)));
            F32x4::load(d.add(i)).add(p).store(d.add(i));
        }
        i += 4;
    }
    for i in body..n {
        dst[i] += a[i] * b[i];
    }
}

/// Writes `row` into each of `rows` consecutive rows of `out` (bias pre-fill), in parallel.
fn fill_rows(out: &mut [f32], row: &[f32]) {
    let len = row.len();
    if len == 0 {
        return;
    }
    let rows = out.len() / len;
    let per = (GRAIN / len).max(1);
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(rows, per), &|t, _| {
        for r in t * per..((t + 1) * per).min(rows) {
            // SAFETY: row r (len floats, inside `out`) belongs to this task only.
            unsafe { op.slice(r * len, len) }.copy_from_slice(row);
        }
    });
}

/// Output coordinates `(n, oy, ox)` of consecutive GEMM rows of a convolution, in raster order
/// or, with `windows`, grouped by 2x2 pooling windows (rows `4w..4w+4` are the four pixels of
/// pooled pixel w in an `(oh/2, ow/2)` grid; odd last rows/columns are never computed).
/// Stepping instead of dividing per row: integer division costs as much as a row's packing.
#[derive(Clone, Copy)]
pub struct PixelWalk {
    windows: bool,
    /// Grid walked: `(oh, ow)`, or `(oh/2, ow/2)` with windows.
    gh: usize,
    gw: usize,
    n: usize,
    y: usize,
    x: usize,
    /// Position inside the window (windows only).
    q: usize,
}

impl PixelWalk {
    /// The walk from GEMM row `row`.
    pub fn new(g: &ConvGeom, windows: bool, row: usize) -> PixelWalk {
        let (gh, gw, cell, q) = if windows { (g.oh / 2, g.ow / 2, row / 4, row % 4) } else { (g.oh, g.ow, row, 0) };
        PixelWalk { windows, gh, gw, n: cell / (gh * gw), y: (cell / gw) % gh, x: cell % gw, q }
    }

    /// The current row's `(n, oy, ox)`, then steps to the next row.
    #[inline(always)]
    pub fn next_pixel(&mut self) -> (usize, usize, usize) {
        let p = if self.windows { (self.n, 2 * self.y + self.q / 2, 2 * self.x + self.q % 2) } else { (self.n, self.y, self.x) };
        if self.windows && self.q < 3 {
            self.q += 1;
            return p;
        }
        self.q = 0;
        self.x += 1;
        if self.x == self.gw {
            self.x = 0;
            self.y += 1;
            if self.y == self.gh {
                self.y = 0;
                self.n += 1;
            }
        }
        p
    }
}

// ------------------------------------------------------------------ im2col / col2im

/// One im2col row: the receptive field of output pixel (n, oy, ox) for group `grp`, laid out
/// `(ky, kx, c)` like the weights' rows; padding reads as zero.
#[inline]
fn im2col_row(x: &[f32], g: &ConvGeom, grp: usize, n: usize, oy: usize, ox: usize, dst: &mut [f32]) {
    let cg = g.cin_g();
    let c0 = grp * cg;
    let run = g.kw * cg;
    for ky in 0..g.kh {
        let row = &mut dst[ky * run..(ky + 1) * run];
        let Some(iy) = g.in_row(oy, ky) else {
            row.fill(0.0);
            continue;
        };
        let base = (n * g.h + iy) * g.w;
        let t0 = ox * g.sw;
        if g.groups == 1 && g.dw == 1 && t0 >= g.pl && t0 - g.pl + g.kw <= g.w {
            // The whole kernel row is one contiguous run of x.
            let s = (base + t0 - g.pl) * g.cin;
            row.copy_from_slice(&x[s..s + run]);
            continue;
        }
        for kx in 0..g.kw {
            let d = &mut row[kx * cg..(kx + 1) * cg];
            match g.in_col(ox, kx) {
                None => d.fill(0.0),
                Some(ix) => {
                    let s = (base + ix) * g.cin + c0;
                    d.copy_from_slice(&x[s..s + cg]);
                }
            }
        }
    }
}

/// Packs the im2col patch rows of pixels `i0..i0+mc`, columns `pc..pc+kc` (group `grp`) in the
/// GEMM's A-panel layout (`out[r*MR*kc + p*MR + i]`, rows past `mc` zero), reading x directly.
/// Columns run (ky, kx, c); each (ky, kx) tap is one contiguous run of channels in x.
#[allow(clippy::too_many_arguments)]
fn pack_patch_panels(x: &[f32], g: &ConvGeom, grp: usize, i0: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
    let mr = GEMM_MR;
    let cg = g.cin_g();
    let c0 = grp * cg;
    let panels = mc.div_ceil(mr);
    let pixel = |px: usize| (px / (g.oh * g.ow), (px / g.ow) % g.oh, px % g.ow);
    // Start of the run of x that column p (tap, channel c) of pixel (n, oy, ox) begins, if inside x.
    let source = |(n, oy, ox): (usize, usize, usize), tap: usize, c: usize| -> Option<usize> {
        let iy = g.in_row(oy, tap / g.kw)?;
        let ix = g.in_col(ox, tap % g.kw)?;
        Some(((n * g.h + iy) * g.w + ix) * g.cin + c0 + c)
    };
    for r in 0..panels {
        let panel = &mut out[r * mr * kc..(r + 1) * mr * kc];
        if mr == 4 && (r + 1) * mr <= mc {
            // A full panel: four rows' runs read as vectors and transposed 4x4 into the panel.
            let px = [0, 1, 2, 3].map(|i| pixel(i0 + r * mr + i));
            let mut p = pc;
            while p < pc + kc {
                let (tap, c) = (p / cg, p % cg);
                let len = (cg - c).min(pc + kc - p);
                let src = px.map(|q| source(q, tap, c));
                let dst = (p - pc) * mr;
                let body = len / 4 * 4;
                let mut q = 0;
                while q < body {
                    // SAFETY: each present run has len >= q + 4 floats in x; the panel holds kc*MR
                    // floats and (p - pc + q + 4) * MR <= kc * MR.
                    unsafe {
                        let ld = |s: Option<usize>| s.map_or(F32x4::zero(), |s| F32x4::load(x.as_ptr().add(s + q)));
                        let t = F32x4::transpose4(ld(src[0]), ld(src[1]), ld(src[2]), ld(src[3]));
                        for (j, v) in t.iter().enumerate() {
                            v.store(panel.as_mut_ptr().add(dst + (q + j) * mr));
                        }
                    }
                    q += 4;
                }
                for q in body..len {
                    for (i, s) in src.iter().enumerate() {
                        panel[dst + q * mr + i] = s.map_or(0.0, |s| x[s + q]);
                    }
                }
                p += len;
            }
            continue;
        }
        for i in 0..mr {
            let row = r * mr + i;
            if row >= mc {
                for p in 0..kc {
                    panel[p * mr + i] = 0.0;
                }
                continue;
            }
            let px = i0 + row;
            let (n, oy, ox) = (px / (g.oh * g.ow), (px / g.ow) % g.oh, px % g.ow);
            let mut p = pc;
            while p < pc + kc {
                let (tap, c) = (p / cg, p % cg);
                let len = (cg - c).min(pc + kc - p);
                let dst = (p - pc) * mr + i;
                match (g.in_row(oy, tap / g.kw), g.in_col(ox, tap % g.kw)) {
                    (Some(iy), Some(ix)) => {
                        let src = &x[((n * g.h + iy) * g.w + ix) * g.cin + c0 + c..][..len];
                        for (q, &v) in src.iter().enumerate() {
                            panel[dst + q * mr] = v;
                        }
                    }
                    _ => {
                        for q in 0..len {
                            panel[dst + q * mr] = 0.0;
                        }
                    }
                }
                p += len;
            }
        }
    }
}

/// Packs rows `i0..i0+mc` (patch columns: (ky, kx, c) indices), columns `pc..pc+kc` (pixels) of
/// patchᵀ (group `grp`) in the GEMM's A-panel layout, reading x directly. When four consecutive
/// indices are four channels of one tap, each pixel's panel column is one vector load.
#[allow(clippy::too_many_arguments)]
fn pack_patch_t_panels(x: &[f32], g: &ConvGeom, grp: usize, i0: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
    let mr = GEMM_MR;
    let cg = g.cin_g();
    let c0 = grp * cg;
    let panels = mc.div_ceil(mr);
    let start = PixelWalk::new(g, false, pc);
    for r in 0..panels {
        let panel = &mut out[r * mr * kc..(r + 1) * mr * kc];
        let row0 = i0 + r * mr;
        let rows = (mc - r * mr).min(mr);
        if mr == 4 && rows == mr && row0 % cg + mr <= cg {
            let (tap, c) = (row0 / cg, row0 % cg);
            let (ky, kx) = (tap / g.kw, tap % g.kw);
            let mut px = start;
            for p in 0..kc {
                let (n, oy, ox) = px.next_pixel();
                let v = match (g.in_row(oy, ky), g.in_col(ox, kx)) {
                    // SAFETY: channels c..c+4 of one pixel lie inside x (c + 4 <= cg).
                    (Some(iy), Some(ix)) => unsafe { F32x4::load(x.as_ptr().add(((n * g.h + iy) * g.w + ix) * g.cin + c0 + c)) },
                    _ => F32x4::zero(),
                };
                // SAFETY: the panel holds kc*MR floats.
                unsafe { v.store(panel.as_mut_ptr().add(p * mr)) };
            }
            continue;
        }
        for i in 0..mr {
            if i >= rows {
                for p in 0..kc {
                    panel[p * mr + i] = 0.0;
                }
                continue;
            }
            let (tap, c) = ((row0 + i) / cg, (row0 + i) % cg);
            let (ky, kx) = (tap / g.kw, tap % g.kw);
            let mut px = start;
            for p in 0..kc {
                let (n, oy, ox) = px.next_pixel();
                panel[p * mr + i] = match (g.in_row(oy, ky), g.in_col(ox, kx)) {
                    (Some(iy), Some(ix)) => x[((n * g.h + iy) * g.w + ix) * g.cin + c0 + c],
                    _ => 0.0,
                };
            }
        }
    }
}

/// Builds the patch rows of pixels `p0..p0+rows` (group `grp`) at `patch`, in parallel. With
/// `bias`, each task also writes the bias into the output rows of its pixels (all channels).
///
/// # Safety
/// `patch` must address `rows * g.k()` writable floats and the output (if given) `g.pixels() *
/// g.cout`, with nothing else reading or writing them during the call.
unsafe fn im2col(x: &[f32], g: &ConvGeom, grp: usize, p0: usize, rows: usize, patch: SharedMut<f32>,
                 bias: Option<(&[f32], SharedMut<f32>)>) {
    let k = g.k();
    let per = (GRAIN / k.max(1)).max(1);
    for_each(tasks_for(rows, per), &|t, _| {
        let (r0, r1) = (t * per, ((t + 1) * per).min(rows));
        let p = p0 + r0;
        let (mut n, mut oy, mut ox) = (p / (g.oh * g.ow), (p / g.ow) % g.oh, p % g.ow);
        for r in r0..r1 {
            // SAFETY: patch row r belongs to this task (rows are split between tasks), in bounds
            // by the function's contract.
            let dst = unsafe { patch.slice(r * k, k) };
            im2col_row(x, g, grp, n, oy, ox, dst);
            if let Some((b, out)) = bias {
                // SAFETY: output row p0 + r belongs to this task for the same reason.
                unsafe { out.slice((p0 + r) * g.cout, g.cout) }.copy_from_slice(b);
            }
            ox += 1;
            if ox == g.ow {
                ox = 0;
                oy += 1;
                if oy == g.oh {
                    oy = 0;
                    n += 1;
                }
            }
        }
    });
}

/// `dx[:, :, :, group grp] += col2im(dcol)` for the chunk of pixels `p0..p0+rows`, as a gather
/// over input rows: a task owns whole input rows, each element gets its terms in (ky, kx) order.
fn col2im_gather(dcol: &[f32], g: &ConvGeom, grp: usize, p0: usize, rows: usize, dx: &mut [f32]) {
    let (k, cg) = (g.k(), g.cin_g());
    let p1 = p0 + rows;
    // Global input rows (n*H + iy) that the chunk's output rows can touch: a superset is fine.
    let (r_first, r_last) = (p0 / g.ow, (p1 - 1) / g.ow);
    let lo = (r_first / g.oh) * g.h + ((r_first % g.oh) * g.sh).saturating_sub(g.pt).min(g.h);
    let hi = (r_last / g.oh) * g.h
        + ((r_last % g.oh) * g.sh + (g.kh - 1) * g.dh + 1).saturating_sub(g.pt).min(g.h);
    if hi <= lo {
        return;
    }
    let row_len = g.w * g.cin;
    let per = (GRAIN / (g.w * cg * g.kh * g.kw).max(1)).max(1);
    let dxp = SharedMut(dx.as_mut_ptr());
    for_each(tasks_for(hi - lo, per), &|t, _| {
        for gi in lo + t * per..(lo + (t + 1) * per).min(hi) {
            let (n, iy) = (gi / g.h, gi % g.h);
            // SAFETY: input row gi (row_len floats of dx) belongs to this task only.
            let drow = unsafe { dxp.slice(gi * row_len, row_len) };
            for ky in 0..g.kh {
                let Some(oy) = g.out_row(iy, ky) else { continue };
                let rbase = (n * g.oh + oy) * g.ow;
                for ix in 0..g.w {
                    let dst = &mut drow[ix * g.cin + grp * cg..][..cg];
                    for kx in 0..g.kw {
                        let Some(ox) = g.out_col(ix, kx) else { continue };
                        let pix = rbase + ox;
                        if pix < p0 || pix >= p1 {
                            continue;
                        }
                        add_assign(dst, &dcol[(pix - p0) * k + (ky * g.kw + kx) * cg..][..cg]);
                    }
                }
            }
        }
    });
}

// ------------------------------------------------------------------ forward

/// Receptive fields (KH·KW·Cin) up to this size use the direct kernel: first layers of image
/// models, where an im2col GEMM with such a short inner dimension is dominated by packing.
pub const DIRECT_MAX_K: usize = 32;

/// `out = conv(x, w) (+ bias)`, then ReLU if `relu`; `out` holds `g.pixels() * g.cout` floats
/// (any contents).
pub fn conv2d_forward_act(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, relu: bool, out: &mut [f32]) {
    if g.takes_direct() && g.pixels() > 0 && g.cout > 0 {
        direct_forward(x, w, bias, g, relu, out);
        return;
    }
    if g.takes_implicit() && g.cout > 0 {
        implicit_forward(x, w, bias, g, relu, out);
        return;
    }
    conv2d_forward(x, w, bias, g, out);
    if relu {
        crate::kernels::elementwise::unary_inplace(out, |v| v.pmax(F32x4::zero()));
    }
}

/// True where `conv2d_relu_max_pool2` runs in one pass (the implicit-GEMM kernel, its tiles
/// the pooling windows); elsewhere callers run `conv2d_forward_act` and `max_pool_forward`.
pub fn fuses_max_pool2(g: &ConvGeom) -> bool {
    (g.takes_direct() || g.takes_implicit()) && g.oh >= 2 && g.ow >= 2 && g.cout > 0
}

/// `max_pool(relu(conv(x, w) + bias))` over 2x2 windows at stride 2 (odd last rows and columns
/// dropped), bitwise what the two ops give; `out` holds `N * (OH/2) * (OW/2) * Cout` floats.
/// Needs `fuses_max_pool2(g)`.
pub fn conv2d_relu_max_pool2(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, out: &mut [f32]) {
    assert!(fuses_max_pool2(g) && x.len() == g.n * g.h * g.w * g.cin && w.len() == g.k() * g.cout
        && out.len() == g.n * (g.oh / 2) * (g.ow / 2) * g.cout, "conv2d_relu_max_pool2: buffer sizes do not match the geometry");
    if g.takes_direct() {
        direct_impl(x, w, bias, g, true, true, out);
    } else {
        implicit_impl(x, w, bias, g, true, true, out);
    }
}

// ------------------------------------------------------------------ implicit GEMM

/// Output pixels up to which the general path runs the implicit-GEMM kernel instead of the
/// packed GEMM: batch-1 inference, where packing the patch panels and the weights every call
/// cost as much as the product itself. (At batch 32 of the benchmark CNN, 6272 pixels, the
/// packed GEMM was ~7% faster: each packed A panel meets all the output channels.)
pub const IMPLICIT_MAX_PIXELS: usize = 4096;
/// Output pixels × output channels of the implicit kernel's register tile (8 accumulators): the
/// GEMM's, since both run its `accumulate_tile` (each A value a broadcast load, B plain vector
/// loads, one step per iteration: an unrolled body lets LLVM hoist every load, and V8's 16
/// registers then spill).
const IG_MR: usize = GEMM_MR;
const IG_NR: usize = GEMM_NR;

impl ConvGeom {
    /// True where `conv2d_forward_act` runs the direct kernel (small receptive fields).
    pub fn takes_direct(&self) -> bool {
        self.groups == 1 && self.k() <= DIRECT_MAX_K && !self.is_pointwise()
    }
    /// True where the general path (not pointwise, not depthwise, more than MR pixels) runs the
    /// implicit-GEMM kernel.
    pub fn takes_implicit(&self) -> bool {
        let p = self.pixels();
        !self.is_pointwise() && !self.is_depthwise() && p > GEMM_MR && p <= IMPLICIT_MAX_PIXELS
    }
}

/// One pixel's 8 channels of a register tile into `o` (its first `o.len() <= 8`).
#[inline(always)]
fn store_tile_row(v: &[F32x4; 2], o: &mut [f32]) {
    if o.len() == IG_NR {
        // SAFETY: o holds 8 floats.
        unsafe {
            v[0].store(o.as_mut_ptr());
            v[1].store(o.as_mut_ptr().add(4));
        }
        return;
    }
    let mut t = [0.0f32; IG_NR];
    // SAFETY: t holds 8 floats.
    unsafe {
        v[0].store(t.as_mut_ptr());
        v[1].store(t.as_mut_ptr().add(4));
    }
    let n = o.len();
    o.copy_from_slice(&t[..n]);
}

/// The general convolution as an implicit GEMM for few pixels: per tile of 4 output pixels the
/// receptive fields are gathered once from x into a packed panel (padding taps zero), which
/// every 8-wide sliver of the weights (copied once per call) then meets in a 4×8 register tile. No B packing per block, no bias pre-fill pass, no ReLU pass. Bitwise what `gemm_forward` gives: each
/// element sums its k terms (ky, kx, c) in order, in blocks of the GEMM's KC started from zero,
/// each multiply then add (`mul_add`, fused only in the relaxed build like the GEMM's), the
/// blocks added in turn to the bias; ReLU (`pmax`) last. A task owns whole tiles of pixels, so
/// the result does not depend on the thread count.
fn implicit_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, relu: bool, out: &mut [f32]) {
    implicit_impl(x, w, bias, g, relu, false, out);
}

/// `implicit_forward`, with `pool` each tile being one 2x2 window (`PixelWalk` windows) whose
/// maximum (`max_pool_forward`'s: the first, NaN counting as largest) is all that is stored:
/// `out` is then `[N, OH/2, OW/2, Cout]`.
fn implicit_impl(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, relu: bool, pool: bool, out: &mut [f32]) {
    let (k, cg, cgo, cout) = (g.k(), g.cin_g(), g.cout_g(), g.cout);
    let slivers = cgo.div_ceil(IG_NR);
    // The weight slivers, then the bias in 8-wide slivers (zero where absent or past the group).
    let wlen = g.groups * slivers * (k + 1) * IG_NR;
    // SAFETY: we are the calling thread, outside any parallel region; nothing else holds the
    // shared Misc and ConvPatch slots during this call, and the slices are not used after it.
    let wpk: &mut [f32] = unsafe { std::slice::from_raw_parts_mut(scratch::shared(Slot::Misc, wlen), wlen) };
    // Sliver (grp, s) holds rows p of W's columns grp*cgo + 8s .. +8, zero past the group's end.
    for grp in 0..g.groups {
        for s in 0..slivers {
            let j0 = s * IG_NR;
            let nr = IG_NR.min(cgo - j0);
            let sl = &mut wpk[(grp * slivers + s) * k * IG_NR..][..k * IG_NR];
            for p in 0..k {
                let src = &w[p * cout + grp * cgo + j0..][..nr];
                let dst = &mut sl[p * IG_NR..(p + 1) * IG_NR];
                if nr == IG_NR {
                    // SAFETY: src and dst hold 8 floats each (a copy without a memcpy call).
                    unsafe {
                        F32x4::load(src.as_ptr()).store(dst.as_mut_ptr());
                        F32x4::load(src.as_ptr().add(4)).store(dst.as_mut_ptr().add(4));
                    }
                    continue;
                }
                dst[..nr].copy_from_slice(src);
                dst[nr..].fill(0.0);
            }
        }
    }
    let bias_at = g.groups * slivers * k * IG_NR;
    for grp in 0..g.groups {
        for s in 0..slivers {
            let j0 = s * IG_NR;
            let nr = IG_NR.min(cgo - j0);
            let dst = &mut wpk[bias_at + (grp * slivers + s) * IG_NR..][..IG_NR];
            dst.fill(0.0);
            if let Some(b) = bias {
                dst[..nr].copy_from_slice(&b[grp * cgo + j0..][..nr]);
            }
        }
    }
    let wpk: &[f32] = wpk;
    let pixels = if pool { g.n * (g.oh / 2) * (g.ow / 2) * IG_MR } else { g.pixels() };
    let tiles = pixels.div_ceil(IG_MR);
    let per = (GRAIN / (IG_MR * k * cout).max(1)).max(1);
    let op = SharedMut(out.as_mut_ptr());
    // SAFETY: before the job; no ConvPatch borrow is live.
    unsafe { scratch::reserve(Slot::ConvPatch, k * IG_MR) };
    for_each(tasks_for(tiles, per), &|t, thread| {
        // SAFETY: `thread` is this task's pool thread and nothing else borrows its slot.
        let panel = unsafe { scratch::per_thread(Slot::ConvPatch, thread, k * IG_MR) };
        for tile in t * per..((t + 1) * per).min(tiles) {
            let p0 = tile * IG_MR;
            let np = IG_MR.min(pixels - p0);
            // Each pixel's window origin (n, top row, left column); pixels past `np` read zeros.
            let mut walk = PixelWalk::new(g, pool, p0);
            let org = std::array::from_fn::<_, IG_MR, _>(|i| {
                if i >= np {
                    return None;
                }
                let (n, oy, ox) = walk.next_pixel();
                Some((n, (oy * g.sh) as isize - g.pt as isize, (ox * g.sw) as isize - g.pl as isize))
            });
            for grp in 0..g.groups {
                // The tile's packed panel: step p holds its four pixels' patch values (zero for
                // padding taps and absent pixels), each tap's channel runs transposed 4x4.
                for tap in 0..g.kh * g.kw {
                    let (dy, dx) = (((tap / g.kw) * g.dh) as isize, ((tap % g.kw) * g.dw) as isize);
                    let src = org.map(|o| match o {
                        Some((n, y0, x0)) if y0 + dy >= 0 && y0 + dy < g.h as isize && x0 + dx >= 0 && x0 + dx < g.w as isize => {
                            let at = ((n * g.h + (y0 + dy) as usize) * g.w + (x0 + dx) as usize) * g.cin + grp * cg;
                            Some(&x[at..at + cg])
                        }
                        _ => None,
                    });
                    let dst = &mut panel[tap * cg * IG_MR..(tap + 1) * cg * IG_MR];
                    let body = cg & !3;
                    for c in (0..body).step_by(4) {
                        // SAFETY: each run holds cg >= c + 4 floats; dst holds cg*4 floats and
                        // (c + 4) * 4 <= cg * 4.
                        unsafe {
                            let ld = |r: Option<&[f32]>| r.map_or(F32x4::zero(), |r| F32x4::load(r.as_ptr().add(c)));
                            let t = F32x4::transpose4(ld(src[0]), ld(src[1]), ld(src[2]), ld(src[3]));
                            for (j, v) in t.iter().enumerate() {
                                v.store(dst.as_mut_ptr().add((c + j) * IG_MR));
                            }
                        }
                    }
                    for c in body..cg {
                        for (i, r) in src.iter().enumerate() {
                            dst[c * IG_MR + i] = r.map_or(0.0, |r| r[c]);
                        }
                    }
                }
                for s in 0..slivers {
                    let j0 = s * IG_NR;
                    let nr = IG_NR.min(cgo - j0);
                    let wsl = &wpk[(grp * slivers + s) * k * IG_NR..][..k * IG_NR];
                    let mut sum = [[F32x4::zero(); 2]; IG_MR];
                    let mut pc = 0;
                    while pc < k {
                        let kc = GEMM_KC.min(k - pc);
                        let mut acc = [[F32x4::zero(); 2]; IG_MR];
                        // SAFETY: the panel holds k*4 floats and the sliver k*8; pc + kc <= k.
                        unsafe { accumulate_tile(&mut acc, panel.as_ptr().add(pc * IG_MR), wsl.as_ptr().add(pc * IG_NR), kc) };
                        for (sr, ar) in sum.iter_mut().zip(&acc) {
                            for (sv, av) in sr.iter_mut().zip(ar) {
                                *sv = if pc > 0 { sv.add(*av) } else { *av };
                            }
                        }
                        if pc == 0 && bias.is_some() {
                            // The GEMM adds its first block to C pre-filled with the bias.
                            let bp = &wpk[bias_at + (grp * slivers + s) * IG_NR..][..IG_NR];
                            // SAFETY: bp holds 8 floats.
                            let bv = unsafe { [F32x4::load(bp.as_ptr()), F32x4::load(bp.as_ptr().add(4))] };
                            for sr in sum.iter_mut() {
                                sr[0] = bv[0].add(sr[0]);
                                sr[1] = bv[1].add(sr[1]);
                            }
                        }
                        pc += kc;
                    }
                    let sum = if relu { sum.map(|r| r.map(|v| v.pmax(F32x4::zero()))) } else { sum };
                    if pool {
                        let mut best = sum[0];
                        for r in &sum[1..] {
                            for (b, v) in best.iter_mut().zip(r) {
                                *b = F32x4::select(max_takes(*v, *b), *v, *b);
                            }
                        }
                        // SAFETY: pooled pixel `tile` (cout floats) belongs to this task, and
                        // channels grp*cgo + j0 .. + nr exist.
                        let o = unsafe { op.slice(tile * cout + grp * cgo + j0, nr) };
                        store_tile_row(&best, o);
                        continue;
                    }
                    for (i, sr) in sum.iter().enumerate().take(np) {
                        // SAFETY: output pixel p0 + i (cout floats) belongs to this task's tile,
                        // and channels grp*cgo + j0 .. + nr exist.
                        let o = unsafe { op.slice((p0 + i) * cout + grp * cgo + j0, nr) };
                        store_tile_row(sr, o);
                    }
                }
            }
        }
    });
}

/// Direct convolution for small receptive fields (one group): each task computes whole output
/// rows; per pixel the accumulators for up to 16 output channels stay in registers while the
/// taps (ky, kx, ci) are added in that order. Weights are first copied with their channel count
/// padded to a multiple of 4 so every load is a full vector.
fn direct_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, relu: bool, out: &mut [f32]) {
    direct_impl(x, w, bias, g, relu, false, out);
}

/// `direct_forward`, with `pool` each task computing pairs of output rows into its scratch and
/// storing only their 2x2 maxima (`max_pool_forward`'s steps, in window order): `out` is then
/// `[N, OH/2, OW/2, Cout]`.
fn direct_impl(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, relu: bool, pool: bool, out: &mut [f32]) {
    let (k, cout, cin) = (g.k(), g.cout, g.cin);
    let cp = cout.div_ceil(4) * 4;
    // SAFETY: we are the calling thread, outside any parallel region; nothing else holds the shared
    // Misc slot during this call, and the slice is not used after it returns.
    let wp: &mut [f32] = unsafe { std::slice::from_raw_parts_mut(scratch::shared(Slot::Misc, k * cp + cp), k * cp + cp) };
    wp.fill(0.0);
    for r in 0..k {
        wp[r * cp..r * cp + cout].copy_from_slice(&w[r * cout..(r + 1) * cout]);
    }
    if let Some(b) = bias {
        wp[k * cp..k * cp + cout].copy_from_slice(b);
    }
    let (wp, bias_row) = (&wp[..k * cp], &wp[k * cp..]);
    // Input offset of each flattened tap (ky, kx, ci) from a window's top-left element.
    let mut offs = [0usize; DIRECT_MAX_K];
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            for ci in 0..cin {
                offs[(ky * g.kw + kx) * cin + ci] = (ky * g.dh * g.w + kx * g.dw) * cin + ci;
            }
        }
    }
    let offs = &offs[..k];
    let conv_row = |row: usize, orow: &mut [f32]| {
        let mut c0 = 0;
        while c0 < cout {
            // Channel blocks of up to 16 with a compile-time vector count, so the
            // accumulators live in registers.
            match (cout - c0).min(16).div_ceil(4) {
                1 => direct_block::<1>(x, wp, bias_row, g, relu, row, c0, orow, offs),
                2 => direct_block::<2>(x, wp, bias_row, g, relu, row, c0, orow, offs),
                3 => direct_block::<3>(x, wp, bias_row, g, relu, row, c0, orow, offs),
                _ => direct_block::<4>(x, wp, bias_row, g, relu, row, c0, orow, offs),
            }
            c0 += 16;
        }
    };
    let row_len = g.ow * cout;
    let op = SharedMut(out.as_mut_ptr());
    if pool {
        let (ph, pw) = (g.oh / 2, g.ow / 2);
        let rows = g.n * ph;
        let per = (GRAIN / (2 * g.ow * cp * k).max(1)).max(1);
        // SAFETY: before the job; no ConvPatch borrow is live.
        unsafe { scratch::reserve(Slot::ConvPatch, 2 * row_len) };
        for_each(tasks_for(rows, per), &|t, thread| {
            // SAFETY: `thread` is this task's pool thread and nothing else borrows its slot.
            let pair = unsafe { scratch::per_thread(Slot::ConvPatch, thread, 2 * row_len) };
            for pr in t * per..((t + 1) * per).min(rows) {
                let (n, py) = (pr / ph, pr % ph);
                let (top, bottom) = pair.split_at_mut(row_len);
                conv_row(n * g.oh + 2 * py, top);
                conv_row(n * g.oh + 2 * py + 1, bottom);
                // SAFETY: pooled row pr belongs to this task only.
                let orow = unsafe { op.slice(pr * pw * cout, pw * cout) };
                for px in 0..pw {
                    let dst = &mut orow[px * cout..(px + 1) * cout];
                    let at = |q: usize| (2 * px + q) * cout..(2 * px + q + 1) * cout;
                    dst.copy_from_slice(&top[at(0)]);
                    max_step(dst, None, &top[at(1)], 1.0);
                    max_step(dst, None, &bottom[at(0)], 2.0);
                    max_step(dst, None, &bottom[at(1)], 3.0);
                }
            }
        });
        return;
    }
    let rows = g.n * g.oh;
    let per = (GRAIN / (g.ow * cp * k).max(1)).max(1);
    for_each(tasks_for(rows, per), &|t, _| {
        let (r0, r1) = (t * per, ((t + 1) * per).min(rows));
        for row in r0..r1 {
            // SAFETY: this task owns output rows r0..r1.
            conv_row(row, unsafe { op.slice(row * row_len, row_len) });
        }
    });
}

/// One output row, channels `c0 .. c0 + 4·NV` (clipped to Cout), of the direct convolution.
/// Interior pixels (every tap inside the image) run a tight loop over the flattened taps, two
/// pixels at a time so each weight vector load feeds both; border pixels check each tap.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn direct_block<const NV: usize>(x: &[f32], wp: &[f32], bias_row: &[f32], g: &ConvGeom, relu: bool, row: usize, c0: usize, orow: &mut [f32], offs: &[usize]) {
    let (cin, cout) = (g.cin, g.cout);
    let cp = bias_row.len();
    let (n, oy) = (row / g.oh, row % g.oh);
    let cn = (cout - c0).min(4 * NV);
    let iy0 = (oy * g.sh) as isize - g.pt as isize;
    let row_inside = iy0 >= 0 && (iy0 + ((g.kh - 1) * g.dh) as isize) < g.h as isize;
    // Output columns whose whole window lies inside the image horizontally.
    let ox_lo = g.pl.div_ceil(g.sw).min(g.ow);
    let reach = (g.kw - 1) * g.dw;
    let ox_hi = if g.w + g.pl >= reach + 1 { ((g.w + g.pl - reach - 1) / g.sw + 1).min(g.ow) } else { 0 };
    let (ox_lo, ox_hi) = if row_inside && ox_lo < ox_hi { (ox_lo, ox_hi) } else { (g.ow, g.ow) };
    let bias = |acc: &mut [F32x4; NV]| {
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: bias_row holds cp >= c0 + 4q + 4 floats (cp is Cout rounded up to 4).
            *a = unsafe { F32x4::load(bias_row.as_ptr().add(c0 + 4 * q)) };
        }
    };
    let mut tmp = [0.0f32; 16];
    let mut store = |acc: &[F32x4; NV], ox: usize, orow: &mut [f32]| {
        if cn == 4 * NV {
            let o = &mut orow[ox * cout + c0..ox * cout + c0 + cn];
            for (q, a) in acc.iter().enumerate() {
                let v = if relu { a.pmax(F32x4::zero()) } else { *a };
                // SAFETY: o holds 4·NV floats and 4q + 4 <= 4·NV.
                unsafe { v.store(o.as_mut_ptr().add(4 * q)) };
            }
            return;
        }
        for (q, a) in acc.iter().enumerate() {
            let v = if relu { a.pmax(F32x4::zero()) } else { *a };
            // SAFETY: tmp holds 16 floats and 4q + 4 <= 4·NV <= 16.
            unsafe { v.store(tmp.as_mut_ptr().add(4 * q)) };
        }
        orow[ox * cout + c0..ox * cout + c0 + cn].copy_from_slice(&tmp[..cn]);
    };
    let checked = |ox: usize, acc: &mut [F32x4; NV]| {
        bias(acc);
        for ky in 0..g.kh {
            let iy = iy0 + (ky * g.dh) as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            for kx in 0..g.kw {
                let ix = (ox * g.sw + kx * g.dw) as isize - g.pl as isize;
                if ix < 0 || ix >= g.w as isize {
                    continue;
                }
                let xs = &x[((n * g.h + iy as usize) * g.w + ix as usize) * cin..][..cin];
                let wb = (ky * g.kw + kx) * cin;
                let wt = &wp[wb * cp..(wb + cin) * cp];
                // SAFETY: wt holds cin rows of cp >= c0 + 4·NV floats (no bounds checks per tap).
                unsafe {
                    let mut wr = wt.as_ptr().add(c0);
                    for &xv in xs {
                        let xv = F32x4::splat(xv);
                        for (q, a) in acc.iter_mut().enumerate() {
                            *a = a.add(xv.mul(F32x4::load(wr.add(4 * q))));
                        }
                        wr = wr.add(cp);
                    }
                }
            }
        }
    };
    let mut acc = [F32x4::zero(); NV];
    for ox in (0..ox_lo).chain(ox_hi..g.ow) {
        checked(ox, &mut acc);
        store(&acc, ox, orow);
    }
    let mut ox = ox_lo;
    let step = g.sw * cin;
    while ox < ox_hi {
        let base = ((n * g.h + iy0 as usize) * g.w + ox * g.sw - g.pl) * cin;
        if ox + 1 < ox_hi {
            let (mut a0, mut a1) = ([F32x4::zero(); NV], [F32x4::zero(); NV]);
            bias(&mut a0);
            bias(&mut a1);
            // SAFETY: pixels ox and ox + 1 are interior (ox + 1 < ox_hi on an inside row), so
            // every tap offset from `base` and `base + step` indexes x; wp holds k rows of cp >=
            // c0 + 4·NV floats, and `wr` steps one row per tap. (No bounds checks in the loop.)
            unsafe {
                let (xp, mut wr) = (x.as_ptr().add(base), wp.as_ptr().add(c0));
                for &off in offs {
                    let x0 = F32x4::splat(*xp.add(off));
                    let x1 = F32x4::splat(*xp.add(step + off));
                    for q in 0..NV {
                        let wv = F32x4::load(wr.add(4 * q));
                        a0[q] = a0[q].add(x0.mul(wv));
                        a1[q] = a1[q].add(x1.mul(wv));
                    }
                    wr = wr.add(cp);
                }
            }
            store(&a0, ox, orow);
            store(&a1, ox + 1, orow);
            ox += 2;
        } else {
            bias(&mut acc);
            for (t, &off) in offs.iter().enumerate() {
                let x0 = F32x4::splat(x[base + off]);
                let wr = &wp[t * cp + c0..][..4 * NV];
                for (q, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `wr` holds 4·NV floats.
                    *a = a.add(x0.mul(unsafe { F32x4::load(wr.as_ptr().add(4 * q)) }));
                }
            }
            store(&acc, ox, orow);
            ox += 1;
        }
    }
}

/// `out = conv(x, w) (+ bias)`; `out` holds `g.pixels() * g.cout` floats (any contents).
pub fn conv2d_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, out: &mut [f32]) {
    assert!(x.len() == g.n * g.h * g.w * g.cin && w.len() == g.k() * g.cout && out.len() == g.pixels() * g.cout,
        "conv2d_forward: buffer sizes do not match the geometry");
    let p = g.pixels();
    if p == 0 || g.cout == 0 {
        return;
    }
    if g.is_pointwise() {
        if let Some(b) = bias {
            fill_rows(out, b);
        }
        gemm(p, g.cout, g.cin, Mat::row_major(x, g.cin), Mat::row_major(w, g.cout), out, 0, g.cout, bias.is_some());
        return;
    }
    if g.is_depthwise() {
        depthwise_forward(x, w, bias, g, out);
        return;
    }
    if g.takes_implicit() {
        implicit_forward(x, w, bias, g, false, out);
        return;
    }
    gemm_forward(x, w, bias, g, out);
}

/// The general path of `conv2d_forward` through the GEMM (the reference the implicit kernel
/// reproduces bit for bit).
pub(crate) fn gemm_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, out: &mut [f32]) {
    let p = g.pixels();
    let (k, cgo) = (g.k(), g.cout_g());
    if p > GEMM_MR {
        // The GEMM packs its A panels straight from x (no patch matrix): one pass over the
        // receptive fields instead of two, and no patch memory.
        if let Some(b) = bias {
            fill_rows(out, b);
        }
        for grp in 0..g.groups {
            let b = Mat { data: w, offset: grp * cgo, rs: g.cout, cs: 1 };
            let pack = |i0: usize, mc: usize, pc: usize, kc: usize, ap: &mut [f32]| pack_patch_panels(x, g, grp, i0, mc, pc, kc, ap);
            gemm_packing_a(p, cgo, k, &pack, b, out, grp * cgo, g.cout, bias.is_some());
        }
        return;
    }
    let chunk = g.chunk_pixels();
    // SAFETY: we are the calling thread, outside any parallel region, and hold no other borrow
    // of the shared ConvPatch slot; the pointer stays valid until the next `shared` call.
    let patch = unsafe { scratch::shared(Slot::ConvPatch, chunk * k) };
    let mut p0 = 0;
    while p0 < p {
        let rows = chunk.min(p - p0);
        for grp in 0..g.groups {
            let fill = if grp == 0 { bias.map(|b| (b, SharedMut(out.as_mut_ptr()))) } else { None };
            // SAFETY: the patch holds chunk*k >= rows*k floats and `out` pixels*cout; both are
            // only touched by this call's tasks until it returns.
            unsafe { im2col(x, g, grp, p0, rows, SharedMut(patch), fill) };
            // SAFETY: the first rows*k floats of the patch were all written just above and
            // nothing writes them while the product reads them.
            let a = unsafe { std::slice::from_raw_parts(patch, rows * k) };
            let b = Mat { data: w, offset: grp * cgo, rs: g.cout, cs: 1 };
            gemm(rows, cgo, k, Mat::row_major(a, k), b, out, p0 * g.cout + grp * cgo, g.cout, bias.is_some());
        }
        p0 += rows;
    }
}

/// Depthwise forward: out[p, c] = bias[c] + Σ_(ky, kx) x[.., c] * w[ky, kx, 0, c], in that order.
fn depthwise_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom, out: &mut [f32]) {
    let c = g.cout;
    let rows = g.n * g.oh;
    let per = (GRAIN / (g.ow * c * g.kh * g.kw).max(1)).max(1);
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(rows, per), &|t, _| {
        for r in t * per..((t + 1) * per).min(rows) {
            let (n, oy) = (r / g.oh, r % g.oh);
            // SAFETY: output row r (ow * c floats) belongs to this task only.
            let orow = unsafe { op.slice(r * g.ow * c, g.ow * c) };
            for ox in 0..g.ow {
                let dst = &mut orow[ox * c..(ox + 1) * c];
                match bias {
                    Some(b) => dst.copy_from_slice(b),
                    None => dst.fill(0.0),
                }
                for ky in 0..g.kh {
                    let Some(iy) = g.in_row(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_col(ox, kx) else { continue };
                        let xs = &x[((n * g.h + iy) * g.w + ix) * c..][..c];
                        mul_add_assign(dst, xs, &w[(ky * g.kw + kx) * c..][..c]);
                    }
                }
            }
        }
    });
}

// ------------------------------------------------------------------ backward

/// Gradients of `conv2d_forward` for output gradient `dy`: `dx` (N*H*W*Cin floats) and `dw`
/// (like `w`) are fully overwritten when given. The bias gradient is a plain column sum of `dy`.
pub fn conv2d_backward(x: &[f32], w: &[f32], dy: &[f32], g: &ConvGeom, mut dx: Option<&mut [f32]>, mut dw: Option<&mut [f32]>) {
    assert!(x.len() == g.n * g.h * g.w * g.cin && w.len() == g.k() * g.cout && dy.len() == g.pixels() * g.cout
        && dx.as_ref().is_none_or(|d| d.len() == x.len()) && dw.as_ref().is_none_or(|d| d.len() == w.len()),
        "conv2d_backward: buffer sizes do not match the geometry");
    let p = g.pixels();
    if g.is_pointwise() {
        if let Some(dw) = dw {
            // dW = Xᵀ · dY (k = 0 pixels gives zeros).
            gemm(g.cin, g.cout, p, Mat::transposed(x, g.cin), Mat::row_major(dy, g.cout), dw, 0, g.cout, false);
        }
        if let Some(dx) = dx {
            // dX = dY · Wᵀ
            gemm(p, g.cin, g.cout, Mat::row_major(dy, g.cout), Mat::transposed(w, g.cout), dx, 0, g.cin, false);
        }
        return;
    }
    if g.is_depthwise() {
        if let Some(dx) = dx {
            depthwise_backward_input(w, dy, g, dx);
        }
        if let Some(dw) = dw {
            depthwise_backward_weight(x, dy, g, dw);
        }
        return;
    }
    if let Some(d) = dx.as_deref_mut() {
        d.fill(0.0);
    }
    if p == 0 || g.cout == 0 {
        if let Some(d) = dw {
            d.fill(0.0);
        }
        return;
    }
    let (k, cgo) = (g.k(), g.cout_g());
    // dW_g = patchᵀ · dY_g over all pixels at once, the GEMM packing patchᵀ straight from x.
    let fused_dw = k > GEMM_MR;
    if fused_dw {
        if let Some(dw) = dw.as_deref_mut() {
            for grp in 0..g.groups {
                let dy_g = Mat { data: dy, offset: grp * cgo, rs: g.cout, cs: 1 };
                let pack = |i0: usize, mc: usize, pc: usize, kc: usize, ap: &mut [f32]| pack_patch_t_panels(x, g, grp, i0, mc, pc, kc, ap);
                gemm_packing_a(k, cgo, p, &pack, dy_g, dw, grp * cgo, g.cout, false);
            }
        }
        if dx.is_none() {
            return;
        }
    }
    let chunk = g.chunk_pixels();
    // SAFETY: as in the forward: calling thread, no other live borrow of the shared slot.
    let buf = unsafe { scratch::shared(Slot::ConvPatch, chunk * k) };
    let mut p0 = 0;
    while p0 < p {
        let rows = chunk.min(p - p0);
        for grp in 0..g.groups {
            let dy_g = Mat { data: dy, offset: p0 * g.cout + grp * cgo, rs: g.cout, cs: 1 };
            if let Some(dw) = dw.as_deref_mut().filter(|_| !fused_dw) {
                // SAFETY: the buffer holds chunk*k >= rows*k floats, only this call's tasks
                // write it, and no output is pre-filled.
                unsafe { im2col(x, g, grp, p0, rows, SharedMut(buf), None) };
                // SAFETY: rows*k floats fully written above, read-only during the product.
                let a = unsafe { std::slice::from_raw_parts(buf, rows * k) };
                // dW_g (+)= patchᵀ · dY_g, the first chunk overwriting.
                gemm(k, cgo, rows, Mat::transposed(a, k), dy_g, dw, grp * cgo, g.cout, p0 > 0);
            }
            if let Some(dx) = dx.as_deref_mut() {
                // SAFETY: rows*k floats of the buffer, no other live reference to them (the
                // patch slice above is dead).
                let dcol = unsafe { std::slice::from_raw_parts_mut(buf, rows * k) };
                // dcol = dY_g · W_gᵀ, element (pixel, (ky, kx, c)).
                let wt = Mat { data: w, offset: grp * cgo, rs: 1, cs: g.cout };
                gemm(rows, k, cgo, dy_g, wt, dcol, 0, k, false);
                col2im_gather(dcol, g, grp, p0, rows, dx);
            }
        }
        p0 += rows;
    }
}

/// Depthwise dX as a gather: dx[n, iy, ix, c] = Σ_(ky, kx) dy[n, oy, ox, c] * w[ky, kx, 0, c].
fn depthwise_backward_input(w: &[f32], dy: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    let c = g.cin;
    let rows = g.n * g.h;
    let row_len = g.w * c;
    let per = (GRAIN / (row_len * g.kh * g.kw).max(1)).max(1);
    let dxp = SharedMut(dx.as_mut_ptr());
    for_each(tasks_for(rows, per), &|t, _| {
        for gi in t * per..((t + 1) * per).min(rows) {
            let (n, iy) = (gi / g.h, gi % g.h);
            // SAFETY: input row gi belongs to this task only.
            let drow = unsafe { dxp.slice(gi * row_len, row_len) };
            drow.fill(0.0);
            for ky in 0..g.kh {
                let Some(oy) = g.out_row(iy, ky) else { continue };
                for ix in 0..g.w {
                    for kx in 0..g.kw {
                        let Some(ox) = g.out_col(ix, kx) else { continue };
                        let src = &dy[((n * g.oh + oy) * g.ow + ox) * c..][..c];
                        mul_add_assign(&mut drow[ix * c..(ix + 1) * c], src, &w[(ky * g.kw + kx) * c..][..c]);
                    }
                }
            }
        }
    });
}

/// Depthwise dW: dw[ky, kx, 0, c] = Σ over pixels in order of x[n, iy, ix, c] * dy[n, oy, ox, c].
/// A task owns one kernel tap and one block of channels, and sums every pixel itself.
fn depthwise_backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    let c = g.cout;
    let blocks = c.div_ceil(DW_CHANNEL_BLOCK).max(1);
    let taps = g.kh * g.kw;
    let dwp = SharedMut(dw.as_mut_ptr());
    for_each(taps * blocks, &|t, _| {
        let (tap, b) = (t / blocks, t % blocks);
        let (ky, kx) = (tap / g.kw, tap % g.kw);
        let c0 = b * DW_CHANNEL_BLOCK;
        let c1 = (c0 + DW_CHANNEL_BLOCK).min(c);
        if c0 >= c1 {
            return;
        }
        // SAFETY: dw[tap*c + c0 .. tap*c + c1] belongs to this task only.
        let dst = unsafe { dwp.slice(tap * c + c0, c1 - c0) };
        dst.fill(0.0);
        for n in 0..g.n {
            for oy in 0..g.oh {
                let Some(iy) = g.in_row(oy, ky) else { continue };
                for ox in 0..g.ow {
                    let Some(ix) = g.in_col(ox, kx) else { continue };
                    let xs = &x[((n * g.h + iy) * g.w + ix) * c + c0..][..c1 - c0];
                    let ds = &dy[((n * g.oh + oy) * g.ow + ox) * c + c0..][..c1 - c0];
                    mul_add_assign(dst, xs, ds);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), values in [-1, 1).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn floats(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect()
        }
    }

    fn geom(n: usize, h: usize, w: usize, cin: usize, cout: usize, k: [usize; 2], s: [usize; 2], d: [usize; 2], pad: [usize; 4], groups: usize) -> Option<ConvGeom> {
        let span = |k: usize, d: usize| d * (k - 1) + 1;
        let (ph, pw) = (h + pad[0] + pad[1], w + pad[2] + pad[3]);
        if span(k[0], d[0]) > ph || span(k[1], d[1]) > pw {
            return None;
        }
        let (oh, ow) = ((ph - span(k[0], d[0])) / s[0] + 1, (pw - span(k[1], d[1])) / s[1] + 1);
        Some(ConvGeom { n, h, w, cin, kh: k[0], kw: k[1], cout, groups, sh: s[0], sw: s[1], dh: d[0], dw: d[1], pt: pad[0], pl: pad[2], oh, ow })
    }

    /// The implicit kernel against the packed-GEMM path it replaced, bit for bit, with and
    /// without bias and ReLU.
    fn check(g: &ConvGeom, rng: &mut Rng, x: Option<Vec<f32>>, w: Option<Vec<f32>>) {
        let x = x.unwrap_or_else(|| rng.floats(g.n * g.h * g.w * g.cin));
        let w = w.unwrap_or_else(|| rng.floats(g.k() * g.cout));
        let b = rng.floats(g.cout);
        for bias in [None, Some(&b[..])] {
            for relu in [false, true] {
                let mut want = vec![f32::NAN; g.pixels() * g.cout];
                gemm_forward(&x, &w, bias, g, &mut want);
                if relu {
                    crate::kernels::elementwise::unary_inplace(&mut want, |v| v.pmax(F32x4::zero()));
                }
                let mut got = vec![f32::NAN; g.pixels() * g.cout];
                implicit_forward(&x, &w, bias, g, relu, &mut got);
                for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(a.to_bits(), e.to_bits(), "{g:?} bias {} relu {relu}: element {i}: {a} vs {e}", bias.is_some());
                }
            }
        }
    }

    #[test]
    fn implicit_forward_is_bitwise_the_gemm_path() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        // The benchmark's second layer, 'same' 3x3, and K past one KC block (3*3*40 = 360).
        for g in [
            geom(1, 14, 14, 16, 32, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 1),
            geom(2, 9, 7, 40, 12, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 1),
            geom(1, 11, 13, 64, 9, [3, 3], [2, 2], [1, 1], [0, 1, 1, 0], 1),
            geom(3, 8, 8, 6, 6, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 3),
            // Just inside IMPLICIT_MAX_PIXELS.
            geom(1, 64, 64, 8, 16, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 1),
        ].into_iter().flatten() {
            assert!(g.takes_implicit());
            check(&g, &mut rng, None, None);
        }
        let mut tried = 0;
        while tried < 300 {
            let groups = 1 + rng.below(3);
            let cin = groups * (1 + rng.below(12));
            let cout = groups * (1 + rng.below(20));
            let k = [1 + rng.below(4), 1 + rng.below(4)];
            let s = [1 + rng.below(2), 1 + rng.below(2)];
            let d = [1 + rng.below(2), 1 + rng.below(2)];
            let pad = [rng.below(3), rng.below(3), rng.below(3), rng.below(3)];
            let Some(g) = geom(1 + rng.below(3), 1 + rng.below(12), 1 + rng.below(12), cin, cout, k, s, d, pad, groups) else { continue };
            if !g.takes_implicit() {
                continue;
            }
            check(&g, &mut rng, None, None);
            tried += 1;
        }
    }

    #[test]
    fn implicit_forward_keeps_signed_zeros_and_nan_of_padding_products() {
        // -0 inputs (0 + -0 and -0 + -0 differ) and infinite weights (0·inf = NaN in padding).
        let mut rng = Rng(7);
        let g = geom(1, 6, 5, 4, 8, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 1).unwrap();
        check(&g, &mut rng, Some(vec![-0.0; 6 * 5 * 4]), None);
        let mut w = rng.floats(g.k() * g.cout);
        w[5] = f32::INFINITY;
        check(&g, &mut rng, Some(vec![-0.0; 6 * 5 * 4]), Some(w.clone()));
        check(&g, &mut rng, None, Some(w));
    }

    #[test]
    fn implicit_forward_is_the_same_for_any_thread_count() {
        let mut rng = Rng(11);
        let g = geom(2, 20, 20, 16, 24, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 1).unwrap();
        let (x, w, b) = (rng.floats(g.n * g.h * g.w * g.cin), rng.floats(g.k() * g.cout), rng.floats(g.cout));
        let run = |threads| {
            crate::parallel::set_num_threads(threads);
            let mut out = vec![0.0; g.pixels() * g.cout];
            implicit_forward(&x, &w, Some(&b), &g, true, &mut out);
            out
        };
        let (one, four) = (run(1), run(4));
        crate::parallel::set_num_threads(1);
        assert!(one.iter().zip(&four).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

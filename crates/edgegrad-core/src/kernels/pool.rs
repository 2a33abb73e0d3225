//! 2-D pooling kernels on NHWC tensors, vectorised over channels.
//!
//! Forward: a task owns whole output rows. Backward is a gather: a task owns whole input rows
//! and adds, for each element, the terms of the windows containing it in (oy, ox) order, so
//! every gradient element is written by one task in an order fixed by the shape.
//!
//! Max pooling keeps the *first* maximum of each window in row-major window order, where NaN
//! counts as larger than every number: a window holding NaN outputs its first NaN, so NaN
//! propagates. The output is always bit-for-bit the chosen input element. The chosen position
//! (`ky * KW + kx`, exact as f32 for windows of up to 2^24 elements) is what the backward uses.

use crate::kernels::conv::add_assign;
use crate::kernels::elementwise::GRAIN;
use crate::parallel::{for_each, tasks_for, SharedMut};
use crate::simd::{F32x4, I32x4};

/// One pooling problem. Bottom/right padding only enter through `oh`/`ow`. Callers guarantee
/// that every window overlaps the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// Kernel rows `[ky0, ky1)` of output row `oy` that fall inside the input.
    #[inline(always)]
    fn rows(&self, oy: usize) -> (usize, usize) {
        let s = oy * self.sh;
        (self.pt.saturating_sub(s), self.kh.min((self.h + self.pt).saturating_sub(s)))
    }
    #[inline(always)]
    fn cols(&self, ox: usize) -> (usize, usize) {
        let s = ox * self.sw;
        (self.pl.saturating_sub(s), self.kw.min((self.w + self.pl).saturating_sub(s)))
    }
    /// Output rows `[lo, hi)` whose windows contain input row `iy`.
    #[inline(always)]
    fn out_rows_of(&self, iy: usize) -> (usize, usize) {
        let t = iy + self.pt;
        let lo = if t + 1 > self.kh { (t + 1 - self.kh).div_ceil(self.sh) } else { 0 };
        (lo, (t / self.sh + 1).min(self.oh))
    }
    #[inline(always)]
    fn out_cols_of(&self, ix: usize) -> (usize, usize) {
        let t = ix + self.pl;
        let lo = if t + 1 > self.kw { (t + 1 - self.kw).div_ceil(self.sw) } else { 0 };
        (lo, (t / self.sw + 1).min(self.ow))
    }
    /// Divisor of the average of output pixel (oy, ox).
    #[inline(always)]
    fn count(&self, oy: usize, ox: usize, include_pad: bool) -> f32 {
        if include_pad {
            return (self.kh * self.kw) as f32;
        }
        let ((y0, y1), (x0, x1)) = (self.rows(oy), self.cols(ox));
        (y1.saturating_sub(y0) * x1.saturating_sub(x0)) as f32
    }
}

/// True where `v` replaces the current maximum `b`: strictly larger, or the first NaN.
#[inline(always)]
pub(crate) fn takes(v: F32x4, b: F32x4) -> I32x4 {
    v.gt(b).or(v.is_nan().andnot(b.is_nan()))
}
#[inline(always)]
fn takes_scalar(v: f32, b: f32) -> bool {
    v > b || (v.is_nan() && !b.is_nan())
}

/// One window element folded into the running maxima (and their positions).
#[inline(always)]
pub(crate) fn max_step(best: &mut [f32], idx: Option<&mut [f32]>, src: &[f32], widx: f32) {
    let n = best.len();
    let body = n & !3;
    let (bp, sp) = (best.as_mut_ptr(), src.as_ptr());
    match idx {
        Some(idx) => {
            let ip = idx.as_mut_ptr();
            let wv = F32x4::splat(widx);
            let mut i = 0;
            while i < body {
                // SAFETY: i + 4 <= body <= n, and best, idx and src each hold n floats.
                unsafe {
                    let (b, v) = (F32x4::load(bp.add(i)), F32x4::load(sp.add(i)));
                    let m = takes(v, b);
                    F32x4::select(m, v, b).store(bp.add(i));
                    F32x4::select(m, wv, F32x4::load(ip.add(i))).store(ip.add(i));
                }
                i += 4;
            }
            for i in body..n {
                if takes_scalar(src[i], best[i]) {
                    best[i] = src[i];
                    idx[i] = widx;
                }
            }
        }
        None => {
            let mut i = 0;
            while i < body {
                // SAFETY: i + 4 <= body <= n, and best and src each hold n floats.
                unsafe {
                    let (b, v) = (F32x4::load(bp.add(i)), F32x4::load(sp.add(i)));
                    F32x4::select(takes(v, b), v, b).store(bp.add(i));
                }
                i += 4;
            }
            for i in body..n {
                if takes_scalar(src[i], best[i]) {
                    best[i] = src[i];
                }
            }
        }
    }
}

/// Max pooling; with `idx`, also the window position of each chosen element (as f32).
pub fn max_pool_forward(x: &[f32], g: &PoolGeom, out: &mut [f32], idx: Option<&mut [f32]>) {
    let c = g.c;
    assert!(x.len() == g.n * g.h * g.w * c && out.len() == g.n * g.oh * g.ow * c
        && idx.as_ref().is_none_or(|i| i.len() == out.len()), "max_pool_forward: buffer sizes do not match");
    let rows = g.n * g.oh;
    let per = (GRAIN / (g.ow * c * g.kh * g.kw).max(1)).max(1);
    let op = SharedMut(out.as_mut_ptr());
    let ip = idx.map(|i| SharedMut(i.as_mut_ptr()));
    for_each(tasks_for(rows, per), &|t, _| {
        for r in t * per..((t + 1) * per).min(rows) {
            let (n, oy) = (r / g.oh, r % g.oh);
            let (ky0, ky1) = g.rows(oy);
            for ox in 0..g.ow {
                let (kx0, kx1) = g.cols(ox);
                let o = (r * g.ow + ox) * c;
                // SAFETY: output pixel (r, ox) -- c floats of out and of idx -- belongs to this
                // task only.
                let dst = unsafe { op.slice(o, c) };
                // SAFETY: same pixel of the index buffer, same owner.
                let mut id = ip.map(|p| unsafe { p.slice(o, c) });
                let mut first = true;
                for ky in ky0..ky1 {
                    let iy = oy * g.sh + ky - g.pt;
                    for kx in kx0..kx1 {
                        let ix = ox * g.sw + kx - g.pl;
                        let src = &x[((n * g.h + iy) * g.w + ix) * c..][..c];
                        let widx = (ky * g.kw + kx) as f32;
                        if first {
                            dst.copy_from_slice(src);
                            if let Some(id) = id.as_deref_mut() {
                                id.fill(widx);
                            }
                            first = false;
                        } else {
                            max_step(dst, id.as_deref_mut(), src, widx);
                        }
                    }
                }
                if first {
                    // No window element inside the input (callers rule this out).
                    dst.fill(f32::NEG_INFINITY);
                    if let Some(id) = id {
                        id.fill(-1.0);
                    }
                }
            }
        }
    });
}

/// Max-pool input gradient: each input element gets dy of every window that chose it.
pub fn max_pool_backward(dy: &[f32], idx: &[f32], g: &PoolGeom, dx: &mut [f32]) {
    let c = g.c;
    assert!(dx.len() == g.n * g.h * g.w * c && dy.len() == g.n * g.oh * g.ow * c && idx.len() == dy.len(),
        "max_pool_backward: buffer sizes do not match");
    let rows = g.n * g.h;
    let row_len = g.w * c;
    let fan = g.kh.div_ceil(g.sh) * g.kw.div_ceil(g.sw);
    let per = (GRAIN / (row_len * fan).max(1)).max(1);
    let dxp = SharedMut(dx.as_mut_ptr());
    for_each(tasks_for(rows, per), &|t, _| {
        for gi in t * per..((t + 1) * per).min(rows) {
            let (n, iy) = (gi / g.h, gi % g.h);
            // SAFETY: input row gi belongs to this task only.
            let drow = unsafe { dxp.slice(gi * row_len, row_len) };
            drow.fill(0.0);
            let (oy0, oy1) = g.out_rows_of(iy);
            for oy in oy0..oy1 {
                let ry = iy + g.pt - oy * g.sh;
                for ix in 0..g.w {
                    let (ox0, ox1) = g.out_cols_of(ix);
                    let dst = &mut drow[ix * c..(ix + 1) * c];
                    for ox in ox0..ox1 {
                        let rel = (ry * g.kw + ix + g.pl - ox * g.sw) as f32;
                        let o = ((n * g.oh + oy) * g.ow + ox) * c;
                        add_where_eq(dst, &dy[o..o + c], &idx[o..o + c], rel);
                    }
                }
            }
        }
    });
}

/// `dst[i] += (idx[i] == rel) ? src[i] : 0` (a select, so an unchosen inf/NaN never leaks).
#[inline(always)]
fn add_where_eq(dst: &mut [f32], src: &[f32], idx: &[f32], rel: f32) {
    let n = dst.len();
    let body = n & !3;
    let (d, s, ip) = (dst.as_mut_ptr(), src.as_ptr(), idx.as_ptr());
    let rv = F32x4::splat(rel);
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n, and dst, src and idx each hold n floats.
        unsafe {
            let m = F32x4::load(ip.add(i)).eq(rv);
            let v = F32x4::select(m, F32x4::load(s.add(i)), F32x4::zero());
            F32x4::load(d.add(i)).add(v).store(d.add(i));
        }
        i += 4;
    }
    for i in body..n {
        dst[i] += if idx[i] == rel { src[i] } else { 0.0 };
    }
}

/// Average pooling: the sum of the window's input elements (row-major order) divided by the
/// number of input elements in it, or by KH*KW with `include_pad`.
pub fn avg_pool_forward(x: &[f32], g: &PoolGeom, include_pad: bool, out: &mut [f32]) {
    let c = g.c;
    assert!(x.len() == g.n * g.h * g.w * c && out.len() == g.n * g.oh * g.ow * c, "avg_pool_forward: buffer sizes do not match");
    let rows = g.n * g.oh;
    let per = (GRAIN / (g.ow * c * g.kh * g.kw).max(1)).max(1);
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(rows, per), &|t, _| {
        for r in t * per..((t + 1) * per).min(rows) {
            let (n, oy) = (r / g.oh, r % g.oh);
            let (ky0, ky1) = g.rows(oy);
            for ox in 0..g.ow {
                let (kx0, kx1) = g.cols(ox);
                // SAFETY: output pixel (r, ox) belongs to this task only.
                let dst = unsafe { op.slice((r * g.ow + ox) * c, c) };
                dst.fill(0.0);
                for ky in ky0..ky1 {
                    let iy = oy * g.sh + ky - g.pt;
                    for kx in kx0..kx1 {
                        let ix = ox * g.sw + kx - g.pl;
                        add_assign(dst, &x[((n * g.h + iy) * g.w + ix) * c..][..c]);
                    }
                }
                div_assign(dst, g.count(oy, ox, include_pad));
            }
        }
    });
}

/// Average-pool input gradient: Σ over the windows containing the element of dy / divisor.
pub fn avg_pool_backward(dy: &[f32], g: &PoolGeom, include_pad: bool, dx: &mut [f32]) {
    let c = g.c;
    assert!(dx.len() == g.n * g.h * g.w * c && dy.len() == g.n * g.oh * g.ow * c, "avg_pool_backward: buffer sizes do not match");
    let rows = g.n * g.h;
    let row_len = g.w * c;
    let fan = g.kh.div_ceil(g.sh) * g.kw.div_ceil(g.sw);
    let per = (GRAIN / (row_len * fan).max(1)).max(1);
    let dxp = SharedMut(dx.as_mut_ptr());
    for_each(tasks_for(rows, per), &|t, _| {
        for gi in t * per..((t + 1) * per).min(rows) {
            let (n, iy) = (gi / g.h, gi % g.h);
            // SAFETY: input row gi belongs to this task only.
            let drow = unsafe { dxp.slice(gi * row_len, row_len) };
            drow.fill(0.0);
            let (oy0, oy1) = g.out_rows_of(iy);
            for oy in oy0..oy1 {
                for ix in 0..g.w {
                    let (ox0, ox1) = g.out_cols_of(ix);
                    let dst = &mut drow[ix * c..(ix + 1) * c];
                    for ox in ox0..ox1 {
                        let o = ((n * g.oh + oy) * g.ow + ox) * c;
                        add_div(dst, &dy[o..o + c], g.count(oy, ox, include_pad));
                    }
                }
            }
        }
    });
}

/// `dst[i] /= d`.
#[inline(always)]
fn div_assign(dst: &mut [f32], d: f32) {
    let n = dst.len();
    let body = n & !3;
    let p = dst.as_mut_ptr();
    let dv = F32x4::splat(d);
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n.
        unsafe { F32x4::load(p.add(i)).div(dv).store(p.add(i)) };
        i += 4;
    }
    for v in &mut dst[body..] {
        *v /= d;
    }
}

/// `dst[i] += src[i] / d`.
#[inline(always)]
fn add_div(dst: &mut [f32], src: &[f32], d: f32) {
    let n = dst.len();
    let body = n & !3;
    let (p, s) = (dst.as_mut_ptr(), src.as_ptr());
    let dv = F32x4::splat(d);
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n, and dst and src each hold n floats.
        unsafe { F32x4::load(p.add(i)).add(F32x4::load(s.add(i)).div(dv)).store(p.add(i)) };
        i += 4;
    }
    for i in body..n {
        dst[i] += src[i] / d;
    }
}

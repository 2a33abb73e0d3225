//! Reductions over the middle axis of an `[outer, red, inner]` view, plus row softmax.
//! Every sum runs in one fixed order (16 lanes, combined in a fixed tree) so results are
//! independent of the thread count.

use crate::kernels::math;
use crate::parallel::{for_each, tasks_for, SharedMut};
use crate::simd::F32x4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

/// Sum of a contiguous row: four f32x4 accumulators (16 lanes) over the body, then the tail,
/// combined in a fixed order.
#[inline]
pub fn row_sum(x: &[f32]) -> f32 {
    let n = x.len();
    let body = n & !15;
    let p = x.as_ptr();
    let mut acc = [F32x4::zero(); 4];
    let mut i = 0;
    while i < body {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16 <= body <= n.
            *a = a.add(unsafe { F32x4::load(p.add(i + 4 * j)) });
        }
        i += 16;
    }
    let v = acc[0].add(acc[1]).add(acc[2].add(acc[3]));
    let mut s = v.hsum();
    for &t in &x[body..] {
        s += t;
    }
    s
}

#[inline]
pub fn row_max(x: &[f32]) -> f32 {
    let n = x.len();
    let body = n & !3;
    let p = x.as_ptr();
    let mut acc = F32x4::splat(f32::NEG_INFINITY);
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n.
        acc = acc.max(unsafe { F32x4::load(p.add(i)) });
        i += 4;
    }
    let mut m = acc.lane(0);
    for l in 1..4 {
        m = nan_max(m, acc.lane(l));
    }
    for &t in &x[body..] {
        m = nan_max(m, t);
    }
    m
}

#[inline]
fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() { f32::NAN } else if a < b { b } else { a }
}
#[inline]
fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() { f32::NAN } else if b < a { b } else { a }
}

/// `out[o, i] = reduce over r of x[o, r, i]` for contiguous x of shape [outer, red, inner].
pub fn reduce_mid(x: &[f32], outer: usize, red: usize, inner: usize, op: ReduceOp, out: &mut [f32]) {
    let optr = SharedMut(out.as_mut_ptr());
    if inner == 1 {
        // Row reductions: one row per element of out.
        let rows_per_task = (crate::kernels::elementwise::GRAIN / red.max(1)).max(1);
        for_each(tasks_for(outer, rows_per_task), &|t, _| {
            let r0 = t * rows_per_task;
            let r1 = (r0 + rows_per_task).min(outer);
            // SAFETY: this task owns out[r0..r1].
            let dst = unsafe { optr.slice(r0, r1 - r0) };
            for (o, d) in dst.iter_mut().enumerate() {
                let row = &x[(r0 + o) * red..(r0 + o + 1) * red];
                *d = match op {
                    ReduceOp::Sum => row_sum(row),
                    ReduceOp::Max => row_max(row),
                    ReduceOp::Min => row.iter().fold(f32::INFINITY, |m, &v| nan_min(m, v)),
                };
            }
        });
        return;
    }
    // Column reductions: vectorise along inner, accumulate over r in order.
    let cols_per_task = 256usize;
    let col_tasks = inner.div_ceil(cols_per_task);
    for_each(outer * col_tasks, &|t, _| {
        let (o, ct) = (t / col_tasks, t % col_tasks);
        let c0 = ct * cols_per_task;
        let c1 = (c0 + cols_per_task).min(inner);
        // SAFETY: this task owns out[o*inner + c0 .. o*inner + c1].
        let dst = unsafe { optr.slice(o * inner + c0, c1 - c0) };
        let base = o * red * inner;
        let init = match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
        };
        dst.fill(init);
        for r in 0..red {
            let src = &x[base + r * inner + c0..base + r * inner + c1];
            match op {
                ReduceOp::Sum => math::map2_inplace(dst, src, |a, b| a.add(b)),
                ReduceOp::Max => math::map2_inplace(dst, src, |a, b| a.max(b)),
                ReduceOp::Min => math::map2_inplace(dst, src, |a, b| a.min(b)),
            }
        }
    });
}

/// Numerically stable softmax (or log-softmax) of each contiguous row of length `len`.
pub fn softmax_rows(x: &[f32], len: usize, out: &mut [f32], log: bool) {
    let rows = if len == 0 { 0 } else { x.len() / len };
    let optr = SharedMut(out.as_mut_ptr());
    let rows_per_task = (crate::kernels::elementwise::GRAIN / len.max(1)).max(1);
    for_each(tasks_for(rows, rows_per_task), &|t, _| {
        let r0 = t * rows_per_task;
        let r1 = (r0 + rows_per_task).min(rows);
        for r in r0..r1 {
            let row = &x[r * len..(r + 1) * len];
            // SAFETY: this task owns output rows r0..r1.
            let dst = unsafe { optr.slice(r * len, len) };
            let m = row_max(row);
            // A row of -inf (everything masked) has max -inf: shift by 0 so it gives NaN-free zeros
            // (softmax) or -inf (log-softmax) instead of inf - inf.
            let shift = if m == f32::NEG_INFINITY { 0.0 } else { m };
            let mv = F32x4::splat(shift);
            math::map1(row, dst, |v| math::exp(v.sub(mv)));
            let s = row_sum(dst);
            if log {
                let lsv = F32x4::splat(math::ln_scalar(s));
                math::map1(row, dst, |v| v.sub(mv).sub(lsv));
            } else {
                let sv = F32x4::splat(s);
                math::map1_inplace(dst, |v| v.div(sv));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn column_reduction_in_parallel_matches_serial() {
        let (outer, red, inner) = (3, 128, 300);
        let x: Vec<f32> = (0..outer * red * inner).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
        let mut serial = vec![0.0; outer * inner];
        let mut par = vec![0.0; outer * inner];
        crate::parallel::set_num_threads(1);
        reduce_mid(&x, outer, red, inner, ReduceOp::Sum, &mut serial);
        crate::parallel::set_num_threads(4);
        reduce_mid(&x, outer, red, inner, ReduceOp::Sum, &mut par);
        reduce_mid(&x, outer, red, inner, ReduceOp::Max, &mut par);
        reduce_mid(&x, outer, red, inner, ReduceOp::Sum, &mut par);
        crate::parallel::set_num_threads(1);
        assert_eq!(serial, par);
        let want: f32 = (0..red).map(|r| x[r * inner + 5]).sum();
        assert!((serial[5] - want).abs() < 1e-2);
    }
}

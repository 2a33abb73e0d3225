//! Elementwise kernels: unary maps and broadcasting binary ops, vectorised and split over the pool
//! in fixed-size chunks (so results never depend on the thread count).

use crate::parallel::{for_each, tasks_for, SharedMut};
use crate::simd::F32x4;

/// Elements per parallel task for elementwise work.
pub const GRAIN: usize = 16 * 1024;

/// `dst[i] = f(src[i])`, four lanes at a time, in parallel chunks.
pub fn unary(src: &[f32], dst: &mut [f32], f: impl Fn(F32x4) -> F32x4 + Sync) {
    let n = src.len();
    let d = SharedMut(dst.as_mut_ptr());
    for_each(tasks_for(n, GRAIN), &|t, _| {
        let (s, e) = (t * GRAIN, ((t + 1) * GRAIN).min(n));
        // SAFETY: task t owns dst[s..e].
        let out = unsafe { d.slice(s, e - s) };
        crate::kernels::math::map1(&src[s..e], out, &f);
    });
}

/// `buf[i] = f(buf[i])` in place, in parallel chunks.
pub fn unary_inplace(buf: &mut [f32], f: impl Fn(F32x4) -> F32x4 + Sync) {
    let n = buf.len();
    let d = SharedMut(buf.as_mut_ptr());
    for_each(tasks_for(n, GRAIN), &|t, _| {
        let (s, e) = (t * GRAIN, ((t + 1) * GRAIN).min(n));
        // SAFETY: task t owns buf[s..e].
        let chunk = unsafe { d.slice(s, e - s) };
        crate::kernels::math::map1_inplace(chunk, &f);
    });
}

/// `dst[i] = f(a[i], b[i])` for same-length inputs.
pub fn zip(a: &[f32], b: &[f32], dst: &mut [f32], f: impl Fn(F32x4, F32x4) -> F32x4 + Sync) {
    let n = dst.len();
    let d = SharedMut(dst.as_mut_ptr());
    for_each(tasks_for(n, GRAIN), &|t, _| {
        let (s, e) = (t * GRAIN, ((t + 1) * GRAIN).min(n));
        // SAFETY: task t owns dst[s..e].
        let out = unsafe { d.slice(s, e - s) };
        crate::kernels::math::map2(&a[s..e], &b[s..e], out, &f);
    });
}

/// Collapses an output shape and two broadcast stride vectors jointly, so the innermost loop is
/// as long as possible. Dimensions merge when every operand is contiguous across them.
/// (The output is contiguous, so it never blocks a merge.)
fn collapse3(shape: &[usize], sa: &[usize], sb: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut s, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        if let Some(l) = s.len().checked_sub(1) {
            if a[l] == sa[i] * shape[i] && b[l] == sb[i] * shape[i] {
                s[l] *= shape[i];
                a[l] = sa[i];
                b[l] = sb[i];
                continue;
            }
        }
        s.push(shape[i]);
        a.push(sa[i]);
        b.push(sb[i]);
    }
    if s.is_empty() {
        return (vec![1], vec![1], vec![1]);
    }
    (s, a, b)
}

/// Broadcasting binary op. `a` and `b` are contiguous with shapes broadcastable to `out_shape`.
pub fn broadcast_binary(
    a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize], out_shape: &[usize], out: &mut [f32],
    f: impl Fn(F32x4, F32x4) -> F32x4 + Sync,
) {
    if a_shape == b_shape {
        return zip(a, b, out, f);
    }
    // An empty output has no rows to walk (and a zero-sized outer dimension would divide by 0).
    if out.is_empty() {
        return;
    }
    let sa = crate::shape::broadcast_strides(a_shape, out_shape);
    let sb = crate::shape::broadcast_strides(b_shape, out_shape);
    let (s, sa, sb) = collapse3(out_shape, &sa, &sb);
    let rank = s.len();
    let inner = s[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let rows: usize = s[..rank - 1].iter().product();
    let rows_per_task = (GRAIN / inner.max(1)).max(1);
    let optr = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(rows, rows_per_task), &|t, _| {
        let r0 = t * rows_per_task;
        let r1 = (r0 + rows_per_task).min(rows);
        // Offsets of each row in a and b: walk the outer multi-index from r0.
        let outer = &s[..rank - 1];
        let mut idx = vec![0usize; rank - 1];
        let mut rem = r0;
        for d in (0..rank - 1).rev() {
            idx[d] = rem % outer[d];
            rem /= outer[d];
        }
        let (mut oa, mut ob) = (0usize, 0usize);
        for d in 0..rank - 1 {
            oa += idx[d] * sa[d];
            ob += idx[d] * sb[d];
        }
        for r in r0..r1 {
            // SAFETY: row r of the output belongs to this task only.
            let dst = unsafe { optr.slice(r * inner, inner) };
            match (ia, ib) {
                (1, 1) => crate::kernels::math::map2(&a[oa..oa + inner], &b[ob..ob + inner], dst, &f),
                (1, 0) => {
                    let bv = F32x4::splat(b[ob]);
                    crate::kernels::math::map1(&a[oa..oa + inner], dst, |x| f(x, bv));
                }
                (0, 1) => {
                    let av = F32x4::splat(a[oa]);
                    crate::kernels::math::map1(&b[ob..ob + inner], dst, |y| f(av, y));
                }
                _ => {
                    let v = f(F32x4::splat(a[oa]), F32x4::splat(b[ob])).lane(0);
                    dst.fill(v);
                }
            }
            // advance the outer index
            if rank > 1 {
                let mut d = rank - 2;
                loop {
                    idx[d] += 1;
                    oa += sa[d];
                    ob += sb[d];
                    if idx[d] < outer[d] {
                        break;
                    }
                    oa -= sa[d] * outer[d];
                    ob -= sb[d] * outer[d];
                    idx[d] = 0;
                    if d == 0 {
                        break;
                    }
                    d -= 1;
                }
            }
        }
    });
}

/// Applies a scalar function lane by lane (for ops with no vector form, such as `powf`).
#[inline(always)]
pub fn lanes2(a: F32x4, b: F32x4, f: impl Fn(f32, f32) -> f32) -> F32x4 {
    let mut out = [0.0f32; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(a.lane(i), b.lane(i));
    }
    // SAFETY: `out` holds 4 floats.
    unsafe { F32x4::load(out.as_ptr()) }
}

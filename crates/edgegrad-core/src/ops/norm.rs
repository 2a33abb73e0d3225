//! Normalisation layers with fused kernels: batch norm and layer norm.
//!
//! Forward and backward are a few fused passes each (statistics, output; sums, input gradient),
//! not compositions of elementwise ops. Every sum runs in an order fixed by the shape alone:
//! per-channel sums cut the rows into fixed chunks whose f32 partials are added in chunk order
//! in f64; per-row sums use the 16-lane order of `row_sum`. So results are bitwise identical for
//! any thread count.

use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record, Saved};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::elementwise::GRAIN;
use crate::kernels::reduce::row_sum;
use crate::parallel::{for_each, tasks_for, SharedMut};
use crate::shape::fmt_shape;
use crate::simd::F32x4;
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::ensure;

// ---------------------------------------------------------------- kernels

/// Columns per task in the per-column (per-channel) sums.
const COL_BLOCK: usize = 512;

/// Four floats from `s[i..]`, zero-padded past the end (the padded lanes are never stored).
#[inline(always)]
fn load(s: &[f32], i: usize) -> F32x4 {
    if i + 4 <= s.len() {
        let c = &s[i..i + 4];
        // SAFETY: `c` holds 4 readable floats.
        unsafe { F32x4::load(c.as_ptr()) }
    } else {
        let mut b = [0.0f32; 4];
        b[..s.len() - i].copy_from_slice(&s[i..]);
        // SAFETY: `b` holds 4 floats.
        unsafe { F32x4::load(b.as_ptr()) }
    }
}

/// Stores the lanes of `v` that fall inside `d[i..]`.
#[inline(always)]
fn store(v: F32x4, d: &mut [f32], i: usize) {
    if i + 4 <= d.len() {
        let c = &mut d[i..i + 4];
        // SAFETY: `c` holds 4 writable floats.
        unsafe { v.store(c.as_mut_ptr()) }
    } else {
        let mut b = [0.0f32; 4];
        // SAFETY: `b` holds 4 floats.
        unsafe { v.store(b.as_mut_ptr()) };
        let n = d.len() - i;
        d[i..].copy_from_slice(&b[..n]);
    }
}

/// Per-column sums of `K` quantities over the rows of a row-major `[m, c]` layout, in an order
/// fixed by `(m, c)`: rows are cut into chunks and columns into blocks of `COL_BLOCK`; task
/// (chunk, block) calls `row(r, c0, accs)` for its rows in order, which adds row r's
/// contribution for columns `c0..c0 + accs[k].len()` into the f32 partials `accs[k]`. The
/// partials are then added in chunk order in f64.
fn column_sums<const K: usize>(
    m: usize, c: usize, row: impl Fn(usize, usize, &mut [&mut [f32]; K]) + Sync,
) -> [Vec<f64>; K] {
    let mut sums: [Vec<f64>; K] = std::array::from_fn(|_| vec![0.0f64; c]);
    if m == 0 || c == 0 {
        return sums;
    }
    let rows_per_chunk = (GRAIN / c.min(COL_BLOCK)).max(1);
    let chunks = m.div_ceil(rows_per_chunk);
    let blocks = c.div_ceil(COL_BLOCK);
    let mut partial = alloc_f32(chunks * K * c);
    let pp = SharedMut(partial.as_mut_ptr());
    for_each(chunks * blocks, &|t, _| {
        let (ch, b) = (t / blocks, t % blocks);
        let (c0, c1) = (b * COL_BLOCK, ((b + 1) * COL_BLOCK).min(c));
        // SAFETY: task (ch, b) is the only writer of partial[(ch*K + k)*c + c0 .. + (c1 - c0)] for
        // each k; these ranges are disjoint, in bounds, and `partial` outlives `for_each`.
        let mut accs: [&mut [f32]; K] = std::array::from_fn(|k| unsafe { pp.slice((ch * K + k) * c + c0, c1 - c0) });
        for a in accs.iter_mut() {
            a.fill(0.0);
        }
        for r in ch * rows_per_chunk..((ch + 1) * rows_per_chunk).min(m) {
            row(r, c0, &mut accs);
        }
    });
    for ch in 0..chunks {
        for (k, s) in sums.iter_mut().enumerate() {
            let p = &partial[(ch * K + k) * c..(ch * K + k + 1) * c];
            for (s, &v) in s.iter_mut().zip(p) {
                *s += v as f64;
            }
        }
    }
    sums
}

/// `acc[j] += x[j]`
#[inline(always)]
fn acc_x(acc: &mut [f32], x: &[f32]) {
    let mut i = 0;
    while i < acc.len() {
        store(load(acc, i).add(load(x, i)), acc, i);
        i += 4;
    }
}

/// `acc[j] += (x[j] - mean[j])^2`
#[inline(always)]
fn acc_sq_dev(acc: &mut [f32], x: &[f32], mean: &[f32]) {
    let mut i = 0;
    while i < acc.len() {
        let d = load(x, i).sub(load(mean, i));
        store(load(acc, i).add(d.mul(d)), acc, i);
        i += 4;
    }
}

/// `sg[j] += g[j]; sgx[j] += g[j] * xhat[j]` with `xhat = (x - mean) * invstd`, where
/// `stats(i)` gives the (mean, invstd) lanes for columns `i..i+4`.
#[inline(always)]
fn acc_g_gxhat(sg: &mut [f32], sgx: &mut [f32], g: &[f32], x: &[f32], stats: impl Fn(usize) -> (F32x4, F32x4)) {
    let mut i = 0;
    while i < sg.len() {
        let (mv, iv) = stats(i);
        let gv = load(g, i);
        let xhat = load(x, i).sub(mv).mul(iv);
        store(load(sg, i).add(gv), sg, i);
        store(load(sgx, i).add(gv.mul(xhat)), sgx, i);
        i += 4;
    }
}

/// Row-major work on rows of `len` elements (the last row may be shorter), split into tasks of
/// whole rows (about `GRAIN` elements each); `f(r, out_row)` writes row r of `out`.
fn for_rows(out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let total = out.len();
    if total == 0 || len == 0 {
        return;
    }
    let rows = total.div_ceil(len);
    let per_task = (GRAIN / len).max(1);
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(rows, per_task), &|t, _| {
        for r in t * per_task..((t + 1) * per_task).min(rows) {
            let start = r * len;
            // SAFETY: row r (out[start .. start + its length]) belongs to this task only, is in
            // bounds, and `out` outlives `for_each`.
            f(r, unsafe { op.slice(start, len.min(total - start)) });
        }
    });
}

/// Width of a batch-norm "super-row": the least common multiple of the channel count and 4, so
/// a super-row holds whole rows and whole vectors, and per-channel values tiled over it line up
/// with the data (channels last). Small channel counts then run at full vector width.
fn tile_width(c: usize) -> usize {
    match c % 4 {
        0 => c,
        2 => 2 * c,
        _ => 4 * c,
    }
}

/// Per-channel values repeated over a super-row of `width`.
fn tile(v: &[f32], width: usize) -> Vec<f32> {
    (0..width).map(|j| v[j % v.len()]).collect()
}

/// Per-channel sums of `K` quantities over a channels-last layout of `total` elements and `c`
/// channels: column sums over super-rows of `tile_width(c)` (the last one may be partial), then
/// each channel adds its tile positions in increasing order. `body(start, c0, accs)` adds the
/// elements `start .. start + accs[k].len()` of the flat layout, which sit at tile columns
/// `c0 ..`, into `accs[k]`.
fn channel_sums<const K: usize>(
    total: usize, c: usize, body: impl Fn(usize, usize, &mut [&mut [f32]; K]) + Sync,
) -> [Vec<f64>; K] {
    if total == 0 || c == 0 {
        return std::array::from_fn(|_| vec![0.0; c]);
    }
    let w = tile_width(c);
    let sums = column_sums::<K>(total.div_ceil(w), w, |r, c0, accs| {
        let start = r * w + c0;
        let valid = accs[0].len().min(total.saturating_sub(start));
        if valid > 0 {
            let mut part: [&mut [f32]; K] = accs.each_mut().map(|a| &mut a[..valid]);
            body(start, c0, &mut part);
        }
    });
    sums.map(|s| {
        let mut out = vec![0.0f64; c];
        for (j, v) in s.iter().enumerate() {
            out[j % c] += v;
        }
        out
    })
}

/// `sum((x - mean)^2)` of a row, in the fixed order of `row_sum` (16 lanes, then the tail).
#[inline]
fn row_sq_dev(x: &[f32], mean: f32) -> f32 {
    let body = x.len() & !15;
    let mv = F32x4::splat(mean);
    let mut acc = [F32x4::zero(); 4];
    let mut i = 0;
    while i < body {
        for (j, a) in acc.iter_mut().enumerate() {
            let d = load(x, i + 4 * j).sub(mv);
            *a = a.add(d.mul(d));
        }
        i += 16;
    }
    let mut s = acc[0].add(acc[1]).add(acc[2].add(acc[3])).hsum();
    for &t in &x[body..] {
        let d = t - mean;
        s += d * d;
    }
    s
}

/// `(sum(dy), sum(dy * xhat))` of a row with `dy = g * gamma` and `xhat = (x - mean) * invstd`,
/// in the fixed order of `row_sum`.
#[inline]
fn row_dy_sums(g: &[f32], x: &[f32], gamma: Option<&[f32]>, mean: f32, invstd: f32) -> (f32, f32) {
    let n = g.len();
    let body = n & !15;
    let (mv, iv) = (F32x4::splat(mean), F32x4::splat(invstd));
    let (mut a1, mut a2) = ([F32x4::zero(); 4], [F32x4::zero(); 4]);
    let mut i = 0;
    while i < body {
        for j in 0..4 {
            let k = i + 4 * j;
            let dy = match gamma {
                Some(gm) => load(g, k).mul(load(gm, k)),
                None => load(g, k),
            };
            let xhat = load(x, k).sub(mv).mul(iv);
            a1[j] = a1[j].add(dy);
            a2[j] = a2[j].add(dy.mul(xhat));
        }
        i += 16;
    }
    let mut s1 = a1[0].add(a1[1]).add(a1[2].add(a1[3])).hsum();
    let mut s2 = a2[0].add(a2[1]).add(a2[2].add(a2[3])).hsum();
    for k in body..n {
        let dy = match gamma {
            Some(gm) => g[k] * gm[k],
            None => g[k],
        };
        s1 += dy;
        s2 += dy * ((x[k] - mean) * invstd);
    }
    (s1, s2)
}

// ---------------------------------------------------------------- shared validation

fn check_eps(op: &str, eps: f32) -> Result<()> {
    ensure!(eps.is_finite() && eps >= 0.0, Argument, "{}: eps must be finite and non-negative, got {}", op, eps);
    Ok(())
}

/// A float32 parameter whose shape must be `want`.
fn check_param(op: &str, what: &str, p: Option<&Tensor>, want: &[usize], x_shape: &[usize]) -> Result<()> {
    if let Some(p) = p {
        ensure!(p.dtype() == DType::F32, DType, "{}: {} must be float32, got {}", op, what, p.dtype());
        ensure!(p.shape() == want, Shape, "{}: {} has shape {} but the input of shape {} needs {}",
            op, what, fmt_shape(p.shape()), fmt_shape(x_shape), fmt_shape(want));
    }
    Ok(())
}

fn values(p: Option<&Tensor>) -> Result<Option<Vec<f32>>> {
    p.map(|t| t.to_vec_f32()).transpose()
}

/// Gradient slots for `[x, gamma?, beta?]`: the positions of gamma and beta in the input list.
fn param_slots(gamma: Option<&Tensor>, beta: Option<&Tensor>) -> (Option<usize>, Option<usize>) {
    let gi = gamma.map(|_| 1);
    let bi = beta.map(|_| 1 + gamma.is_some() as usize);
    (gi, bi)
}

fn inputs<'a>(x: &'a Tensor, gamma: Option<&'a Tensor>, beta: Option<&'a Tensor>) -> Vec<&'a Tensor> {
    let mut v = vec![x];
    v.extend(gamma);
    v.extend(beta);
    v
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&s| s as f32).collect()
}

// ---------------------------------------------------------------- batch norm

/// Batch normalisation with channels LAST: statistics per channel (the last dimension) over every
/// other dimension, so `x` is `[N, C]`, `[N, L, C]` or `[N, H, W, C]` and the parameters are `[C]`.
///
/// Training: normalises with the batch mean and biased variance. When running statistics are
/// given they are updated in place, `running = (1 - momentum) * running + momentum * batch`
/// (momentum weighs the new batch, as in PyTorch), with the unbiased batch variance when
/// `unbiased_running_var` (PyTorch) and the biased one otherwise (Keras / tfjs).
/// Eval (`training == false`): normalises with the running statistics, which are then required.
///
/// Differentiable w.r.t. x, gamma and beta: through the batch statistics in training mode, as an
/// affine map in eval mode. The running statistics are buffers: never differentiated.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>, training: bool, momentum: f32, eps: f32, unbiased_running_var: bool,
) -> Result<Tensor> {
    const OP: &str = "batch_norm";
    expect_f32(x, OP)?;
    let shape = x.shape().to_vec();
    ensure!(shape.len() >= 2, Shape,
        "batch_norm expects channels last with rank >= 2 ([N, C] or [N, H, W, C]), got shape {}", fmt_shape(&shape));
    let c = shape[shape.len() - 1];
    let m: usize = shape[..shape.len() - 1].iter().product();
    let total = m * c;
    let tw = tile_width(c);
    let pshape = [c];
    check_param(OP, "gamma", gamma, &pshape, &shape)?;
    check_param(OP, "beta", beta, &pshape, &shape)?;
    check_param(OP, "running_mean", running_mean, &pshape, &shape)?;
    check_param(OP, "running_var", running_var, &pshape, &shape)?;
    check_eps(OP, eps)?;
    ensure!(running_mean.is_some() == running_var.is_some(), Argument,
        "batch_norm: running_mean and running_var must be given together (got only {})",
        if running_mean.is_some() { "running_mean" } else { "running_var" });
    let has_running = running_mean.is_some();
    if training {
        ensure!(momentum.is_finite() && (0.0..=1.0).contains(&momentum), Argument,
            "batch_norm: momentum must be in [0, 1], got {}", momentum);
        ensure!(m >= 1 || c == 0, Shape,
            "batch_norm in training mode needs at least one value per channel, got input shape {}", fmt_shape(&shape));
        ensure!(!(has_running && unbiased_running_var && m < 2 && c > 0), Shape,
            "batch_norm in training mode needs more than one value per channel to compute the unbiased running \
             variance, got input shape {}", fmt_shape(&shape));
        for (what, t) in [("running_mean", running_mean), ("running_var", running_var)] {
            if let Some(t) = t {
                ensure!(t.is_contiguous(), Argument, "batch_norm: {} must be contiguous to be updated in place", what);
            }
        }
    } else {
        ensure!(has_running, Argument,
            "batch_norm in eval mode (training=false) needs running_mean and running_var");
    }

    let xc = x.contiguous_nograd()?;
    let gamma_v = values(gamma)?;
    let beta_v = values(beta)?;
    // Per-channel mean and 1/sqrt(var + eps) used to normalise.
    let (mean, invstd) = {
        let xr = xc.f32s()?;
        let xv: &[f32] = &xr;
        if training {
            let [s] = channel_sums::<1>(total, c, |start, _, acc| {
                let w = acc[0].len();
                acc_x(acc[0], &xv[start..start + w])
            });
            let mean64: Vec<f64> = s.iter().map(|&s| s / m as f64).collect();
            let mean = to_f32(&mean64);
            let mean_t = tile(&mean, tw);
            let [sq] = channel_sums::<1>(total, c, |start, c0, acc| {
                let w = acc[0].len();
                acc_sq_dev(acc[0], &xv[start..start + w], &mean_t[c0..c0 + w])
            });
            let invstd: Vec<f32> = sq.iter().map(|&q| (1.0 / (q / m as f64 + eps as f64).sqrt()) as f32).collect();
            drop(xr);
            if let (Some(rm), Some(rv)) = (running_mean, running_var) {
                let (keep, new) = (1.0 - momentum as f64, momentum as f64);
                let denom = if unbiased_running_var { m as f64 - 1.0 } else { m as f64 };
                {
                    let mut r = rm.f32s_mut()?;
                    for (r, &b) in r.iter_mut().zip(&mean64) {
                        *r = (keep * *r as f64 + new * b) as f32;
                    }
                }
                let mut r = rv.f32s_mut()?;
                for (r, &q) in r.iter_mut().zip(&sq) {
                    *r = (keep * *r as f64 + new * (q / denom)) as f32;
                }
            }
            (mean, invstd)
        } else {
            let mean = running_mean.expect("checked above").to_vec_f32()?;
            let var = running_var.expect("checked above").to_vec_f32()?;
            let invstd = var.iter().map(|&v| (1.0 / (v as f64 + eps as f64).sqrt()) as f32).collect();
            (mean, invstd)
        }
    };

    // y = (x - mean) * (invstd * gamma) + beta
    let scale: Vec<f32> = match &gamma_v {
        Some(gm) => invstd.iter().zip(gm).map(|(&i, &g)| i * g).collect(),
        None => invstd.clone(),
    };
    let shift = beta_v.unwrap_or_else(|| vec![0.0; c]);
    // Per-channel values tiled over a super-row (see `tile_width`).
    let (mean_t, invstd_t, scale_t) = if total > 0 {
        (tile(&mean, tw), tile(&invstd, tw), tile(&scale, tw))
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let mut out = alloc_f32(total);
    {
        let shift_t = if total > 0 { tile(&shift, tw) } else { Vec::new() };
        let xr = xc.f32s()?;
        let xv: &[f32] = &xr;
        for_rows(&mut out, tw, |r, y| {
            let xr = &xv[r * tw..r * tw + y.len()];
            let mut i = 0;
            while i < y.len() {
                store(load(xr, i).sub(load(&mean_t, i)).mul(load(&scale_t, i)).add(load(&shift_t, i)), y, i);
                i += 4;
            }
        });
    }
    let out = new_f32(out, &shape)?;

    let ins = inputs(x, gamma, beta);
    if !will_record(&ins) {
        return Ok(out);
    }
    let (gi, bi) = param_slots(gamma, beta);
    let xs = Saved::new(&xc);
    let n_in = ins.len();
    Ok(record(out, OP, &ins, move |g, needs| {
        let gc = g.contiguous_nograd()?;
        let gr = gc.f32s()?;
        let gv: &[f32] = &gr;
        let xc = xs.get()?;
        let xr = xc.f32s()?;
        let xv: &[f32] = &xr;
        let need_x = needs[0];
        let need_gamma = gi.is_some_and(|i| needs[i]);
        let need_beta = bi.is_some_and(|i| needs[i]);
        // Per-channel sum(g) and sum(g * xhat): the beta and gamma gradients, and (training) the
        // terms the input gradient takes through the batch statistics.
        let sums = if training || need_gamma || need_beta {
            Some(channel_sums::<2>(total, c, |start, c0, acc| {
                let [sg, sgx] = acc;
                let w = sg.len();
                let (mt, it) = (&mean_t[c0..c0 + w], &invstd_t[c0..c0 + w]);
                acc_g_gxhat(sg, sgx, &gv[start..start + w], &xv[start..start + w], |i| (load(mt, i), load(it, i)));
            }))
        } else {
            None
        };
        let mut grads: Vec<Option<Tensor>> = vec![None; n_in];
        if need_x {
            let mut dx = alloc_f32(total);
            if let (true, Some([sg, sgx])) = (training, &sums) {
                // dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat))
                let a: Vec<f32> = sg.iter().map(|&s| (s / m as f64) as f32).collect();
                let b: Vec<f32> = sgx.iter().map(|&s| (s / m as f64) as f32).collect();
                let (a_t, b_t) = if total > 0 { (tile(&a, tw), tile(&b, tw)) } else { (Vec::new(), Vec::new()) };
                for_rows(&mut dx, tw, |r, d| {
                    let o = r * tw;
                    let (gr, xr) = (&gv[o..o + d.len()], &xv[o..o + d.len()]);
                    let mut i = 0;
                    while i < d.len() {
                        let xhat = load(xr, i).sub(load(&mean_t, i)).mul(load(&invstd_t, i));
                        let inner = load(gr, i).sub(load(&a_t, i)).sub(xhat.mul(load(&b_t, i)));
                        store(load(&scale_t, i).mul(inner), d, i);
                        i += 4;
                    }
                });
            } else {
                // eval: dx = g * gamma * invstd
                for_rows(&mut dx, tw, |r, d| {
                    let gr = &gv[r * tw..r * tw + d.len()];
                    let mut i = 0;
                    while i < d.len() {
                        store(load(gr, i).mul(load(&scale_t, i)), d, i);
                        i += 4;
                    }
                });
            }
            grads[0] = Some(new_f32(dx, &shape)?);
        }
        if let Some([sg, sgx]) = &sums {
            if let (Some(i), true) = (gi, need_gamma) {
                grads[i] = Some(new_f32(to_f32(sgx), &[c])?);
            }
            if let (Some(i), true) = (bi, need_beta) {
                grads[i] = Some(new_f32(to_f32(sg), &[c])?);
            }
        }
        Ok(grads)
    }))
}

// ---------------------------------------------------------------- layer norm

/// Layer normalisation over the last `normalized_dims` dimensions (biased variance), with
/// optional `gamma` / `beta` shaped like those dimensions. Differentiable w.r.t. x, gamma, beta.
pub fn layer_norm(x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, normalized_dims: usize, eps: f32) -> Result<Tensor> {
    const OP: &str = "layer_norm";
    expect_f32(x, OP)?;
    let shape = x.shape().to_vec();
    let rank = shape.len();
    ensure!(normalized_dims >= 1 && normalized_dims <= rank, Shape,
        "layer_norm: normalized_dims must be between 1 and the input rank {} (input shape {}), got {}",
        rank, fmt_shape(&shape), normalized_dims);
    let nshape = shape[rank - normalized_dims..].to_vec();
    let d: usize = nshape.iter().product();
    let rows: usize = shape[..rank - normalized_dims].iter().product();
    check_param(OP, "gamma", gamma, &nshape, &shape)?;
    check_param(OP, "beta", beta, &nshape, &shape)?;
    check_eps(OP, eps)?;

    let xc = x.contiguous_nograd()?;
    let gamma_v = values(gamma)?;
    let beta_v = values(beta)?;
    let mut mean = alloc_f32(rows);
    let mut invstd = alloc_f32(rows);
    let mut out = alloc_f32(rows * d);
    {
        let xr = xc.f32s()?;
        let xv: &[f32] = &xr;
        let (mp, ip) = (SharedMut(mean.as_mut_ptr()), SharedMut(invstd.as_mut_ptr()));
        let (gm, bt) = (gamma_v.as_deref(), beta_v.as_deref());
        for_rows(&mut out, d, |r, y| {
            let xr = &xv[r * d..(r + 1) * d];
            let mu = (row_sum(xr) as f64 / d as f64) as f32;
            let var = row_sq_dev(xr, mu) as f64 / d as f64;
            let is = (1.0 / (var + eps as f64).sqrt()) as f32;
            // SAFETY: element r of `mean` / `invstd` belongs to the task that owns row r, and
            // both buffers outlive the parallel loop.
            unsafe {
                *mp.ptr().add(r) = mu;
                *ip.ptr().add(r) = is;
            }
            let (mv, iv) = (F32x4::splat(mu), F32x4::splat(is));
            let mut i = 0;
            while i < d {
                let mut v = load(xr, i).sub(mv).mul(iv);
                if let Some(gm) = gm {
                    v = v.mul(load(gm, i));
                }
                if let Some(bt) = bt {
                    v = v.add(load(bt, i));
                }
                store(v, y, i);
                i += 4;
            }
        });
    }
    let out = new_f32(out, &shape)?;

    let ins = inputs(x, gamma, beta);
    if !will_record(&ins) {
        return Ok(out);
    }
    let (gi, bi) = param_slots(gamma, beta);
    let xs = Saved::new(&xc);
    let n_in = ins.len();
    Ok(record(out, OP, &ins, move |g, needs| {
        let gc = g.contiguous_nograd()?;
        let gr = gc.f32s()?;
        let gv: &[f32] = &gr;
        let xc = xs.get()?;
        let xr = xc.f32s()?;
        let xv: &[f32] = &xr;
        let need_gamma = gi.is_some_and(|i| needs[i]);
        let need_beta = bi.is_some_and(|i| needs[i]);
        let mut grads: Vec<Option<Tensor>> = vec![None; n_in];
        if needs[0] {
            // dx = invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), dy = g * gamma
            let gm = gamma_v.as_deref();
            let mut dx = alloc_f32(rows * d);
            for_rows(&mut dx, d, |r, out| {
                let (gr, xr) = (&gv[r * d..(r + 1) * d], &xv[r * d..(r + 1) * d]);
                let (mu, is) = (mean[r], invstd[r]);
                let (s1, s2) = row_dy_sums(gr, xr, gm, mu, is);
                let a = F32x4::splat((s1 as f64 / d as f64) as f32);
                let b = F32x4::splat((s2 as f64 / d as f64) as f32);
                let (mv, iv) = (F32x4::splat(mu), F32x4::splat(is));
                let mut i = 0;
                while i < d {
                    let dy = match gm {
                        Some(gm) => load(gr, i).mul(load(gm, i)),
                        None => load(gr, i),
                    };
                    let xhat = load(xr, i).sub(mv).mul(iv);
                    store(iv.mul(dy.sub(a).sub(xhat.mul(b))), out, i);
                    i += 4;
                }
            });
            grads[0] = Some(new_f32(dx, &shape)?);
        }
        if need_gamma || need_beta {
            let [sg, sgx] = column_sums::<2>(rows, d, |r, c0, acc| {
                let [sg, sgx] = acc;
                let w = sg.len();
                let o = r * d + c0;
                let (mv, iv) = (F32x4::splat(mean[r]), F32x4::splat(invstd[r]));
                acc_g_gxhat(sg, sgx, &gv[o..o + w], &xv[o..o + w], |_| (mv, iv));
            });
            if let (Some(i), true) = (gi, need_gamma) {
                grads[i] = Some(new_f32(to_f32(&sgx), &nshape)?);
            }
            if let (Some(i), true) = (bi, need_beta) {
                grads[i] = Some(new_f32(to_f32(&sg), &nshape)?);
            }
        }
        Ok(grads)
    }))
}

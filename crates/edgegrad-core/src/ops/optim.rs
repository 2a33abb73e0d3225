//! Fused, in-place optimizer updates (SGD, Adam/AdamW, RMSProp, Adagrad) and gradient clipping.
//!
//! Each step is one vectorised pass over the parameter and its states, split over the pool in
//! fixed chunks of `GRAIN` elements (every element is updated by exactly one task, with no
//! reduction), so results do not depend on the thread count. Formulas and operation order follow
//! PyTorch's single-tensor implementations; scalar factors (bias corrections, decayed learning
//! rates) are computed in f64 and rounded once to f32. Updates go through `Tensor::f32s_mut`,
//! which bumps the storage version: graphs that saved a parameter refuse to run backward after
//! it was updated. No autograd is recorded.

use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::elementwise::GRAIN;
use crate::kernels::math::map1_inplace;
use crate::parallel::{for_each, tasks_for, SharedMut};
use crate::shape::fmt_shape;
use crate::simd::F32x4;
use crate::tensor::Tensor;
use crate::ensure;

// ---------------------------------------------------------------- validation

/// A tensor updated in place: float32 and contiguous.
fn check_param(op: &str, what: &str, p: &Tensor) -> Result<()> {
    ensure!(p.dtype() == DType::F32, DType, "{}: {} must be float32, got {}", op, what, p.dtype());
    ensure!(p.is_contiguous(), Argument, "{}: {} (shape {}) must be contiguous to be updated in place",
        op, what, fmt_shape(p.shape()));
    Ok(())
}

/// A gradient or state: float32, contiguous, shaped like the parameter.
fn check_state(op: &str, what: &str, t: &Tensor, p: &Tensor) -> Result<()> {
    ensure!(t.dtype() == DType::F32, DType, "{}: {} must be float32, got {}", op, what, t.dtype());
    ensure!(t.shape() == p.shape(), Shape, "{}: {} has shape {} but the parameter has shape {}",
        op, what, fmt_shape(t.shape()), fmt_shape(p.shape()));
    ensure!(t.is_contiguous(), Argument, "{}: {} (shape {}) must be contiguous", op, what, fmt_shape(t.shape()));
    Ok(())
}

/// No two of the tensors share storage (each is read or written as a whole by the kernel).
fn check_distinct(op: &str, ts: &[(&str, &Tensor)]) -> Result<()> {
    for (i, (na, a)) in ts.iter().enumerate() {
        for (nb, b) in &ts[i + 1..] {
            ensure!(!a.same_storage(b), Argument, "{}: {} and {} share storage; each needs its own buffer", op, na, nb);
        }
    }
    Ok(())
}

fn non_negative(op: &str, what: &str, v: f32) -> Result<()> {
    ensure!(v.is_finite() && v >= 0.0, Argument, "{}: {} must be finite and non-negative, got {}", op, what, v);
    Ok(())
}

fn finite(op: &str, what: &str, v: f32) -> Result<()> {
    ensure!(v.is_finite(), Argument, "{}: {} must be finite, got {}", op, what, v);
    Ok(())
}

fn beta_in_range(op: &str, what: &str, v: f32) -> Result<()> {
    ensure!((0.0..1.0).contains(&v), Argument, "{}: {} must be in [0, 1), got {}", op, what, v);
    Ok(())
}

/// `b^n` by repeated squaring (deterministic, no libm).
fn powi_f64(mut b: f64, mut n: u32) -> f64 {
    let mut r = 1.0;
    while n > 0 {
        if n & 1 == 1 {
            r *= b;
        }
        b *= b;
        n >>= 1;
    }
    r
}

// ---------------------------------------------------------------- kernel driver

/// Up to four floats of `s` (length 1..=4) as a vector, zero-padded.
#[inline(always)]
fn load_n(s: &[f32]) -> F32x4 {
    if s.len() == 4 {
        // SAFETY: `s` holds 4 readable floats.
        unsafe { F32x4::load(s.as_ptr()) }
    } else {
        let mut b = [0.0f32; 4];
        b[..s.len()].copy_from_slice(s);
        // SAFETY: `b` holds 4 floats.
        unsafe { F32x4::load(b.as_ptr()) }
    }
}

/// Stores the first `d.len()` (1..=4) lanes of `v` into `d`.
#[inline(always)]
fn store_n(v: F32x4, d: &mut [f32]) {
    if d.len() == 4 {
        // SAFETY: `d` holds 4 writable floats.
        unsafe { v.store(d.as_mut_ptr()) }
    } else {
        let mut b = [0.0f32; 4];
        // SAFETY: `b` holds 4 floats.
        unsafe { v.store(b.as_mut_ptr()) };
        let n = d.len();
        d.copy_from_slice(&b[..n]);
    }
}

/// Runs `f(grad, [state...])` over every group of four elements, updating the `K` buffers in
/// place. Chunks of `GRAIN` elements go to the pool; the tail group is zero-padded through the
/// same vector code, so an element's result never depends on its position.
///
/// Invariant (checked by callers with `check_distinct` and the shape checks): each buffer holds
/// `g.len()` floats, the buffers are pairwise distinct and distinct from `g`, and they stay
/// borrowed (`f32s_mut`) by the caller for the whole call.
fn run_update<const K: usize>(g: &[f32], bufs: [SharedMut<f32>; K], f: impl Fn(F32x4, &mut [F32x4; K]) + Sync) {
    let n = g.len();
    for_each(tasks_for(n, GRAIN), &|t, _| {
        let (s, e) = (t * GRAIN, ((t + 1) * GRAIN).min(n));
        let mut i = s;
        while i < e {
            let w = (e - i).min(4);
            // SAFETY: [i, i + w) lies in this task's chunk [s, e) of buffers holding n floats (see
            // the invariant above), so no other task touches it, and distinct buffers never overlap.
            let mut v: [F32x4; K] = std::array::from_fn(|k| load_n(unsafe { bufs[k].slice(i, w) }));
            f(load_n(&g[i..i + w]), &mut v);
            for (k, vk) in v.iter().enumerate() {
                // SAFETY: as above.
                store_n(*vk, unsafe { bufs[k].slice(i, w) });
            }
            i += 4;
        }
    });
}

/// `t[i] = f(t[i])` in place, in parallel chunks.
fn map_inplace(t: &Tensor, f: impl Fn(F32x4) -> F32x4 + Sync) -> Result<()> {
    let mut v = t.f32s_mut()?;
    let n = v.len();
    let p = SharedMut(v.as_mut_ptr());
    for_each(tasks_for(n, GRAIN), &|t, _| {
        let (s, e) = (t * GRAIN, ((t + 1) * GRAIN).min(n));
        // SAFETY: task t alone owns [s, e) of the n floats borrowed by `v` for the whole call.
        map1_inplace(unsafe { p.slice(s, e - s) }, &f);
    });
    Ok(())
}

fn ptr(v: &mut [f32]) -> SharedMut<f32> {
    SharedMut(v.as_mut_ptr())
}

// ---------------------------------------------------------------- SGD

/// One SGD step (PyTorch semantics): `d = g + wd p`; with momentum,
/// `buf = first_step ? d : momentum buf + (1 - dampening) d` and `d = nesterov ? d + momentum buf : buf`;
/// then `p -= lr d`. `momentum_buf` is required when `momentum != 0` (ignored, but validated,
/// otherwise).
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    p: &Tensor, g: &Tensor, momentum_buf: Option<&Tensor>, lr: f32, momentum: f32, dampening: f32,
    weight_decay: f32, nesterov: bool, first_step: bool,
) -> Result<()> {
    const OP: &str = "sgd";
    check_param(OP, "the parameter", p)?;
    check_state(OP, "grad", g, p)?;
    non_negative(OP, "lr", lr)?;
    non_negative(OP, "momentum", momentum)?;
    non_negative(OP, "weight_decay", weight_decay)?;
    finite(OP, "dampening", dampening)?;
    ensure!(!nesterov || (momentum > 0.0 && dampening == 0.0), Argument,
        "sgd: Nesterov momentum requires a momentum > 0 and zero dampening (got momentum={}, dampening={})",
        momentum, dampening);
    let mut named = vec![("param", p), ("grad", g)];
    if let Some(b) = momentum_buf {
        check_state(OP, "momentum_buf", b, p)?;
        named.push(("momentum_buf", b));
    }
    check_distinct(OP, &named)?;
    let buf = if momentum != 0.0 {
        Some(momentum_buf.ok_or_else(|| crate::error::Error::new(crate::error::ErrorKind::Argument,
            format!("sgd with momentum {} needs a momentum buffer", momentum)))?)
    } else {
        None
    };

    let (lr_v, wd_v, mom_v) = (F32x4::splat(lr), F32x4::splat(weight_decay), F32x4::splat(momentum));
    let keep_v = F32x4::splat((1.0 - dampening as f64) as f32);
    let wd_on = weight_decay != 0.0;
    let gv = g.f32s()?;
    let mut pv = p.f32s_mut()?;
    let decayed = move |g: F32x4, p: F32x4| if wd_on { g.add(wd_v.mul(p)) } else { g };
    match buf {
        None => run_update(&gv, [ptr(&mut pv)], |g, [p]| {
            *p = p.sub(lr_v.mul(decayed(g, *p)));
        }),
        Some(b) => {
            let mut bv = b.f32s_mut()?;
            run_update(&gv, [ptr(&mut pv), ptr(&mut bv)], |g, [p, b]| {
                let d = decayed(g, *p);
                *b = if first_step { d } else { mom_v.mul(*b).add(keep_v.mul(d)) };
                let d = if nesterov { d.add(mom_v.mul(*b)) } else { *b };
                *p = p.sub(lr_v.mul(d));
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- Adam / AdamW

/// One Adam step (PyTorch semantics). `decoupled` (AdamW): `p *= 1 - lr wd`; otherwise
/// `g += wd p`. Then `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2` and
/// `p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)` (the bias corrections in
/// f64). `step` counts from 1.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, lr: f32, beta1: f32, beta2: f32, eps: f32,
    weight_decay: f32, decoupled: bool, step: u32,
) -> Result<()> {
    let op = if decoupled { "adamw" } else { "adam" };
    check_param(op, "the parameter", p)?;
    check_state(op, "grad", g, p)?;
    check_state(op, "m (exp_avg)", m, p)?;
    check_state(op, "v (exp_avg_sq)", v, p)?;
    check_distinct(op, &[("param", p), ("grad", g), ("m", m), ("v", v)])?;
    non_negative(op, "lr", lr)?;
    beta_in_range(op, "beta1", beta1)?;
    beta_in_range(op, "beta2", beta2)?;
    non_negative(op, "eps", eps)?;
    non_negative(op, "weight_decay", weight_decay)?;
    ensure!(step >= 1, Argument, "{}: step counts from 1, got {}", op, step);

    let bc1 = 1.0 - powi_f64(beta1 as f64, step);
    let bc2 = 1.0 - powi_f64(beta2 as f64, step);
    let step_size = F32x4::splat((lr as f64 / bc1) as f32);
    let bc2_sqrt = F32x4::splat(bc2.sqrt() as f32);
    let (b1, b2) = (F32x4::splat(beta1), F32x4::splat(beta2));
    let (omb1, omb2) = (F32x4::splat((1.0 - beta1 as f64) as f32), F32x4::splat((1.0 - beta2 as f64) as f32));
    let (eps_v, wd_v) = (F32x4::splat(eps), F32x4::splat(weight_decay));
    let decay = F32x4::splat((1.0 - lr as f64 * weight_decay as f64) as f32);
    let wd_on = weight_decay != 0.0;

    let gv = g.f32s()?;
    let mut pv = p.f32s_mut()?;
    let mut mv = m.f32s_mut()?;
    let mut vv = v.f32s_mut()?;
    run_update(&gv, [ptr(&mut pv), ptr(&mut mv), ptr(&mut vv)], |g, [p, m, v]| {
        let mut g = g;
        if wd_on {
            if decoupled {
                *p = p.mul(decay);
            } else {
                g = g.add(wd_v.mul(*p));
            }
        }
        *m = b1.mul(*m).add(omb1.mul(g));
        *v = b2.mul(*v).add(omb2.mul(g.mul(g)));
        let denom = v.sqrt().div(bc2_sqrt).add(eps_v);
        *p = p.sub(step_size.mul(m.div(denom)));
    });
    Ok(())
}

// ---------------------------------------------------------------- RMSprop

/// One RMSprop step (PyTorch semantics and operation order): `g += wd p`;
/// `sq = alpha sq + ((1 - alpha) g) g`; centered: `gavg = lerp(gavg, g, 1 - alpha)` (PyTorch's
/// `lerp_`: `gavg + w (g - gavg)` for w < 1/2, else `g - (g - gavg)(1 - w)`),
/// `avg = sqrt(sq - gavg^2) + eps`, else
/// `avg = sqrt(sq) + eps`; with momentum `buf = momentum buf + g / avg`, `p -= lr buf`, else
/// `p -= lr g / avg`. `momentum_buf` is required when `momentum > 0` and `grad_avg` when
/// `centered` (each is ignored, but validated, otherwise). `sq - gavg^2`, never negative in exact
/// arithmetic, is clamped at 0 so rounding cannot produce a NaN.
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step(
    p: &Tensor, g: &Tensor, square_avg: &Tensor, momentum_buf: Option<&Tensor>, grad_avg: Option<&Tensor>,
    lr: f32, alpha: f32, eps: f32, weight_decay: f32, momentum: f32, centered: bool,
) -> Result<()> {
    const OP: &str = "rmsprop";
    check_param(OP, "the parameter", p)?;
    check_state(OP, "grad", g, p)?;
    check_state(OP, "square_avg", square_avg, p)?;
    let mut named = vec![("param", p), ("grad", g), ("square_avg", square_avg)];
    if let Some(b) = momentum_buf {
        check_state(OP, "momentum_buf", b, p)?;
        named.push(("momentum_buf", b));
    }
    if let Some(a) = grad_avg {
        check_state(OP, "grad_avg", a, p)?;
        named.push(("grad_avg", a));
    }
    check_distinct(OP, &named)?;
    non_negative(OP, "lr", lr)?;
    non_negative(OP, "alpha", alpha)?;
    non_negative(OP, "eps", eps)?;
    non_negative(OP, "weight_decay", weight_decay)?;
    non_negative(OP, "momentum", momentum)?;
    let buf = if momentum > 0.0 {
        ensure!(momentum_buf.is_some(), Argument, "rmsprop with momentum {} needs a momentum buffer", momentum);
        momentum_buf
    } else {
        None
    };
    let gavg = if centered {
        ensure!(grad_avg.is_some(), Argument, "centered rmsprop needs a grad_avg buffer");
        grad_avg
    } else {
        None
    };

    let oma = (1.0 - alpha as f64) as f32;
    let (lr_v, a_v, oma_v) = (F32x4::splat(lr), F32x4::splat(alpha), F32x4::splat(oma));
    // lerp's two forms, as PyTorch picks them by the weight (the centered variance sq - gavg^2
    // cancels badly when gradients barely vary, so rounding differences show there first).
    let lerp_small = oma.abs() < 0.5;
    let one_minus_w = F32x4::splat(1.0 - oma);
    let (eps_v, wd_v, mom_v) = (F32x4::splat(eps), F32x4::splat(weight_decay), F32x4::splat(momentum));
    let wd_on = weight_decay != 0.0;
    // The whole update for one group; `ga` / `b` are None when centering / momentum are off (the
    // closures below fix them per configuration, so the branches fold away).
    let core = move |g: F32x4, p: &mut F32x4, sq: &mut F32x4, ga: Option<&mut F32x4>, b: Option<&mut F32x4>| {
        let g = if wd_on { g.add(wd_v.mul(*p)) } else { g };
        *sq = a_v.mul(*sq).add(oma_v.mul(g).mul(g));
        let avg = match ga {
            Some(ga) => {
                let d = g.sub(*ga);
                *ga = if lerp_small { ga.add(oma_v.mul(d)) } else { g.sub(d.mul(one_minus_w)) };
                sq.sub(ga.mul(*ga)).pmax(F32x4::zero()).sqrt()
            }
            None => sq.sqrt(),
        }
        .add(eps_v);
        match b {
            Some(b) => {
                *b = mom_v.mul(*b).add(g.div(avg));
                *p = p.sub(lr_v.mul(*b));
            }
            None => *p = p.sub(lr_v.mul(g.div(avg))),
        }
    };

    let gv = g.f32s()?;
    let mut pv = p.f32s_mut()?;
    let mut sv = square_avg.f32s_mut()?;
    let (pp, sp) = (ptr(&mut pv), ptr(&mut sv));
    match (gavg, buf) {
        (None, None) => run_update(&gv, [pp, sp], |g, [p, s]| core(g, p, s, None, None)),
        (Some(a), None) => {
            let mut av = a.f32s_mut()?;
            run_update(&gv, [pp, sp, ptr(&mut av)], |g, [p, s, a]| core(g, p, s, Some(a), None));
        }
        (None, Some(b)) => {
            let mut bv = b.f32s_mut()?;
            run_update(&gv, [pp, sp, ptr(&mut bv)], |g, [p, s, b]| core(g, p, s, None, Some(b)));
        }
        (Some(a), Some(b)) => {
            let mut av = a.f32s_mut()?;
            let mut bv = b.f32s_mut()?;
            run_update(&gv, [pp, sp, ptr(&mut av), ptr(&mut bv)], |g, [p, s, a, b]| core(g, p, s, Some(a), Some(b)));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- Adagrad

/// One Adagrad step (PyTorch semantics): `g += wd p`; `clr = lr / (1 + (step - 1) lr_decay)`
/// (f64); `sum += g^2`; `p -= clr g / (sqrt(sum) + eps)`. `step` counts from 1.
#[allow(clippy::too_many_arguments)]
pub fn adagrad_step(
    p: &Tensor, g: &Tensor, sum: &Tensor, lr: f32, lr_decay: f32, weight_decay: f32, eps: f32, step: u32,
) -> Result<()> {
    const OP: &str = "adagrad";
    check_param(OP, "the parameter", p)?;
    check_state(OP, "grad", g, p)?;
    check_state(OP, "sum", sum, p)?;
    check_distinct(OP, &[("param", p), ("grad", g), ("sum", sum)])?;
    non_negative(OP, "lr", lr)?;
    non_negative(OP, "lr_decay", lr_decay)?;
    non_negative(OP, "weight_decay", weight_decay)?;
    non_negative(OP, "eps", eps)?;
    ensure!(step >= 1, Argument, "adagrad: step counts from 1, got {}", step);

    let clr = F32x4::splat((lr as f64 / (1.0 + (step as f64 - 1.0) * lr_decay as f64)) as f32);
    let (eps_v, wd_v) = (F32x4::splat(eps), F32x4::splat(weight_decay));
    let wd_on = weight_decay != 0.0;
    let gv = g.f32s()?;
    let mut pv = p.f32s_mut()?;
    let mut sv = sum.f32s_mut()?;
    run_update(&gv, [ptr(&mut pv), ptr(&mut sv)], |g, [p, s]| {
        let g = if wd_on { g.add(wd_v.mul(*p)) } else { g };
        *s = s.add(g.mul(g));
        *p = p.sub(clr.mul(g.div(s.sqrt().add(eps_v))));
    });
    Ok(())
}

// ---------------------------------------------------------------- clipping helpers

/// `sqrt(sum of squares)` over every element of every tensor (for clip-by-global-norm). Each
/// tensor is cut into chunks of `GRAIN`; each chunk sums its squares in f64 (four accumulators in
/// a fixed pattern), and the chunk sums are added in order. Non-finite values give inf / NaN.
pub fn global_grad_norm(ts: &[Tensor]) -> Result<f32> {
    for (i, t) in ts.iter().enumerate() {
        ensure!(t.dtype() == DType::F32, DType, "global_grad_norm: tensor {} (shape {}) is {}, expected float32",
            i, fmt_shape(t.shape()), t.dtype());
    }
    let cs: Vec<Tensor> = ts.iter().map(|t| t.contiguous_nograd()).collect::<Result<_>>()?;
    let refs = cs.iter().map(|t| t.f32s()).collect::<Result<Vec<_>>>()?;
    let slices: Vec<&[f32]> = refs.iter().map(|r| &**r).collect();
    // (tensor, chunk) of every task, in order.
    let mut tasks: Vec<(usize, usize)> = Vec::new();
    for (i, s) in slices.iter().enumerate() {
        if !s.is_empty() {
            tasks.extend((0..tasks_for(s.len(), GRAIN)).map(|c| (i, c)));
        }
    }
    let mut partial = vec![0.0f64; tasks.len()];
    let pp = SharedMut(partial.as_mut_ptr());
    for_each(tasks.len(), &|t, _| {
        let (i, c) = tasks[t];
        let s = slices[i];
        let chunk = &s[c * GRAIN..((c + 1) * GRAIN).min(s.len())];
        let mut acc = [0.0f64; 4];
        let mut quads = chunk.chunks_exact(4);
        for q in &mut quads {
            for (a, &x) in acc.iter_mut().zip(q) {
                *a += x as f64 * x as f64;
            }
        }
        for (a, &x) in acc.iter_mut().zip(quads.remainder()) {
            *a += x as f64 * x as f64;
        }
        // SAFETY: task t alone writes partial[t]; `partial` outlives `for_each`.
        unsafe { *pp.ptr().add(t) = (acc[0] + acc[1]) + (acc[2] + acc[3]) };
    });
    let total: f64 = partial.iter().fold(0.0, |a, &b| a + b);
    Ok(total.sqrt() as f32)
}

/// `t *= s` in place (float32, contiguous). IEEE semantics: a NaN or infinite `s` is applied as is.
pub fn scale_(t: &Tensor, s: f32) -> Result<()> {
    check_param("scale_", "the tensor", t)?;
    let sv = F32x4::splat(s);
    map_inplace(t, move |v| v.mul(sv))
}

/// Clamps `t` into `[lo, hi]` in place (float32, contiguous; either bound may be infinite; NaN
/// elements stay NaN).
pub fn clamp_(t: &Tensor, lo: f32, hi: f32) -> Result<()> {
    check_param("clamp_", "the tensor", t)?;
    ensure!(!lo.is_nan() && !hi.is_nan(), Argument, "clamp_: bounds must not be NaN (got min={}, max={})", lo, hi);
    let ordered = lo <= hi;
    ensure!(ordered, Argument, "clamp_ needs min <= max, got min={} max={}", lo, hi);
    let (lv, hv) = (F32x4::splat(lo), F32x4::splat(hi));
    // pmax/pmin return the element when the compare is false, so NaN stays NaN.
    map_inplace(t, move |v| v.pmax(lv).pmin(hv))
}

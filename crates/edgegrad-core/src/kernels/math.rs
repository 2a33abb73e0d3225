//! Vectorised transcendental functions, the same algorithm on every platform (Cephes-style range
//! reduction and minimax polynomials, ~1-2 ulp), so `exp`, `log`, `tanh`... give identical bits in
//! Node, Chromium and every thread count. `Math.*` in JS differs between engines; these do not.

use crate::simd::{F32x4, I32x4};

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// 2^n for integer lanes n in [-252, 254], exactly, as two normal powers of two.
#[inline(always)]
fn pow2i(n: I32x4) -> (F32x4, F32x4) {
    let n1 = n.shr(1);
    let n2 = n.sub(n1);
    let bias = I32x4::splat(127);
    (n1.add(bias).shl(23).from_bits(), n2.add(bias).shl(23).from_bits())
}

#[inline(always)]
pub fn exp(x: F32x4) -> F32x4 {
    let hi = F32x4::splat(88.722_84);
    let lo = F32x4::splat(-103.972_08);
    // Clamp keeps NaN (pmin/pmax return the first operand when the compare is false).
    let xc = x.pmin(hi).pmax(lo);
    let fx = xc.mul(F32x4::splat(LOG2E)).add(F32x4::splat(0.5)).floor();
    let r = xc.sub(fx.mul(F32x4::splat(LN2_HI))).sub(fx.mul(F32x4::splat(LN2_LO)));
    let z = r.mul(r);
    let mut y = F32x4::splat(1.987_569_1e-4);
    y = y.mul(r).add(F32x4::splat(1.398_199_9e-3));
    y = y.mul(r).add(F32x4::splat(8.333_452e-3));
    y = y.mul(r).add(F32x4::splat(4.166_579_6e-2));
    y = y.mul(r).add(F32x4::splat(1.666_666_5e-1));
    y = y.mul(r).add(F32x4::splat(5.000_000_1e-1));
    y = y.mul(z).add(r).add(F32x4::splat(1.0));
    let (s1, s2) = pow2i(fx.trunc_to_i32());
    let y = y.mul(s1).mul(s2);
    // Overflow to +inf above the largest finite result.
    F32x4::select(x.gt(hi), F32x4::splat(f32::INFINITY), y)
}

#[inline(always)]
pub fn ln(x: F32x4) -> F32x4 {
    let min_normal = F32x4::splat(f32::MIN_POSITIVE);
    // Scale subnormals into the normal range first.
    let sub = x.lt(min_normal);
    let xs = F32x4::select(sub, x.mul(F32x4::splat(8_388_608.0)), x); // 2^23
    let bits = xs.to_bits();
    let mut e = bits.shr(23).and(I32x4::splat(0xff)).sub(I32x4::splat(126));
    e = I32x4::select_i(sub, e.sub(I32x4::splat(23)), e);
    // Mantissa in [0.5, 1).
    let mut m = bits.and(I32x4::splat(0x807f_ffffu32 as i32)).or(I32x4::splat(0x3f00_0000)).from_bits();
    let small = m.lt(F32x4::splat(std::f32::consts::FRAC_1_SQRT_2));
    e = I32x4::select_i(small, e.sub(I32x4::splat(1)), e);
    m = F32x4::select(small, m.add(m), m).sub(F32x4::splat(1.0));
    let ef = e.to_f32();
    let z = m.mul(m);
    let mut y = F32x4::splat(7.037_683_6e-2);
    y = y.mul(m).add(F32x4::splat(-1.151_461e-1));
    y = y.mul(m).add(F32x4::splat(1.167_699_9e-1));
    y = y.mul(m).add(F32x4::splat(-1.242_014_1e-1));
    y = y.mul(m).add(F32x4::splat(1.424_932_3e-1));
    y = y.mul(m).add(F32x4::splat(-1.666_805_8e-1));
    y = y.mul(m).add(F32x4::splat(2.000_071_4e-1));
    y = y.mul(m).add(F32x4::splat(-2.499_999_4e-1));
    y = y.mul(m).add(F32x4::splat(3.333_333e-1));
    y = y.mul(z).mul(m);
    y = y.add(ef.mul(F32x4::splat(LN2_LO)));
    y = y.sub(z.mul(F32x4::splat(0.5)));
    let mut r = m.add(y).add(ef.mul(F32x4::splat(LN2_HI)));
    // Special values: log(0) = -inf, log(x<0) = NaN, log(inf) = inf, NaN stays NaN.
    let zero = F32x4::zero();
    r = F32x4::select(x.eq(zero), F32x4::splat(f32::NEG_INFINITY), r);
    r = F32x4::select(x.lt(zero), F32x4::splat(f32::NAN), r);
    r = F32x4::select(x.eq(F32x4::splat(f32::INFINITY)), x, r);
    F32x4::select(x.is_nan(), x, r)
}

#[inline(always)]
pub fn tanh(x: F32x4) -> F32x4 {
    let ax = x.abs();
    // Small |x|: odd polynomial (Cephes tanhf).
    let z = x.mul(x);
    let mut p = F32x4::splat(-5.704_988_7e-3);
    p = p.mul(z).add(F32x4::splat(2.063_908_9e-2));
    p = p.mul(z).add(F32x4::splat(-5.373_971_6e-2));
    p = p.mul(z).add(F32x4::splat(1.333_144_2e-1));
    p = p.mul(z).add(F32x4::splat(-3.333_328_2e-1));
    let small = p.mul(z).mul(x).add(x);
    // Large |x|: 1 - 2 / (exp(2|x|) + 1), with the sign of x.
    let e = exp(ax.add(ax));
    let big = F32x4::splat(1.0).sub(F32x4::splat(2.0).div(e.add(F32x4::splat(1.0))));
    let sign = x.to_bits().and(I32x4::splat(i32::MIN));
    let big = big.to_bits().or(sign).from_bits();
    F32x4::select(ax.lt(F32x4::splat(0.625)), small, big)
}

#[inline(always)]
pub fn sigmoid(x: F32x4) -> F32x4 {
    let one = F32x4::splat(1.0);
    one.div(one.add(exp(x.neg())))
}

/// Applies `f` to `src` into `dst` four lanes at a time; the tail goes through the same vector
/// code on a padded copy, so an element's result never depends on where it sits.
#[inline(always)]
pub fn map1(src: &[f32], dst: &mut [f32], f: impl Fn(F32x4) -> F32x4) {
    debug_assert_eq!(src.len(), dst.len());
    let n = src.len();
    let body = n & !3;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n for both slices.
        unsafe { f(F32x4::load(s.add(i))).store(d.add(i)) };
        i += 4;
    }
    if body < n {
        let mut buf = [0.0f32; 4];
        buf[..n - body].copy_from_slice(&src[body..]);
        let mut out = [0.0f32; 4];
        // SAFETY: both buffers hold 4 floats.
        unsafe { f(F32x4::load(buf.as_ptr())).store(out.as_mut_ptr()) };
        dst[body..].copy_from_slice(&out[..n - body]);
    }
}

/// Two-input version of `map1` (same lengths).
#[inline(always)]
pub fn map2(a: &[f32], b: &[f32], dst: &mut [f32], f: impl Fn(F32x4, F32x4) -> F32x4) {
    debug_assert!(a.len() == dst.len() && b.len() == dst.len());
    let n = dst.len();
    let body = n & !3;
    let (pa, pb, d) = (a.as_ptr(), b.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n for all three slices.
        unsafe { f(F32x4::load(pa.add(i)), F32x4::load(pb.add(i))).store(d.add(i)) };
        i += 4;
    }
    if body < n {
        let (mut ba, mut bb, mut out) = ([0.0f32; 4], [0.0f32; 4], [0.0f32; 4]);
        ba[..n - body].copy_from_slice(&a[body..]);
        bb[..n - body].copy_from_slice(&b[body..]);
        // SAFETY: all buffers hold 4 floats.
        unsafe { f(F32x4::load(ba.as_ptr()), F32x4::load(bb.as_ptr())).store(out.as_mut_ptr()) };
        dst[body..].copy_from_slice(&out[..n - body]);
    }
}

/// `buf[i] = f(buf[i])`.
#[inline(always)]
pub fn map1_inplace(buf: &mut [f32], f: impl Fn(F32x4) -> F32x4) {
    let n = buf.len();
    let body = n & !3;
    let p = buf.as_mut_ptr();
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n; each group is read before it is written.
        unsafe { f(F32x4::load(p.add(i))).store(p.add(i)) };
        i += 4;
    }
    if body < n {
        let mut tmp = [0.0f32; 4];
        tmp[..n - body].copy_from_slice(&buf[body..]);
        // SAFETY: `tmp` holds 4 floats.
        unsafe { f(F32x4::load(tmp.as_ptr())).store(tmp.as_mut_ptr()) };
        buf[body..].copy_from_slice(&tmp[..n - body]);
    }
}

/// `acc[i] = f(acc[i], src[i])` (same lengths).
#[inline(always)]
pub fn map2_inplace(acc: &mut [f32], src: &[f32], f: impl Fn(F32x4, F32x4) -> F32x4) {
    debug_assert_eq!(acc.len(), src.len());
    let n = acc.len();
    let body = n & !3;
    let (p, q) = (acc.as_mut_ptr(), src.as_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4 <= body <= n for both slices; each group is read before it is written.
        unsafe { f(F32x4::load(p.add(i)), F32x4::load(q.add(i))).store(p.add(i)) };
        i += 4;
    }
    if body < n {
        let (mut ta, mut tb) = ([0.0f32; 4], [0.0f32; 4]);
        ta[..n - body].copy_from_slice(&acc[body..]);
        tb[..n - body].copy_from_slice(&src[body..]);
        // SAFETY: both buffers hold 4 floats.
        unsafe { f(F32x4::load(ta.as_ptr()), F32x4::load(tb.as_ptr())).store(ta.as_mut_ptr()) };
        acc[body..].copy_from_slice(&ta[..n - body]);
    }
}

/// Scalar entry points built on the vector code (one lane used), for code that works per element.
pub fn exp_scalar(x: f32) -> f32 { exp(F32x4::splat(x)).lane(0) }
pub fn ln_scalar(x: f32) -> f32 { ln(F32x4::splat(x)).lane(0) }

#[cfg(test)]
mod tests {
    use super::*;
    fn check(f: impl Fn(F32x4) -> F32x4, reference: impl Fn(f64) -> f64, xs: &[f32], tol: f64) {
        for &x in xs {
            let got = f(F32x4::splat(x)).lane(0) as f64;
            let want = reference(x as f64) as f32 as f64;
            if want.is_nan() {
                assert!(got.is_nan(), "x={x}: got {got}, want NaN");
            } else if want.is_infinite() {
                assert_eq!(got, want, "x={x}");
            } else {
                let err = (got - want).abs() / want.abs().max(1e-30);
                assert!(err < tol, "x={x}: got {got}, want {want}, rel err {err}");
            }
        }
    }
    fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..=n).map(|i| lo + (hi - lo) * i as f32 / n as f32).collect()
    }
    #[test]
    fn exp_is_accurate() {
        let mut xs = grid(-87.0, 88.7, 20_000);
        xs.extend([0.0, -0.0, 1e-8, -1e-8, 88.72, 89.0, -104.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        check(exp, f64::exp, &xs, 3e-7);
        // subnormal results keep their magnitude (they only have a few bits of precision)
        let tiny = exp(F32x4::splat(-100.0)).lane(0) as f64;
        let want = (-100f64).exp() as f32 as f64;
        assert!((tiny - want).abs() / want < 0.05, "{tiny} vs {want}");
    }
    #[test]
    fn ln_is_accurate() {
        let mut xs = grid(1e-6, 100.0, 20_000);
        xs.extend([1.0, 0.5, 2.0, 1e-40, 1e-30, 3e38, 0.0, -1.0, f32::INFINITY, f32::NAN]);
        check(ln, f64::ln, &xs, 3e-7);
        assert!((ln(F32x4::splat(1.0)).lane(0)).abs() < 1e-12);
    }
    #[test]
    fn tanh_sigmoid_are_accurate() {
        let mut xs = grid(-12.0, 12.0, 20_000);
        xs.extend([1e-7, -1e-7, 0.6249, 0.6251, 50.0, -50.0, f32::NAN]);
        check(tanh, f64::tanh, &xs, 4e-7);
        check(sigmoid, |x| 1.0 / (1.0 + (-x).exp()), &grid(-80.0, 30.0, 20_000), 5e-7);
    }
}

// ---------------------------------------------------------------- erf, log1p, expm1

/// erf(x) = x + x R(x^2) on |x| <= 1: near-minimax fit of erf(x)/x - 1 (max error 7e-10 in
/// exact arithmetic), so tiny inputs keep full relative accuracy.
const ERF_SMALL: [f32; 7] = [
    1.283_791_7e-1, -3.761_262e-1, 1.128_352e-1, -2.685_131_9e-2,
    5.183_911_4e-3, -7.973_464_7e-4, 7.737_809e-5,
];
/// erf(t) = 1 - exp(Q(t)) on 1 < t < 3.92: Q is a near-minimax fit of ln(erfc(t)), weighted by
/// erfc(t) (max error 1e-9 on erf in exact arithmetic).
const ERF_LARGE: [f32; 7] = [
    -3.537_095_3e-4, -1.127_04, -6.382_256e-1, -1.030_374_3e-1,
    2.180_535e-2, -2.939_615_2e-3, 1.855_748_4e-4,
];
/// Above this, erfc(t) < 2^-25 and erf(t) rounds to 1 in float32.
const ERF_SATURATE: f32 = 3.92;

/// Error function: exactly odd, |error| <= 7.9e-8 over every float32 (measured exhaustively
/// against an f64 reference, see `erf_exhaustive`), relative error <= 7e-8 for small |x|,
/// exactly +-1 for |x| >= 3.92, NaN for NaN.
#[inline(always)]
pub fn erf(x: F32x4) -> F32x4 {
    let ax = x.abs();
    // |x| <= 1: x + x * R(x^2)
    let s = x.mul(x);
    let mut r = F32x4::splat(ERF_SMALL[6]);
    for &c in ERF_SMALL[..6].iter().rev() {
        r = r.mul(s).add(F32x4::splat(c));
    }
    let small = x.add(x.mul(r));
    // Every lane in [-1, 1] (so none is NaN): the large branch would be discarded.
    if ax.le(F32x4::splat(1.0)).all_true() {
        return small;
    }
    // 1 < |x| < 3.92: 1 - exp(Q(|x|)), with the sign of x. The clamp keeps Q finite for huge x
    // (pmin returns ax, i.e. NaN, for NaN lanes; those are replaced at the end).
    let t = ax.pmin(F32x4::splat(ERF_SATURATE));
    let mut q = F32x4::splat(ERF_LARGE[6]);
    for &c in ERF_LARGE[..6].iter().rev() {
        q = q.mul(t).add(F32x4::splat(c));
    }
    let one = F32x4::splat(1.0);
    let big = F32x4::select(ax.lt(F32x4::splat(ERF_SATURATE)), one.sub(exp(q)), one);
    let sign = x.to_bits().and(I32x4::splat(i32::MIN));
    let big = big.to_bits().or(sign).from_bits();
    let r = F32x4::select(ax.le(one), small, big);
    F32x4::select(x.is_nan(), x, r)
}

/// ln(1 + x), accurate for tiny x: ln(u) + (x - (u - 1)) / u with u = 1 + x, where the second
/// term corrects the rounding of u (u == 1 gives exactly x). -inf at -1, NaN below.
#[inline(always)]
pub fn log1p(x: F32x4) -> F32x4 {
    let one = F32x4::splat(1.0);
    let u = one.add(x);
    let c = x.sub(u.sub(one)).div(u);
    let mut r = ln(u).add(c);
    // u = +inf (x = +inf): the correction would be inf - inf; u = 0 (x = -1): 0 / 0.
    r = F32x4::select(u.eq(F32x4::splat(f32::INFINITY)), u, r);
    r = F32x4::select(u.eq(F32x4::zero()), F32x4::splat(f32::NEG_INFINITY), r);
    // u == 1: the result is x itself (this also keeps the sign of -0).
    r = F32x4::select(u.eq(one), x, r);
    F32x4::select(x.is_nan(), x, r)
}

/// exp(x) - 1, accurate near 0 (Kahan's trick: (u - 1) * x / ln(u) with u = exp(x), where the
/// rounding error of u cancels between numerator and denominator).
#[inline(always)]
pub fn expm1(x: F32x4) -> F32x4 {
    let one = F32x4::splat(1.0);
    let u = exp(x);
    let um1 = u.sub(one);
    // x / ln(u) is close to 1, so the product cannot overflow before u itself does.
    let mut r = um1.mul(x.div(ln(u)));
    r = F32x4::select(um1.eq(F32x4::splat(-1.0)), um1, r);
    r = F32x4::select(u.eq(F32x4::splat(f32::INFINITY)), u, r);
    r = F32x4::select(u.eq(one), x, r);
    F32x4::select(x.is_nan(), x, r)
}

pub fn erf_scalar(x: f32) -> f32 { erf(F32x4::splat(x)).lane(0) }
pub fn log1p_scalar(x: f32) -> f32 { log1p(F32x4::splat(x)).lane(0) }
pub fn expm1_scalar(x: f32) -> f32 { expm1(F32x4::splat(x)).lane(0) }

#[cfg(test)]
mod nn_math_tests {
    use super::*;

    /// erf in f64 from the all-positive series erf(x) = 2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) /
    /// (1*3*...*(2n+1)) (no cancellation, ~1e-16 relative), 1 beyond 6.
    fn erf64(x: f64) -> f64 {
        let ax = x.abs();
        if ax > 6.0 {
            return 1f64.copysign(x);
        }
        let x2 = ax * ax;
        let (mut term, mut sum, mut n) = (ax, ax, 0.0);
        while term > 1e-18 * sum {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
        }
        (2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum).min(1.0).copysign(x)
    }

    /// Largest |erf(x) - erf64(x)| over non-negative floats with bit patterns `0, step, 2 step...`
    /// up to 8.0 (erf is exactly 1 beyond), plus the relative error on [1e-37, 1e-3] (below, the
    /// result is subnormal and only has a few bits).
    fn erf_sweep(step: usize) -> (f64, f32, f64) {
        let (mut worst, mut at, mut worst_rel) = (0.0f64, 0.0f32, 0.0f64);
        let end = 8.0f32.to_bits();
        let mut lanes = [0.0f32; 4];
        let mut filled = 0;
        let mut check = |xs: &[f32; 4], k: usize| {
            // SAFETY: `xs` holds 4 floats.
            let got = erf(unsafe { F32x4::load(xs.as_ptr()) });
            for (i, &x) in xs.iter().enumerate().take(k) {
                let (g, w) = (got.lane(i) as f64, erf64(x as f64));
                let e = (g - w).abs();
                if e > worst {
                    worst = e;
                    at = x;
                }
                if (1e-37..1e-3).contains(&x) {
                    worst_rel = worst_rel.max(e / w);
                }
            }
        };
        for bits in (0..=end).step_by(step) {
            lanes[filled] = f32::from_bits(bits);
            filled += 1;
            if filled == 4 {
                check(&lanes, 4);
                filled = 0;
            }
        }
        check(&lanes, filled);
        (worst, at, worst_rel)
    }

    #[test]
    fn erf_is_accurate_odd_and_saturating() {
        // every 1021st float of [0, 8] plus a dense grid around the branch points
        let (worst, at, rel) = erf_sweep(1021);
        println!("erf (every 1021st float): max abs error {worst:e} at {at:e}; max relative error near 0: {rel:e}");
        assert!(worst <= 2e-7, "erf abs error {worst:e} at {at}");
        assert!(rel <= 2e-7, "erf relative error {rel:e} near 0");
        let grid: Vec<f32> = (0..=40_000).map(|i| -5.0 + 10.0 * i as f32 / 40_000.0)
            .chain([1.0, 0.999_999_9, 1.000_000_1, 3.919_999_8, 3.92, 3.920_001])
            .collect();
        for &x in &grid {
            let g = erf_scalar(x);
            assert!((g as f64 - erf64(x as f64)).abs() <= 2e-7, "erf({x}) = {g}");
            assert_eq!(erf_scalar(-x).to_bits(), (-g).to_bits(), "erf is odd at {x}");
            assert!(g.abs() <= 1.0);
        }
        assert_eq!(erf_scalar(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(erf_scalar(-0.0).to_bits(), (-0.0f32).to_bits());
        for x in [3.92f32, 4.0, 10.0, 1e30, f32::MAX, f32::INFINITY] {
            assert_eq!(erf_scalar(x), 1.0, "erf({x})");
            assert_eq!(erf_scalar(-x), -1.0, "erf(-{x})");
        }
        assert!(erf_scalar(f32::NAN).is_nan());
        let tiny = erf_scalar(1e-30) as f64;
        assert!((tiny / (1e-30f32 as f64 * 2.0 / std::f64::consts::PI.sqrt()) - 1.0).abs() < 2e-7);
    }

    /// Every non-negative float32 (about 1.1e9 values) against the f64 reference: run with
    /// `cargo test --release -p edgegrad-core erf_exhaustive -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn erf_exhaustive() {
        let (worst, at, rel) = erf_sweep(1);
        println!("erf: max abs error {worst:e} at x = {at:e}; max relative error below 1e-3: {rel:e}");
        assert!(worst <= 2e-7);
    }

    fn rel_err(got: f32, want: f64) -> f64 {
        let want32 = want as f32 as f64;
        if want32 == 0.0 {
            (got as f64).abs()
        } else {
            (got as f64 - want).abs() / want.abs()
        }
    }

    fn log_spaced(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / n as f64).exp() as f32)
    }

    #[test]
    fn log1p_is_accurate() {
        let mut xs: Vec<f32> = log_spaced(1e-38, 1e38, 40_000).flat_map(|x| [x, -x]).filter(|&x| x > -1.0).collect();
        xs.extend((0..=20_000).map(|i| -0.999_999 + 2.0 * i as f32 / 20_000.0));
        xs.extend([0.0, 1e-10, -1e-10, 1e-45, -1e-45, 1e-7, 0.414_213_5, -0.292_893_2, -0.999_999_94, f32::MAX]);
        let mut worst = (0.0f64, 0.0f32);
        for &x in &xs {
            let e = rel_err(log1p_scalar(x), (x as f64).ln_1p());
            if e > worst.0 {
                worst = (e, x);
            }
        }
        println!("log1p: max relative error {:e} at {:e}", worst.0, worst.1);
        assert!(worst.0 < 2e-7, "log1p relative error {:e} at {}", worst.0, worst.1);
        assert_eq!(log1p_scalar(1e-10), 1e-10);
        assert_eq!(log1p_scalar(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(log1p_scalar(-1.0), f32::NEG_INFINITY);
        assert!(log1p_scalar(-1.5).is_nan());
        assert!(log1p_scalar(f32::NAN).is_nan());
        assert_eq!(log1p_scalar(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn expm1_is_accurate() {
        let mut xs: Vec<f32> = log_spaced(1e-38, 88.0, 40_000).flat_map(|x| [x, -x]).collect();
        xs.extend((0..=20_000).map(|i| -30.0 + 60.0 * i as f32 / 20_000.0));
        xs.extend([0.0, 1e-10, -1e-10, 1e-45, 88.7, -17.0, -87.0, -103.0]);
        let mut worst = (0.0f64, 0.0f32);
        for &x in &xs {
            let e = rel_err(expm1_scalar(x), (x as f64).exp_m1());
            if e > worst.0 {
                worst = (e, x);
            }
        }
        println!("expm1: max relative error {:e} at {:e}", worst.0, worst.1);
        assert!(worst.0 < 2.5e-7, "expm1 relative error {:e} at {}", worst.0, worst.1);
        assert_eq!(expm1_scalar(-1e-10), -1e-10);
        assert_eq!(expm1_scalar(-200.0), -1.0);
        assert_eq!(expm1_scalar(f32::NEG_INFINITY), -1.0);
        assert_eq!(expm1_scalar(100.0), f32::INFINITY);
        assert!(expm1_scalar(f32::NAN).is_nan());
    }

    /// Worst relative error of `f` against `reference` over every `step`-th float32 bit pattern
    /// (both signs) inside `domain`.
    fn sweep(f: impl Fn(F32x4) -> F32x4, reference: impl Fn(f64) -> f64, domain: impl Fn(f32) -> bool, step: usize) -> (f64, f32) {
        let mut worst = (0.0f64, 0.0f32);
        for bits in (0..0x7f80_0000u32).step_by(step) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                if domain(x) {
                    let e = rel_err(f(F32x4::splat(x)).lane(0), reference(x as f64));
                    if e > worst.0 {
                        worst = (e, x);
                    }
                }
            }
        }
        worst
    }

    #[test]
    fn log1p_expm1_strided_sweep() {
        // every 4099th float of each sign (about 1M values each)
        let (e, at) = sweep(log1p, f64::ln_1p, |x| x > -1.0, 4099);
        assert!(e < 2e-7, "log1p relative error {e:e} at {at:e}");
        let (e, at) = sweep(expm1, f64::exp_m1, |x| x < 88.7, 4099);
        assert!(e < 2.5e-7, "expm1 relative error {e:e} at {at:e}");
    }

    /// Every 7th float32: `cargo test --release -p edgegrad-core log1p_expm1_dense -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn log1p_expm1_dense_sweep() {
        let (e, at) = sweep(log1p, f64::ln_1p, |x| x > -1.0, 7);
        println!("log1p: max relative error {e:e} at {at:e}");
        let (e2, at2) = sweep(expm1, f64::exp_m1, |x| x < 88.7, 7);
        println!("expm1: max relative error {e2:e} at {at2:e}");
        assert!(e < 2e-7 && e2 < 2.5e-7);
    }
}

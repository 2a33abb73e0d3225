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

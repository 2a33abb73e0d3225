//! The opt-in relaxed-SIMD engine's arithmetic (issue 19 §3).
//!
//! The engine is built three times from the same kernels (scripts/build-wasm.sh): `st` and `mt`
//! with `simd128` only, and `rx` with `+relaxed-simd` on top of `mt`. Kernels that may use a
//! relaxed instruction call the helpers below; without the `relaxed-simd` target feature each
//! helper is exactly the deterministic expression it replaces (same operations, same order), so
//! the default builds compile to the same code and keep their bits.
//!
//! What the relaxed build changes, and what it still promises:
//! - `mul_add` is one `f32x4.relaxed_madd`: a fused multiply-add (one rounding) on CPUs with FMA
//!   (x64 FMA3, every arm64), or a multiply then an add (two roundings) on the others. The choice
//!   is the runtime's, per CPU, and fixed for a process, and the kernels still sum over k in one
//!   fixed order whatever the tiling, so results are bitwise identical for any thread count on
//!   one machine and runtime; across CPUs they differ by the rounding of the products only:
//!   at most k/2^24 of Σ|a·b| per element (one product rounding per term), far inside the 1e-4
//!   relative tolerance tests/relaxed-engine.test.ts holds the engines to.

use crate::simd::F32x4;

/// `acc + a·b`, lane-wise: fused where the relaxed build runs on a CPU with FMA (see the module
/// docs); in the default builds exactly `acc.add(a.mul(b))`.
#[inline(always)]
pub fn mul_add(acc: F32x4, a: F32x4, b: F32x4) -> F32x4 {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    {
        F32x4(core::arch::wasm32::f32x4_relaxed_madd(a.0, b.0, acc.0))
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    {
        acc.add(a.mul(b))
    }
}

/// True in the relaxed build (`backendInfo().relaxed` reads it from the engine itself).
pub const ENABLED: bool = cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_build_is_the_deterministic_expression() {
        // Values whose product rounds: a fused multiply-add would keep the low bits.
        let a = F32x4::splat(1.0 + f32::EPSILON);
        let b = F32x4::splat(1.0 - f32::EPSILON);
        let c = F32x4::splat(-1.0);
        assert!(!ENABLED);
        assert_eq!(mul_add(c, a, b).lane(0).to_bits(), c.add(a.mul(b)).lane(0).to_bits());
        assert_eq!(mul_add(c, a, b).lane(0), 0.0);
    }
}

//! int8 kernels: GEMM and convolution with exact int32 accumulation, requantization with
//! fixed-point multipliers, int8 pooling and elementwise ops.
//!
//! ## Vector types
//! `I16x8` and `I8x16` (wasm `simd128` on wasm32, plain-array twins elsewhere, like
//! `crate::simd`), plus a few `I32x4` helpers simd.rs does not have. Everything here is integer
//! arithmetic, so results are exact and identical in every engine and for any thread count
//! (the relaxed engine's GEMM rounds its activations to 7 bits first: see "Relaxed engine").
//!
//! ## GEMM: `C = A·B` with A int8 `[m, k]` (activations) and B int8 `[k, n]` (weights)
//! The product runs on `i32x4.dot_i16x8_s` (x86 `pmaddwd`): eight i16 products summed pairwise
//! into four exact i32 lanes. Both operands are widened to i16 once, while packing:
//! - B (weights, packed once per model by `pack_b`) in slivers of `NR = 8` columns; for each pair
//!   of rows `(2p, 2p+1)` a sliver holds 8 i32 words, word j = `w[2p][j] | w[2p+1][j] << 16`
//!   (two i16 lanes), i.e. two v128 per pair of rows.
//! - A (per call, per task) in panels of `MR` rows; word `(p, i)` = `a[i][2p] | a[i][2p+1] << 16`.
//!   The micro-kernel splats one word (`v128.load32_splat`) so that `dot(splat, b)` gives, per
//!   column j, `a[i][2p]·w[2p][j] + a[i][2p+1]·w[2p+1][j]`.
//! The micro-kernel keeps an `MR x NR` tile of i32 accumulators (8 vectors) in registers over the
//! whole k range (no k blocking: integer sums do not depend on their order anyway), starting
//! from a per-column offset (bias and zero-point correction), and its epilogue requantizes
//! straight from the registers to int8, or dequantizes to f32, or stores the raw i32.
//!
//! Work is split over the pool by tiles of C (MC rows x a run of slivers); each task packs its
//! own A rows. A convolution has no im2col matrix: its input is padded once (`ConvRows`) and each
//! row is gathered while packing through a table of tap offsets, pixel coordinates stepping
//! along (`PixelWalk`) instead of being divided out per row.
//!
//! ## Fused 2x2 max pooling
//! A convolution followed by a 2x2, stride-2 max pool orders its GEMM rows by pooling window (four
//! consecutive rows = one window), and its epilogue takes the maximum of each tile's four rows of
//! accumulators before requantizing once. Requantization never decreases (multipliers >= 0), so
//! this is bitwise the pooled output, with a quarter of the requantizations and stores.
//!
//! ## Relaxed engine: 7-bit activations on the relaxed dot product
//! The relaxed build (`rx`, `init({ relaxed: true })`) multiplies on the relaxed dot product
//! (`i32x4.relaxed_dot_i8x16_i7x16_add_s`, or on x64 without AVX-VNNI the same spelled out as
//! `i16x8.relaxed_dot_i8x16_i7x16_s` + a dot with ones: `dot7::split`): 16 int8 products per
//! instruction, one operand signed int8, the other deterministic only in [0, 127] (x64
//! `pmaddubsw` reads it as unsigned). Scheme: weights stay full int8 (that operand); each activation `q` becomes
//! `u = to_u7(q) = round_half_even((q + 128) / 2)` (at most 127), so the product sees
//! `q' = 2u - 128`, `|q' - q| <= 1`: 7-bit activations, one bit dropped. `Σ q'·w = 2·Σ u·w -
//! 128·Σ w`; the column sums `Σ w` are packed with the weights (`dot7::pack_b`, in the sliver's last
//! NR words, inside the same `[groups, ceil(n/8), ceil(k/2), 8]` tensor), the row data 4 k per word.
//! Every operand is in the instruction's deterministic range, so the result is exact integer
//! arithmetic on `q'`: bitwise the same on every CPU, engine and thread count, and within
//! `Σ_k |w[k][j]|` of the int8 product (before requantization). Reductions shorter than
//! `dot7::MIN_K` keep the exact kernel. The default builds do not compile this path.
//!
//! ## Requantization
//! `q = clamp(zp + round(acc · M))` with `M = mult · 2^(left - 32 - right)`, mult an i32 with
//! `|mult| < 2^31`, one `(left, right)` pair per layer: `round(x) = floor(x + 1/2)` computed as
//! `((acc · mult) << left + 2^(31 + right)) >> (32 + right)` with a 64-bit product (wasm
//! `i64x2.extmul`), keeping the high half (a lane shuffle) and an arithmetic shift.
//! When `left > 0` (M >= 1/2), `acc` is first clamped to `±lim`, which changes nothing that
//! would not saturate anyway and keeps the product inside i64.

use std::borrow::Cow;

use crate::kernels::conv::{ConvGeom, PixelWalk};
use crate::kernels::pool::PoolGeom;
use crate::parallel::{current_thread, for_each, num_threads, tasks_for, SharedMut};
use crate::scratch::{self, Slot};
use crate::simd::{F32x4, I32x4};

/// Rows of the micro-kernel tile.
pub const MR: usize = 4;
/// Columns of the micro-kernel tile (two i32x4 vectors), and of a packed weight sliver.
pub const NR: usize = 8;
/// Rows of C per task.
pub const MC: usize = 64;
/// Below this many multiply-adds a product runs on the calling thread only.
const PAR_MIN_WORK: usize = 48 * 48 * 48;
/// Elements per task in elementwise int8 kernels.
const EW_GRAIN: usize = 32 * 1024;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use crate::simd::I32x4;
    use core::arch::wasm32::*;

    /// Eight i16 lanes.
    #[derive(Clone, Copy)]
    pub struct I16x8(pub v128);
    /// Sixteen i8 lanes.
    #[derive(Clone, Copy)]
    pub struct I8x16(pub v128);

    impl I16x8 {
        /// # Safety
        /// `p` must point to 8 readable i16 (no alignment needed).
        #[inline(always)]
        pub unsafe fn load(p: *const i16) -> Self { I16x8(v128_load(p as *const v128)) }
        /// The two i16 lanes of the word at `p`, repeated four times.
        /// # Safety
        /// `p` must point to one readable i32.
        #[inline(always)]
        pub unsafe fn load_pair_splat(p: *const i32) -> Self { I16x8(v128_load32_splat(p as *const u32)) }
        /// Lane i: `self[2i]·o[2i] + self[2i+1]·o[2i+1]`, exact in i32 (wasm `i32x4.dot_i16x8_s`).
        #[inline(always)]
        pub fn dot(self, o: Self) -> I32x4 { I32x4(i32x4_dot_i16x8(self.0, o.0)) }
        /// Eight i8 sign-extended to i16 (wasm `i16x8.load8x8_s`).
        /// # Safety
        /// `p` must point to 8 readable bytes.
        #[inline(always)]
        pub unsafe fn load_i8x8(p: *const i8) -> Self { I16x8(i16x8_load_extend_i8x8(p)) }
        /// The same 128 bits as four i32 words (word j = lanes 2j, 2j+1).
        #[inline(always)]
        pub fn words(self) -> I32x4 { I32x4(self.0) }
    }


    impl I8x16 {
        /// Saturating narrow of 16 i32 lanes (a: lanes 0-3, b: 4-7, c: 8-11, d: 12-15).
        #[inline(always)]
        pub fn narrow(a: I32x4, b: I32x4, c: I32x4, d: I32x4) -> Self {
            I8x16(i8x16_narrow_i16x8(i16x8_narrow_i32x4(a.0, b.0), i16x8_narrow_i32x4(c.0, d.0)))
        }
        /// # Safety
        /// `p` must point to 8 writable bytes.
        #[inline(always)]
        pub unsafe fn store_low8(self, p: *mut i8) { v128_store64_lane::<0>(self.0, p as *mut u64) }
        #[inline(always)]
        pub fn lanes(self) -> [i8; 16] {
            let mut out = [0i8; 16];
            // SAFETY: `out` holds 16 writable bytes.
            unsafe { v128_store(out.as_mut_ptr() as *mut v128, self.0) };
            out
        }
    }

    /// The 7-bit path's byte helpers (see "Relaxed engine" in the module docs).
    #[cfg(target_feature = "relaxed-simd")]
    impl I8x16 {
        /// Eight bytes into the low half, the high half zero.
        /// # Safety
        /// `p` must point to 8 readable bytes.
        #[inline(always)]
        pub unsafe fn load_low8(p: *const i8) -> Self { I8x16(v128_load64_zero(p as *const u64)) }
        /// # Safety
        /// `p` must point to 16 readable bytes.
        #[inline(always)]
        pub unsafe fn load(p: *const i8) -> Self { I8x16(v128_load(p as *const v128)) }
        /// The four bytes of the word at `p`, repeated four times.
        /// # Safety
        /// `p` must point to one readable i32.
        #[inline(always)]
        pub unsafe fn load_quad_splat(p: *const i32) -> Self { I8x16(v128_load32_splat(p as *const u32)) }
        /// Lane-wise `to_u7` (see the scalar one).
        #[inline(always)]
        pub fn to_u7(self) -> Self {
            let x = v128_xor(self.0, i8x16_splat(-128));
            let odd = v128_and(u8x16_shr(x, 1), i8x16_splat(1));
            I8x16(u8x16_shr(u8x16_add_sat(x, odd), 1))
        }
        /// Lane i: `self[2i]·u[2i] + self[2i+1]·u[2i+1]` as i16, `self` signed, `u` in [0, 127]:
        /// one `i16x8.relaxed_dot_i8x16_i7x16_s` (x64 `pmaddubsw`), exact and the same on every CPU
        /// and engine because `u`'s top bits are clear (the spec's deterministic case) and a pair
        /// fits i16 (|2·128·127| < 2^15: nothing saturates or wraps).
        #[inline(always)]
        pub fn dot_u7_pairs(self, u: Self) -> I16x8 { I16x8(i16x8_relaxed_dot_i8x16_i7x16(self.0, u.0)) }
        /// `acc + ` the i32 sums of `dot_u7_pairs`' pairs: one `i32x4.relaxed_dot_i8x16_i7x16_add_s`
        /// (deterministic for `u` in [0, 127], like `dot_u7_pairs`).
        #[inline(always)]
        pub fn dot_u7_add(self, u: Self, acc: I32x4) -> I32x4 { I32x4(i32x4_relaxed_dot_i8x16_i7x16_add(self.0, u.0, acc.0)) }
    }

    /// Whether this CPU's `i32x4.relaxed_dot_i8x16_i7x16_add_s` is the split x64 form (`pmaddubsw`,
    /// which saturates pairs to i16, then `pmaddwd` with ones) rather than one dot instruction (x64
    /// AVX-VNNI `vpdpbusd`, arm64 `sdot`) or signed products. Told apart by the instruction itself
    /// outside its deterministic range: 127·255 pairs saturate only in the split form (2·32767
    /// per lane; 4·127·255 with VNNI, -4·127 with signed products).
    #[cfg(target_feature = "relaxed-simd")]
    pub fn relaxed_dot_is_split() -> bool {
        let a = std::hint::black_box(i8x16_splat(127));
        let u = std::hint::black_box(i8x16_splat(-1));
        i32x4_extract_lane::<0>(i32x4_relaxed_dot_i8x16_i7x16_add(a, u, i32x4_splat(0))) == 2 * 32767
    }

    #[cfg(target_feature = "relaxed-simd")]
    impl I8x16 {
        /// The same 128 bits as four i32 words.
        #[inline(always)]
        pub fn words(self) -> I32x4 { I32x4(self.0) }
    }

    /// # Safety
    /// `p` must point to 4 readable i32.
    #[inline(always)]
    pub unsafe fn load_i32(p: *const i32) -> I32x4 { I32x4(v128_load(p as *const v128)) }
    /// # Safety
    /// `p` must point to 4 writable i32.
    #[inline(always)]
    pub unsafe fn store_i32(v: I32x4, p: *mut i32) { v128_store(p as *mut v128, v.0) }
    #[inline(always)]
    pub fn max_i32(a: I32x4, b: I32x4) -> I32x4 { I32x4(i32x4_max(a.0, b.0)) }
    #[inline(always)]
    pub fn min_i32(a: I32x4, b: I32x4) -> I32x4 { I32x4(i32x4_min(a.0, b.0)) }
    #[inline(always)]
    pub fn xor(a: I32x4, b: I32x4) -> I32x4 { I32x4(v128_xor(a.0, b.0)) }
    /// Per lane `((a · m) << left + round) >> 32` (64-bit product, arithmetic), then `>> right`.
    #[inline(always)]
    pub fn mul_shift(a: I32x4, m: I32x4, left: u32, right: u32, round: i64) -> I32x4 {
        let mut lo = i64x2_extmul_low_i32x4(a.0, m.0);
        let mut hi = i64x2_extmul_high_i32x4(a.0, m.0);
        if left > 0 {
            lo = i64x2_shl(lo, left);
            hi = i64x2_shl(hi, left);
        }
        let r = i64x2_splat(round);
        let v = i32x4_shuffle::<1, 3, 5, 7>(i64x2_add(lo, r), i64x2_add(hi, r));
        I32x4(i32x4_shr(v, right))
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    use crate::simd::I32x4;

    #[derive(Clone, Copy)]
    pub struct I16x8(pub [i16; 8]);
    #[derive(Clone, Copy)]
    pub struct I8x16(pub [i8; 16]);

    impl I16x8 {
        /// # Safety
        /// `p` must point to 8 readable i16.
        #[inline(always)]
        pub unsafe fn load(p: *const i16) -> Self { I16x8(std::ptr::read_unaligned(p as *const [i16; 8])) }
        /// # Safety
        /// `p` must point to one readable i32.
        #[inline(always)]
        pub unsafe fn load_pair_splat(p: *const i32) -> Self {
            let w = std::ptr::read_unaligned(p);
            let (lo, hi) = (w as i16, (w >> 16) as i16);
            I16x8([lo, hi, lo, hi, lo, hi, lo, hi])
        }
        #[inline(always)]
        pub fn dot(self, o: Self) -> I32x4 {
            let (a, b) = (self.0, o.0);
            I32x4([0, 1, 2, 3].map(|i| {
                (a[2 * i] as i32 * b[2 * i] as i32).wrapping_add(a[2 * i + 1] as i32 * b[2 * i + 1] as i32)
            }))
        }
        /// # Safety
        /// `p` must point to 8 readable bytes.
        #[inline(always)]
        pub unsafe fn load_i8x8(p: *const i8) -> Self {
            let b = std::ptr::read_unaligned(p as *const [i8; 8]);
            I16x8(b.map(|v| v as i16))
        }
        #[inline(always)]
        pub fn words(self) -> I32x4 {
            let l = self.0;
            I32x4([0, 1, 2, 3].map(|j| ((l[2 * j] as u16 as u32) | ((l[2 * j + 1] as u16 as u32) << 16)) as i32))
        }
    }


    impl I8x16 {
        #[inline(always)]
        pub fn narrow(a: I32x4, b: I32x4, c: I32x4, d: I32x4) -> Self {
            let sat = |x: i32| x.clamp(-32768, 32767).clamp(-128, 127) as i8;
            let mut out = [0i8; 16];
            for (j, v) in [a, b, c, d].iter().enumerate() {
                for i in 0..4 {
                    out[j * 4 + i] = sat(v.0[i]);
                }
            }
            I8x16(out)
        }
        /// # Safety
        /// `p` must point to 8 writable bytes.
        #[inline(always)]
        pub unsafe fn store_low8(self, p: *mut i8) { std::ptr::copy_nonoverlapping(self.0.as_ptr(), p, 8) }
        #[inline(always)]
        pub fn lanes(self) -> [i8; 16] { self.0 }
    }

    impl I8x16 {
        /// # Safety
        /// `p` must point to 8 readable bytes.
        #[inline(always)]
        pub unsafe fn load_low8(p: *const i8) -> Self {
            let mut b = [0i8; 16];
            std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), 8);
            I8x16(b)
        }
        /// # Safety
        /// `p` must point to 16 readable bytes.
        #[inline(always)]
        pub unsafe fn load(p: *const i8) -> Self { I8x16(std::ptr::read_unaligned(p as *const [i8; 16])) }
        /// # Safety
        /// `p` must point to one readable i32.
        #[inline(always)]
        pub unsafe fn load_quad_splat(p: *const i32) -> Self {
            let w = std::ptr::read_unaligned(p as *const [i8; 4]);
            I8x16(std::array::from_fn(|i| w[i % 4]))
        }
        #[inline(always)]
        pub fn to_u7(self) -> Self { I8x16(self.0.map(|q| super::to_u7(q) as i8)) }
        /// The spec's deterministic case of `i16x8.relaxed_dot_i8x16_i7x16_s` (`u` in [0, 127]).
        #[inline(always)]
        pub fn dot_u7_pairs(self, u: Self) -> I16x8 {
            assert!(u.0.iter().all(|&v| v >= 0), "dot_u7_pairs: the i7 operand must be in [0, 127]");
            I16x8(std::array::from_fn(|i| (self.0[2 * i] as i16 * u.0[2 * i] as i16) + (self.0[2 * i + 1] as i16 * u.0[2 * i + 1] as i16)))
        }
        /// The spec's deterministic case of `i32x4.relaxed_dot_i8x16_i7x16_add_s` (`u` in [0, 127]).
        #[inline(always)]
        pub fn dot_u7_add(self, u: Self, acc: I32x4) -> I32x4 {
            let p = self.dot_u7_pairs(u).0;
            I32x4(std::array::from_fn(|i| acc.0[i].wrapping_add(p[2 * i] as i32 + p[2 * i + 1] as i32)))
        }
        #[inline(always)]
        pub fn words(self) -> I32x4 {
            I32x4(std::array::from_fn(|j| i32::from_le_bytes(std::array::from_fn(|t| self.0[4 * j + t] as u8))))
        }
    }

    /// # Safety
    /// `p` must point to 4 readable i32.
    #[inline(always)]
    pub unsafe fn load_i32(p: *const i32) -> I32x4 { I32x4(std::ptr::read_unaligned(p as *const [i32; 4])) }
    /// # Safety
    /// `p` must point to 4 writable i32.
    #[inline(always)]
    pub unsafe fn store_i32(v: I32x4, p: *mut i32) { std::ptr::write_unaligned(p as *mut [i32; 4], v.0) }
    #[inline(always)]
    pub fn max_i32(a: I32x4, b: I32x4) -> I32x4 { I32x4([0, 1, 2, 3].map(|i| a.0[i].max(b.0[i]))) }
    #[inline(always)]
    pub fn min_i32(a: I32x4, b: I32x4) -> I32x4 { I32x4([0, 1, 2, 3].map(|i| a.0[i].min(b.0[i]))) }
    #[inline(always)]
    pub fn xor(a: I32x4, b: I32x4) -> I32x4 { I32x4([0, 1, 2, 3].map(|i| a.0[i] ^ b.0[i])) }
    #[inline(always)]
    pub fn mul_shift(a: I32x4, m: I32x4, left: u32, right: u32, round: i64) -> I32x4 {
        I32x4([0, 1, 2, 3].map(|i| {
            let p = ((a.0[i] as i64 * m.0[i] as i64) << left).wrapping_add(round);
            ((p >> 32) as i32) >> right
        }))
    }
}

pub use imp::{load_i32, max_i32, min_i32, mul_shift, store_i32, xor, I16x8, I8x16};

/// Rows a, b, c, d of a 4x4 block of words → its columns (the f32 shuffle on the same bits).
#[inline(always)]
pub fn transpose4(a: I32x4, b: I32x4, c: I32x4, d: I32x4) -> [I32x4; 4] {
    F32x4::transpose4(a.from_bits(), b.from_bits(), c.from_bits(), d.from_bits()).map(|v| v.to_bits())
}

/// Two i8 values as the two i16 lanes of one i32 word (`lo` in the low half).
#[inline(always)]
pub fn pack16(lo: i8, hi: i8) -> i32 {
    ((lo as i16 as u16 as u32) | ((hi as i16 as u16 as u32) << 16)) as i32
}

// ------------------------------------------------------------------ requantization

/// The per-layer part of a requantization `q = clamp(zp + round(acc · mult · 2^(left-32-right)))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    pub left: u32,
    pub right: u32,
    pub zero_point: i32,
    pub qmin: i32,
    pub qmax: i32,
}

impl Requant {
    /// `2^(31 + right)`: the rounding term.
    #[inline(always)]
    pub fn round(&self) -> i64 {
        1i64 << (31 + self.right)
    }
    /// Bound on |acc| that keeps `(acc · mult) << left` inside i64.
    #[inline(always)]
    pub fn lim(&self) -> i32 {
        if self.left == 0 { i32::MAX } else { (1i32 << (31 - self.left.min(30))) - 1 }
    }
    /// Scalar form of the vector epilogue (same bits).
    #[inline(always)]
    pub fn apply(&self, acc: i32, mult: i32) -> i32 {
        let lim = self.lim();
        let a = acc.clamp(-lim, lim);
        let p = ((a as i64 * mult as i64) << self.left).wrapping_add(self.round());
        let v = ((p >> 32) as i32) >> self.right;
        v.saturating_add(self.zero_point).clamp(self.qmin, self.qmax)
    }
    #[inline(always)]
    fn apply4(&self, acc: I32x4, mult: I32x4, consts: &RqVec) -> I32x4 {
        let a = if self.left > 0 { min_i32(max_i32(acc, consts.nlim), consts.lim) } else { acc };
        let v = mul_shift(a, mult, self.left, self.right, consts.round).add(consts.zp);
        min_i32(max_i32(v, consts.qmin), consts.qmax)
    }
}

/// Splatted constants of a `Requant`.
#[derive(Clone, Copy)]
struct RqVec {
    lim: I32x4,
    nlim: I32x4,
    zp: I32x4,
    qmin: I32x4,
    qmax: I32x4,
    round: i64,
}

impl RqVec {
    fn new(r: &Requant) -> RqVec {
        RqVec {
            lim: I32x4::splat(r.lim()),
            nlim: I32x4::splat(-r.lim()),
            zp: I32x4::splat(r.zero_point),
            qmin: I32x4::splat(r.qmin),
            qmax: I32x4::splat(r.qmax),
            round: r.round(),
        }
    }
}

/// Per-channel multipliers with one shared `(left, right)` for real factors `real[c] >= 0`:
/// `real[c] ≈ mult[c] · 2^(left - 32 - right)`, the largest mult in `[2^30, 2^31)`.
/// Returns None when a factor is not finite, negative or at least 2^20 (the output scale would
/// be absurdly small next to the inputs').
pub fn quantize_multipliers(real: &[f64]) -> Option<(Vec<i32>, u32, u32)> {
    if real.iter().any(|r| !r.is_finite() || *r < 0.0 || *r >= (1u64 << 20) as f64) {
        return None;
    }
    let max = real.iter().cloned().fold(0.0f64, f64::max);
    if max == 0.0 {
        return Some((vec![0; real.len()], 0, 0));
    }
    // sh: the power of two with max · 2^sh in [2^30, 2^31).
    let mut sh: i32 = 0;
    while max * 2f64.powi(sh) < (1u64 << 30) as f64 {
        sh += 1;
    }
    while max * 2f64.powi(sh) >= (1u64 << 31) as f64 {
        sh -= 1;
    }
    loop {
        let mults: Vec<i64> = real.iter().map(|r| (r * 2f64.powi(sh) + 0.5).floor() as i64).collect();
        if mults.iter().any(|&m| m >= 1i64 << 31) {
            sh -= 1;
            continue;
        }
        if sh > 62 {
            // Every product rounds to zero.
            return Some((vec![0; real.len()], 0, 0));
        }
        let (left, right) = if sh >= 32 { (0, (sh - 32) as u32) } else { ((32 - sh) as u32, 0) };
        return Some((mults.into_iter().map(|m| m as i32).collect(), left, right));
    }
}

// ------------------------------------------------------------------ weight packing

/// Packed length (in i32 words) of one group's `[k, n]` weights.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k.div_ceil(2) * NR
}

/// Packs weights `w(kk, j) = w[off + kk*rs + j*cs]` (`kk < k`, `j < n`) into slivers of `NR`
/// columns, pairs of rows widened to i16 and interleaved (see the module docs). Zero-padded.
pub fn pack_b(w: &[i8], off: usize, rs: usize, cs: usize, k: usize, n: usize, out: &mut [i32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    if dot7::applies(k) {
        return dot7::pack_b(w, off, rs, cs, k, n, out);
    }
    let kp = k.div_ceil(2);
    assert!(out.len() >= packed_len(k, n), "pack_b: output too small");
    let at = |kk: usize, j: usize| if kk < k && j < n { w[off + kk * rs + j * cs] } else { 0 };
    for s in 0..n.div_ceil(NR) {
        for p in 0..kp {
            let dst = &mut out[(s * kp + p) * NR..(s * kp + p + 1) * NR];
            for (jj, d) in dst.iter_mut().enumerate() {
                let j = s * NR + jj;
                *d = pack16(at(2 * p, j), at(2 * p + 1, j));
            }
        }
    }
}

// ------------------------------------------------------------------ A operand sources

/// Where the rows of A come from: a dense matrix, or the receptive fields of a convolution's
/// output pixels, gathered while packing (no im2col matrix).
#[derive(Clone, Copy)]
pub enum ASrc<'a, T: Clone> {
    /// Row i is `data[off + i*lda ..][..k]`.
    Dense { data: &'a [T], off: usize, lda: usize },
    /// Row i is the receptive field, laid out `(ky, kx, c)`, for group `grp` of the output pixel
    /// that a `PixelWalk` (raster order, or 2x2 windows) gives for row i.
    Im2col { rows: &'a ConvRows<'a, T>, grp: usize, windows: bool },
}

/// A convolution's input prepared for gathering GEMM rows: padded once, so that every tap is in
/// bounds, plus the offset of each receptive-field element from its pixel's base. Gathering is
/// then one indexed load per element, with no per-row division or bounds logic.
pub struct ConvRows<'a, T: Clone> {
    x: Cow<'a, [T]>,
    /// The geometry of `x` (no padding left).
    g: ConvGeom,
    /// Offset of element `(ky, kx, c)` (`c < cin_g`) from the pixel's base.
    taps: Vec<usize>,
    /// Each aligned run of 8 taps is contiguous (packing may read 8 elements at once).
    contig8: bool,
}

impl<'a, T: Copy> ConvRows<'a, T> {
    /// `x` NHWC for geometry `g`, padding reading as `pad`.
    pub fn new(x: &'a [T], g: &ConvGeom, pad: T) -> ConvRows<'a, T> {
        // Rows and columns the taps reach.
        let hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
        let wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
        let (x, h, w) = if g.pt == 0 && g.pl == 0 && hp <= g.h && wp <= g.w {
            (Cow::Borrowed(x), g.h, g.w)
        } else {
            let mut buf = vec![pad; g.n * hp * wp * g.cin];
            let cols = g.w.min(wp.saturating_sub(g.pl)) * g.cin;
            for n in 0..g.n {
                for iy in 0..g.h.min(hp.saturating_sub(g.pt)) {
                    let src = &x[(n * g.h + iy) * g.w * g.cin..][..cols];
                    buf[((n * hp + g.pt + iy) * wp + g.pl) * g.cin..][..cols].copy_from_slice(src);
                }
            }
            (Cow::Owned(buf), hp, wp)
        };
        let g = ConvGeom { h, w, pt: 0, pl: 0, ..*g };
        let cg = g.cin_g();
        let mut taps = Vec::with_capacity(g.k());
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                for c in 0..cg {
                    taps.push((ky * g.dh * g.w + kx * g.dw) * g.cin + c);
                }
            }
        }
        assert!(taps.windows(2).all(|t| t[0] < t[1]), "ConvRows: taps must increase");
        let contig8 = taps.chunks_exact(8).all(|c| c.iter().enumerate().all(|(t, &o)| o == c[0] + t));
        ConvRows { x, g, taps, contig8 }
    }

    /// Index of element `(0, 0, c0)` of output pixel `(n, oy, ox)`'s receptive field.
    #[inline(always)]
    fn base(&self, (n, oy, ox): (usize, usize, usize), c0: usize) -> usize {
        let g = &self.g;
        ((n * g.h + oy * g.sh) * g.w + ox * g.sw) * g.cin + c0
    }
}

/// The pieces of a row source that packing reads: the data, each live row's start in it, and
/// the tap table (None: row elements are contiguous).
pub struct RowGather<'a, T: Clone> {
    pub(crate) data: &'a [T],
    taps: Option<&'a [usize]>,
    contig8: bool,
    src: ASrc<'a, T>,
    walk: Option<PixelWalk>,
    next_row: usize,
}

impl<'a, T: Copy> RowGather<'a, T> {
    /// Gathering rows `i0..` of `src`.
    pub fn new(src: ASrc<'a, T>, i0: usize) -> Self {
        match src {
            ASrc::Dense { data, .. } => RowGather { data, taps: None, contig8: true, src, walk: None, next_row: i0 },
            ASrc::Im2col { rows, windows, .. } => RowGather {
                data: &rows.x, taps: Some(&rows.taps), contig8: rows.contig8, src, walk: Some(PixelWalk::new(&rows.g, windows, i0)), next_row: i0,
            },
        }
    }

    /// Start (in `data`) of the next row; element kk of the row is at `start + tap(kk)`.
    #[inline(always)]
    pub fn next_start(&mut self) -> usize {
        let i = self.next_row;
        self.next_row += 1;
        match (self.src, self.walk.as_mut()) {
            (ASrc::Dense { off, lda, .. }, _) => off + i * lda,
            (ASrc::Im2col { rows, grp, .. }, Some(w)) => rows.base(w.next_pixel(), grp * rows.g.cin_g()),
            (ASrc::Im2col { .. }, None) => unreachable!("im2col rows have a walk"),
        }
    }

    /// Offset of row element kk from the row's start.
    #[inline(always)]
    pub fn tap(&self, kk: usize) -> usize {
        match self.taps {
            Some(t) => t[kk],
            None => kk,
        }
    }
}

/// Reinterprets a per-thread f32 scratch slot as `len` values of `T` (i8 or i32).
///
/// # Safety
/// Same contract as `scratch::per_thread`; `T` must be a plain integer type of size <= 4 whose
/// alignment divides f32's (i8, i32).
#[allow(clippy::mut_from_ref)]
unsafe fn scratch_as<T>(slot: Slot, thread: usize, len: usize) -> &'static mut [T] {
    let floats = (len * std::mem::size_of::<T>()).div_ceil(4);
    let s = scratch::per_thread(slot, thread, floats);
    std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut T, len)
}

/// Packs rows `i0..i0+rows` of A into MR-row panels of i16 pairs: panel r holds
/// `out[(r*kp + p)*MR + i] = pack16(a[i][2p], a[i][2p+1])`, zero-padded in k (rows past the end of a
/// partial panel are never read).
#[inline(always)]
fn pack_a_i8(src: ASrc<i8>, i0: usize, rows: usize, k: usize, out: &mut [i32]) {
    let kp = k.div_ceil(2);
    let mut rg = RowGather::new(src, i0);
    let data = rg.data;
    for r in 0..rows.div_ceil(MR) {
        let panel = &mut out[r * kp * MR..(r + 1) * kp * MR];
        let live = (rows - r * MR).min(MR);
        let mut starts = [0usize; MR];
        for s in starts.iter_mut().take(live) {
            *s = rg.next_start();
        }
        // Rows whose runs of 8 elements are contiguous, eight k at a time: widen each row's 8
        // bytes to i16 (four pair-words) and transpose the 4x4 words into the panel's (pair, row)
        // order. A partial panel repeats its last row there: the micro-kernel only reads live rows.
        let mut p0 = 0;
        if MR == 4 && rg.contig8 {
            while p0 * 2 + 8 <= k {
                let t = rg.tap(2 * p0);
                let row = |i: usize| {
                    let s = starts[i.min(live - 1)];
                    let b = &data[s + t..s + t + 8];
                    // SAFETY: `b` holds 8 readable bytes.
                    unsafe { I16x8::load_i8x8(b.as_ptr()) }.words()
                };
                let words = transpose4(row(0), row(1), row(2), row(3));
                let dst = &mut panel[p0 * MR..(p0 + 4) * MR];
                for (j, v) in words.iter().enumerate() {
                    // SAFETY: `dst` holds 16 words; word j's 4 go to dst[4j..4j+4].
                    unsafe { store_i32(*v, dst.as_mut_ptr().add(j * MR)) };
                }
                p0 += 4;
            }
        }
        for (i, &s) in starts.iter().enumerate() {
            if i >= live {
                for p in p0..kp {
                    panel[p * MR + i] = 0;
                }
                continue;
            }
            let row = &data[s..];
            let tail = &mut panel[p0 * MR..];
            match rg.taps {
                // Gathered rows: one indexed byte per element (the first layers of vision models).
                Some(taps) => {
                    // Taps increase (ConvRows::new), so the last one bounds them all.
                    assert!(taps.len() == k && taps[k - 1] < row.len(), "pack_a_i8: taps outside the input");
                    for (p, pair) in taps[2 * p0..].chunks(2).enumerate() {
                        // SAFETY: every tap is at most the last one, checked to lie inside `row`.
                        let (lo, hi) = unsafe { (*row.get_unchecked(pair[0]), pair.get(1).map_or(0, |&t| *row.get_unchecked(t))) };
                        tail[p * MR + i] = pack16(lo, hi);
                    }
                }
                None => {
                    for (p, pair) in row[2 * p0..k].chunks(2).enumerate() {
                        tail[p * MR + i] = pack16(pair[0], pair.get(1).copied().unwrap_or(0));
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ micro-kernel

/// The `MR x NR` i32 tile `init + Ap·Bp` over `kp` pairs of k, for the first `R` rows of the
/// panel only (`R < MR` for a last, partial panel: a single-row product does a quarter of the
/// work); rows `R..MR` of the result are `init`.
///
/// # Safety
/// `ap` holds `kp*MR` words, `bp` holds `kp*NR` words.
#[inline(always)]
unsafe fn micro_kernel_i8<const R: usize>(kp: usize, ap: *const i32, bp: *const i32, init: [I32x4; 2]) -> [[I32x4; 2]; MR] {
    let mut acc = [init; MR];
    for p in 0..kp {
        let b = bp.add(p * NR);
        let a = ap.add(p * MR);
        let b0 = I16x8::load(b as *const i16);
        let b1 = I16x8::load(b.add(4) as *const i16);
        for (r, row) in acc.iter_mut().enumerate().take(R) {
            let av = I16x8::load_pair_splat(a.add(r));
            row[0] = row[0].add(av.dot(b0));
            row[1] = row[1].add(av.dot(b1));
        }
    }
    acc
}

/// A GEMM tile kernel: how a task packs its rows of A, and the micro-kernel that reads them
/// against one packed sliver of B.
trait TileKernel {
    /// Words per row of a packed A panel for reduction length `k`.
    fn a_words(k: usize) -> usize;
    /// Packs rows `i0..i0+rows` of A into MR-row panels of `a_words(k)` words per row.
    fn pack_a(src: ASrc<i8>, i0: usize, rows: usize, k: usize, out: &mut [i32]);
    /// The accumulators' start for the sliver at `bp` from the per-column offsets `init`.
    /// # Safety
    /// `bp` holds `kp*NR` words (`kp = ceil(k/2)`: every layout's sliver stride).
    unsafe fn sliver_init(bp: *const i32, kp: usize, init: [I32x4; 2]) -> [I32x4; 2];
    /// The tile `init + Ap·Bp` for the panel's first `R` rows (rows `R..MR` are `init`).
    /// # Safety
    /// `ap` holds `a_words(k)*MR` words, `bp` one packed sliver.
    unsafe fn tile<const R: usize>(k: usize, ap: *const i32, bp: *const i32, init: [I32x4; 2]) -> [[I32x4; 2]; MR];
}

/// The exact kernel of every engine: i16 pairs on `i32x4.dot_i16x8_s` (see the module docs).
struct Pairs;

impl TileKernel for Pairs {
    #[inline(always)]
    fn a_words(k: usize) -> usize { k.div_ceil(2) }
    #[inline(always)]
    fn pack_a(src: ASrc<i8>, i0: usize, rows: usize, k: usize, out: &mut [i32]) { pack_a_i8(src, i0, rows, k, out) }
    #[inline(always)]
    unsafe fn sliver_init(_bp: *const i32, _kp: usize, init: [I32x4; 2]) -> [I32x4; 2] { init }
    #[inline(always)]
    unsafe fn tile<const R: usize>(k: usize, ap: *const i32, bp: *const i32, init: [I32x4; 2]) -> [[I32x4; 2]; MR] {
        micro_kernel_i8::<R>(k.div_ceil(2), ap, bp, init)
    }
}

/// An int8 activation `q` as the relaxed dot's 7-bit operand: `round((q + 128) / 2)`, halves to
/// even, at most 127. The product then sees `q' = 2·to_u7(q) - 128`, with `|q' - q| <= 1`
/// (0 for even q, ±1 for odd q, alternating, so the rounding has no bias over a uniform q).
#[inline(always)]
pub fn to_u7(q: i8) -> u8 {
    let x = q as i32 + 128;
    ((x + ((x >> 1) & 1)) >> 1).min(127) as u8
}

/// The relaxed engine's int8 GEMM (module docs, "Relaxed engine"): 7-bit activations against full
/// int8 weights on the relaxed dot product. Compiled into the relaxed build, and
/// natively for the tests (with a scalar twin of the instruction's deterministic case).
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
mod dot7 {
    use super::*;

    /// The shortest reduction the 7-bit layout fits in the packed tensor's shape (shorter ones
    /// take the exact kernel: `ceil(k/4)` data rows + 1 row of column sums <= `ceil(k/2)`).
    pub const MIN_K: usize = 3;

    /// Whether products of reduction length `k` run here (in the relaxed build).
    #[inline(always)]
    #[cfg_attr(test, allow(dead_code))]
    pub fn applies(k: usize) -> bool { k >= MIN_K }

    /// Packs weights as `pack_b` (same tensor, same sliver stride `ceil(k/2)*NR` words): per sliver,
    /// for each quad `q` of k, 8 words (word j = bytes `w[4q..4q+4][j]`, one v128 per 4 columns),
    /// then zeros, and in the sliver's last NR words the column sums `Σ_k w[k][j]`.
    pub fn pack_b(w: &[i8], off: usize, rs: usize, cs: usize, k: usize, n: usize, out: &mut [i32]) {
        let (kp, kq) = (k.div_ceil(2), k.div_ceil(4));
        assert!(k >= MIN_K && out.len() >= packed_len(k, n), "pack_b: output too small");
        let at = |kk: usize, j: usize| if kk < k && j < n { w[off + kk * rs + j * cs] } else { 0 };
        for s in 0..n.div_ceil(NR) {
            let sliver = &mut out[s * kp * NR..(s + 1) * kp * NR];
            sliver.fill(0);
            for q in 0..kq {
                for jj in 0..NR {
                    let b: [u8; 4] = std::array::from_fn(|t| at(4 * q + t, s * NR + jj) as u8);
                    sliver[q * NR + jj] = i32::from_le_bytes(b);
                }
            }
            for jj in 0..NR {
                sliver[(kp - 1) * NR + jj] = (0..k).map(|kk| at(kk, s * NR + jj) as i32).sum();
            }
        }
    }

    /// Packs rows of A as 7-bit quads: panel r holds `out[(r*kq + q)*MR + i]` = the bytes
    /// `to_u7(a[i][4q..4q+4])`, zero past k and for rows past the end of a partial panel.
    pub fn pack_a(src: ASrc<i8>, i0: usize, rows: usize, k: usize, out: &mut [i32]) {
        let kq = k.div_ceil(4);
        let mut rg = RowGather::new(src, i0);
        let data = rg.data;
        // Whether each aligned run of 16 row elements is contiguous (dense rows; convolutions
        // with 16 | cin_g): one 16-byte load per row and four quads.
        let contig16 = rg.taps.is_none_or(|t| t.chunks_exact(16).all(|c| c.iter().enumerate().all(|(j, &o)| o == c[0] + j)));
        for r in 0..rows.div_ceil(MR) {
            let panel = &mut out[r * kq * MR..(r + 1) * kq * MR];
            let live = (rows - r * MR).min(MR);
            let mut starts = [0usize; MR];
            for st in starts.iter_mut().take(live) {
                *st = rg.next_start();
            }
            // Runs of 16 (then 8) contiguous elements: 16 (8) bytes per row, four (two) quads,
            // converted 16 lanes at a time, the 4x4 words transposed into (quad, row) order (a
            // partial panel repeats its last row; only live rows are read).
            let mut q0 = 0;
            if MR == 4 && contig16 {
                while q0 * 4 + 16 <= k {
                    let t = rg.tap(4 * q0);
                    let row = |i: usize| {
                        let b = &data[starts[i.min(live - 1)] + t..][..16];
                        // SAFETY: `b` holds 16 readable bytes.
                        unsafe { I8x16::load(b.as_ptr()) }.to_u7().words()
                    };
                    let words = transpose4(row(0), row(1), row(2), row(3));
                    for (j, w) in words.iter().enumerate() {
                        // SAFETY: the panel holds words q0*MR..(q0+4)*MR (q0 + 4 <= kq).
                        unsafe { store_i32(*w, panel.as_mut_ptr().add((q0 + j) * MR)) };
                    }
                    q0 += 4;
                }
            }
            if MR == 4 && rg.contig8 {
                while q0 * 4 + 8 <= k {
                    let t = rg.tap(4 * q0);
                    let row = |i: usize| {
                        let b = &data[starts[i.min(live - 1)] + t..][..8];
                        // SAFETY: `b` holds 8 readable bytes.
                        unsafe { I8x16::load_low8(b.as_ptr()) }.to_u7().words()
                    };
                    let words = transpose4(row(0), row(1), row(2), row(3));
                    // SAFETY: the panel holds words q0*MR..(q0+2)*MR (q0 + 2 <= kq).
                    unsafe {
                        store_i32(words[0], panel.as_mut_ptr().add(q0 * MR));
                        store_i32(words[1], panel.as_mut_ptr().add((q0 + 1) * MR));
                    }
                    q0 += 2;
                }
            }
            for (i, &st) in starts.iter().enumerate() {
                for q in q0..kq {
                    panel[q * MR + i] = if i >= live {
                        0
                    } else {
                        let b: [u8; 4] = std::array::from_fn(|t| {
                            let kk = 4 * q + t;
                            if kk < k { to_u7(data[st + rg.tap(kk)]) } else { 0 }
                        });
                        i32::from_le_bytes(b)
                    };
                }
            }
        }
    }

    /// Whether to spell the relaxed dot as pairs + a dot with ones (`Dot7<false>`) rather than use
    /// `i32x4.relaxed_dot_i8x16_i7x16_add_s` (`Dot7<true>`): decided once per process from the
    /// instruction's behaviour (`relaxed_dot_is_split`). Both give the same bits (exact integer
    /// arithmetic); only the speed differs. Where V8 lowers the instruction to `pmaddubsw`
    /// `pmaddwd` `paddd` (x64 without AVX-VNNI) it rebuilds the ones vector on every use (5 x64
    /// instructions per 16 multiply-adds; spelled out, 3); where it is one instruction (AVX-VNNI
    /// `vpdpbusd`, arm64 `sdot`) the spelled-out form would take 3 to 7.
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    pub fn split() -> bool {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0: not yet probed, 1: split, 2: one instruction. Racing probes agree.
        static KIND: AtomicU8 = AtomicU8::new(0);
        match KIND.load(Ordering::Relaxed) {
            0 => {
                let split = imp::relaxed_dot_is_split();
                KIND.store(if split { 1 } else { 2 }, Ordering::Relaxed);
                split
            }
            k => k == 1,
        }
    }

    /// The 7-bit tile kernel, on the fused instruction (`FUSED`) or spelled out (see `split`).
    pub struct Dot7<const FUSED: bool>;

    impl<const FUSED: bool> TileKernel for Dot7<FUSED> {
        #[inline(always)]
        fn a_words(k: usize) -> usize { k.div_ceil(4) }
        #[inline(always)]
        fn pack_a(src: ASrc<i8>, i0: usize, rows: usize, k: usize, out: &mut [i32]) { pack_a(src, i0, rows, k, out) }
        /// `init - 128·Σ_k w[k][j]`: with `q' = 2u - 128`, `Σ q'·w = 2·Σ u·w - 128·Σ w`.
        #[inline(always)]
        unsafe fn sliver_init(bp: *const i32, kp: usize, init: [I32x4; 2]) -> [I32x4; 2] {
            let sums = bp.add((kp - 1) * NR);
            [init[0].sub(load_i32(sums).shl(7)), init[1].sub(load_i32(sums.add(4)).shl(7))]
        }
        /// Per quad of k: two weight vectors (4 columns x 4 k each) and one 4-byte splat per row,
        /// two relaxed dots per row (fused, or the i16 pairs summed into i32 by a dot with ones
        /// kept in a register). The sums `Σ u·w` (< 2^30 for k <= 2^16) are doubled onto `init`
        /// at the end.
        #[inline(always)]
        unsafe fn tile<const R: usize>(k: usize, ap: *const i32, bp: *const i32, init: [I32x4; 2]) -> [[I32x4; 2]; MR] {
            // Opaque, so that LLVM keeps it in a local instead of rematerializing the constant
            // inside the loop (V8 builds a non-trivial v128 constant from several instructions).
            let ones = if FUSED { I16x8::load([1i16; 8].as_ptr()) } else { std::hint::black_box(I16x8::load([1i16; 8].as_ptr())) };
            let mut acc = [[I32x4::splat(0); 2]; MR];
            for q in 0..k.div_ceil(4) {
                let b = bp.add(q * NR) as *const i8;
                let (b0, b1) = (I8x16::load(b), I8x16::load(b.add(16)));
                let a = ap.add(q * MR);
                for (r, row) in acc.iter_mut().enumerate().take(R) {
                    let u = I8x16::load_quad_splat(a.add(r));
                    if FUSED {
                        row[0] = b0.dot_u7_add(u, row[0]);
                        row[1] = b1.dot_u7_add(u, row[1]);
                    } else {
                        row[0] = row[0].add(b0.dot_u7_pairs(u).dot(ones));
                        row[1] = row[1].add(b1.dot_u7_pairs(u).dot(ones));
                    }
                }
            }
            let mut out = [init; MR];
            for (o, a) in out.iter_mut().zip(&acc).take(R) {
                *o = [init[0].add(a[0].shl(1)), init[1].add(a[1].shl(1))];
            }
            out
        }
    }
}

/// What the GEMM does with each finished i32 tile (column `j` of C is output column
/// `col0 + j`; per-column arrays are indexed from that group's first column).
pub enum QEpilogue<'a> {
    /// Requantize to int8 with per-column multipliers. With `max4`, each run of four rows is
    /// first reduced to its maximum and written as one output row (`row / 4`): a fused 2x2 max
    /// pool, exact because requantization never decreases (multipliers are >= 0).
    Int8 { out: SharedMut<i8>, mult: &'a [i32], rq: Requant, max4: bool },
    /// `acc as f32 * scale[j]`.
    F32 { out: SharedMut<f32>, scale: &'a [f32] },
    /// The raw accumulators.
    I32 { out: SharedMut<i32> },
}

/// Where the output matrix lives: row i, column j at `off + i*ldc + j`.
#[derive(Clone, Copy)]
pub struct OutLayout {
    pub off: usize,
    pub ldc: usize,
}

/// Writes one finished tile (rows `row0..row0+mr`, columns `j0..j0+nr` of C).
///
/// # Safety
/// The addressed rows and columns of the output are in bounds and owned by the calling task.
#[inline(always)]
unsafe fn store_tile(acc: &[[I32x4; 2]; MR], mr: usize, nr: usize, row0: usize, j0: usize, o: OutLayout,
                     epi: &QEpilogue, cols: &[i32; NR], scales: &[f32; NR], rq: &RqVec) {
    match epi {
        QEpilogue::Int8 { out, rq: r, max4, .. } => {
            let m0 = load_i32(cols.as_ptr());
            let m1 = load_i32(cols.as_ptr().add(4));
            let pooled;
            let (acc, mr, row0) = if *max4 {
                // A full tile is one pooling window (MR = 4, rows aligned to 4).
                let m = |c: usize| max_i32(max_i32(acc[0][c], acc[1][c]), max_i32(acc[2][c], acc[3][c]));
                pooled = [[m(0), m(1)]; 1];
                (&pooled[..], 1, row0 / 4)
            } else {
                (&acc[..], mr, row0)
            };
            for (i, row) in acc.iter().enumerate().take(mr) {
                let v0 = r.apply4(row[0], m0, rq);
                let v1 = r.apply4(row[1], m1, rq);
                let q = I8x16::narrow(v0, v1, v0, v1);
                let dst = out.ptr().add(o.off + (row0 + i) * o.ldc + j0);
                if nr == NR {
                    q.store_low8(dst);
                } else {
                    let l = q.lanes();
                    std::ptr::copy_nonoverlapping(l.as_ptr(), dst, nr);
                }
            }
        }
        QEpilogue::F32 { out, .. } => {
            let s0 = F32x4::load(scales.as_ptr());
            let s1 = F32x4::load(scales.as_ptr().add(4));
            for (i, row) in acc.iter().enumerate().take(mr) {
                let v0 = row[0].to_f32().mul(s0);
                let v1 = row[1].to_f32().mul(s1);
                let dst = out.ptr().add(o.off + (row0 + i) * o.ldc + j0);
                if nr == NR {
                    v0.store(dst);
                    v1.store(dst.add(4));
                } else {
                    let mut t = [0f32; NR];
                    v0.store(t.as_mut_ptr());
                    v1.store(t.as_mut_ptr().add(4));
                    std::ptr::copy_nonoverlapping(t.as_ptr(), dst, nr);
                }
            }
        }
        QEpilogue::I32 { out } => {
            for (i, row) in acc.iter().enumerate().take(mr) {
                let dst = out.ptr().add(o.off + (row0 + i) * o.ldc + j0);
                if nr == NR {
                    store_i32(row[0], dst);
                    store_i32(row[1], dst.add(4));
                } else {
                    let mut t = [0i32; NR];
                    store_i32(row[0], t.as_mut_ptr());
                    store_i32(row[1], t.as_mut_ptr().add(4));
                    std::ptr::copy_nonoverlapping(t.as_ptr(), dst, nr);
                }
            }
        }
    }
}

/// Runs `f(task, thread)` for `n` tasks over the pool, or on the calling thread for small work.
fn run_tasks(n: usize, parallel: bool, f: &(dyn Fn(usize, usize) + Sync)) {
    if parallel && num_threads() > 1 {
        for_each(n, f);
    } else {
        let me = current_thread();
        for t in 0..n {
            f(t, me);
        }
    }
}

/// `C[m, n] = epilogue(offsets + A·B)` for one group: A from `src` (`m x k` int8), B packed by
/// `pack_b` (`k x n`), `offsets[j]` added to column j before the epilogue. The caller guarantees
/// sizes (C covers `o.off + (m-1)*o.ldc + n`; per-column arrays hold n values).
pub fn qgemm(m: usize, n: usize, k: usize, src: ASrc<i8>, packed: &[i32], offsets: &[i32], epi: &QEpilogue, o: OutLayout) {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    if dot7::applies(k) {
        return if dot7::split() {
            qgemm_with::<dot7::Dot7<false>>(m, n, k, src, packed, offsets, epi, o)
        } else {
            qgemm_with::<dot7::Dot7<true>>(m, n, k, src, packed, offsets, epi, o)
        };
    }
    qgemm_with::<Pairs>(m, n, k, src, packed, offsets, epi, o)
}

/// `qgemm` with the tile kernel `K` (its packing of A, its micro-kernel).
#[allow(clippy::too_many_arguments)]
fn qgemm_with<K: TileKernel>(m: usize, n: usize, k: usize, src: ASrc<i8>, packed: &[i32], offsets: &[i32], epi: &QEpilogue, o: OutLayout) {
    assert!(packed.len() >= packed_len(k, n) && offsets.len() >= n, "qgemm: operand sizes do not match");
    match epi {
        QEpilogue::Int8 { mult, max4, .. } => {
            assert!(mult.len() >= n, "qgemm: multipliers");
            // Pooled tiles must be whole windows, and the reduction needs multipliers >= 0.
            assert!(!max4 || (MR == 4 && MC % 4 == 0 && m % 4 == 0 && mult[..n].iter().all(|&v| v >= 0)), "qgemm: max4 rows");
        }
        QEpilogue::F32 { scale, .. } => assert!(scale.len() >= n, "qgemm: scales"),
        QEpilogue::I32 { .. } => {}
    }
    if m == 0 || n == 0 {
        return;
    }
    let kp = k.div_ceil(2);
    let kw = K::a_words(k);
    let slivers = n.div_ceil(NR);
    let m_tiles = m.div_ceil(MC);
    let parallel = m * n * k >= PAR_MIN_WORK && num_threads() > 1;
    // Column splits give the pool more tasks; on one thread they would only pack A again.
    let n_tiles = if parallel { 8usize.div_ceil(m_tiles).min(slivers).max(1) } else { 1 };
    let per = slivers.div_ceil(n_tiles);
    let rqv = match epi {
        QEpilogue::Int8 { rq, .. } => RqVec::new(rq),
        _ => RqVec::new(&Requant { left: 0, right: 0, zero_point: 0, qmin: 0, qmax: 0 }),
    };
    if parallel {
        // SAFETY: before the job; no GemmA borrow is live. (i32 words, one per float.)
        unsafe { scratch::reserve(Slot::GemmA, MC.min(m).div_ceil(MR) * MR * kw) };
    }
    run_tasks(m_tiles * n_tiles, parallel, &|t, thread| {
        let (mi, ni) = (t / n_tiles, t % n_tiles);
        let i0 = mi * MC;
        let mc = MC.min(m - i0);
        let (s0, s1) = (ni * per, ((ni + 1) * per).min(slivers));
        if s0 >= s1 {
            return;
        }
        let panels = mc.div_ceil(MR);
        // SAFETY: `thread` is this task's pool thread and each slot is borrowed once here.
        let ap: &mut [i32] = unsafe { scratch_as(Slot::GemmA, thread, panels * MR * kw) };
        K::pack_a(src, i0, mc, k, ap);
        for s in s0..s1 {
            let j0 = s * NR;
            let nr = NR.min(n - j0);
            let mut off = [0i32; NR];
            let mut cols = [0i32; NR];
            let mut scales = [0f32; NR];
            off[..nr].copy_from_slice(&offsets[j0..j0 + nr]);
            match epi {
                QEpilogue::Int8 { mult, .. } => cols[..nr].copy_from_slice(&mult[j0..j0 + nr]),
                QEpilogue::F32 { scale, .. } => scales[..nr].copy_from_slice(&scale[j0..j0 + nr]),
                QEpilogue::I32 { .. } => {}
            }
            let bp = packed[s * kp * NR..].as_ptr();
            // SAFETY: `off` holds 8 i32; the sliver at `bp` holds kp*NR words.
            let init = unsafe { K::sliver_init(bp, kp, [load_i32(off.as_ptr()), load_i32(off.as_ptr().add(4))]) };
            for r in 0..panels {
                let mr = MR.min(mc - r * MR);
                // SAFETY: panel r holds kw*MR words, the sliver kp*NR; this task owns rows
                // i0..i0+mc and the columns of slivers s0..s1 of C.
                unsafe {
                    let a = ap.as_ptr().add(r * kw * MR);
                    let acc = match mr {
                        1 => K::tile::<1>(k, a, bp, init),
                        2 => K::tile::<2>(k, a, bp, init),
                        3 => K::tile::<3>(k, a, bp, init),
                        _ => K::tile::<MR>(k, a, bp, init),
                    };
                    store_tile(&acc, mr, nr, i0 + r * MR, j0, o, epi, &cols, &scales, &rqv);
                }
            }
        }
    });
}

/// int8 convolution (NHWC, weights packed per group by `pack_b` with `k = kh*kw*cin_g`,
/// `n = cout_g`, groups one after the other): im2col rows are built while packing, padding
/// reading as `pad` (the input's zero point). Output columns `grp*cout_g..` of each group.
/// An `Int8` epilogue with `max4` also max-pools 2x2 (stride 2): the output is
/// `[n, oh/2, ow/2, cout]`.
pub fn qconv2d(x: &[i8], g: &ConvGeom, pad: i8, packed: &[i32], offsets: &[i32], epi: &QEpilogue) {
    let (k, n) = (g.k(), g.cout_g());
    let plen = packed_len(k, n);
    assert!(x.len() == g.n * g.h * g.w * g.cin && packed.len() >= plen * g.groups && offsets.len() >= g.cout,
        "qconv2d: buffer sizes do not match the geometry");
    let windows = matches!(epi, QEpilogue::Int8 { max4: true, .. });
    let rows = if windows { g.n * (g.oh / 2) * (g.ow / 2) * 4 } else { g.pixels() };
    let dense = g.is_pointwise() && !windows;
    let conv_rows = if dense { None } else { Some(ConvRows::new(x, g, pad)) };
    for grp in 0..g.groups {
        let src = match &conv_rows {
            None => ASrc::Dense { data: x, off: 0, lda: g.cin },
            Some(rows) => ASrc::Im2col { rows, grp, windows },
        };
        let c0 = grp * n;
        let sub = match epi {
            QEpilogue::Int8 { out, mult, rq, max4 } => QEpilogue::Int8 { out: *out, mult: &mult[c0..], rq: *rq, max4: *max4 },
            QEpilogue::F32 { out, scale } => QEpilogue::F32 { out: *out, scale: &scale[c0..] },
            QEpilogue::I32 { out } => QEpilogue::I32 { out: *out },
        };
        qgemm(rows, n, k, src, &packed[grp * plen..(grp + 1) * plen], &offsets[c0..], &sub, OutLayout { off: c0, ldc: g.cout });
    }
}

// ------------------------------------------------------------------ elementwise and pooling

/// `q = clamp(floor(x / scale + 1/2) + zp, qmin, qmax)`.
#[inline(always)]
pub fn quantize_one(x: f32, scale: f32, zp: i32, qmin: i32, qmax: i32) -> i8 {
    let t = (x / scale + 0.5).floor();
    // f32 -> i32 `as` saturates (and maps NaN to 0), like wasm's trunc_sat.
    (t as i32).saturating_add(zp).clamp(qmin, qmax) as i8
}

/// Quantizes f32 to int8, in parallel chunks.
pub fn quantize(x: &[f32], scale: f32, zp: i32, out: &mut [i8]) {
    let n = x.len().min(out.len());
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(n, EW_GRAIN), &|t, _| {
        let (s, e) = (t * EW_GRAIN, ((t + 1) * EW_GRAIN).min(n));
        // SAFETY: task t owns out[s..e].
        let o = unsafe { op.slice(s, e - s) };
        for (d, &v) in o.iter_mut().zip(&x[s..e]) {
            *d = quantize_one(v, scale, zp, -128, 127);
        }
    });
}

/// `(q - zp) * scale`, in parallel chunks.
pub fn dequantize(q: &[i8], scale: f32, zp: i32, out: &mut [f32]) {
    let n = q.len().min(out.len());
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(n, EW_GRAIN), &|t, _| {
        let (s, e) = (t * EW_GRAIN, ((t + 1) * EW_GRAIN).min(n));
        // SAFETY: task t owns out[s..e].
        let o = unsafe { op.slice(s, e - s) };
        for (d, &v) in o.iter_mut().zip(&q[s..e]) {
            *d = (v as i32 - zp) as f32 * scale;
        }
    });
}

/// One input of an elementwise requantization: `(q - zero_point) * mult`.
#[derive(Clone, Copy, Debug)]
pub struct EwInput<'a> {
    pub q: &'a [i8],
    pub zero_point: i32,
    pub mult: i32,
}

/// `out = clamp(zp + round(Σ (q_i - zp_i) · mult_i / 2^shift))` for one or two inputs of the same
/// length (residual add, requantize, relu). `|mult_i| < 2^21`, so the sum fits in i32.
pub fn requant_sum(inputs: &[EwInput], shift: u32, zp: i32, qmin: i32, qmax: i32, out: &mut [i8]) {
    let n = out.len();
    assert!(inputs.iter().all(|i| i.q.len() == n) && shift < 63, "requant_sum: sizes");
    let op = SharedMut(out.as_mut_ptr());
    let round = if shift == 0 { 0i64 } else { 1i64 << (shift - 1) };
    for_each(tasks_for(n, EW_GRAIN), &|t, _| {
        let (s, e) = (t * EW_GRAIN, ((t + 1) * EW_GRAIN).min(n));
        // SAFETY: task t owns out[s..e].
        let o = unsafe { op.slice(s, e - s) };
        for (idx, d) in o.iter_mut().enumerate() {
            let i = s + idx;
            let mut acc = 0i64;
            for inp in inputs {
                acc += (inp.q[i] as i32 - inp.zero_point) as i64 * inp.mult as i64;
            }
            let v = ((acc + round) >> shift) + zp as i64;
            *d = v.clamp(qmin as i64, qmax as i64) as i8;
        }
    });
}

/// Input rows `[y0, y1)` of output row `oy`'s window (padding excluded).
fn window_rows(g: &PoolGeom, oy: usize) -> (usize, usize) {
    let s = oy * g.sh;
    (s.saturating_sub(g.pt), (s + g.kh).saturating_sub(g.pt).min(g.h))
}

/// Input columns `[x0, x1)` of output column `ox`'s window (padding excluded).
fn window_cols(g: &PoolGeom, ox: usize) -> (usize, usize) {
    let s = ox * g.sw;
    (s.saturating_sub(g.pl), (s + g.kw).saturating_sub(g.pl).min(g.w))
}

/// Max pooling on int8 (max commutes with a monotone quantization: same scale and zero point).
pub fn qmax_pool(x: &[i8], g: &PoolGeom, out: &mut [i8]) {
    pool_rows(g, out, &|n, oy, ox, dst| {
        dst.fill(i8::MIN);
        let ((y0, y1), (x0, x1)) = (window_rows(g, oy), window_cols(g, ox));
        for iy in y0..y1 {
            for ix in x0..x1 {
                let src = &x[((n * g.h + iy) * g.w + ix) * g.c..][..g.c];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = (*d).max(v);
                }
            }
        }
    });
}

/// Average pooling on int8 with unchanged scale and zero point: `round(Σ q / count)` (round half
/// up). `count` excludes padding, or with `pad_value` the padding counts as that value.
pub fn qavg_pool(x: &[i8], g: &PoolGeom, pad_value: Option<i8>, out: &mut [i8]) {
    pool_rows(g, out, &|n, oy, ox, dst| {
        let ((y0, y1), (x0, x1)) = (window_rows(g, oy), window_cols(g, ox));
        let inside = ((y1 - y0) * (x1 - x0)) as i64;
        let (count, pad_sum) = match pad_value {
            Some(p) => ((g.kh * g.kw) as i64, ((g.kh * g.kw) as i64 - inside) * p as i64),
            None => (inside, 0),
        };
        for (c, d) in dst.iter_mut().enumerate() {
            let mut s = pad_sum;
            for iy in y0..y1 {
                for ix in x0..x1 {
                    s += x[((n * g.h + iy) * g.w + ix) * g.c + c] as i64;
                }
            }
            *d = (2 * s + count).div_euclid(2 * count).clamp(-128, 127) as i8;
        }
    });
}

fn pool_rows(g: &PoolGeom, out: &mut [i8], f: &(dyn Fn(usize, usize, usize, &mut [i8]) + Sync)) {
    let rows = g.n * g.oh;
    let row_len = g.ow * g.c;
    let per = (EW_GRAIN / (row_len * g.kh * g.kw).max(1)).max(1);
    let op = SharedMut(out.as_mut_ptr());
    for_each(tasks_for(rows, per), &|t, _| {
        for r in t * per..((t + 1) * per).min(rows) {
            // SAFETY: output row r belongs to this task only.
            let orow = unsafe { op.slice(r * row_len, row_len) };
            for ox in 0..g.ow {
                f(r / g.oh, r % g.oh, ox, &mut orow[ox * g.c..(ox + 1) * g.c]);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_pairs() {
        let a = I16x8([1, 2, 3, 4, -5, 6, 7, -8]);
        let b = I16x8([1, 1, 2, 2, 3, 3, -4, 4]);
        assert_eq!(a.dot(b).0, [3, 14, 3, -60]);
        let w = pack16(-3, 100);
        // SAFETY: w is one readable i32.
        let s = unsafe { I16x8::load_pair_splat(&w) };
        assert_eq!(s.0, [-3, 100, -3, 100, -3, 100, -3, 100]);
    }

    /// Seeded int8 values.
    fn bytes(n: usize, seed: u64) -> Vec<i8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x >> 24) as u8 as i8 }).collect()
    }

    /// What the 7-bit kernel multiplies in place of `q`.
    fn q7(q: i8) -> i8 { (2 * to_u7(q) as i32 - 128) as i8 }

    #[test]
    fn to_u7_is_a_7_bit_round_half_even_of_the_activation() {
        let all: Vec<i8> = (-128..=127).collect();
        for (chunk, lanes) in all.chunks(16).zip(all.chunks(16).map(|c| I8x16(c.try_into().unwrap()).to_u7().lanes())) {
            for (&q, &u) in chunk.iter().zip(&lanes) {
                assert_eq!(u as u8, to_u7(q), "vector and scalar differ at {q}");
                assert!(to_u7(q) <= 127 && (q7(q) as i32 - q as i32).abs() <= 1, "q = {q}");
            }
        }
        // Odd values round up and down in turn: no bias over all 256 values but the clamp of
        // 127 (which would round to 128) to 126.
        let bias: i32 = all.iter().map(|&q| q7(q) as i32 - q as i32).sum();
        assert_eq!(bias, -2);
    }

    /// The 7-bit kernel is bitwise the exact kernel run on the 7-bit activations, for dense rows
    /// (partial panels, k not a multiple of 4 or 8) and gathered convolution rows (padding,
    /// strides, the fused max pool), and within Σ|w| of the int8 product.
    #[test]
    fn dot7_is_the_exact_gemm_of_7_bit_activations() {
        for (case, &(m, k, n)) in [(13, 3, 5), (8, 4, 8), (9, 17, 11), (4, 64, 16), (37, 100, 9), (1, 301, 20)].iter().enumerate() {
            let a = bytes(m * k, case as u64 + 1);
            let w = bytes(k * n, case as u64 + 100);
            let offsets: Vec<i32> = bytes(n, case as u64 + 200).iter().map(|&v| v as i32 * 1000).collect();
            let a7: Vec<i8> = a.iter().map(|&q| q7(q)).collect();
            let (mut p7, mut p16) = (vec![0; packed_len(k, n)], vec![0; packed_len(k, n)]);
            dot7::pack_b(&w, 0, n, 1, k, n, &mut p7);
            pack_b(&w, 0, n, 1, k, n, &mut p16);
            let run = |kernel: u8, x: &[i8]| {
                let mut c = vec![0i32; m * n];
                let epi = QEpilogue::I32 { out: SharedMut(c.as_mut_ptr()) };
                let src = ASrc::Dense { data: x, off: 0, lda: k };
                let o = OutLayout { off: 0, ldc: n };
                match kernel {
                    0 => qgemm_with::<Pairs>(m, n, k, src, &p16, &offsets, &epi, o),
                    1 => qgemm_with::<dot7::Dot7<false>>(m, n, k, src, &p7, &offsets, &epi, o),
                    _ => qgemm_with::<dot7::Dot7<true>>(m, n, k, src, &p7, &offsets, &epi, o),
                }
                c
            };
            let (got, want, exact) = (run(1, &a), run(0, &a7), run(0, &a));
            assert_eq!(got, want, "m={m} k={k} n={n}");
            assert_eq!(run(2, &a), got, "m={m} k={k} n={n}: fused and split dots");
            for (idx, (&g, &e)) in got.iter().zip(&exact).enumerate() {
                let bound: i32 = (0..k).map(|kk| (w[kk * n + idx % n] as i32).abs()).sum();
                assert!((g - e).abs() <= bound, "m={m} k={k} n={n}: {g} vs {e} (bound {bound})");
            }
        }
        // Padded 3x3 convolutions with 8 and 16 channels (contiguous runs of 8, of 16), with and
        // without the fused 2x2 max pool, requantized to int8.
        for cin in [8, 16] {
            let g = ConvGeom { n: 2, h: 9, w: 9, cin, kh: 3, kw: 3, cout: 12, groups: 1, sh: 1, sw: 1, dh: 1, dw: 1, pt: 1, pl: 1, oh: 9 - 1, ow: 9 - 1 };
            let x = bytes(g.n * g.h * g.w * g.cin, 7);
            let w = bytes(g.k() * g.cout, 8);
            let (k, n) = (g.k(), g.cout);
            let (mut p7, mut p16) = (vec![0; packed_len(k, n)], vec![0; packed_len(k, n)]);
            dot7::pack_b(&w, 0, n, 1, k, n, &mut p7);
            pack_b(&w, 0, n, 1, k, n, &mut p16);
            let offsets = vec![-3000; n];
            let (mult, left, right) = quantize_multipliers(&vec![0.004; n]).unwrap();
            let rq = Requant { left, right, zero_point: -7, qmin: -128, qmax: 127 };
            let x7: Vec<i8> = x.iter().map(|&q| q7(q)).collect();
            for max4 in [false, true] {
                let rows = if max4 { g.n * (g.oh / 2) * (g.ow / 2) * 4 } else { g.pixels() };
                let run = |kernel: u8, x: &[i8], pad: i8| {
                    let mut y = vec![0i8; if max4 { rows / 4 } else { rows } * n];
                    let epi = QEpilogue::Int8 { out: SharedMut(y.as_mut_ptr()), mult: &mult, rq, max4 };
                    let cr = ConvRows::new(x, &g, pad);
                    let src = ASrc::Im2col { rows: &cr, grp: 0, windows: max4 };
                    let o = OutLayout { off: 0, ldc: n };
                    match kernel {
                        0 => qgemm_with::<Pairs>(rows, n, k, src, &p16, &offsets, &epi, o),
                        1 => qgemm_with::<dot7::Dot7<false>>(rows, n, k, src, &p7, &offsets, &epi, o),
                        _ => qgemm_with::<dot7::Dot7<true>>(rows, n, k, src, &p7, &offsets, &epi, o),
                    }
                    y
                };
                let want = run(0, &x7, q7(5));
                assert_eq!(run(1, &x, 5), want, "conv, cin = {cin}, max4 = {max4}");
                assert_eq!(run(2, &x, 5), want, "conv, cin = {cin}, max4 = {max4}, fused");
            }
        }
    }

    #[test]
    fn requant_matches_real_arithmetic() {
        for &m in &[0.5f64, 0.013, 1e-5, 0.99, 3.7, 0.25] {
            let (mult, left, right) = quantize_multipliers(&[m, m / 3.0]).unwrap();
            let rq = Requant { left, right, zero_point: 5, qmin: -128, qmax: 127 };
            for acc in [-100000i32, -1234, -1, 0, 1, 77, 999, 31234, 1 << 20] {
                let want = ((acc as f64 * m + 0.5).floor() + 5.0).clamp(-128.0, 127.0) as i32;
                let got = rq.apply(acc, mult[0]);
                assert!((got - want).abs() <= 1, "m={m} acc={acc}: {got} vs {want}");
                let v = rq.apply4(I32x4::splat(acc), I32x4::splat(mult[0]), &RqVec::new(&rq));
                assert_eq!(v.0, [got; 4]);
            }
        }
    }
}

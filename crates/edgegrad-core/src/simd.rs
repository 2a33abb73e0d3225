//! A 4-lane f32 / i32 vector: wasm `simd128` on wasm32, a plain-array twin elsewhere so the same
//! kernels compile and test natively. Only operations with one exact IEEE result are used (no
//! fused multiply-add, no relaxed SIMD), so a kernel gives the same bits in every engine.
//!
//! `pmin`/`pmax` are the "pseudo" min/max of wasm (`b < a ? b : a`, `a < b ? b : a`): they map to
//! single SSE instructions and their NaN behaviour is defined, which the twin reproduces.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct F32x4(pub v128);
    #[derive(Clone, Copy)]
    pub struct I32x4(pub v128);

    impl F32x4 {
        #[inline(always)]
        pub fn splat(x: f32) -> Self { F32x4(f32x4_splat(x)) }
        /// # Safety
        /// `p` must point to 4 readable floats (no alignment needed).
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> Self { F32x4(v128_load(p as *const v128)) }
        /// # Safety
        /// `p` must point to 4 writable floats (no alignment needed).
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) { v128_store(p as *mut v128, self.0) }
        /// # Safety
        /// `p` must point to one readable float.
        #[inline(always)]
        pub unsafe fn load_splat(p: *const f32) -> Self { F32x4(v128_load32_splat(p as *const u32)) }
        /// IEEE-style max: NaN if either lane is NaN.
        #[inline(always)]
        pub fn max(self, o: Self) -> Self { F32x4(f32x4_max(self.0, o.0)) }
        #[inline(always)]
        pub fn min(self, o: Self) -> Self { F32x4(f32x4_min(self.0, o.0)) }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self { F32x4(f32x4_add(self.0, o.0)) }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self { F32x4(f32x4_sub(self.0, o.0)) }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self { F32x4(f32x4_mul(self.0, o.0)) }
        #[inline(always)]
        pub fn div(self, o: Self) -> Self { F32x4(f32x4_div(self.0, o.0)) }
        #[inline(always)]
        pub fn neg(self) -> Self { F32x4(f32x4_neg(self.0)) }
        #[inline(always)]
        pub fn abs(self) -> Self { F32x4(f32x4_abs(self.0)) }
        #[inline(always)]
        pub fn sqrt(self) -> Self { F32x4(f32x4_sqrt(self.0)) }
        #[inline(always)]
        pub fn floor(self) -> Self { F32x4(f32x4_floor(self.0)) }
        #[inline(always)]
        pub fn pmin(self, o: Self) -> Self { F32x4(f32x4_pmin(self.0, o.0)) }
        #[inline(always)]
        pub fn pmax(self, o: Self) -> Self { F32x4(f32x4_pmax(self.0, o.0)) }
        #[inline(always)]
        pub fn lt(self, o: Self) -> I32x4 { I32x4(f32x4_lt(self.0, o.0)) }
        #[inline(always)]
        pub fn gt(self, o: Self) -> I32x4 { I32x4(f32x4_gt(self.0, o.0)) }
        #[inline(always)]
        pub fn le(self, o: Self) -> I32x4 { I32x4(f32x4_le(self.0, o.0)) }
        #[inline(always)]
        pub fn ge(self, o: Self) -> I32x4 { I32x4(f32x4_ge(self.0, o.0)) }
        #[inline(always)]
        pub fn eq(self, o: Self) -> I32x4 { I32x4(f32x4_eq(self.0, o.0)) }
        #[inline(always)]
        pub fn ne(self, o: Self) -> I32x4 { I32x4(f32x4_ne(self.0, o.0)) }
        /// Lanes where `mask` is all-ones take `a`, the others `b`.
        #[inline(always)]
        pub fn select(mask: I32x4, a: Self, b: Self) -> Self { F32x4(v128_bitselect(a.0, b.0, mask.0)) }
        #[inline(always)]
        pub fn to_bits(self) -> I32x4 { I32x4(self.0) }
        #[inline(always)]
        pub fn trunc_to_i32(self) -> I32x4 { I32x4(i32x4_trunc_sat_f32x4(self.0)) }
        #[inline(always)]
        pub fn lane(self, i: usize) -> f32 {
            match i { 0 => f32x4_extract_lane::<0>(self.0), 1 => f32x4_extract_lane::<1>(self.0),
                      2 => f32x4_extract_lane::<2>(self.0), _ => f32x4_extract_lane::<3>(self.0) }
        }
        /// Rows a, b, c, d of a 4x4 block → its columns.
        #[inline(always)]
        pub fn transpose4(a: Self, b: Self, c: Self, d: Self) -> [Self; 4] {
            let t0 = i32x4_shuffle::<0, 4, 1, 5>(a.0, b.0);
            let t1 = i32x4_shuffle::<0, 4, 1, 5>(c.0, d.0);
            let t2 = i32x4_shuffle::<2, 6, 3, 7>(a.0, b.0);
            let t3 = i32x4_shuffle::<2, 6, 3, 7>(c.0, d.0);
            [F32x4(i32x4_shuffle::<0, 1, 4, 5>(t0, t1)), F32x4(i32x4_shuffle::<2, 3, 6, 7>(t0, t1)),
             F32x4(i32x4_shuffle::<0, 1, 4, 5>(t2, t3)), F32x4(i32x4_shuffle::<2, 3, 6, 7>(t2, t3))]
        }
    }

    impl I32x4 {
        #[inline(always)]
        pub fn splat(x: i32) -> Self { I32x4(i32x4_splat(x)) }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self { I32x4(i32x4_add(self.0, o.0)) }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self { I32x4(i32x4_sub(self.0, o.0)) }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self { I32x4(v128_and(self.0, o.0)) }
        #[inline(always)]
        pub fn or(self, o: Self) -> Self { I32x4(v128_or(self.0, o.0)) }
        #[inline(always)]
        pub fn andnot(self, o: Self) -> Self { I32x4(v128_andnot(self.0, o.0)) }
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self { I32x4(i32x4_shl(self.0, n)) }
        #[inline(always)]
        pub fn shr(self, n: u32) -> Self { I32x4(i32x4_shr(self.0, n)) }
        #[inline(always)]
        pub fn lt(self, o: Self) -> Self { I32x4(i32x4_lt(self.0, o.0)) }
        /// Every lane nonzero.
        #[inline(always)]
        pub fn all_true(self) -> bool { i32x4_all_true(self.0) }
        #[inline(always)]
        pub fn to_f32(self) -> F32x4 { F32x4(f32x4_convert_i32x4(self.0)) }
        #[inline(always)]
        pub fn from_bits(self) -> F32x4 { F32x4(self.0) }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    #[derive(Clone, Copy)]
    pub struct F32x4(pub [f32; 4]);
    #[derive(Clone, Copy)]
    pub struct I32x4(pub [i32; 4]);

    macro_rules! f2 { ($a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        let (a, b) = ($a.0, $b.0);
        F32x4([0, 1, 2, 3].map(|i| { let ($x, $y) = (a[i], b[i]); $e }))
    }}; }
    macro_rules! f1 { ($a:expr, |$x:ident| $e:expr) => {{
        let a = $a.0;
        F32x4([0, 1, 2, 3].map(|i| { let $x = a[i]; $e }))
    }}; }
    macro_rules! cmp { ($a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        let (a, b) = ($a.0, $b.0);
        I32x4([0, 1, 2, 3].map(|i| { let ($x, $y) = (a[i], b[i]); if $e { -1 } else { 0 } }))
    }}; }
    macro_rules! i2 { ($a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        let (a, b) = ($a.0, $b.0);
        I32x4([0, 1, 2, 3].map(|i| { let ($x, $y) = (a[i], b[i]); $e }))
    }}; }

    impl F32x4 {
        #[inline(always)]
        pub fn splat(x: f32) -> Self { F32x4([x; 4]) }
        /// # Safety
        /// `p` must point to 4 readable floats.
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> Self { F32x4(std::ptr::read_unaligned(p as *const [f32; 4])) }
        /// # Safety
        /// `p` must point to 4 writable floats.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) { std::ptr::write_unaligned(p as *mut [f32; 4], self.0) }
        /// # Safety
        /// `p` must point to one readable float.
        #[inline(always)]
        pub unsafe fn load_splat(p: *const f32) -> Self { F32x4([*p; 4]) }
        /// IEEE-style max: NaN if either lane is NaN (wasm `f32x4.max`).
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            f2!(self, o, |x, y| if x.is_nan() || y.is_nan() { f32::NAN } else if x == y { f32::from_bits(x.to_bits() & y.to_bits()) } else { x.max(y) })
        }
        #[inline(always)]
        pub fn min(self, o: Self) -> Self {
            f2!(self, o, |x, y| if x.is_nan() || y.is_nan() { f32::NAN } else if x == y { f32::from_bits(x.to_bits() | y.to_bits()) } else { x.min(y) })
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self { f2!(self, o, |x, y| x + y) }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self { f2!(self, o, |x, y| x - y) }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self { f2!(self, o, |x, y| x * y) }
        #[inline(always)]
        pub fn div(self, o: Self) -> Self { f2!(self, o, |x, y| x / y) }
        #[inline(always)]
        pub fn neg(self) -> Self { f1!(self, |x| -x) }
        #[inline(always)]
        pub fn abs(self) -> Self { f1!(self, |x| x.abs()) }
        #[inline(always)]
        pub fn sqrt(self) -> Self { f1!(self, |x| x.sqrt()) }
        #[inline(always)]
        pub fn floor(self) -> Self { f1!(self, |x| x.floor()) }
        #[inline(always)]
        pub fn pmin(self, o: Self) -> Self { f2!(self, o, |x, y| if y < x { y } else { x }) }
        #[inline(always)]
        pub fn pmax(self, o: Self) -> Self { f2!(self, o, |x, y| if x < y { y } else { x }) }
        #[inline(always)]
        pub fn lt(self, o: Self) -> I32x4 { cmp!(self, o, |x, y| x < y) }
        #[inline(always)]
        pub fn gt(self, o: Self) -> I32x4 { cmp!(self, o, |x, y| x > y) }
        #[inline(always)]
        pub fn le(self, o: Self) -> I32x4 { cmp!(self, o, |x, y| x <= y) }
        #[inline(always)]
        pub fn ge(self, o: Self) -> I32x4 { cmp!(self, o, |x, y| x >= y) }
        #[inline(always)]
        pub fn eq(self, o: Self) -> I32x4 { cmp!(self, o, |x, y| x == y) }
        #[inline(always)]
        pub fn ne(self, o: Self) -> I32x4 { cmp!(self, o, |x, y| x != y) }
        #[inline(always)]
        pub fn select(mask: I32x4, a: Self, b: Self) -> Self {
            let (m, a, b) = (mask.0, a.0, b.0);
            F32x4([0, 1, 2, 3].map(|i| f32::from_bits((a[i].to_bits() & m[i] as u32) | (b[i].to_bits() & !(m[i] as u32)))))
        }
        #[inline(always)]
        pub fn to_bits(self) -> I32x4 { I32x4(self.0.map(|x| x.to_bits() as i32)) }
        #[inline(always)]
        pub fn trunc_to_i32(self) -> I32x4 { I32x4(self.0.map(|x| x as i32)) }
        #[inline(always)]
        pub fn lane(self, i: usize) -> f32 { self.0[i] }
        /// Rows a, b, c, d of a 4x4 block → its columns.
        #[inline(always)]
        pub fn transpose4(a: Self, b: Self, c: Self, d: Self) -> [Self; 4] {
            let m = [a.0, b.0, c.0, d.0];
            [0, 1, 2, 3].map(|i| F32x4([m[0][i], m[1][i], m[2][i], m[3][i]]))
        }
    }

    impl I32x4 {
        #[inline(always)]
        pub fn splat(x: i32) -> Self { I32x4([x; 4]) }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self { i2!(self, o, |x, y| x.wrapping_add(y)) }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self { i2!(self, o, |x, y| x.wrapping_sub(y)) }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self { i2!(self, o, |x, y| x & y) }
        #[inline(always)]
        pub fn or(self, o: Self) -> Self { i2!(self, o, |x, y| x | y) }
        /// `self & !o`, as wasm's `v128.andnot`.
        #[inline(always)]
        pub fn andnot(self, o: Self) -> Self { i2!(self, o, |x, y| x & !y) }
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self { I32x4(self.0.map(|x| x.wrapping_shl(n))) }
        #[inline(always)]
        pub fn shr(self, n: u32) -> Self { I32x4(self.0.map(|x| x >> n)) }
        #[inline(always)]
        pub fn lt(self, o: Self) -> Self { i2!(self, o, |x, y| if x < y { -1 } else { 0 }) }
        /// Every lane nonzero.
        #[inline(always)]
        pub fn all_true(self) -> bool { self.0.iter().all(|&x| x != 0) }
        #[inline(always)]
        pub fn to_f32(self) -> F32x4 { F32x4(self.0.map(|x| x as f32)) }
        #[inline(always)]
        pub fn from_bits(self) -> F32x4 { F32x4(self.0.map(|x| f32::from_bits(x as u32))) }
    }
}

pub use imp::{F32x4, I32x4};

impl F32x4 {
    #[inline(always)]
    pub fn zero() -> Self { F32x4::splat(0.0) }
    /// Sum of the lanes in a fixed order: (l0 + l1) + (l2 + l3).
    #[inline(always)]
    pub fn hsum(self) -> f32 { (self.lane(0) + self.lane(1)) + (self.lane(2) + self.lane(3)) }
    #[inline(always)]
    pub fn hmax(self) -> f32 {
        let m01 = if self.lane(0) < self.lane(1) { self.lane(1) } else { self.lane(0) };
        let m23 = if self.lane(2) < self.lane(3) { self.lane(3) } else { self.lane(2) };
        if m01 < m23 { m23 } else { m01 }
    }
    #[inline(always)]
    pub fn is_nan(self) -> I32x4 { self.ne(self) }
}

impl I32x4 {
    /// Lanes where `mask` is all-ones take `a`, the others `b`.
    #[inline(always)]
    pub fn select_i(mask: I32x4, a: Self, b: Self) -> Self { a.and(mask).or(b.andnot(mask)) }
}

//! Philox4x32-10, a counter-based generator: value `i` of a stream depends only on (seed, i), so
//! random tensors are identical in every runtime and for any thread count.

use crate::parallel::{for_each, tasks_for, SharedMut};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline]
pub fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// Four Philox blocks at once, for counters `[b + i, 0]` (i = 0..4, b split into low and high words):
/// the same words as four `philox4x32` calls. In wasm with simd128 the four blocks run in the lanes of
/// 128-bit vectors (the 32×32→64 products by `u64x2_extmul`), elsewhere block by block.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
fn philox4x32_x4(b: u64, key: [u32; 2]) -> [[u32; 4]; 4] {
    use core::arch::wasm32::*;
    let ctr = |i: u64| b.wrapping_add(i);
    let mut c0 = u32x4(ctr(0) as u32, ctr(1) as u32, ctr(2) as u32, ctr(3) as u32);
    let mut c1 = u32x4((ctr(0) >> 32) as u32, (ctr(1) >> 32) as u32, (ctr(2) >> 32) as u32, (ctr(3) >> 32) as u32);
    let mut c2 = u32x4_splat(0);
    let mut c3 = u32x4_splat(0);
    let (m0, m1) = (u32x4_splat(M0), u32x4_splat(M1));
    let (mut k0, mut k1) = (key[0], key[1]);
    for _ in 0..10 {
        // Lanes 0-1 and 2-3 of each product as u64 pairs; then the low and the high words per lane.
        let (p0a, p0b) = (u64x2_extmul_low_u32x4(c0, m0), u64x2_extmul_high_u32x4(c0, m0));
        let (p1a, p1b) = (u64x2_extmul_low_u32x4(c2, m1), u64x2_extmul_high_u32x4(c2, m1));
        let (lo0, hi0) = (u32x4_shuffle::<0, 2, 4, 6>(p0a, p0b), u32x4_shuffle::<1, 3, 5, 7>(p0a, p0b));
        let (lo1, hi1) = (u32x4_shuffle::<0, 2, 4, 6>(p1a, p1b), u32x4_shuffle::<1, 3, 5, 7>(p1a, p1b));
        let n0 = v128_xor(v128_xor(hi1, c1), u32x4_splat(k0));
        let n2 = v128_xor(v128_xor(hi0, c3), u32x4_splat(k1));
        (c0, c1, c2, c3) = (n0, lo1, n2, lo0);
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    let lane = |v: v128| [u32x4_extract_lane::<0>(v), u32x4_extract_lane::<1>(v), u32x4_extract_lane::<2>(v), u32x4_extract_lane::<3>(v)];
    let (a, bb, c, d) = (lane(c0), lane(c1), lane(c2), lane(c3));
    [[a[0], bb[0], c[0], d[0]], [a[1], bb[1], c[1], d[1]], [a[2], bb[2], c[2], d[2]], [a[3], bb[3], c[3], d[3]]]
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline]
fn philox4x32_x4(b: u64, key: [u32; 2]) -> [[u32; 4]; 4] {
    core::array::from_fn(|i| {
        let c = b.wrapping_add(i as u64);
        philox4x32([c as u32, (c >> 32) as u32, 0, 0], key)
    })
}

/// sin(x) for x in [-π, 3π/2): folded into [-π/2, π/2] (sin(x) = sin(±π − x)), then the Taylor
/// polynomial to x¹¹ (truncation < 6e-8 there). Exact IEEE operations only: the same bits everywhere.
#[inline(always)]
fn sin_half_turn(x: crate::simd::F32x4, pi: crate::simd::F32x4, half_pi: crate::simd::F32x4) -> crate::simd::F32x4 {
    use crate::simd::F32x4;
    let x = F32x4::select(x.gt(half_pi), pi.sub(x), x);
    let x = F32x4::select(x.lt(half_pi.neg()), pi.neg().sub(x), x);
    let z = x.mul(x);
    let mut p = F32x4::splat(-1.0 / 39_916_800.0);
    p = p.mul(z).add(F32x4::splat(1.0 / 362_880.0));
    p = p.mul(z).add(F32x4::splat(-1.0 / 5_040.0));
    p = p.mul(z).add(F32x4::splat(1.0 / 120.0));
    p = p.mul(z).add(F32x4::splat(-1.0 / 6.0));
    p.mul(z).mul(x).add(x)
}

/// A stream: seed plus a position (in blocks of four 32-bit words).
#[derive(Clone, Debug)]
pub struct Generator {
    key: [u32; 2],
    counter: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator { key: [seed as u32, (seed >> 32) as u32], counter: 0 }
    }

    /// The stream's position as four 32-bit words: key (the seed's low and high halves) and block
    /// counter (low, high). Restoring them with `from_state` continues the stream exactly where it was,
    /// which is what a training checkpoint needs for dropout masks drawn from the global stream.
    pub fn state(&self) -> [u32; 4] {
        [self.key[0], self.key[1], self.counter as u32, (self.counter >> 32) as u32]
    }

    pub fn from_state(s: [u32; 4]) -> Self {
        Generator { key: [s[0], s[1]], counter: s[2] as u64 | (s[3] as u64) << 32 }
    }

    /// Reserves `n` words; returns the block index they start at.
    fn take(&mut self, n: usize) -> u64 {
        let start = self.counter;
        self.counter += n.div_ceil(4) as u64;
        start
    }

    #[inline]
    fn word(&self, block0: u64, i: usize) -> u32 {
        let b = block0 + (i / 4) as u64;
        philox4x32([b as u32, (b >> 32) as u32, 0, 0], self.key)[i % 4]
    }

    /// Uniform floats in [lo, hi).
    pub fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        let mut out = crate::storage::alloc_f32(n);
        self.fill_uniform(&mut out, lo, hi);
        out
    }

    pub fn fill_uniform(&mut self, out: &mut [f32], lo: f32, hi: f32) {
        let b0 = self.take(out.len());
        let key = self.key;
        for (blk, chunk) in out.chunks_mut(4).enumerate() {
            let b = b0 + blk as u64;
            let w = philox4x32([b as u32, (b >> 32) as u32, 0, 0], key);
            for (o, &x) in chunk.iter_mut().zip(&w) {
                let u = (x >> 8) as f32 * (1.0 / 16_777_216.0); // [0, 1) with 24 bits
                let v = lo + (hi - lo) * u;
                *o = if v < hi { v } else { lo }; // rounding can hit hi; keep the interval half-open
            }
        }
    }

    /// Standard normal floats (Box-Muller on pairs of uniforms), times `std` plus `mean`. Pair `p`
    /// uses words 2p and 2p+1 of the stream, so one Philox block (four words) gives four values:
    /// blocks are computed once each and split over the pool in whole blocks, with the same values
    /// for any thread count (DP-SGD draws one per parameter per step, so this is a hot path).
    pub fn normal(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let mut out = crate::storage::alloc_f32(n);
        let pairs = n.div_ceil(2);
        let b0 = self.take(pairs * 2);
        let key = self.key;
        let blocks = n.div_ceil(4);
        const BLOCKS_PER_TASK: usize = 1024;
        let dst = SharedMut(out.as_mut_ptr());
        for_each(tasks_for(blocks, BLOCKS_PER_TASK), &|task, _| {
            let first = task * BLOCKS_PER_TASK;
            let last = (first + BLOCKS_PER_TASK).min(blocks);
            let (lo, hi) = (4 * first, (4 * last).min(n));
            // SAFETY: tasks cover disjoint block ranges, so [lo, hi) is written by this task only,
            // and `out` (n values) outlives the for_each call.
            let o = unsafe { dst.slice(lo, hi - lo) };
            for blk in first..last {
                let b = b0 + blk as u64;
                let w = philox4x32([b as u32, (b >> 32) as u32, 0, 0], key);
                for h in 0..2 {
                    let i = 4 * blk + 2 * h; // the pair's first value
                    if i >= n {
                        break;
                    }
                    let u1 = ((w[2 * h] >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0); // (0, 1]
                    let u2 = (w[2 * h + 1] >> 8) as f32 * (1.0 / 16_777_216.0);
                    let r = (-2.0 * crate::kernels::math::ln_scalar(u1)).sqrt();
                    let theta = 2.0 * std::f32::consts::PI * u2;
                    o[i - lo] = mean + std * r * theta.cos();
                    if i + 1 < n {
                        o[i + 1 - lo] = mean + std * r * theta.sin();
                    }
                }
            }
        });
        out
    }

    /// Normal floats N(mean, std²) by a vectorised Box-Muller: the stream's words in pairs (u1, u2)
    /// as `normal` takes them, r = sqrt(-2 ln u1) and the angle 2π·u2 − π through a polynomial
    /// sine/cosine (|error| < 2e-7) four pairs at a time. A different (equally exact in
    /// distribution) stream from `normal`, several times faster: the noise DP-SGD adds to every
    /// gradient. Same values for any thread count.
    pub fn gaussian(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let mut out = crate::storage::alloc_f32(n);
        self.gaussian_map(&mut out, |_, z| mean + std * z);
        out
    }

    /// DP-SGD's noisy gradient in one pass, without materialising the noise:
    /// `out[i] = (sum[i] + (0 + std·z_i)) / divisor`, where `0 + std·z_i` is exactly the value
    /// `gaussian(n, 0, std)` would have drawn — so the result is bitwise that of
    /// `sum.add(gaussian noise).div(divisor)`, and it consumes the same stream positions.
    pub fn add_gaussian_div(&mut self, sum: &[f32], std: f32, divisor: f32) -> Vec<f32> {
        let mut out = crate::storage::alloc_f32(sum.len());
        self.gaussian_map(&mut out, |i, z| (sum[i] + (0.0 + std * z)) / divisor);
        out
    }

    /// The vectorised Box-Muller behind `gaussian`: `out[i] = f(i, z_i)` for the stream's standard
    /// normals z_i (same values for any thread count; `f` sees each index once).
    fn gaussian_map(&mut self, out: &mut [f32], f: impl Fn(usize, f32) -> f32 + Sync) {
        use crate::simd::F32x4;
        let n = out.len();
        let b0 = self.take(n);
        let key = self.key;
        let quads = n.div_ceil(8); // two Philox blocks: four (u1, u2) pairs, eight values
        const QUADS_PER_TASK: usize = 512;
        let dst = SharedMut(out.as_mut_ptr());
        for_each(tasks_for(quads, QUADS_PER_TASK), &|task, _| {
            let first = task * QUADS_PER_TASK;
            let last = (first + QUADS_PER_TASK).min(quads);
            let (lo, hi) = (8 * first, (8 * last).min(n));
            // SAFETY: tasks cover disjoint quad ranges, so [lo, hi) is written by this task only,
            // and `out` (n values) outlives the for_each call.
            let o = unsafe { dst.slice(lo, hi - lo) };
            let (pi, half_pi) = (F32x4::splat(std::f32::consts::PI), F32x4::splat(std::f32::consts::FRAC_PI_2));
            // Two quads (four Philox blocks) per vector call; a last odd quad's extra blocks go unused.
            let mut blocks = [[0u32; 4]; 4];
            for q in first..last {
                let b = b0 + 2 * q as u64;
                if (q - first) % 2 == 0 {
                    blocks = philox4x32_x4(b, key);
                }
                let h = 2 * ((q - first) % 2);
                let (w, v) = (blocks[h], blocks[h + 1]);
                let unit = |x: u32| (x >> 8) as f32 * (1.0 / 16_777_216.0);
                let u1 = [unit(w[0]) + 1.0 / 16_777_216.0, unit(w[2]) + 1.0 / 16_777_216.0, unit(v[0]) + 1.0 / 16_777_216.0, unit(v[2]) + 1.0 / 16_777_216.0];
                let u2 = [unit(w[1]), unit(w[3]), unit(v[1]), unit(v[3])];
                // SAFETY: both arrays hold four floats.
                let (u1, u2) = unsafe { (F32x4::load(u1.as_ptr()), F32x4::load(u2.as_ptr())) };
                let r = crate::kernels::math::ln(u1).mul(F32x4::splat(-2.0)).sqrt();
                let phi = u2.mul(F32x4::splat(2.0 * std::f32::consts::PI)).sub(pi); // [-π, π)
                let c = sin_half_turn(phi.add(half_pi), pi, half_pi).mul(r);
                let s = sin_half_turn(phi, pi, half_pi).mul(r);
                for k in 0..4 {
                    let i = 8 * q + 2 * k;
                    if i < n {
                        o[i - lo] = f(i, c.lane(k));
                    }
                    if i + 1 < n {
                        o[i + 1 - lo] = f(i + 1, s.lane(k));
                    }
                }
            }
        });
    }

    /// Normal values redrawn until they fall within two standard deviations (truncated normal).
    pub fn truncated_normal(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let mut out = self.normal(n, 0.0, 1.0);
        for v in out.iter_mut() {
            while v.abs() > 2.0 {
                *v = self.normal(1, 0.0, 1.0)[0];
            }
            *v = mean + std * *v;
        }
        out
    }

    /// `n` independent Bernoulli(p) draws as 0/1 floats.
    pub fn bernoulli(&mut self, n: usize, p: f32) -> Vec<f32> {
        let mut out = self.uniform(n, 0.0, 1.0);
        for v in out.iter_mut() {
            *v = if *v < p { 1.0 } else { 0.0 };
        }
        out
    }

    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<i32> {
        let mut idx: Vec<i32> = (0..n as i32).collect();
        if n < 2 {
            return idx;
        }
        let b0 = self.take(n);
        for i in (1..n).rev() {
            let r = self.word(b0, i) as u64;
            let j = ((r * (i as u64 + 1)) >> 32) as usize; // unbiased enough for shuffling: Lemire's reduction
            idx.swap(i, j);
        }
        idx
    }

    /// Uniform integers in [lo, hi).
    pub fn randint(&mut self, n: usize, lo: i32, hi: i32) -> Vec<i32> {
        let range = (hi as i64 - lo as i64).max(1) as u64;
        let b0 = self.take(n);
        (0..n).map(|i| lo + ((self.word(b0, i) as u64 * range) >> 32) as i32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn philox_known_answer() {
        // Random123 known-answer test for philox4x32_10 with zero counter and key.
        assert_eq!(philox4x32([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32([0xffffffff; 4], [0xffffffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
    }
    #[test]
    fn streams_are_reproducible_and_sane() {
        let a = Generator::new(42).uniform(1000, 0.0, 1.0);
        let b = Generator::new(42).uniform(1000, 0.0, 1.0);
        assert_eq!(a, b);
        let mean: f32 = a.iter().sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05);
        let n = Generator::new(7).normal(10000, 0.0, 1.0);
        let m: f32 = n.iter().sum::<f32>() / 10000.0;
        let v: f32 = n.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / 10000.0;
        assert!(m.abs() < 0.05 && (v - 1.0).abs() < 0.05, "mean {m} var {v}");
        // A stream restored from its state continues exactly where the original one is.
        let mut g = Generator::new(u64::MAX - 5);
        g.normal(7, 0.0, 1.0);
        let mut h = Generator::from_state(g.state());
        assert_eq!(g.uniform(9, 0.0, 1.0), h.uniform(9, 0.0, 1.0));
        assert_eq!(h.state(), g.state());
        let mut p = Generator::new(1).permutation(50);
        p.sort();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }
    #[test]
    fn normal_is_box_muller_on_word_pairs_for_any_length_and_thread_count() {
        // The block-wise, parallel normal() against the definition: pair p from words 2p and 2p+1.
        let reference = |seed: u64, skip: usize, n: usize| -> Vec<f32> {
            let mut g = Generator::new(seed);
            g.take(skip);
            let b0 = g.take(n.div_ceil(2) * 2);
            (0..n)
                .map(|i| {
                    let p = i / 2;
                    let u1 = ((g.word(b0, 2 * p) >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0);
                    let u2 = (g.word(b0, 2 * p + 1) >> 8) as f32 * (1.0 / 16_777_216.0);
                    let r = (-2.0 * crate::kernels::math::ln_scalar(u1)).sqrt();
                    let t = 2.0 * std::f32::consts::PI * u2;
                    0.5 + 2.0 * r * if i % 2 == 0 { t.cos() } else { t.sin() }
                })
                .collect()
        };
        let before = crate::parallel::num_threads();
        for threads in [1, 4] {
            crate::parallel::set_num_threads(threads);
            for (n, skip) in [(1, 0), (2, 3), (3, 0), (5, 1), (4097, 2), (4 * 1024 * 3 + 7, 5)] {
                let mut g = Generator::new(99);
                g.take(skip);
                let got = g.normal(n, 0.5, 2.0);
                let want = reference(99, skip, n);
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "n {n} threads {threads}");
                assert_eq!(g.counter, (skip.div_ceil(4) + (n.div_ceil(2) * 2).div_ceil(4)) as u64);
            }
        }
        crate::parallel::set_num_threads(before);
    }
    #[test]
    fn add_gaussian_div_is_sum_plus_gaussian_noise_over_divisor_bitwise() {
        let before = crate::parallel::num_threads();
        for threads in [1, 3] {
            crate::parallel::set_num_threads(threads);
            for n in [0usize, 1, 7, 8, 9, 4095, 4096, 40_001] {
                let sum: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
                let (mut a, mut b) = (Generator::new(9), Generator::new(9));
                let noise = a.gaussian(n, 0.0, 1.7);
                let want: Vec<f32> = sum.iter().zip(&noise).map(|(s, z)| (s + z) / 64.0).collect();
                let got = b.add_gaussian_div(&sum, 1.7, 64.0);
                assert!(got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "n {n} threads {threads}");
                assert_eq!(a.state(), b.state(), "same stream positions consumed");
            }
        }
        crate::parallel::set_num_threads(before);
    }
    #[test]
    fn gaussian_is_standard_normal_and_thread_independent() {
        let before = crate::parallel::num_threads();
        crate::parallel::set_num_threads(1);
        let one = Generator::new(5).gaussian(100_003, 0.0, 1.0);
        crate::parallel::set_num_threads(4);
        let four = Generator::new(5).gaussian(100_003, 0.0, 1.0);
        crate::parallel::set_num_threads(before);
        assert!(one.iter().zip(&four).all(|(a, b)| a.to_bits() == b.to_bits()));
        let n = one.len() as f64;
        let m = one.iter().map(|&x| x as f64).sum::<f64>() / n;
        let v = one.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
        let tail = one.iter().filter(|x| x.abs() > 2.0).count() as f64 / n; // 4.55%
        let k4 = one.iter().map(|&x| (x as f64 - m).powi(4)).sum::<f64>() / n / (v * v); // 3
        assert!(m.abs() < 0.015 && (v - 1.0).abs() < 0.02 && (tail - 0.0455).abs() < 0.003 && (k4 - 3.0).abs() < 0.1, "mean {m} var {v} tail {tail} kurtosis {k4}");
        // The polynomial sine against the library's over the angle range.
        for i in 0..=10_000 {
            let x = -std::f32::consts::PI + 2.5 * std::f32::consts::PI * i as f32 / 10_000.0;
            let got = sin_half_turn(crate::simd::F32x4::splat(x), crate::simd::F32x4::splat(std::f32::consts::PI), crate::simd::F32x4::splat(std::f32::consts::FRAC_PI_2)).lane(0);
            assert!((got as f64 - (x as f64).sin()).abs() < 3e-7, "sin({x}) = {got}");
        }
        // The stream advances by one word per value, like uniform().
        let mut g = Generator::new(5);
        g.gaussian(9, 0.0, 1.0);
        assert_eq!(g.counter, 3);
    }
}

//! SplitMix64 (Steele, Lea & Flood 2014): the one small generator of prunebench. Tiny, fast,
//! well mixed, seeds well from any `u64` and gives the same stream on every platform: enough for
//! shuffles, crop offsets, random pruning scores and seeding the weight initialiser.
//!
//! ```
//! let mut g = splitmix::SplitMix64::new(0);
//! // SplitMix64's published first output for seed 0.
//! assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
//! ```

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The generator's state.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The stream of `seed`: the reference algorithm.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator keyed by several integers (a seed, an epoch, an image index): every random
    /// decision is then a pure function of its key, whatever the thread count or batch size.
    pub fn keyed(parts: &[u64]) -> Self {
        let mut state = 0x5851_f42d_4c95_7f2d_u64;
        for &p in parts {
            state = mix(state ^ p.wrapping_mul(GOLDEN));
        }
        Self(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform on `0..n` (n > 0), without modulo bias (Lemire's multiply-shift with rejection).
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// SplitMix64's output function.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_below_and_covers_the_range() {
        let mut g = SplitMix64::keyed(&[1, 2, 3]);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = g.below(7);
            assert!(x < 7);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn keys_give_independent_reproducible_streams() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(SplitMix64::keyed(&[5, 0]), |g, _| Some(g.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(SplitMix64::keyed(&[5, 0]), |g, _| Some(g.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(SplitMix64::keyed(&[5, 1]), |g, _| Some(g.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

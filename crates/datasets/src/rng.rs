//! A small counter-based generator: every random decision is a pure function of
//! `(seed, epoch, image index)`, so batches are the same whatever the thread count or batch size.

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast and well mixed; enough for shuffles and
/// crop offsets.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator keyed by several integers.
    pub(crate) fn keyed(parts: &[u64]) -> Self {
        let mut state = 0x5851_f42d_4c95_7f2d_u64;
        for &p in parts {
            state = mix(state ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        Self(state)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform on `0..n` (n > 0), without modulo bias (Lemire's multiply-shift with rejection).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

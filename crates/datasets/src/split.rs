//! The paper's train/validation split: NumPy's legacy `np.random.seed(seed)` followed by
//! `np.random.shuffle(indices)` on `0..n`, the first `floor(0.1 n)` indices for validation
//! (the reference code's `get_train_valid_loader`). Reimplemented bit for bit (MT19937 and
//! NumPy's bounded `random_interval`), so seed 1 gives the same 5,000 validation images of
//! CIFAR's training set as the paper's runs.

/// A split of `0..n` into training and validation indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Indices used for training, in NumPy's shuffled order.
    pub train: Vec<usize>,
    /// Indices held out for validation (model selection), in NumPy's shuffled order.
    pub val: Vec<usize>,
}

/// Splits `0..n` as the reference code does: shuffle with NumPy's legacy generator seeded with
/// `seed`, then the first `floor(val_fraction * n)` indices are the validation set.
///
/// ```
/// let s = datasets::split::train_val(50_000, 0.1, 1);
/// assert_eq!((s.train.len(), s.val.len()), (45_000, 5_000));
/// ```
pub fn train_val(n: usize, val_fraction: f64, seed: u32) -> Split {
    let indices = numpy_permutation(n, seed);
    // np.floor(valid_size * num_train), as the reference code.
    let split = ((val_fraction * n as f64).floor() as usize).min(n);
    Split {
        val: indices[..split].to_vec(),
        train: indices[split..].to_vec(),
    }
}

/// `np.random.seed(seed); x = list(range(n)); np.random.shuffle(x); x`.
pub fn numpy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut mt = Mt19937::new(seed);
    let mut x: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = mt.interval(i as u64) as usize;
        x.swap(i, j);
    }
    x
}

/// The Mersenne Twister MT19937 as NumPy's legacy `RandomState` seeds it from an integer.
struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.generate();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn generate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.index = 0;
    }

    fn next_u64(&mut self) -> u64 {
        (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())
    }

    /// NumPy's `random_interval(max)`: uniform on `0..=max` by masked rejection sampling.
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        if max <= u64::from(u32::MAX) {
            loop {
                let v = u64::from(self.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_generator() {
        // The 10,000th output of MT19937 seeded with 5489 is 4123659995 (C++ std::mt19937's
        // required value, [rand.predef]).
        let mut mt = Mt19937::new(5489);
        let mut v = 0;
        for _ in 0..10_000 {
            v = mt.next_u32();
        }
        assert_eq!(v, 4_123_659_995);
    }

    #[test]
    fn split_is_disjoint_and_covers_everything() {
        let s = train_val(1000, 0.1, 3);
        assert_eq!(s.val.len(), 100);
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_ne!(train_val(1000, 0.1, 4), s, "seeds give different splits");
    }
}

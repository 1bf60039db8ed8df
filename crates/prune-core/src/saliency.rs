//! Saliency scores: how much each filter or weight matters, larger meaning keep.
//!
//! Filter scores are per slice along axis 0 (a conv's output channels); weight scores are per
//! element, flattened in row-major order.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// How to score the filters of a conv weight `[out, in, k, k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterSaliency {
    /// Sum of absolute values per filter: PFEC (Li et al. 2016), `np.sum(abs(w), axis=(1,2,3))`.
    L1,
    /// Euclidean norm per filter, as soft filter pruning (SFP) ranks filters.
    L2,
    /// Uniform random scores drawn from a seed (random filter pruning).
    Random {
        /// The generator's seed.
        seed: u64,
    },
}

/// The l1 norm of every filter (slice along axis 0).
pub fn l1_filter_norms(weight: &Tensor) -> Result<Vec<f32>> {
    Ok(weight
        .to_dtype(DType::F32)?
        .flatten_from(1)?
        .abs()?
        .sum(1)?
        .to_vec1()?)
}

/// The l2 norm of every filter (slice along axis 0).
pub fn l2_filter_norms(weight: &Tensor) -> Result<Vec<f32>> {
    Ok(weight
        .to_dtype(DType::F32)?
        .flatten_from(1)?
        .sqr()?
        .sum(1)?
        .sqrt()?
        .to_vec1()?)
}

/// The magnitude `|w|` of every element, flattened row-major: magnitude weight pruning (MWP,
/// Han et al. 2015).
pub fn weight_magnitudes(weight: &Tensor) -> Result<Vec<f32>> {
    Ok(weight
        .to_dtype(DType::F32)?
        .abs()?
        .flatten_all()?
        .to_vec1()?)
}

/// A small deterministic generator for random scores: the workspace's SplitMix64 (Steele et al.
/// 2014), chosen because it is tiny, seeds well from any `u64` and gives the same stream on every
/// platform.
#[derive(Clone, Debug)]
pub struct ScoreRng {
    inner: splitmix::SplitMix64,
}

impl ScoreRng {
    /// A generator seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: splitmix::SplitMix64::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform score in `[0, 1)` with 24 random bits (all an f32 mantissa holds).
    pub fn next_score(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// `n` uniform scores in `[0, 1)`.
    pub fn scores(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_score()).collect()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn filter_norms_reduce_all_but_the_first_axis() {
        let w = Tensor::new(&[[[[3f32, -4.]]], [[[0., -1.]]]], &Device::Cpu).unwrap();
        assert_eq!(l1_filter_norms(&w).unwrap(), [7., 1.]);
        assert_eq!(l2_filter_norms(&w).unwrap(), [5., 1.]);
        assert_eq!(weight_magnitudes(&w).unwrap(), [3., 4., 0., 1.]);
    }

    #[test]
    fn random_scores_are_seeded_and_uniform() {
        let a = ScoreRng::new(1).scores(1000);
        assert_eq!(a, ScoreRng::new(1).scores(1000));
        assert_ne!(a, ScoreRng::new(2).scores(1000));
        assert!(a.iter().all(|&s| (0.0..1.0).contains(&s)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        // SplitMix64's published first output for seed 0.
        assert_eq!(ScoreRng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}

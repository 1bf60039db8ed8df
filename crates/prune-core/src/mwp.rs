//! Unstructured pruning with one global threshold: magnitude weight pruning (MWP, Han et al.
//! 2015) as Liu et al.'s weight-level `cifar_prune.py` runs it, and its random-score control.
//!
//! The reference concatenates `|w|` of every conv weight, sorts it, takes the threshold at index
//! `int(N * percent)` and keeps `|w| > threshold`. So at least `int(N p) + 1` weights go (the
//! threshold's own weight included; more on ties), even at `p = 0`.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mask::Masks;
use crate::plan::PruningPlan;
use crate::saliency::{ScoreRng, weight_magnitudes};

/// How to score individual weights for a global threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightSaliency {
    /// `|w|`: magnitude weight pruning.
    Magnitude,
    /// Uniform random scores drawn from a seed, in the order of the tensors given.
    Random {
        /// The generator's seed.
        seed: u64,
    },
}

/// Masks for `tensors` (in this order: it fixes the random stream) that remove the fraction
/// `sparsity` in `[0, 1)` of their weights with one threshold over all of them, and the plan
/// recording per-tensor counts and the threshold.
pub fn global_threshold(
    method: &str,
    tensors: &[String],
    weights: &HashMap<String, Tensor>,
    sparsity: f64,
    saliency: WeightSaliency,
) -> Result<(Masks, PruningPlan)> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(Error::Sparsity(sparsity));
    }
    let mut rng = match saliency {
        WeightSaliency::Random { seed } => Some(ScoreRng::new(seed)),
        WeightSaliency::Magnitude => None,
    };
    let mut scored: Vec<(&String, Vec<usize>, Device, Vec<f32>)> = Vec::new();
    for name in tensors {
        let w = weights.get(name).ok_or_else(|| Error::MissingTensor {
            context: method.to_string(),
            tensor: name.clone(),
        })?;
        let scores = match &mut rng {
            Some(rng) => rng.scores(w.elem_count()),
            None => weight_magnitudes(w)?,
        };
        scored.push((name, w.dims().to_vec(), w.device().clone(), scores));
    }
    let mut all: Vec<f32> = scored.iter().flat_map(|s| s.3.iter().copied()).collect();
    if all.is_empty() {
        return Err(Error::NothingToPrune);
    }
    // `sorted[int(N p)]` without sorting: the k-th smallest.
    let k = ((all.len() as f64 * sparsity) as usize).min(all.len() - 1);
    let (_, &mut threshold, _) = all.select_nth_unstable_by(k, f32::total_cmp);
    let masks = scored
        .into_iter()
        .map(|(name, dims, device, scores)| {
            let keep: Vec<f32> = scores
                .iter()
                .map(|&s| if s > threshold { 1.0 } else { 0.0 })
                .collect();
            Ok((name.clone(), Tensor::from_vec(keep, dims, &device)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let masks = Masks::new(masks)?;
    let plan = PruningPlan {
        method: method.to_string(),
        version: None,
        kind: crate::PlanKind::Unstructured {
            tensors: masks.per_tensor()?,
            threshold,
        },
    };
    Ok((masks, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> HashMap<String, Tensor> {
        let a = Tensor::new(&[0.1f32, -0.9, 0.5, 0.3], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0.2f32, -0.7], [0.05, 0.6]], &Device::Cpu).unwrap();
        [("a".to_string(), a), ("b".to_string(), b)].into()
    }

    #[test]
    fn the_threshold_is_the_reference_index_over_all_tensors() {
        let names = vec!["a".to_string(), "b".to_string()];
        // Sorted |w|: .05 .1 .2 .3 .5 .6 .7 .9; int(8 * 0.5) = 4 -> threshold 0.5, keep > 0.5.
        let (masks, plan) =
            global_threshold("mwp", &names, &weights(), 0.5, WeightSaliency::Magnitude).unwrap();
        assert!(
            matches!(plan.kind, crate::PlanKind::Unstructured { threshold, .. } if threshold == 0.5)
        );
        assert_eq!(
            masks.get("a").unwrap().to_vec1::<f32>().unwrap(),
            [0., 1., 0., 0.]
        );
        assert_eq!(
            masks
                .get("b")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            [0., 1., 0., 1.]
        );
        assert_eq!(plan.sparsity(), 5.0 / 8.0);
        // p = 0 still removes the smallest weight, as the reference does.
        let (m0, _) =
            global_threshold("mwp", &names, &weights(), 0.0, WeightSaliency::Magnitude).unwrap();
        assert_eq!(m0.per_tensor().unwrap()[1].pruned, 1);
    }

    #[test]
    fn random_scores_are_seeded_and_bad_sparsities_rejected() {
        let names = vec!["a".to_string(), "b".to_string()];
        let run = |seed| {
            let (m, _) = global_threshold(
                "random-weight",
                &names,
                &weights(),
                0.5,
                WeightSaliency::Random { seed },
            )
            .unwrap();
            m.get("a").unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(3), run(3));
        for bad in [1.0, -0.1, f64::NAN] {
            let err = global_threshold("mwp", &names, &weights(), bad, WeightSaliency::Magnitude);
            assert!(matches!(err, Err(Error::Sparsity(_))));
        }
        let missing = global_threshold(
            "mwp",
            &["zz".to_string()],
            &weights(),
            0.5,
            WeightSaliency::Magnitude,
        );
        assert!(missing.unwrap_err().to_string().contains("zz"));
    }
}

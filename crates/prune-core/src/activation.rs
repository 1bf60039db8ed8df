//! Data-dependent filter scores: HRank (Lin et al. 2020) from the feature maps a filter makes,
//! first-order Taylor (Molchanov et al. 2019) from the gradient at its BatchNorm. Both are
//! accumulated over batches by the caller, who runs the model (this crate never does), and end
//! as [`GroupScores`], which [`crate::select_filters_with`] ranks like any other criterion.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::groups::ChannelGroup;
use crate::plan::FilterScorer;

/// Sweeps after which [`singular_values`] stops even if some pair is still not orthogonal to
/// working precision (one-sided Jacobi converges quadratically; CIFAR-sized maps take 6 to 10).
const MAX_SWEEPS: usize = 60;

/// The singular values of the `rows x cols` matrix `a` (row-major), largest first, computed in
/// f64 by one-sided Jacobi rotations (Hestenes 1958) on the narrower side's columns.
pub fn singular_values(a: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(
        a.len(),
        rows * cols,
        "singular_values: {rows} x {cols} matrix"
    );
    // Work on the columns of `m x n` with n <= m: the transpose has the same singular values.
    let (m, n) = if cols <= rows {
        (rows, cols)
    } else {
        (cols, rows)
    };
    // Column-major `u[j * m + i]`.
    let mut u = vec![0f64; m * n];
    for r in 0..rows {
        for c in 0..cols {
            let (i, j) = if cols <= rows { (r, c) } else { (c, r) };
            u[j * m + i] = f64::from(a[r * cols + c]);
        }
    }
    for _ in 0..MAX_SWEEPS {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let (head, tail) = u.split_at_mut(q * m);
                let (x, y) = (&mut head[p * m..(p + 1) * m], &mut tail[..m]);
                let (mut alpha, mut beta, mut gamma) = (0f64, 0f64, 0f64);
                for (a, b) in x.iter().zip(y.iter()) {
                    alpha += a * a;
                    beta += b * b;
                    gamma += a * b;
                }
                if gamma == 0.0 || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for (a, b) in x.iter_mut().zip(y.iter_mut()) {
                    let (va, vb) = (*a, *b);
                    *a = c * va - s * vb;
                    *b = s * va + c * vb;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut s: Vec<f64> = u
        .chunks_exact(m)
        .map(|col| col.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// The rank of the `rows x cols` matrix `a` as `torch.linalg.matrix_rank` decides it for an f32
/// matrix (what HRank's `torch.matrix_rank` calls): the count of singular values above
/// `max(rows, cols) * f32::EPSILON * sigma_max`. The singular values are computed in f64, so a
/// matrix whose small singular values are exact zeros (a ReLU map's empty rows, a map of one
/// repeated line) is never counted up by rounding noise.
pub fn matrix_rank(a: &[f32], rows: usize, cols: usize) -> usize {
    let s = singular_values(a, rows, cols);
    let Some(&max) = s.first() else {
        return 0;
    };
    let tol = max * rows.max(cols) as f64 * f64::from(f32::EPSILON);
    s.iter().filter(|&&v| v > tol).count()
}

/// Per group, a running sum per channel and the count of what was summed (images or batches).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Sums {
    groups: BTreeMap<String, (Vec<f64>, usize)>,
}

impl Sums {
    /// `group`'s sums, created for `c` channels; an error if earlier additions had another count.
    fn slot(&mut self, group: &str, c: usize) -> Result<&mut (Vec<f64>, usize)> {
        let slot = self
            .groups
            .entry(group.to_string())
            .or_insert_with(|| (vec![0.0; c], 0));
        if slot.0.len() != c {
            return Err(Error::Scores {
                group: group.to_string(),
                reason: format!("a batch of {c} channels after batches of {}", slot.0.len()),
            });
        }
        Ok(slot)
    }

    /// The sums divided by their counts, as `criterion`'s scores.
    fn means(&self, criterion: &str) -> GroupScores {
        GroupScores::new(
            criterion,
            self.groups.iter().map(|(g, (sums, n))| {
                let n = (*n).max(1) as f64;
                (g.clone(), sums.iter().map(|s| (s / n) as f32).collect())
            }),
        )
    }
}

/// HRank's filter scores: per channel of a group, the mean over images of the rank of the
/// channel's feature map. The reference (`rank_generation.py` of HRankPlus) hooks the ReLU after
/// each pruned conv's BatchNorm, runs the model in evaluation mode on the first 5 batches of 128
/// training images and averages `matrix_rank(output[i, j])` over the images `i`; feed
/// [`RankAccumulator::add`] those maps batch by batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RankAccumulator {
    /// Per group, the sum of ranks per channel and the images summed.
    sums: Sums,
}

impl RankAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the ranks of `maps` (`[batch, channels, h, w]`, the group's feature maps for one
    /// batch). Every batch of a group must have the same channel count.
    pub fn add(&mut self, group: &str, maps: &Tensor) -> Result<()> {
        let (n, c, h, w) = maps.dims4().map_err(|_| Error::Scores {
            group: group.to_string(),
            reason: format!(
                "feature maps must be [batch, channels, h, w], got {:?}",
                maps.dims()
            ),
        })?;
        let values = maps.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let ranks: Vec<usize> = values
            .par_chunks(h * w)
            .map(|map| matrix_rank(map, h, w))
            .collect();
        let (sums, images) = self.sums.slot(group, c)?;
        for image in ranks.chunks_exact(c) {
            for (s, &r) in sums.iter_mut().zip(image) {
                *s += r as f64;
            }
        }
        *images += n;
        Ok(())
    }

    /// Images seen for `group` so far.
    pub fn images(&self, group: &str) -> usize {
        self.sums.groups.get(group).map_or(0, |(_, n)| *n)
    }

    /// The mean rank per channel of every group seen.
    pub fn scores(&self) -> GroupScores {
        self.sums.means("hrank")
    }
}

/// First-order Taylor scores on each group's BatchNorm (Molchanov et al. 2019, the criterion of
/// NVlabs' `pruning_engine.py` that the paper's Taylor code runs): per batch, per channel,
/// `(gamma * dL/dgamma + beta * dL/dbeta)^2`, summed over the batches added. That is the squared
/// gradient of a gate of value 1 after the BatchNorm ("Taylor_gate", method 22), equal to method
/// 31 ("BN Taylor FO"). [`TaylorAccumulator::scores`] is the mean over batches, the reference's
/// "averaged" criterion before its momentum across pruning iterations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaylorAccumulator {
    /// Per group, the sum of the criterion per channel and the batches summed.
    sums: Sums,
}

impl TaylorAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch's contribution for `group` from its BatchNorm's scale and shift and their
    /// gradients (each `[channels]`).
    pub fn add(
        &mut self,
        group: &str,
        (gamma, dgamma): (&Tensor, &Tensor),
        (beta, dbeta): (&Tensor, &Tensor),
    ) -> Result<()> {
        let v = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let (g, dg, b, db) = (v(gamma)?, v(dgamma)?, v(beta)?, v(dbeta)?);
        let c = g.len();
        if [dg.len(), b.len(), db.len()].iter().any(|&l| l != c) {
            return Err(Error::Scores {
                group: group.to_string(),
                reason: format!(
                    "BatchNorm vectors of {c}, {}, {} and {} values",
                    dg.len(),
                    b.len(),
                    db.len()
                ),
            });
        }
        let (sums, batches) = self.sums.slot(group, c)?;
        for (i, s) in sums.iter_mut().enumerate() {
            let t = f64::from(g[i]) * f64::from(dg[i]) + f64::from(b[i]) * f64::from(db[i]);
            *s += t * t;
        }
        *batches += 1;
        Ok(())
    }

    /// The mean criterion per channel of every group seen.
    pub fn scores(&self) -> GroupScores {
        self.sums.means("taylor")
    }
}

/// Precomputed filter scores per group (larger = keep), as the data-dependent criteria produce
/// them; a [`FilterScorer`] that looks each group up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupScores {
    /// The criterion that made them (`hrank`, `taylor`, ...), for error messages.
    pub criterion: String,
    /// Per group, one score per channel.
    pub scores: BTreeMap<String, Vec<f32>>,
}

impl GroupScores {
    /// Scores named `criterion` from (group, per-channel scores) pairs.
    pub fn new(
        criterion: impl Into<String>,
        scores: impl IntoIterator<Item = (String, Vec<f32>)>,
    ) -> Self {
        Self {
            criterion: criterion.into(),
            scores: scores.into_iter().collect(),
        }
    }

    /// Each group's scores divided by their Euclidean norm (Molchanov et al.'s
    /// `l2_normalization_per_layer`, which makes layers comparable in a global ranking).
    pub fn l2_normalized(&self) -> Self {
        let scores = self.scores.iter().map(|(g, s)| {
            let norm = s.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
            let scale = if norm > 0.0 { 1.0 / norm } else { 1.0 };
            (
                g.clone(),
                s.iter().map(|v| (f64::from(*v) * scale) as f32).collect(),
            )
        });
        Self::new(self.criterion.clone(), scores)
    }
}

impl FilterScorer for GroupScores {
    fn scores(
        &mut self,
        group: &ChannelGroup,
        _weights: &std::collections::HashMap<String, Tensor>,
    ) -> Result<Vec<f32>> {
        self.scores
            .get(&group.name)
            .cloned()
            .ok_or_else(|| Error::Scores {
                group: group.name.clone(),
                reason: format!("no {} scores were computed for it", self.criterion),
            })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        }
    }

    /// A `rows x cols` matrix of rank `r`: the sum of `r` random outer products.
    fn of_rank(rows: usize, cols: usize, r: usize, seed: u64) -> Vec<f32> {
        let mut next = lcg(seed);
        let us: Vec<Vec<f32>> = (0..r)
            .map(|_| (0..rows).map(|_| next()).collect())
            .collect();
        let vs: Vec<Vec<f32>> = (0..r)
            .map(|_| (0..cols).map(|_| next()).collect())
            .collect();
        let mut a = vec![0f32; rows * cols];
        for (u, v) in us.iter().zip(&vs) {
            for i in 0..rows {
                for j in 0..cols {
                    a[i * cols + j] += u[i] * v[j];
                }
            }
        }
        a
    }

    #[test]
    fn ranks_of_constructed_matrices() {
        for (rows, cols) in [(8, 8), (16, 16), (32, 32), (5, 9), (12, 7)] {
            for r in 0..=rows.min(cols) {
                let a = of_rank(rows, cols, r, (rows * 100 + cols * 10 + r) as u64);
                assert_eq!(matrix_rank(&a, rows, cols), r, "{rows}x{cols} of rank {r}");
            }
        }
        // A ReLU-like map: zero rows and columns, a repeated line.
        let mut a = vec![0f32; 8 * 8];
        for j in 2..6 {
            a[3 * 8 + j] = 1.5;
            a[5 * 8 + j] = 3.0;
        }
        assert_eq!(matrix_rank(&a, 8, 8), 1);
        assert_eq!(matrix_rank(&[0.0; 16], 4, 4), 0);
    }

    #[test]
    fn singular_values_of_a_known_matrix() {
        // [[3, 0], [4, 5]] has singular values sqrt(45) and sqrt(5).
        let s = singular_values(&[3.0, 0.0, 4.0, 5.0], 2, 2);
        assert!((s[0] - 45f64.sqrt()).abs() < 1e-12 && (s[1] - 5f64.sqrt()).abs() < 1e-12);
        // Diagonal: the absolute diagonal, sorted.
        let s = singular_values(&[-2.0, 0.0, 0.0, 0.0, 7.0, 0.0], 2, 3);
        assert_eq!(s, [7.0, 2.0]);
    }

    #[test]
    fn rank_scores_average_over_images_and_batches() {
        let dev = Device::Cpu;
        // Two channels of 4x4 maps: channel 0 of ranks 1 then 3, channel 1 of rank 4 then 2.
        let batch = |ranks: [usize; 2], seed: u64| {
            let mut v = Vec::new();
            for (i, r) in ranks.iter().enumerate() {
                v.extend(of_rank(4, 4, *r, seed + i as u64));
            }
            Tensor::from_vec(v, (1, 2, 4, 4), &dev).unwrap()
        };
        let mut acc = RankAccumulator::new();
        acc.add("g", &batch([1, 4], 1)).unwrap();
        acc.add("g", &batch([3, 2], 7)).unwrap();
        assert_eq!(acc.images("g"), 2);
        assert_eq!(acc.scores().scores["g"], [2.0, 3.0]);
        let wrong = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
        let err = acc.add("g", &wrong).unwrap_err().to_string();
        assert!(
            err.contains("group `g`") && err.contains("3 channels"),
            "{err}"
        );
    }

    #[test]
    fn taylor_scores_are_mean_squared_gate_gradients() {
        let dev = Device::Cpu;
        let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
        let mut acc = TaylorAccumulator::new();
        let (g, b) = (t(&[1.0, 2.0]), t(&[0.5, -1.0]));
        acc.add("g", (&g, &t(&[0.1, -0.2])), (&b, &t(&[0.4, 0.3])))
            .unwrap();
        acc.add("g", (&g, &t(&[0.0, 1.0])), (&b, &t(&[2.0, 0.0])))
            .unwrap();
        // Channel 0: (0.1 + 0.2)^2 = 0.09, then (0 + 1)^2 = 1; channel 1: (-0.4 - 0.3)^2 = 0.49,
        // then (2 - 0)^2 = 4.
        let s = &acc.scores().scores["g"];
        assert!(
            (s[0] - 0.545).abs() < 1e-6 && (s[1] - 2.245).abs() < 1e-6,
            "{s:?}"
        );
        let err = acc
            .add("g", (&g, &t(&[0.0])), (&b, &t(&[0.0, 0.0])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("group `g`"), "{err}");
    }
}

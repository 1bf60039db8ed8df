//! The data-dependent filter criteria on our models: HRank (Lin et al. 2020) and first-order
//! Taylor (Molchanov et al. 2019), each run over a few batches and returned as
//! [`prune_core::GroupScores`] keyed by channel group, ready for
//! [`prune_core::select_filters_with`] or [`prune_core::select_global`].

use candle_core::{DType, ModuleT, Tensor};
use prune_core::{GroupScores, RankAccumulator, TaylorAccumulator};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::{Model, Network};

/// Batches HRank's reference ranks on: the first 5 batches (`--limit 5`) of 128 training images
/// (`--batch_size 128`), augmented as for training (HRankPlus `rank_generation.py`).
pub const HRANK_BATCHES: usize = 5;
/// Images per batch of HRank's reference.
pub const HRANK_BATCH_SIZE: usize = 128;

impl Model {
    /// HRank's feature maps for the batch `x`: per channel group, in
    /// [`ModelConfig::channel_groups`] order, the map whose ranks score the group's channels,
    /// in evaluation mode and detached. A ResNet's or VGG's group is scored on its conv's
    /// output after the BatchNorm and ReLU that follow it; a DenseNet's (whose BatchNorms come
    /// before the convs) after the BatchNorm and ReLU of the layer that reads it next, as
    /// HRankPlus' `rank_generation.py` hooks them.
    pub fn group_feature_maps(&self, x: &Tensor) -> Result<Vec<(String, Tensor)>> {
        let maps = match self.network() {
            Network::ResNet(m) => m.feature_maps(x)?,
            Network::Vgg(m) => m.feature_maps(x)?,
            Network::DenseNet(m) => m.feature_maps(x)?,
        };
        let groups = self.config().channel_groups();
        if maps.len() != groups.len() {
            return Err(Error::Config(format!(
                "{} feature maps for {} channel groups",
                maps.len(),
                groups.len()
            )));
        }
        Ok(groups.into_iter().map(|g| g.name).zip(maps).collect())
    }

    /// Per channel group, the BatchNorm right after its conv, whose scale and shift Taylor's
    /// gate criterion reads: the one BatchNorm among the group's members (ResNet
    /// `layer{s}.{i}.bn1`, VGG `feature.{idx + 1}`). `None` for a DenseNet: its BatchNorms come
    /// before the convs and each group's channels pass through several of them, so there is no
    /// single gate after a filter.
    pub fn group_batch_norms(&self) -> Option<Vec<(String, String)>> {
        if matches!(self.config(), ModelConfig::DenseNet(_)) {
            return None;
        }
        self.config()
            .channel_groups()
            .into_iter()
            .map(|g| {
                let mut bns = g
                    .members
                    .iter()
                    .filter_map(|m| m.tensor.strip_suffix(".running_mean"));
                match (bns.next(), bns.next()) {
                    (Some(bn), None) => Some((g.name.clone(), bn.to_string())),
                    _ => None,
                }
            })
            .collect()
    }
}

/// HRank's scores of every channel group of `model`: the mean rank of each channel's feature
/// map ([`Model::group_feature_maps`]) over the images of `batches`. The reference ranks on
/// [`HRANK_BATCHES`] batches of [`HRANK_BATCH_SIZE`] augmented training images.
pub fn hrank_scores(
    model: &Model,
    batches: impl IntoIterator<Item = Result<Tensor>>,
) -> Result<GroupScores> {
    let mut acc = RankAccumulator::new();
    let mut seen = 0;
    for x in batches {
        for (group, maps) in model.group_feature_maps(&x?)? {
            acc.add(&group, &maps)?;
        }
        seen += 1;
    }
    if seen == 0 {
        return Err(Error::Config("HRank: no batches to rank on".into()));
    }
    Ok(acc.scores())
}

/// First-order Taylor scores of every channel group of `model` (a ResNet or VGG): for each
/// batch of `batches` (images, class indices), a training-mode forward pass, the mean
/// cross-entropy and its gradient, then per channel `(gamma * dgamma + beta * dbeta)^2` at the
/// group's BatchNorm ([`Model::group_batch_norms`]), averaged over the batches. The weights are
/// not updated and the BatchNorm running statistics are put back as they were, so scoring
/// leaves the model unchanged.
pub fn taylor_scores(
    model: &Model,
    batches: impl IntoIterator<Item = Result<(Tensor, Tensor)>>,
) -> Result<GroupScores> {
    let Some(bns) = model.group_batch_norms() else {
        return Err(Error::Config(
            "Taylor on BatchNorm: a DenseNet has no BatchNorm right after its convs".into(),
        ));
    };
    let vars = model.trainable_vars();
    let var = |name: &str| {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::Config(format!("Taylor: the model has no variable `{name}`")))
    };
    // Each group's (name, BatchNorm, gamma, beta), looked up once.
    let gates = bns
        .into_iter()
        .map(|(group, bn)| {
            let (gamma, beta) = (var(&format!("{bn}.weight"))?, var(&format!("{bn}.bias"))?);
            Ok((group, bn, gamma, beta))
        })
        .collect::<Result<Vec<_>>>()?;
    let saved: Vec<(String, Tensor)> = model
        .tensors()?
        .into_iter()
        .filter(|(n, _)| n.ends_with("running_mean") || n.ends_with("running_var"))
        .collect();
    let mut acc = TaylorAccumulator::new();
    let run = || -> Result<usize> {
        let mut seen = 0;
        for batch in batches {
            let (x, y) = batch?;
            let logits = model.forward_t(&x, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y.to_dtype(DType::U32)?)?;
            let loss_value = loss.to_scalar::<f32>()?;
            if !loss_value.is_finite() {
                return Err(Error::Config(format!(
                    "Taylor: the loss of batch {seen} is {loss_value}"
                )));
            }
            let grads = loss.backward()?;
            for (group, bn, gamma, beta) in &gates {
                let grad = |v: &candle_core::Var| {
                    grads
                        .get(v.as_tensor())
                        .cloned()
                        .ok_or_else(|| Error::Config(format!("Taylor: no gradient reached `{bn}`")))
                };
                let (dg, db) = (grad(gamma)?, grad(beta)?);
                acc.add(group, (gamma.as_tensor(), &dg), (beta.as_tensor(), &db))?;
            }
            seen += 1;
        }
        Ok(seen)
    };
    let outcome = run();
    model.restore_running_stats(&saved)?;
    if outcome? == 0 {
        return Err(Error::Config("Taylor: no batches to score on".into()));
    }
    Ok(acc.scores())
}

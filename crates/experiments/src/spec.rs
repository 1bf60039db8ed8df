//! The specs the paper's protocol makes, each rule written once: the retraining of a pruned
//! checkpoint and the scratch baselines. `prunebench` and the grids both build their specs here,
//! so a run asked for by hand and the same run in a grid have the same hash (and directory).

use std::path::{Path, PathBuf};

use models::ModelConfig;

use crate::recipe::{self, ScratchBudget};
use crate::{CheckpointId, ExperimentSpec, Init, Result};

/// A checkpoint a run starts from: its model, where it is, what it is by content, and the spec
/// of the run it came from when that is known (a run directory, or a checkpoint pruned from one).
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The checkpoint's model.
    pub config: ModelConfig,
    /// Where it is.
    pub path: PathBuf,
    /// What it is.
    pub id: CheckpointId,
    /// The spec of the run that trained its weights (before any pruning).
    pub origin: Option<ExperimentSpec>,
}

/// The paper's CIFAR recipe (see [`ExperimentSpec::paper`]).
pub fn paper(dataset: datasets::DatasetKind, model: ModelConfig) -> ExperimentSpec {
    ExperimentSpec::paper(dataset, model)
}

/// Retraining `pruned` with the schedule `schedule` names (`ft`, `lrw`, `slr`, `clr`, with
/// optional parameters, or any schedule text) for `epochs`: everything else (data, split, seed,
/// batch, SGD) is `origin`'s, the run the weights were trained by; `ft` and `lrw` derive from
/// `origin`'s schedule (DESIGN section 2). The start is named by content, so the hash does not
/// depend on where the checkpoint lies.
pub fn retrain(
    origin: &ExperimentSpec,
    pruned: &Start,
    schedule: &str,
    epochs: u32,
) -> Result<ExperimentSpec> {
    let mut spec = origin.clone();
    spec.schedule = recipe::retraining_schedule(schedule, Some(origin))
        .map_err(|e| e.context(format!("schedule '{schedule}'")))?;
    spec.model = pruned.config.clone();
    spec.init = Init::checkpoint(pruned.path.clone(), pruned.id.clone());
    spec.epochs = epochs;
    Ok(spec)
}

/// Liu et al.'s baseline: the pruned architecture `pruned` trained from scratch with `base`'s
/// data, seed and initialisation, for Scratch-E `base_epochs` (the original plus the retraining
/// budget) or Scratch-B that scaled by the FLOPs ratio, with the rate dropping at 50% and 75%.
pub fn scratch(
    base: &ExperimentSpec,
    pruned: &ModelConfig,
    budget: ScratchBudget,
    base_epochs: u32,
) -> Result<ExperimentSpec> {
    let (epochs, schedule) = recipe::scratch(pruned, budget, base_epochs)?;
    let mut spec = base.clone();
    spec.model = pruned.clone();
    spec.epochs = epochs;
    spec.schedule = schedule;
    Ok(spec)
}

/// How to retrain a checkpoint, as `prunebench retrain` and `iterate` take it: a schedule and a
/// budget, and overrides of what the origin run says.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrainSettings {
    /// `ft`, `lrw`, `slr`, `clr` (with optional parameters, `clr:max=0.05`) or any schedule text.
    pub schedule: String,
    /// The budget in epochs (40 in the paper's Table 2).
    pub epochs: u32,
    /// The dataset (default: the origin run's; required without one).
    pub dataset: Option<datasets::DatasetKind>,
    /// The dataset's folder (default: the origin run's).
    pub data_dir: Option<PathBuf>,
    /// Seed of the data order, augmentation and split (default: the origin run's).
    pub seed: Option<u32>,
    /// Training batch size (default: the origin run's).
    pub batch_size: Option<usize>,
    /// Train on only the first N images of the training split (default: the origin run's).
    pub limit_train: Option<usize>,
}

/// The spec that retrains the checkpoint at `checkpoint` as `s` says: [`retrain`] from the run
/// its weights come from (its `origin.json`), or from the paper's recipe on `s.dataset` when the
/// origin is unknown or of another dataset; then `s`'s overrides.
pub fn retrain_checkpoint(checkpoint: &Path, s: &RetrainSettings) -> Result<ExperimentSpec> {
    let start = crate::provenance::start_of(checkpoint)?;
    let dataset = match (s.dataset, &start.origin) {
        (Some(d), _) => d,
        (None, Some(o)) => o.dataset,
        (None, None) => {
            return Err(crate::Error::Config(format!(
                "{} has no origin.json naming its dataset: pass --dataset",
                checkpoint.display()
            )));
        }
    };
    let origin = match &start.origin {
        Some(o) if o.dataset == dataset => o.clone(),
        _ => ExperimentSpec::paper(dataset, start.config.clone()),
    };
    let mut spec = retrain(&origin, &start, &s.schedule, s.epochs)?;
    if s.data_dir.is_some() {
        spec.data_dir.clone_from(&s.data_dir);
    }
    if let Some(seed) = s.seed {
        spec.seed = u64::from(seed);
        spec.split_seed = seed;
    }
    if let Some(b) = s.batch_size {
        spec.batch_size = b;
    }
    if s.limit_train.is_some() {
        spec.limit_train = s.limit_train;
    }
    Ok(spec)
}

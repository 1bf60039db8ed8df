//! The experiment spec: everything that determines a run, serialized as JSON; its hash names
//! the run.

use std::path::PathBuf;

use datasets::DatasetKind;
use datasets::transform::Augment;
use md5::{Digest, Md5};
use models::ModelConfig;
use schedules::Schedule;
use serde::{Deserialize, Serialize};

use crate::sgd::SgdConfig;

/// Where the weights a run starts from come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Init {
    /// A fresh model, initialised as the reference code from this seed.
    Fresh {
        /// The initialisation seed.
        seed: u64,
    },
    /// A checkpoint (a model directory or a run directory, whose best-val model is used): the
    /// weights of a trained or pruned model to fine-tune or retrain.
    Checkpoint {
        /// Where the checkpoint is. Not part of the hash when `id` is given, so a runs directory
        /// can be moved (or committed and cloned) and its runs keep their names.
        path: PathBuf,
        /// What the checkpoint is, by content: the spec hashes and pruning it came from, or a
        /// digest of its weights. Specs written before it existed have none; their hash still
        /// covers the path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<CheckpointId>,
    },
}

impl Init {
    /// A checkpoint start named by its content.
    pub fn checkpoint(path: impl Into<PathBuf>, id: CheckpointId) -> Self {
        Self::Checkpoint {
            path: path.into(),
            id: Some(id),
        }
    }
}

/// A starting checkpoint named by what it is rather than where it lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckpointId {
    /// The best-val model of the run whose spec has this hash.
    Run {
        /// The run's spec hash.
        spec: String,
    },
    /// The best-val model of the run `origin`, pruned as `pruning` says (a pruning request's
    /// canonical text, e.g. `pfec:B`): pruning is deterministic, so the two fix the weights.
    Pruned {
        /// The spec hash of the run that was pruned.
        origin: String,
        /// The pruning, in its canonical text.
        pruning: String,
    },
    /// Any other checkpoint: the SHA-256 of its weights file, in hex.
    Weights {
        /// The digest.
        sha256: String,
    },
}

impl std::fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Run { spec } => write!(f, "the best model of run {spec}"),
            Self::Pruned { origin, pruning } => {
                write!(f, "the best model of run {origin} pruned by {pruning}")
            }
            Self::Weights { sha256 } => write!(f, "weights with SHA-256 {sha256}"),
        }
    }
}

/// A training or retraining run, fully described.
///
/// Two runs with equal specs compute the same numbers on CPU: the data order and every
/// augmentation are functions of `seed`, the split of `split_seed`, the start of `init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    /// The dataset.
    pub dataset: DatasetKind,
    /// The folder holding it (`None`: the dataset's default folder).
    pub data_dir: Option<PathBuf>,
    /// The model's architecture and widths.
    pub model: ModelConfig,
    /// The starting weights.
    pub init: Init,
    /// The learning-rate schedule (and momentum, for CLR).
    pub schedule: Schedule,
    /// Epochs to train.
    pub epochs: u32,
    /// Training batch size (64 in the paper).
    pub batch_size: usize,
    /// Evaluation batch size (no effect on the numbers beyond float rounding).
    pub eval_batch_size: usize,
    /// Seed of the data order and augmentation.
    pub seed: u64,
    /// Seed of the train/val split (the paper's seeds 1-5 split the same way as they shuffle).
    pub split_seed: u32,
    /// Fraction of the training set held out for validation (0.1 in the paper).
    pub val_fraction: f64,
    /// Train on only the first N images of the training split (None: all).
    pub limit_train: Option<usize>,
    /// Evaluate on only the first N images of the validation split and of the test set (None:
    /// all), so a smoke grid evaluates quickly. Left out of the JSON when None, so the specs
    /// (and hashes) of runs made before the field existed stay the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_eval: Option<usize>,
    /// SGD's momentum, weight decay and Nesterov switch.
    pub sgd: SgdConfig,
    /// Training augmentation.
    pub augment: Augment,
    /// Soft filter pruning (He et al. 2018): after every epoch, zero the filters with the
    /// smallest l2 norm, this fraction of each prunable layer (`int(n * rate)` filters); they may
    /// grow back during the next epoch. Absent from the JSON when off, so older specs keep their
    /// hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_prune: Option<f64>,
}

impl ExperimentSpec {
    /// The paper's CIFAR recipe for a model and dataset: 160 epochs of the step schedule
    /// (0.1/0.01/0.001 at 0, 80, 120), batch 64, SGD momentum 0.9, weight decay 1e-4, the 90/10
    /// split, pad-4 crop and flip; seed 1.
    pub fn paper(dataset: DatasetKind, model: ModelConfig) -> Self {
        Self {
            dataset,
            data_dir: None,
            model,
            init: Init::Fresh { seed: 1 },
            schedule: Schedule::original(schedules::Preset::Cifar),
            epochs: 160,
            batch_size: 64,
            eval_batch_size: 256,
            seed: 1,
            split_seed: 1,
            val_fraction: 0.1,
            limit_train: None,
            limit_eval: None,
            sgd: SgdConfig::default(),
            augment: dataset.augment(),
            soft_prune: None,
        }
    }

    /// The spec as canonical JSON (fields in declaration order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A short stable hash of the spec: the first 16 hex digits of the MD5 of its compact JSON,
    /// with a starting checkpoint's path left out when the checkpoint is named by content
    /// ([`CheckpointId`]).
    ///
    /// The rule for new fields (OpenLTH's): a field added later is left out of the JSON while it
    /// holds its default (`skip_serializing_if`), so the hash of every spec that does not use it
    /// stays the same.
    pub fn hash(&self) -> String {
        let mut json = serde_json::to_string(self).unwrap_or_default();
        if let Init::Checkpoint { id: Some(id), .. } = &self.init {
            // `init` is one top-level field and its compact JSON occurs once: swap it for the
            // content-only form, leaving every other byte (and so every other field) as it was.
            #[derive(Serialize)]
            #[serde(tag = "from", rename_all = "snake_case")]
            enum Hashed<'a> {
                Checkpoint { id: &'a CheckpointId },
            }
            let full = serde_json::to_string(&self.init).unwrap_or_default();
            let hashed = serde_json::to_string(&Hashed::Checkpoint { id }).unwrap_or_default();
            json = json.replacen(
                &format!("\"init\":{full}"),
                &format!("\"init\":{hashed}"),
                1,
            );
        }
        Md5::digest(json.as_bytes())
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ExperimentSpec {
        ExperimentSpec::paper(
            DatasetKind::FashionMnist,
            ModelConfig::from_name("resnet20", 10, 1).unwrap(),
        )
    }

    #[test]
    fn limit_eval_is_optional_in_old_specs_and_keeps_their_hash() {
        let s = spec();
        let json = s.to_json();
        assert!(!json.contains("limit_eval"), "None is not written");
        // A spec.json written before the field existed loads, and hashes as before.
        let old: ExperimentSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(old.limit_eval, None);
        assert_eq!(old.hash(), s.hash());
        let mut limited = s.clone();
        limited.limit_eval = Some(100);
        assert_ne!(limited.hash(), s.hash());
        let back: ExperimentSpec = serde_json::from_str(&limited.to_json()).unwrap();
        assert_eq!(back.limit_eval, Some(100));
    }
}

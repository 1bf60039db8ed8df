//! Pruning a checkpoint into a new checkpoint directory: what `prunebench prune` and
//! `cargo xtask reproduce` both do, in one place so they cannot drift apart.
//!
//! A structured method (PFEC or random filters) makes a plan over the model's channel groups
//! and writes the smaller dense model; an unstructured one (MWP or random weights) writes the
//! masked model and its masks. Either way the directory gets `plan.json` and, when the weights
//! came from a checkpoint, `origin.json` (retraining reads the dataset and the original
//! schedule from it).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use models::{Layer, Model, ModelConfig};
use prune_core::{
    FilterSaliency, MASKS_FILE, Masks, PfecVersion, PruningPlan, WeightSaliency, global_threshold,
    select_filters,
};

use crate::run::{ORIGIN_FILE, write_atomic, write_origin};
use crate::{Error, Result};

/// The plan file written into every pruned checkpoint directory.
pub const PLAN_FILE: &str = "plan.json";

/// A pruning method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMethod {
    /// Filters with the smallest l1 norm, per layer, as the PFEC versions (Li et al. 2016).
    Pfec,
    /// The PFEC version's per-layer counts, filters chosen by seeded random scores.
    RandomFilter,
    /// Conv weights below one global magnitude threshold (Han et al. 2015), masked.
    Mwp,
    /// Conv weights with seeded random scores below one global threshold, masked.
    RandomWeight,
}

impl PruneMethod {
    /// The name a plan records (`pfec`, `random-filter`, `mwp`, `random-weight`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pfec => "pfec",
            Self::RandomFilter => "random-filter",
            Self::Mwp => "mwp",
            Self::RandomWeight => "random-weight",
        }
    }

    /// Whether the method removes whole filters (a smaller dense model) rather than weights.
    pub fn structured(self) -> bool {
        matches!(self, Self::Pfec | Self::RandomFilter)
    }
}

/// How to prune.
#[derive(Debug, Clone)]
pub enum PruneHow {
    /// Make a plan with a method.
    Method {
        /// The method.
        method: PruneMethod,
        /// The PFEC version (ResNets A or B; none for VGG-16), for structured methods.
        version: Option<PfecVersion>,
        /// The fraction of conv weights to remove, for unstructured methods.
        sparsity: Option<f64>,
        /// The seed of the random scores (random methods only).
        seed: u64,
    },
    /// Apply a structured plan made earlier (possibly edited).
    Plan(PruningPlan),
}

/// A request to prune `model` into `out`.
#[derive(Debug, Clone)]
pub struct PruneRequest<'a> {
    /// How.
    pub how: PruneHow,
    /// The output directory (created once a plan exists).
    pub out: &'a Path,
    /// Where the model's weights came from, recorded in `origin.json` (none for a fresh model).
    pub source: Option<&'a Path>,
    /// Write `plan.json` only.
    pub plan_only: bool,
}

/// What pruning did.
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    /// The plan (also in `plan.json`).
    pub plan: PruningPlan,
    /// Whether filters were removed (rather than weights masked).
    pub structured: bool,
    /// The model's config before pruning.
    pub config_before: ModelConfig,
    /// The config after (equal to `config_before` for unstructured pruning).
    pub config_after: ModelConfig,
    /// Parameters after (non-zero ones for unstructured pruning).
    pub params_after: u64,
    /// Multiply-adds after (counting non-zero conv weights for unstructured pruning).
    pub flops_after: u64,
    /// Structured: the fraction of parameters removed; unstructured: of conv weights.
    pub sparsity: f64,
    /// The files written into the output directory.
    pub files: Vec<&'static str>,
}

/// The config PFEC's `version` leaves of `config`: the pruned architecture alone, without any
/// weights (PFEC's per-layer counts do not depend on them), as Scratch-E/B train it.
pub fn pfec_config(config: &ModelConfig, version: Option<PfecVersion>) -> Result<ModelConfig> {
    let widths = config.pfec_targets(version)?.into_iter().collect();
    Ok(config.with_group_widths(&widths)?)
}

/// Prunes `model` as `req` says and writes the result into `req.out`.
pub fn prune_model(model: &Model, req: &PruneRequest) -> Result<PruneOutcome> {
    // A run directory names its checkpoints in state.json: a pruned model written beside them
    // would be ignored by every reader of the run, and would mix two models in one folder.
    let run = crate::run::RunDir::new(req.out);
    if run.spec().exists() || run.state().exists() {
        return Err(Error::RunDir(format!(
            "{} is a training run's directory; write the pruned checkpoint to another --out",
            req.out.display()
        )));
    }
    let config = model.config().clone();
    let tensors = model.tensors()?;
    let mut files = vec![PLAN_FILE];
    let structured_plan = match &req.how {
        PruneHow::Plan(plan) => {
            if plan.groups.is_empty() {
                return Err(Error::Config(
                    "no channel groups to apply (an unstructured plan records counts only; rerun its method)"
                        .into(),
                ));
            }
            Some(plan.clone())
        }
        PruneHow::Method {
            method,
            version,
            seed,
            ..
        } if method.structured() => {
            let targets = config.pfec_targets(*version)?;
            let saliency = match method {
                PruneMethod::Pfec => FilterSaliency::L1,
                _ => FilterSaliency::Random { seed: *seed },
            };
            let version_name = version.map(|v| v.to_string());
            Some(select_filters(
                method.name(),
                version_name.as_deref(),
                &config.channel_groups(),
                &targets,
                saliency,
                &tensors,
            )?)
        }
        PruneHow::Method { .. } => None,
    };
    let mut outcome = if let Some(plan) = structured_plan {
        let after = config.with_group_widths(&plan.kept_widths())?;
        let pruned = if req.plan_only {
            None
        } else {
            Some(model.prune(&plan)?)
        };
        write_plan(req.out, &plan)?;
        if let Some(pruned) = pruned {
            pruned.save(req.out)?;
            // Masks left by an earlier unstructured run into this folder would not fit the
            // smaller tensors, and a training loop would pick them up.
            let stale = req.out.join(MASKS_FILE);
            if stale.exists() {
                fs::remove_file(&stale).map_err(|source| Error::Io {
                    path: stale.clone(),
                    source,
                })?;
            }
            files.extend(["model.safetensors", "config.json"]);
        }
        let (p, f) = (after.params(), after.flops());
        let removed = 1.0 - p as f64 / config.params() as f64;
        PruneOutcome {
            plan,
            structured: true,
            config_before: config.clone(),
            config_after: after,
            params_after: p,
            flops_after: f,
            sparsity: removed,
            files,
        }
    } else {
        let PruneHow::Method {
            method,
            sparsity,
            seed,
            ..
        } = &req.how
        else {
            return Err(Error::Config("give a method or a structured plan".into()));
        };
        let Some(sparsity) = *sparsity else {
            return Err(Error::Config(format!(
                "{} needs a sparsity (a fraction in [0, 1))",
                method.name()
            )));
        };
        let saliency = match method {
            PruneMethod::Mwp => WeightSaliency::Magnitude,
            _ => WeightSaliency::Random { seed: *seed },
        };
        let names = config.conv_weight_names();
        let (masks, plan) = global_threshold(method.name(), &names, &tensors, sparsity, saliency)?;
        write_plan(req.out, &plan)?;
        let masked = masks.apply(&tensors)?;
        let (p, f) = sparse_counts(&config, &masked)?;
        if !req.plan_only {
            Model::from_tensors(&config, masked, model.device())?.save(req.out)?;
            save_masks(req.out, &masks)?;
            files.extend(["model.safetensors", "config.json", MASKS_FILE]);
        }
        PruneOutcome {
            plan,
            structured: false,
            config_before: config.clone(),
            config_after: config.clone(),
            params_after: p,
            flops_after: f,
            sparsity: masks.sparsity()?,
            files,
        }
    };
    if !req.plan_only
        && let Some(source) = req.source
    {
        write_origin(req.out, source)?;
        outcome.files.push(ORIGIN_FILE);
    }
    Ok(outcome)
}

/// Loads the model a checkpoint path stands for (a run directory's best-val model) and prunes
/// it, recording the path in `origin.json`.
pub fn prune_checkpoint(
    checkpoint: &Path,
    how: PruneHow,
    out: &Path,
) -> Result<(PruneOutcome, PathBuf)> {
    let (model, dir) = crate::engine::load_model(checkpoint, &candle_core::Device::Cpu)?;
    let req = PruneRequest {
        how,
        out,
        source: Some(checkpoint),
        plan_only: false,
    };
    Ok((prune_model(&model, &req)?, dir))
}

/// Parameters and multiply-adds counting only non-zero conv weights (times each conv's output
/// positions for FLOPs); every other layer counts in full. Counted on the weights themselves, so
/// zeros from an earlier round of pruning count as gone too.
fn sparse_counts(config: &ModelConfig, weights: &HashMap<String, Tensor>) -> Result<(u64, u64)> {
    let (mut params, mut flops) = (0, 0);
    for layer in config.layers() {
        let (p, f) = match &layer {
            Layer::Conv2d { output_size, .. } => {
                let name = format!("{}.weight", layer.name());
                let w = weights
                    .get(&name)
                    .ok_or_else(|| Error::Config(format!("tensor `{name}` is missing")))?;
                let nonzero = w
                    .ne(0f32)?
                    .to_dtype(DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()? as u64;
                (nonzero, nonzero * (output_size * output_size) as u64)
            }
            _ => (layer.params(), layer.flops()),
        };
        params += p;
        flops += f;
    }
    Ok((params, flops))
}

/// Creates `dir` if needed and writes `plan.json` into it: called only once the plan is made, so
/// a refused request leaves no empty folder behind.
fn write_plan(dir: &Path, plan: &PruningPlan) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(PLAN_FILE);
    let text = serde_json::to_string_pretty(plan).map_err(|e| Error::Corrupt {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    write_atomic(&path, format!("{text}\n").as_bytes())
}

fn save_masks(dir: &Path, masks: &Masks) -> Result<()> {
    let path = dir.join(MASKS_FILE);
    // The safetensors writer already goes through a temporary file and a rename, but its
    // temporary file is created 0600: give the masks the permissions config.json got.
    masks.save(&path)?;
    let config = dir.join(models::checkpoint::CONFIG_FILE);
    if let Ok(meta) = fs::metadata(&config) {
        fs::set_permissions(&path, meta.permissions()).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

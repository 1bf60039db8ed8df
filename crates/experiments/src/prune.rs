//! Pruning a checkpoint into a new checkpoint directory: what `prunebench prune`, `iterate` and
//! the grids all do, in one place so they cannot drift apart.
//!
//! A request is typed ([`Pruning`]): filters (a saliency, and a PFEC version or a ratio),
//! weights (a saliency and a sparsity), or a structured plan made earlier. Filters make a plan
//! over the model's channel groups and write the smaller dense model; weights write the masked
//! model and its masks. Either way the directory gets `plan.json` and, when the weights came
//! from a checkpoint, `origin.json` (retraining reads the dataset and the original schedule from
//! it, and the pruned checkpoint's content id).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::Path;

use candle_core::{DType, Tensor};
use models::{Layer, Model, ModelConfig};
use prune_core::{
    FilterSaliency, MASKS_FILE, Masks, PfecVersion, PruningPlan, WeightSaliency, global_threshold,
    keep_count, select_filters, select_filters_with, select_global,
};
use train::ExperimentSpec;
use train::run::write_atomic;

use crate::provenance::{ORIGIN_FILE, write_origin};
use crate::{Error, Result};

/// The plan file written into every pruned checkpoint directory.
pub const PLAN_FILE: &str = "plan.json";

/// How many filters a filter-pruning request removes.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterAmount {
    /// The per-layer counts of a PFEC version of the reference code (ResNet-56/110 `A` or `B`;
    /// `None` for VGG-16's single version).
    Version(Option<PfecVersion>),
    /// The fraction `ratio` in `[0, 1)` of the filters of every channel group, by PFEC's rule
    /// (`keep = int(n (1 - ratio))`).
    Ratio(f64),
    /// The same rule on the channel groups `layers` names and no other: each entry is a group
    /// name (`layer2.0.conv1`) or a dotted prefix of group names (`layer2`, `feature`).
    RatioOf {
        /// The fraction in `[0, 1)`.
        ratio: f64,
        /// Group names or dotted prefixes; each must name at least one group.
        layers: Vec<String>,
    },
}

impl FilterAmount {
    /// The ratio, for ratio amounts.
    pub fn ratio(&self) -> Option<f64> {
        match self {
            Self::Ratio(r) | Self::RatioOf { ratio: r, .. } => Some(*r),
            Self::Version(_) => None,
        }
    }

    /// The plan's `version` field: `A`, `B`, `ratio=0.5`, `ratio=0.5:layers=layer1+layer2`.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Version(v) => v.map(|v| v.to_string()),
            Self::Ratio(r) => Some(format!("ratio={r}")),
            Self::RatioOf { ratio, layers } => {
                Some(format!("ratio={ratio}:layers={}", layers.join("+")))
            }
        }
    }
}

/// Whether the channel group `name` is one `layers` selects: the name itself or a dotted
/// prefix of it (`layer2` selects `layer2.0.conv1`, not `layer20.0.conv1`).
fn selects(layers: &[String], name: &str) -> bool {
    layers
        .iter()
        .any(|l| name == l || (name.starts_with(l.as_str()) && name[l.len()..].starts_with('.')))
}

/// A pruning request.
#[derive(Debug, Clone, PartialEq)]
pub enum Pruning {
    /// Remove whole filters, a smaller dense model.
    Filters {
        /// How filters are ranked: l1 (PFEC), l2 or seeded random scores.
        saliency: FilterSaliency,
        /// How many.
        amount: FilterAmount,
    },
    /// Mask individual conv weights below one global threshold.
    Weights {
        /// How weights are ranked: magnitude (MWP) or seeded random scores.
        saliency: WeightSaliency,
        /// The fraction of conv weights removed, in `[0, 1)`.
        sparsity: f64,
    },
    /// Remove whole filters ranked by a criterion computed on training images (HRank, Taylor):
    /// the request's [`PruneRequest::data`] says which.
    Scored {
        /// The criterion.
        criterion: DataCriterion,
        /// How many filters.
        amount: FilterAmount,
        /// The batches it is computed on.
        scoring: Scoring,
        /// Per layer, or one ranking across the layers (a ratio amount only).
        ranking: Ranking,
    },
    /// Apply a structured plan made earlier (possibly edited by hand).
    Plan(PruningPlan),
}

/// A filter criterion computed from the model's response to data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataCriterion {
    /// HRank (Lin et al. 2020): the mean rank of each filter's feature maps
    /// ([`models::scores::hrank_scores`]).
    Hrank,
    /// First-order Taylor on the BatchNorm after each filter (Molchanov et al. 2019,
    /// [`models::scores::taylor_scores`]); ResNets and VGG.
    Taylor,
}

impl DataCriterion {
    /// `hrank` or `taylor`, the method name a plan records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hrank => "hrank",
            Self::Taylor => "taylor",
        }
    }
}

/// How a criterion's scores choose the filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ranking {
    /// Each channel group keeps its own count (PFEC's, or `int(n (1 - ratio))`).
    #[default]
    PerLayer,
    /// The channels of every selected group compete on one scale and `1 - ratio` of them stay
    /// ([`prune_core::select_global`]), each group keeping at least one: Molchanov et al.'s
    /// global ranking.
    Global,
}

/// The training batches a data criterion is computed on ([`train::engine::scoring_batches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scoring {
    /// How many batches.
    pub batches: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// The seed of their order and augmentation.
    pub seed: u64,
}

impl Pruning {
    /// PFEC (Li et al. 2016) at one of its versions.
    pub fn pfec(version: Option<PfecVersion>) -> Self {
        Self::Filters {
            saliency: FilterSaliency::L1,
            amount: FilterAmount::Version(version),
        }
    }

    /// Magnitude weight pruning (Han et al. 2015) to `sparsity`.
    pub fn mwp(sparsity: f64) -> Self {
        Self::Weights {
            saliency: WeightSaliency::Magnitude,
            sparsity,
        }
    }

    /// The method name a plan records: `pfec`, `l2-filter`, `random-filter`, `mwp`,
    /// `random-weight`, or the plan's own.
    pub fn method(&self) -> String {
        match self {
            Self::Filters { saliency, .. } => match saliency {
                FilterSaliency::L1 => "pfec",
                FilterSaliency::L2 => "l2-filter",
                FilterSaliency::Random { .. } => "random-filter",
            }
            .to_string(),
            Self::Weights { saliency, .. } => match saliency {
                WeightSaliency::Magnitude => "mwp",
                WeightSaliency::Random { .. } => "random-weight",
            }
            .to_string(),
            Self::Scored { criterion, .. } => criterion.name().to_string(),
            Self::Plan(plan) => plan.method.clone(),
        }
    }

    /// Whether whole filters go (a smaller dense model) rather than weights.
    pub fn structured(&self) -> bool {
        !matches!(self, Self::Weights { .. })
    }

    /// Checks the numbers before any work: ratios and sparsities in `[0, 1)`, a plan with
    /// groups.
    pub fn check(&self) -> Result<()> {
        let unit = |what: &str, x: f64| {
            if (0.0..1.0).contains(&x) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "the {what} must be a fraction in [0, 1), got {x}"
                )))
            }
        };
        match self {
            Self::Filters {
                amount: FilterAmount::Ratio(r),
                ..
            } => unit("pruning ratio", *r),
            Self::Filters {
                amount: FilterAmount::RatioOf { ratio, layers },
                ..
            } => {
                if layers.is_empty() || layers.iter().any(|l| l.trim().is_empty()) {
                    return Err(Error::Config(
                        "--layers names no layer: give group names or prefixes, e.g. layer1,layer2.0".into(),
                    ));
                }
                unit("pruning ratio", *ratio)
            }
            Self::Filters { .. } => Ok(()),
            Self::Scored {
                amount,
                scoring,
                ranking,
                ..
            } => {
                if *ranking == Ranking::Global && amount.ratio().is_none() {
                    return Err(Error::Config(format!(
                        "{}: a global ranking keeps a fraction of all filters: give --ratio, not a PFEC version",
                        self.method()
                    )));
                }
                if scoring.batches == 0 || scoring.batch_size == 0 {
                    return Err(Error::Config(format!(
                        "{}: score on at least one batch of at least one image",
                        self.method()
                    )));
                }
                let as_filters = Self::Filters {
                    saliency: FilterSaliency::L1,
                    amount: amount.clone(),
                };
                as_filters.check()
            }
            Self::Weights { sparsity, .. } => unit("sparsity", *sparsity),
            Self::Plan(plan) if !plan.is_structured() => {
                Err(prune_core::Error::NotStructured(plan.method.clone()).into())
            }
            Self::Plan(plan) if plan.groups().is_empty() => Err(Error::Config(
                "the plan names no channel group to prune".into(),
            )),
            Self::Plan(_) => Ok(()),
        }
    }
}

/// The canonical text of a request, as content ids record it: `pfec:B`, `pfec`,
/// `pfec:ratio=0.5`, `pfec:ratio=0.5:layers=layer1+layer2`, `random-filter:A:seed=1`, `mwp:sparsity=0.9`,
/// `random-weight:sparsity=0.9:seed=2`, `plan:<first 16 hex digits of the plan's SHA-256>`.
impl fmt::Display for Pruning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !matches!(self, Self::Plan(_)) {
            write!(f, "{}", self.method())?;
        }
        match self {
            Self::Filters { saliency, amount } => {
                if let Some(text) = amount.text() {
                    write!(f, ":{text}")?;
                }
                if let FilterSaliency::Random { seed } = saliency {
                    write!(f, ":seed={seed}")?;
                }
                Ok(())
            }
            Self::Scored {
                amount,
                scoring,
                ranking,
                ..
            } => {
                if let Some(text) = amount.text() {
                    write!(f, ":{text}")?;
                }
                if *ranking == Ranking::Global {
                    write!(f, ":global")?;
                }
                write!(
                    f,
                    ":batches={}x{}:seed={}",
                    scoring.batches, scoring.batch_size, scoring.seed
                )
            }
            Self::Weights { saliency, sparsity } => {
                write!(f, ":sparsity={sparsity}")?;
                if let WeightSaliency::Random { seed } = saliency {
                    write!(f, ":seed={seed}")?;
                }
                Ok(())
            }
            Self::Plan(plan) => {
                use sha2::{Digest, Sha256};
                let json = serde_json::to_string(plan).unwrap_or_default();
                let digest = Sha256::digest(json.as_bytes());
                let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
                write!(f, "plan:{hex}")
            }
        }
    }
}

/// A request to prune a model into `out`.
#[derive(Debug, Clone)]
pub struct PruneRequest<'a> {
    /// How.
    pub how: &'a Pruning,
    /// The output directory (created once a plan exists).
    pub out: &'a Path,
    /// Where the model's weights came from, recorded in `origin.json` (none for a fresh model).
    pub source: Option<&'a Path>,
    /// Write `plan.json` only.
    pub plan_only: bool,
    /// The data a [`Pruning::Scored`] criterion is computed on: the dataset, split and
    /// augmentation of this spec (its model and schedule are not used).
    pub data: Option<&'a ExperimentSpec>,
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
    pruned_config(config, &FilterAmount::Version(version))
}

/// The config a filter-pruning `amount` leaves of `config` (any saliency gives the same widths).
pub fn pruned_config(config: &ModelConfig, amount: &FilterAmount) -> Result<ModelConfig> {
    let widths = filter_targets(config, amount)?.into_iter().collect();
    Ok(config.with_group_widths(&widths)?)
}

/// The (group, channels kept) pairs of the groups an `amount` prunes.
pub fn filter_targets(config: &ModelConfig, amount: &FilterAmount) -> Result<Vec<(String, usize)>> {
    let (ratio, chosen) = match amount {
        FilterAmount::Version(version) => {
            return config.pfec_targets(*version).map_err(|e| {
                Error::Config(format!(
                    "{e}; any architecture can be pruned by a ratio instead (--ratio R, a fraction of every layer's filters)"
                ))
            });
        }
        FilterAmount::Ratio(ratio) => (*ratio, selected_groups(config, None)?),
        FilterAmount::RatioOf { ratio, layers } => (*ratio, selected_groups(config, Some(layers))?),
    };
    let mut targets = Vec::new();
    for g in chosen {
        let keep = keep_count(g.channels, ratio)?;
        if keep == 0 {
            return Err(Error::Config(format!(
                "a ratio of {ratio} leaves no filter of the {} of {} `{}`",
                g.channels,
                config.name(),
                g.name
            )));
        }
        // Only the groups that lose filters: a plan then lists exactly what changes.
        if keep != g.channels {
            targets.push((g.name, keep));
        }
    }
    Ok(targets)
}

/// The channel groups a ratio applies to: all of them, or those `layers` selects, each entry
/// checked to select at least one.
fn selected_groups(
    config: &ModelConfig,
    layers: Option<&[String]>,
) -> Result<Vec<prune_core::ChannelGroup>> {
    let groups = config.channel_groups();
    let Some(layers) = layers else {
        return Ok(groups);
    };
    for l in layers {
        if !groups
            .iter()
            .any(|g| selects(std::slice::from_ref(l), &g.name))
        {
            let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            return Err(Error::Config(format!(
                "--layers `{l}` names no channel group of {}; its groups are {}",
                config.name(),
                names.join(", ")
            )));
        }
    }
    Ok(groups
        .into_iter()
        .filter(|g| selects(layers, &g.name))
        .collect())
}

/// Prunes `model` as `req` says and writes the result into `req.out`.
pub fn prune_model(model: &Model, req: &PruneRequest) -> Result<PruneOutcome> {
    req.how.check()?;
    // A run directory names its checkpoints in state.json: a pruned model written beside them
    // would be ignored by every reader of the run, and would mix two models in one folder.
    let run = train::run::RunDir::new(req.out);
    if run.spec().exists() || run.state().exists() {
        return Err(Error::Config(format!(
            "{} is a training run's directory; write the pruned checkpoint to another --out",
            req.out.display()
        )));
    }
    let config = model.config().clone();
    let tensors = model.tensors()?;
    let mut files = vec![PLAN_FILE];
    let structured_plan = match req.how {
        Pruning::Plan(plan) => Some(plan.clone()),
        Pruning::Filters { saliency, amount } => {
            let targets = filter_targets(&config, amount)?;
            let version = amount.text();
            Some(select_filters(
                &req.how.method(),
                version.as_deref(),
                &config.channel_groups(),
                &targets,
                *saliency,
                &tensors,
            )?)
        }
        Pruning::Scored {
            criterion,
            amount,
            scoring,
            ranking,
        } => {
            let Some(spec) = req.data else {
                return Err(Error::Config(format!(
                    "{} scores filters on training images: give the dataset (prunebench prune --dataset NAME), or prune a training run's directory",
                    criterion.name()
                )));
            };
            train::engine::check_fits(&config, spec.dataset)
                .map_err(|e| Error::Config(format!("{}: {e}", criterion.name())))?;
            // Per layer the counts; globally the groups that compete (every selected one).
            let targets = match ranking {
                Ranking::PerLayer => filter_targets(&config, amount)?,
                Ranking::Global => {
                    let layers = match amount {
                        FilterAmount::RatioOf { layers, .. } => Some(layers.as_slice()),
                        _ => None,
                    };
                    selected_groups(&config, layers)?
                        .into_iter()
                        .map(|g| (g.name, g.channels))
                        .collect()
                }
            };
            let batches = train::engine::scoring_batches(
                spec,
                scoring.batches,
                scoring.batch_size,
                scoring.seed,
                model.device(),
            )?;
            let mut scores = match criterion {
                DataCriterion::Hrank => {
                    models::scores::hrank_scores(model, batches.into_iter().map(|(x, _)| Ok(x)))?
                }
                DataCriterion::Taylor => {
                    models::scores::taylor_scores(model, batches.into_iter().map(Ok))?
                }
            };
            let version = amount.text();
            let groups = config.channel_groups();
            Some(match ranking {
                Ranking::PerLayer => select_filters_with(
                    &req.how.method(),
                    version.as_deref(),
                    &groups,
                    &targets,
                    &mut scores,
                    &tensors,
                )?,
                Ranking::Global => {
                    let names: Vec<String> = targets.into_iter().map(|(g, _)| g).collect();
                    let ratio = amount.ratio().unwrap_or(0.0);
                    let mut plan = select_global(
                        &req.how.method(),
                        &groups,
                        &names,
                        1.0 - ratio,
                        1,
                        &mut scores,
                        &tensors,
                    )?;
                    plan.version = version.map(|v| format!("{v}:global"));
                    plan
                }
            })
        }
        Pruning::Weights { .. } => None,
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
                fs::remove_file(&stale).map_err(|source| Error::io(stale.clone(), source))?;
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
        let Pruning::Weights { saliency, sparsity } = req.how else {
            return Err(Error::Config("give a method or a structured plan".into()));
        };
        let names = config.conv_weight_names();
        let (masks, plan) =
            global_threshold(&req.how.method(), &names, &tensors, *sparsity, *saliency)?;
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
        write_origin(req.out, source, &req.how.to_string())?;
        outcome.files.push(ORIGIN_FILE);
    }
    Ok(outcome)
}

/// Loads the model a checkpoint path stands for (a run directory's best-val model) and prunes
/// it into `out`, recording the path in `origin.json`. A data criterion ([`Pruning::Scored`])
/// scores on the data of the run's own spec.
pub fn prune_checkpoint(checkpoint: &Path, how: &Pruning, out: &Path) -> Result<PruneOutcome> {
    how.check()?;
    let (model, _) = train::engine::load_model(checkpoint, &candle_core::Device::Cpu)?;
    let spec = run_spec(checkpoint)?;
    let req = PruneRequest {
        how,
        out,
        source: Some(checkpoint),
        plan_only: false,
        data: spec.as_ref(),
    };
    prune_model(&model, &req)
}

/// The spec of the training run `path` is the directory of, if it is one.
pub fn run_spec(path: &Path) -> Result<Option<ExperimentSpec>> {
    let file = train::run::RunDir::new(path).spec();
    if !file.is_file() {
        return Ok(None);
    }
    Ok(Some(train::run::read_json(&file)?))
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
    fs::create_dir_all(dir).map_err(|source| Error::io(dir.to_path_buf(), source))?;
    let path = dir.join(PLAN_FILE);
    let text = serde_json::to_string_pretty(plan)
        .map_err(|e| Error::corrupt(path.clone(), e.to_string()))?;
    Ok(write_atomic(&path, format!("{text}\n").as_bytes())?)
}

fn save_masks(dir: &Path, masks: &Masks) -> Result<()> {
    let path = dir.join(MASKS_FILE);
    // The safetensors writer already goes through a temporary file and a rename, but its
    // temporary file is created 0600: give the masks the permissions config.json got.
    masks.save(&path)?;
    let config = dir.join(models::checkpoint::CONFIG_FILE);
    if let Ok(meta) = fs::metadata(&config) {
        fs::set_permissions(&path, meta.permissions())
            .map_err(|source| Error::io(path.clone(), source))?;
    }
    Ok(())
}

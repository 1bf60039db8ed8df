//! `prunebench prune`: prune a checkpoint (or a freshly initialised model) with PFEC, HRank,
//! Taylor, magnitude weight pruning or a random control, and write the pruned checkpoint and its
//! plan.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use candle_core::Device;
use clap::ValueEnum;
use experiments::prune::{
    DataCriterion, FilterAmount, PruneRequest, Pruning, Ranking, Scoring, prune_model,
};
use models::{Model, ModelConfig};
use prune_core::{FilterSaliency, PfecVersion, PruningPlan, WeightSaliency};
use serde::Serialize;

use crate::cmd::Format;
use crate::output::{print_json, print_line};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  prunebench prune --arch resnet56 --method pfec --version B --out pruned/\n  \
    prunebench prune --checkpoint runs/vgg16 --method pfec --out pruned/\n  \
    prunebench prune --arch resnet56 --method mwp --sparsity 0.9 --out sparse/\n  \
    prunebench prune --arch resnet110 --method random-filter --version B --seed 1 --out rand/\n  \
    prunebench prune --checkpoint runs/r20 --method pfec --ratio 0.5 --out half/\n  \
    prunebench prune --checkpoint runs/r56 --method pfec --ratio 0.6 --layers layer1,layer2.0 --out early/\n  \
    prunebench prune --checkpoint runs/r56 --plan pruned/plan.json --out pruned/\n  \
    prunebench prune --checkpoint runs/r56 --method hrank --ratio 0.5 --out hrank/\n  \
    prunebench prune --checkpoint model/ --method taylor --version B --dataset fashion-mnist --out taylor/\n\n\
    PFEC versions: resnet56 and resnet110 A|B; vgg16 has a single version (no --version).\n\
    hrank and taylor score filters on training images: the first --score-batches shuffled, augmented\n\
    batches of --score-batch-size images (HRank's reference: 5 x 128), order and augmentation from --seed,\n\
    from the training run's own data when --checkpoint is a run directory, else from --dataset.\n\
    Any architecture: --ratio R removes int-rounded R of every layer's filters (keep = int(n (1 - R)));\n\
    --layers restricts it to the channel groups named (or prefixed) there. `prunebench model info ARCH`\n\
    lists the groups (ResNet: each block's first conv, layerS.B.conv1; VGG: feature.N; DenseNet: every conv\n\
    whose output is not concatenated away)."
)]
pub struct Args {
    /// A checkpoint directory (or .safetensors file) to prune, or hf://owner/name[@revision].
    #[arg(
        long,
        value_name = "DIR|hf://REPO",
        required_unless_present = "arch",
        conflicts_with = "arch"
    )]
    checkpoint: Option<PathBuf>,
    /// Prune a freshly initialised model of this architecture instead (resnet56, vgg16, ...).
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// The initialisation seed for --arch.
    #[arg(long, value_name = "S", default_value_t = 0, requires = "arch")]
    init_seed: u64,
    /// Output classes for --arch.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "arch")]
    classes: usize,
    /// Input image channels for --arch.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "arch")]
    in_channels: usize,
    /// The pruning method.
    #[arg(long, value_enum, required_unless_present = "plan")]
    method: Option<Method>,
    /// Apply a structured plan.json (from --plan-only, possibly edited) instead of a method.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["method", "version", "ratio", "sparsity", "seed"]
    )]
    plan: Option<PathBuf>,
    /// The PFEC version (A or B; ResNet-56/110 only) for pfec and random-filter.
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// For pfec and random-filter, instead of a version: the fraction of every channel group's
    /// filters to remove, in [0, 1), by PFEC's rule (keep = int(n (1 - R))). Any architecture.
    #[arg(
        long,
        value_name = "R",
        conflicts_with = "version",
        allow_negative_numbers = true
    )]
    ratio: Option<f64>,
    /// With --ratio: prune only these channel groups, comma-separated group names or dotted
    /// prefixes (layer1 = every group of ResNet's first stage; layer2.0.conv1 = one group).
    #[arg(long, value_name = "NAMES", value_delimiter = ',', requires = "ratio")]
    layers: Option<Vec<String>>,
    /// The fraction of conv weights to remove, in [0, 1), for mwp and random-weight.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    sparsity: Option<f64>,
    /// The seed of the random scores (random-filter, random-weight), or of the scoring batches'
    /// order and augmentation (hrank, taylor; default 1).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// hrank, taylor: the dataset to score on (default: the checkpoint's training run's).
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
    /// hrank, taylor: the folder holding --dataset.
    #[arg(long, value_name = "DIR", requires = "dataset")]
    data_dir: Option<PathBuf>,
    /// hrank, taylor: how many training batches to score on.
    #[arg(long, value_name = "N", default_value_t = models::scores::HRANK_BATCHES)]
    score_batches: usize,
    /// hrank, taylor, with --ratio: rank the filters of all the groups (or those of --layers)
    /// together and keep 1 - R of them, each group keeping at least one, instead of R of every
    /// group's.
    #[arg(long, requires = "ratio")]
    global: bool,
    /// hrank, taylor: images per scoring batch.
    #[arg(long, value_name = "N", default_value_t = models::scores::HRANK_BATCH_SIZE)]
    score_batch_size: usize,
    /// The output directory: model.safetensors, config.json, plan.json (+ masks.safetensors).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write plan.json only, not the pruned checkpoint.
    #[arg(long)]
    plan_only: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// Filters with the smallest l1 norm, per layer, as the PFEC versions (Li et al. 2016).
    Pfec,
    /// The PFEC version's per-layer counts, filters chosen by seeded random scores.
    RandomFilter,
    /// Conv weights below one global magnitude threshold (Han et al. 2015), masked.
    Mwp,
    /// Conv weights with seeded random scores below one global threshold, masked.
    RandomWeight,
    /// Filters whose feature maps have the lowest mean rank on training images, per layer
    /// (HRank, Lin et al. 2020).
    Hrank,
    /// Filters with the smallest first-order Taylor score at their BatchNorm on training
    /// images, per layer (Molchanov et al. 2019); ResNets and VGG.
    Taylor,
}

impl Method {
    fn structured(self) -> bool {
        matches!(
            self,
            Self::Pfec | Self::RandomFilter | Self::Hrank | Self::Taylor
        )
    }

    fn scored(self) -> bool {
        matches!(self, Self::Hrank | Self::Taylor)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Pfec => "pfec",
            Self::RandomFilter => "random-filter",
            Self::Mwp => "mwp",
            Self::RandomWeight => "random-weight",
            Self::Hrank => "hrank",
            Self::Taylor => "taylor",
        }
    }

    /// The library's request for this method and the flags.
    fn request(self, args: &Args, version: Option<PfecVersion>) -> Result<Pruning> {
        let seed = args.seed.unwrap_or(1);
        let amount = match (args.ratio, &args.layers) {
            (Some(ratio), Some(layers)) => FilterAmount::RatioOf {
                ratio,
                layers: layers.iter().map(|l| l.trim().to_string()).collect(),
            },
            (Some(r), None) => FilterAmount::Ratio(r),
            (None, _) => FilterAmount::Version(version),
        };
        Ok(match self {
            Self::Hrank | Self::Taylor => Pruning::Scored {
                criterion: if self == Self::Hrank {
                    DataCriterion::Hrank
                } else {
                    DataCriterion::Taylor
                },
                amount,
                scoring: Scoring {
                    batches: args.score_batches,
                    batch_size: args.score_batch_size,
                    seed,
                },
                ranking: if args.global {
                    Ranking::Global
                } else {
                    Ranking::PerLayer
                },
            },
            Self::Pfec | Self::RandomFilter => Pruning::Filters {
                saliency: if self == Self::Pfec {
                    FilterSaliency::L1
                } else {
                    FilterSaliency::Random { seed }
                },
                amount,
            },
            Self::Mwp | Self::RandomWeight => {
                let Some(sparsity) = args.sparsity else {
                    bail!("{} needs --sparsity P (a fraction in [0, 1))", self.name());
                };
                Pruning::Weights {
                    saliency: if self == Self::Mwp {
                        WeightSaliency::Magnitude
                    } else {
                        WeightSaliency::Random { seed }
                    },
                    sparsity,
                }
            }
        })
    }
}

/// What `--format json` prints.
#[derive(Serialize)]
struct Report {
    method: String,
    version: Option<String>,
    arch_before: String,
    arch_after: String,
    params_before: u64,
    params_after: u64,
    flops_before: u64,
    flops_after: u64,
    /// Unstructured: the fraction of conv weights the masks remove. Structured: the fraction of
    /// parameters removed.
    sparsity: f64,
    out: PathBuf,
    files: Vec<&'static str>,
}

pub fn run(args: Args) -> Result<()> {
    // Reject flag mixes before any work, so a typo never writes a surprising checkpoint.
    if let Some(method) = args.method {
        check_flags(&args, method)?;
    }
    let version = args
        .version
        .as_deref()
        .map(str::parse::<PfecVersion>)
        .transpose()?;
    let device = Device::Cpu;
    // A hub checkpoint is fetched first; origin.json then names it with its commit.
    let resolved = args
        .checkpoint
        .as_deref()
        .map(crate::cmd::checkpoint)
        .transpose()?;
    let model = match (&resolved, &args.arch) {
        (Some((path, _)), _) => {
            if !path.exists() {
                bail!("checkpoint {} does not exist", path.display());
            }
            // A run directory stands for its best-val model.
            train::engine::load_model(path, &device)?.0
        }
        (None, Some(arch)) => {
            let config = ModelConfig::from_name(arch, args.classes, args.in_channels)?;
            Model::init(&config, args.init_seed, &device)?
        }
        (None, None) => bail!("give --checkpoint DIR or --arch ARCH"),
    };
    let how = match (&args.plan, args.method) {
        (Some(file), _) => Pruning::Plan(read_plan(file)?),
        (None, Some(method)) => method.request(&args, version)?,
        (None, None) => bail!("give --method or --plan FILE"),
    };
    // hrank and taylor score on training images: the run's own data, or --dataset.
    let data = match (&args.dataset, &resolved) {
        (Some(name), _) => {
            let kind: datasets::DatasetKind = name.parse()?;
            let mut spec = train::ExperimentSpec::paper(kind, model.config().clone());
            spec.data_dir = args.data_dir.clone();
            Some(spec)
        }
        (None, Some((path, _))) if matches!(how, Pruning::Scored { .. }) => {
            experiments::prune::run_spec(path)?
        }
        _ => None,
    };
    let request = PruneRequest {
        how: &how,
        data: data.as_ref(),
        out: &args.out,
        // Where the weights came from, with the run's spec: retraining reads the dataset and
        // the original schedule (for LRW and FT) from it.
        source: resolved.as_ref().map(|(_, label)| label.as_path()),
        plan_only: args.plan_only,
    };
    let outcome = prune_model(&model, &request)?;
    if !args.plan_only {
        crate::cmd::record_command(&args.out)?;
    }
    let structured = outcome.structured;
    let (config, config_after) = (&outcome.config_before, &outcome.config_after);
    let report = Report {
        method: outcome.plan.method.clone(),
        version: outcome.plan.version.clone(),
        arch_before: config.name(),
        arch_after: config_after.name(),
        params_before: config.params(),
        params_after: outcome.params_after,
        flops_before: config.flops(),
        flops_after: outcome.flops_after,
        sparsity: outcome.sparsity,
        out: args.out.clone(),
        files: outcome.files.clone(),
    };
    match args.format {
        Format::Json => print_json(&report),
        Format::Text => print_text(&report, structured),
    }
}

fn check_flags(args: &Args, method: Method) -> Result<()> {
    if method.structured() && args.sparsity.is_some() {
        bail!(
            "--sparsity applies to mwp and random-weight, not {}",
            method.name()
        );
    }
    if !method.structured() && (args.version.is_some() || args.ratio.is_some()) {
        bail!(
            "--version and --ratio apply to pfec, random-filter, hrank and taylor, not {}",
            method.name()
        );
    }
    if !method.scored() && args.global {
        bail!(
            "--global applies to hrank and taylor, not {}",
            method.name()
        );
    }
    if !method.scored() && args.dataset.is_some() {
        bail!(
            "--dataset applies to hrank and taylor (they score on training images), not {}",
            method.name()
        );
    }
    if matches!(method, Method::Pfec | Method::Mwp) && args.seed.is_some() {
        bail!(
            "--seed applies to random-filter and random-weight, not {}",
            method.name()
        );
    }
    Ok(())
}

/// A structured plan from a file: unstructured plans record counts, not the masks themselves.
fn read_plan(file: &Path) -> Result<PruningPlan> {
    let plan = PruningPlan::load(file)?;
    if !plan.is_structured() || plan.groups().is_empty() {
        bail!(
            "{}: no channel groups to apply (an unstructured plan records counts only; rerun its method)",
            file.display()
        );
    }
    Ok(plan)
}

fn print_text(r: &Report, structured: bool) -> Result<()> {
    let pct = |before: u64, after: u64| 100.0 * (before - after) as f64 / before as f64;
    let method = match &r.version {
        Some(v) => format!("{} {v}", r.method),
        None => r.method.to_string(),
    };
    print_line(&format!("method    {method}"))?;
    print_line(&format!("model     {} -> {}", r.arch_before, r.arch_after))?;
    let nonzero = if structured { "" } else { " (non-zero)" };
    print_line(&format!(
        "params    {} -> {}{nonzero} (-{:.2}%)",
        r.params_before,
        r.params_after,
        pct(r.params_before, r.params_after)
    ))?;
    print_line(&format!(
        "flops     {} -> {}{nonzero} (-{:.2}%)",
        r.flops_before,
        r.flops_after,
        pct(r.flops_before, r.flops_after)
    ))?;
    let what = if structured {
        "parameters"
    } else {
        "conv weights"
    };
    print_line(&format!("sparsity  {:.4} of {what}", r.sparsity))?;
    print_line(&format!(
        "wrote     {} ({})",
        r.out.display(),
        r.files.join(", ")
    ))
}

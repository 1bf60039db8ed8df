//! `prunebench prune`: prune a checkpoint (or a freshly initialised model) with PFEC, magnitude
//! weight pruning or a random control, and write the pruned checkpoint and its plan.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use clap::ValueEnum;
use models::{Layer, Model, ModelConfig};
use prune_core::{
    FilterSaliency, MASKS_FILE, Masks, PfecVersion, PruningPlan, WeightSaliency, global_threshold,
    select_filters,
};
use serde::Serialize;

use crate::cmd::Format;
use crate::output::{print_json, print_line, write_atomic};

/// The plan file written into every output directory.
const PLAN_FILE: &str = "plan.json";

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  prunebench prune --arch resnet56 --method pfec --version B --out pruned/\n  \
    prunebench prune --checkpoint runs/vgg16 --method pfec --out pruned/\n  \
    prunebench prune --arch resnet56 --method mwp --sparsity 0.9 --out sparse/\n  \
    prunebench prune --arch resnet110 --method random-filter --version B --seed 1 --out rand/\n  \
    prunebench prune --checkpoint runs/r56 --plan pruned/plan.json --out pruned/\n\n\
    PFEC versions: resnet56 and resnet110 A|B; vgg16 has a single version (no --version)."
)]
pub struct Args {
    /// A checkpoint directory (or .safetensors file) to prune.
    #[arg(
        long,
        value_name = "DIR",
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
        conflicts_with_all = ["method", "version", "sparsity", "seed"]
    )]
    plan: Option<PathBuf>,
    /// The PFEC version (A or B; ResNet-56/110 only) for pfec and random-filter.
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// The fraction of conv weights to remove, in [0, 1), for mwp and random-weight.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    sparsity: Option<f64>,
    /// The seed of the random scores (random-filter, random-weight).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
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
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Self::Pfec => "pfec",
            Self::RandomFilter => "random-filter",
            Self::Mwp => "mwp",
            Self::RandomWeight => "random-weight",
        }
    }

    fn structured(self) -> bool {
        matches!(self, Self::Pfec | Self::RandomFilter)
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
    let model = match (&args.checkpoint, &args.arch) {
        (Some(path), _) => {
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
    let config = model.config().clone();
    let tensors = model.tensors()?;
    let seed = args.seed.unwrap_or(1);

    let mut files = vec![PLAN_FILE];
    let structured_plan = match (&args.plan, args.method) {
        (Some(file), _) => Some(read_plan(file)?),
        (None, Some(method)) if method.structured() => {
            let targets = config.pfec_targets(version)?;
            let saliency = match method {
                Method::Pfec => FilterSaliency::L1,
                _ => FilterSaliency::Random { seed },
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
        _ => None,
    };
    let structured = structured_plan.is_some();
    let (plan, config_after, params_after, flops_after, sparsity) = if let Some(plan) =
        structured_plan
    {
        let after = config.with_group_widths(&plan.kept_widths())?;
        let pruned = if args.plan_only {
            None
        } else {
            Some(model.prune(&plan)?)
        };
        write_plan(&args.out, &plan)?;
        if let Some(pruned) = pruned {
            pruned.save(&args.out)?;
            // Masks left by an earlier unstructured run into this folder would not fit the
            // smaller tensors, and a training loop would pick them up.
            let stale = args.out.join(MASKS_FILE);
            if stale.exists() {
                fs::remove_file(&stale)
                    .with_context(|| format!("cannot remove stale {}", stale.display()))?;
            }
            files.extend(["model.safetensors", "config.json"]);
        }
        let (p, f) = (after.params(), after.flops());
        let removed = 1.0 - p as f64 / config.params() as f64;
        (plan, after, p, f, removed)
    } else {
        let Some(method) = args.method else {
            bail!("give --method or --plan FILE");
        };
        let Some(sparsity) = args.sparsity else {
            bail!(
                "{} needs --sparsity P (a fraction in [0, 1))",
                method.name()
            );
        };
        let saliency = match method {
            Method::Mwp => WeightSaliency::Magnitude,
            _ => WeightSaliency::Random { seed },
        };
        let names = config.conv_weight_names();
        let (masks, plan) = global_threshold(method.name(), &names, &tensors, sparsity, saliency)?;
        write_plan(&args.out, &plan)?;
        let masked = masks.apply(&tensors)?;
        let (p, f) = sparse_counts(&config, &masked)?;
        if !args.plan_only {
            Model::from_tensors(&config, masked, &device)?.save(&args.out)?;
            save_masks(&args.out, &masks)?;
            files.extend(["model.safetensors", "config.json", MASKS_FILE]);
        }
        (plan, config.clone(), p, f, masks.sparsity()?)
    };
    if !args.plan_only
        && let Some(path) = &args.checkpoint
    {
        // Where the weights came from, with the run's spec: retraining reads the dataset and
        // the original schedule (for LRW and FT) from it.
        train::run::write_origin(&args.out, path)?;
        files.push(train::run::ORIGIN_FILE);
    }
    let report = Report {
        method: plan.method.clone(),
        version: plan.version.clone(),
        arch_before: config.name(),
        arch_after: config_after.name(),
        params_before: config.params(),
        params_after,
        flops_before: config.flops(),
        flops_after,
        sparsity,
        out: args.out.clone(),
        files,
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
    if !method.structured() && args.version.is_some() {
        bail!(
            "--version applies to pfec and random-filter, not {}",
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
    let text =
        fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let plan: PruningPlan = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a pruning plan", file.display()))?;
    if plan.groups.is_empty() {
        bail!(
            "{}: no channel groups to apply (an unstructured plan records counts only; rerun its method)",
            file.display()
        );
    }
    Ok(plan)
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
                    .with_context(|| format!("tensor `{name}` is missing"))?;
                let nonzero = w
                    .ne(0f32)?
                    .to_dtype(DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()?;
                let nonzero = nonzero as u64;
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
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = serde_json::to_string_pretty(plan)?;
    write_atomic(&dir.join(PLAN_FILE), format!("{text}\n").as_bytes())
}

fn save_masks(dir: &Path, masks: &Masks) -> Result<()> {
    let path = dir.join(MASKS_FILE);
    // The safetensors writer already goes through a temporary file and a rename, but its
    // temporary file is created 0600: give the masks the permissions config.json got.
    masks.save(&path)?;
    let config = dir.join(models::checkpoint::CONFIG_FILE);
    if let Ok(meta) = fs::metadata(&config) {
        fs::set_permissions(&path, meta.permissions())
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    Ok(())
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

//! `prunebench retrain`: retrain a pruned checkpoint with FT, LRW, SLR or CLR (or any schedule).
//!
//! The dataset, split, seed and SGD settings default to those of the run the checkpoint was
//! pruned from (its `origin.json`); `lrw` and `ft` derive from that run's original schedule.

use std::path::PathBuf;

use anyhow::{Context, Result};
use experiments::spec::{RetrainSettings, retrain_checkpoint};
use train::ExperimentSpec;

use crate::cmd::train::execute;

#[derive(clap::Args)]
pub struct Args {
    /// The pruned checkpoint (from `prunebench prune`), any model or run directory, or
    /// hf://owner/name[@revision].
    #[arg(long, value_name = "DIR|hf://REPO")]
    checkpoint: PathBuf,
    #[command(flatten)]
    settings: Settings,
    /// The run directory (default: runs/<spec hash>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue a stopped run in --out.
    #[arg(long)]
    resume: bool,
    /// text or json (result.json).
    #[arg(long, value_enum, default_value = "text")]
    format: crate::cmd::Format,
}

/// How to retrain: shared by `retrain` and `iterate`.
#[derive(clap::Args, Clone)]
pub struct Settings {
    /// ft, lrw, slr, clr, with optional parameters (clr:max=0.05), or any schedule text.
    #[arg(long, default_value = "clr")]
    schedule: String,
    /// The retraining budget in epochs (40 in the paper's Table 2).
    #[arg(long, default_value_t = 40)]
    epochs: u32,
    /// The dataset (default: the origin run's).
    #[arg(long)]
    dataset: Option<String>,
    /// The dataset's folder (default: the origin run's).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed of the data order, augmentation and split (default: the origin run's).
    #[arg(long)]
    seed: Option<u32>,
    /// Training batch size (default: the origin run's, else 64).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Train on only the first N images of the training split (default: the origin run's).
    #[arg(long, value_name = "N")]
    limit_train: Option<usize>,
    #[command(flatten)]
    pub device: crate::cmd::DeviceArg,
}

pub fn run(args: Args) -> Result<()> {
    // First: a device that cannot run fails before a hub download.
    let device = args.settings.device.open()?;
    let (local, _) = crate::cmd::checkpoint(&args.checkpoint)?;
    let spec = retrain_spec(&local, &args.settings)?;
    execute(&spec, args.out, args.resume, &device, args.format)
}

impl Settings {
    /// The library's settings: the same struct `iterate` and the grids use.
    pub fn lib(&self) -> Result<RetrainSettings> {
        Ok(RetrainSettings {
            schedule: self.schedule.clone(),
            epochs: self.epochs,
            dataset: self.dataset.as_deref().map(str::parse).transpose()?,
            data_dir: self.data_dir.clone(),
            seed: self.seed,
            batch_size: self.batch_size,
            limit_train: self.limit_train,
        })
    }
}

/// The spec that retrains `checkpoint` as `s` says, the rest taken from its origin run.
pub fn retrain_spec(checkpoint: &std::path::Path, s: &Settings) -> Result<ExperimentSpec> {
    retrain_checkpoint(checkpoint, &s.lib()?)
        .with_context(|| format!("checkpoint {}", checkpoint.display()))
}

//! `prunebench eval`: accuracy and mean cross-entropy of a checkpoint on a dataset's test set (or
//! its validation split).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use datasets::DatasetKind;
use serde::Serialize;

use crate::output::{print_json, print_line};

#[derive(clap::Args)]
pub struct Args {
    /// A model directory (model.safetensors + config.json), a run directory (its best-val model)
    /// or a hub repo, hf://owner/name[@revision].
    #[arg(long, value_name = "DIR|hf://REPO")]
    checkpoint: PathBuf,
    /// cifar10, cifar100 or fashion-mnist.
    #[arg(long)]
    dataset: String,
    /// The folder holding the dataset.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Evaluate on the validation split of this seed instead of the test set.
    #[arg(long, value_name = "SEED")]
    val_split: Option<u32>,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    #[command(flatten)]
    device: crate::cmd::DeviceArg,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    format: crate::cmd::Format,
}

#[derive(Serialize)]
struct Report {
    checkpoint: PathBuf,
    model: String,
    dataset: DatasetKind,
    split: String,
    accuracy: f64,
    loss: f64,
    images: usize,
}

pub fn run(args: Args) -> Result<()> {
    let dataset: DatasetKind = args.dataset.parse()?;
    let device = args.device.open()?;
    let (local, _) = crate::cmd::checkpoint(&args.checkpoint)?;
    let (model, dir) = train::engine::load_model(&local, &device)
        .with_context(|| format!("checkpoint {}", args.checkpoint.display()))?;
    let config = model.config();
    if config.in_channels() != dataset.shape().channels
        || config.num_classes() != dataset.num_classes()
    {
        bail!(
            "{} is a {}-channel, {}-class model; {} has {} channels and {} classes",
            dir.display(),
            config.in_channels(),
            config.num_classes(),
            dataset,
            dataset.shape().channels,
            dataset.num_classes()
        );
    }
    let data = datasets::load(dataset, args.data_dir.as_deref())?;
    let (set, split) = match args.val_split {
        Some(seed) => {
            let s = datasets::split::train_val(data.train.len(), 0.1, seed);
            (data.train.subset(&s.val)?, format!("val (seed {seed})"))
        }
        None => (data.test, "test".to_string()),
    };
    let e = train::engine::evaluate(&model, &set, &dataset.normalize(), args.batch_size)?;
    let report = Report {
        checkpoint: dir,
        model: config.name(),
        dataset,
        split,
        accuracy: e.accuracy,
        loss: e.loss,
        images: e.images,
    };
    match args.format {
        crate::cmd::Format::Json => print_json(&report),
        crate::cmd::Format::Text => print_line(&format!(
            "{} on {} {}: accuracy {:.2}% ({} images), loss {:.4}",
            report.model,
            report.dataset,
            report.split,
            100.0 * report.accuracy,
            report.images,
            report.loss
        )),
    }
}

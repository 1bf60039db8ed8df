//! `prunebench data fetch|inspect`: get CIFAR, and count what a dataset folder holds.

use std::path::PathBuf;

use anyhow::{Context, Result};
use datasets::cifar::Cifar;
use datasets::fetch::{Archive, Fetched, fetch};
use datasets::{DatasetKind, ImageSet};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::output::{print_json, print_line};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Download an official CIFAR tarball, verify its published MD5 and extract it.
    Fetch(FetchArgs),
    /// Count the images per split (train/val as the paper's 90/10 split, test) and class, as JSON.
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// cifar10 or cifar100.
    dataset: String,
    /// The folder to extract into.
    #[arg(long, default_value = "data")]
    dir: PathBuf,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// cifar10, cifar100 or fashion-mnist.
    #[arg(long)]
    dataset: String,
    /// The folder holding the files (default: data/ for CIFAR, Debian's folder for Fashion-MNIST).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The seed of the 90/10 train/val split.
    #[arg(long, default_value_t = 1)]
    seed: u32,
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Fetch(args) => fetch_cmd(args),
        Command::Inspect(args) => inspect(args),
    }
}

fn fetch_cmd(args: FetchArgs) -> Result<()> {
    let cifar = match args.dataset.parse::<DatasetKind>()? {
        DatasetKind::Cifar10 => Cifar::Ten,
        DatasetKind::Cifar100 => Cifar::Hundred,
        DatasetKind::FashionMnist => anyhow::bail!(
            "fashion-mnist is not downloaded by prunebench: install Debian's dataset-fashion-mnist, or use the bundled sample in data/sample/fashion-mnist"
        ),
    };
    let archive = Archive::cifar(cifar);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    bar.set_message(format!("downloading {}", archive.url));
    let result = fetch(&archive, &args.dir, &mut |done, total| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match result? {
        Fetched::AlreadyPresent(p) => print_line(&format!("{} is already there", p.display())),
        Fetched::Extracted(p) => print_line(&format!(
            "verified MD5 {} and extracted {}",
            archive.md5,
            p.display()
        )),
    }
}

#[derive(Serialize)]
struct SplitCount {
    images: usize,
    per_class: Vec<usize>,
}

impl SplitCount {
    fn of(set: &ImageSet) -> Self {
        Self {
            images: set.len(),
            per_class: set.class_counts(),
        }
    }
}

#[derive(Serialize)]
struct Inspection {
    dataset: DatasetKind,
    dir: PathBuf,
    shape: [usize; 3],
    num_classes: usize,
    split_seed: u32,
    train: SplitCount,
    val: SplitCount,
    test: SplitCount,
}

fn inspect(args: InspectArgs) -> Result<()> {
    let kind: DatasetKind = args.dataset.parse()?;
    let dir = args.data_dir.unwrap_or_else(|| kind.default_dir());
    let data = datasets::load(kind, Some(&dir))?;
    let split = datasets::split::train_val(data.train.len(), 0.1, args.seed);
    let shape = kind.shape();
    let report = Inspection {
        dataset: kind,
        dir,
        shape: [shape.channels, shape.height, shape.width],
        num_classes: kind.num_classes(),
        split_seed: args.seed,
        train: SplitCount::of(&data.train.subset(&split.train)?),
        val: SplitCount::of(&data.train.subset(&split.val)?),
        test: SplitCount::of(&data.test),
    };
    print_json(&report)
}

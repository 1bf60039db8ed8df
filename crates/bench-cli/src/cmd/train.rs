//! `prunebench train`: train a model from scratch (or from a checkpoint) with a schedule, in a
//! resumable run directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use datasets::DatasetKind;
use experiments::recipe;
use indicatif::{ProgressBar, ProgressStyle};
use models::ModelConfig;
use schedules::Schedule;
use train::engine::{EpochMetrics, Observer, RunResult, TrainOptions, train};
use train::sgd::SgdConfig;
use train::{ExperimentSpec, Init};

use crate::output::{print_json, print_line};

#[derive(clap::Args)]
pub struct Args {
    /// Architecture: resnet20/32/44/56/110 (any 6n+2), vgg16, densenet40 (any 3n+4).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    arch: Option<String>,
    /// A model config (config.json of a checkpoint, e.g. a pruned one) to train from scratch.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// cifar10, cifar100 or fashion-mnist.
    #[arg(long)]
    dataset: String,
    /// The folder holding the dataset (default: data/ for CIFAR, Debian's folder for Fashion-MNIST).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Epochs [default: 160; with --scratch-budget, the base budget: 200 = 160 + 40 retraining].
    #[arg(long)]
    epochs: Option<u32>,
    /// Learning-rate schedule in its text form (see `prunebench schedule --help`) [default:
    /// step:0.1@0,0.01@80,0.001@120, or for --scratch-budget 0.1 divided by 10 at 50% and 75%].
    #[arg(long)]
    schedule: Option<String>,
    /// Train a pruned --config from scratch with Liu et al.'s budgets: e = the base epochs;
    /// b = the base epochs times the FLOPs ratio of the unpruned to the pruned model.
    #[arg(long, value_enum, requires = "config")]
    scratch_budget: Option<ScratchBudget>,
    /// Training batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed of the data order, augmentation and 90/10 split (and of the initialisation unless
    /// --init-seed is given).
    #[arg(long, default_value_t = 1)]
    seed: u32,
    /// Seed of the initial weights.
    #[arg(long)]
    init_seed: Option<u64>,
    /// Start from this checkpoint (a model directory, a run directory or hf://owner/name[@rev])
    /// instead of a fresh model.
    #[arg(long, value_name = "DIR|hf://REPO", conflicts_with_all = ["arch", "config"])]
    from: Option<PathBuf>,
    /// Train on only the first N images of the training split.
    #[arg(long, value_name = "N")]
    limit_train: Option<usize>,
    /// SGD momentum (CLR cycles it itself).
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// No training augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Soft filter pruning (SFP): after every epoch zero this fraction of each prunable layer's
    /// filters, those with the smallest l2 norm.
    #[arg(long, value_name = "RATE")]
    soft_prune: Option<f64>,
    /// The run directory (default: runs/<spec hash>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue a stopped run in --out.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    device: crate::cmd::DeviceArg,
    /// Print the experiment spec as JSON and exit without training.
    #[arg(long)]
    print_spec: bool,
    /// Print result.json at the end instead of a summary line.
    #[arg(long, value_enum, default_value = "text")]
    format: crate::cmd::Format,
}

/// Liu et al. 2019's baselines for a pruned architecture trained from scratch.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScratchBudget {
    /// Scratch-E: as many epochs as the base budget.
    E,
    /// Scratch-B: the same computation as the unpruned model's base budget.
    B,
}

pub fn run(args: Args) -> Result<()> {
    let dataset: DatasetKind = args.dataset.parse()?;
    let shape = dataset.shape();
    let (model, init) = match (&args.arch, &args.config, &args.from) {
        (_, _, Some(from)) => {
            let (from, _) = crate::cmd::checkpoint(from)?;
            // Only its config is needed here: the training loop loads it onto --device.
            let (m, dir) = train::engine::load_model(&from, &candle_core::Device::Cpu)
                .with_context(|| format!("checkpoint {}", from.display()))?;
            tracing::info!(dir = %dir.display(), "starting from checkpoint");
            // Named by content, so the run's hash does not depend on the path given.
            let id = experiments::provenance::checkpoint_id(&from)
                .with_context(|| format!("checkpoint {}", from.display()))?;
            (m.config().clone(), Init::checkpoint(from, id))
        }
        (Some(arch), _, None) => (
            ModelConfig::from_name(arch, dataset.num_classes(), shape.channels)?,
            Init::Fresh {
                seed: args.init_seed.unwrap_or(u64::from(args.seed)),
            },
        ),
        (None, Some(path), None) => {
            let config = ModelConfig::load(path)?;
            (
                config,
                Init::Fresh {
                    seed: args.init_seed.unwrap_or(u64::from(args.seed)),
                },
            )
        }
        (None, None, None) => bail!("give --arch, --config or --from"),
    };
    let (epochs, default_schedule) = match args.scratch_budget {
        Some(budget) => {
            let budget = match budget {
                ScratchBudget::E => recipe::ScratchBudget::E,
                ScratchBudget::B => recipe::ScratchBudget::B,
            };
            let (e, s) = recipe::scratch(&model, budget, args.epochs.unwrap_or(200))?;
            (e, s)
        }
        None => (
            args.epochs.unwrap_or(160),
            Schedule::original(schedules::Preset::Cifar),
        ),
    };
    let schedule = match &args.schedule {
        Some(text) => text.parse().with_context(|| format!("schedule '{text}'"))?,
        None => default_schedule,
    };
    let mut spec = ExperimentSpec::paper(dataset, model);
    spec.data_dir = args.data_dir;
    spec.init = init;
    spec.schedule = schedule;
    spec.epochs = epochs;
    spec.batch_size = args.batch_size;
    spec.seed = u64::from(args.seed);
    spec.split_seed = args.seed;
    spec.limit_train = args.limit_train;
    spec.sgd = SgdConfig {
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        nesterov: args.nesterov,
    };
    spec.soft_prune = args.soft_prune;
    if args.no_augment {
        spec.augment = datasets::transform::Augment::NONE;
    }
    if args.print_spec {
        return print_json(&spec);
    }
    let device = args.device.open()?;
    execute(&spec, args.out, args.resume, &device, args.format)
}

/// Runs `spec` in `out` (default `runs/<spec hash>`) on `device` with a progress bar, then
/// prints the result. The device is not part of the spec: it says how to run, not what.
pub fn execute(
    spec: &ExperimentSpec,
    out: Option<PathBuf>,
    resume: bool,
    device: &candle_core::Device,
    format: crate::cmd::Format,
) -> Result<()> {
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(spec.hash()));
    let opts = TrainOptions {
        resume,
        device: Some(device.clone()),
        ..Default::default()
    };
    let mut progress = Progress::new();
    let result = train(spec, &out, &opts, &mut progress);
    progress.finish();
    let result = result.with_context(|| format!("run {}", out.display()))?;
    crate::cmd::record_command(&out)?;
    report(&result, &out, format)
}

/// Prints a finished run's result: a summary line, or result.json.
fn report(result: &RunResult, out: &Path, format: crate::cmd::Format) -> Result<()> {
    match format {
        crate::cmd::Format::Json => print_json(result),
        crate::cmd::Format::Text => print_line(&format!(
            "{}: test accuracy {:.2}% at the best validation epoch {} (val {:.2}%), final test {:.2}%; run in {}",
            result.model,
            100.0 * result.test_acc,
            result.best_epoch,
            100.0 * result.best_val_acc,
            100.0 * result.final_test_acc,
            out.display()
        )),
    }
}

/// An indicatif bar per epoch, with the running loss and accuracy, and a line per finished epoch.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A hidden-until-used bar on standard error.
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn epoch_start(&mut self, epoch: u32, epochs: u32, steps: usize) {
        self.bar.reset();
        self.bar.set_length(steps as u64);
        self.bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
    }

    fn step(&mut self, iteration: usize, loss: f32, running_acc: f64) {
        self.bar.set_position(iteration as u64 + 1);
        self.bar
            .set_message(format!("loss {loss:.4} acc {:.1}%", 100.0 * running_acc));
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        let line = format!(
            "epoch {:>3}  lr {:.5}  loss {:.4}  train {:.2}%  val {:.2}%  test {:.2}%  {:.0} img/s  {:.1}s",
            m.epoch + 1,
            m.lr,
            m.train_loss,
            100.0 * m.train_acc,
            100.0 * m.val_acc,
            100.0 * m.test_acc,
            m.images_per_sec,
            m.seconds
        );
        // A hidden bar (stderr is not a terminal) prints nothing: the epoch lines still belong
        // in the log.
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

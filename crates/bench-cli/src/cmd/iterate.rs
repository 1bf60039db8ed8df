//! `prunebench iterate`: iterative pruning. Prune a little, retrain, repeat until the target
//! sparsity, each round recorded in `rounds.json`.
//!
//! Round `k` of `R` prunes to `1 - (1 - target)^(k / R)` of the conv weights (the same fraction
//! of the survivors every round), starting from the previous round's retrained model; weights
//! pruned earlier have magnitude 0 and stay pruned. A finished round is never redone, so a
//! killed iteration picks up where it stopped.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use experiments::iterate::Iterate;
use prune_core::WeightSaliency;
use train::engine::TrainOptions;

use crate::cmd::retrain::Settings;
use crate::cmd::train::Progress;
use crate::output::{print_json, print_line};

#[derive(clap::Args)]
pub struct Args {
    /// The trained model to start from (a run or model directory).
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// mwp (global magnitude) or random-weight.
    #[arg(long, default_value = "mwp")]
    method: String,
    /// The final fraction of conv weights removed, in (0, 1).
    #[arg(long, value_name = "P")]
    target: f64,
    /// Rounds of prune-then-retrain.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seed of random-weight scores.
    #[arg(long, default_value_t = 1)]
    score_seed: u64,
    #[command(flatten)]
    settings: Settings,
    /// The output directory: round-K/pruned, round-K/run, rounds.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// text or json (rounds.json).
    #[arg(long, value_enum, default_value = "text")]
    format: crate::cmd::Format,
}

pub fn run(args: Args) -> Result<()> {
    let saliency = match args.method.as_str() {
        "mwp" => WeightSaliency::Magnitude,
        "random-weight" => WeightSaliency::Random {
            seed: args.score_seed,
        },
        other => bail!(
            "iterate prunes weights: --method mwp or random-weight, not '{other}' (for filters, run prune and retrain)"
        ),
    };
    let job = Iterate {
        saliency,
        target: args.target,
        rounds: args.rounds,
        retrain: args.settings.lib()?,
    };
    job.check()?;
    // Opened once for every round. Pruning itself only reads weights, on the CPU.
    let device = args.settings.device.open()?;
    let start = crate::cmd::checkpoint(&args.checkpoint)?.0;
    let opts = TrainOptions {
        device: Some(device),
        ..Default::default()
    };
    let mut progress = Progress::new();
    let rounds = job.run(&start, &args.out, &opts, &mut progress, &mut |r| {
        eprintln!(
            "round {}/{}: sparsity {:.2}% (target {:.2}%), test accuracy {:.2}%",
            r.round,
            args.rounds,
            100.0 * r.sparsity,
            100.0 * r.target,
            100.0 * r.test_acc
        );
    });
    progress.finish();
    let rounds = rounds?;
    let record = args.out.join(experiments::iterate::ROUNDS_FILE);
    match args.format {
        crate::cmd::Format::Json => print_json(&rounds),
        crate::cmd::Format::Text => {
            let last = rounds.last().context("no round")?;
            print_line(&format!(
                "{} rounds to {:.2}% sparsity: test accuracy {:.2}%; rounds in {}",
                rounds.len(),
                100.0 * last.sparsity,
                100.0 * last.test_acc,
                record.display()
            ))
        }
    }
}

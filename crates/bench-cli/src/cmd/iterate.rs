//! `prunebench iterate`: iterative pruning. Prune a little, retrain, repeat until the target
//! sparsity, each round recorded in `rounds.json`.
//!
//! Round `k` of `R` prunes to `1 - (1 - target)^(k / R)` of the conv weights (the same fraction
//! of the survivors every round), starting from the previous round's retrained model; weights
//! pruned earlier have magnitude 0 and stay pruned. A finished round is never redone, so a
//! killed iteration picks up where it stopped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use train::engine::{RunResult, TrainOptions, train};
use train::prune::{PruneHow, PruneMethod, prune_checkpoint};
use train::run::{read_json, write_json};

use crate::cmd::retrain::{Settings, retrain_spec};
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

/// One line of `rounds.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Round {
    round: u32,
    /// The sparsity this round prunes to.
    target: f64,
    /// The conv-weight sparsity reached.
    sparsity: f64,
    params_after: u64,
    pruned: PathBuf,
    run: PathBuf,
    best_val_acc: f64,
    test_acc: f64,
}

pub fn run(args: Args) -> Result<()> {
    let method = match args.method.as_str() {
        "mwp" => PruneMethod::Mwp,
        "random-weight" => PruneMethod::RandomWeight,
        other => bail!(
            "iterate prunes weights: --method mwp or random-weight, not '{other}' (structured methods have fixed versions; run prune and retrain instead)"
        ),
    };
    if !(args.target > 0.0 && args.target < 1.0) {
        bail!("--target must be in (0, 1), got {}", args.target);
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    // Opened once for every round. Pruning itself only reads weights, on the CPU.
    let device = args.settings.device.open()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let record = args.out.join("rounds.json");
    let mut rounds: Vec<Round> = if record.is_file() {
        read_json(&record)?
    } else {
        Vec::new()
    };
    let start = crate::cmd::checkpoint(&args.checkpoint)?.0;
    let mut source = rounds
        .last()
        .map_or_else(|| start.clone(), |r| r.run.clone());
    for k in rounds.len() as u32 + 1..=args.rounds {
        let target = 1.0 - (1.0 - args.target).powf(f64::from(k) / f64::from(args.rounds));
        let dir = args.out.join(format!("round-{k}"));
        let (pruned, run) = (dir.join("pruned"), dir.join("run"));
        let how = PruneHow::Method {
            method,
            version: None,
            sparsity: Some(target),
            seed: args.score_seed,
        };
        let (outcome, _) = prune_checkpoint(&source, how, &pruned)
            .with_context(|| format!("round {k}: pruning {}", source.display()))?;
        let result = retrain(&pruned, &run, &args.settings, &device)
            .with_context(|| format!("round {k}"))?;
        let round = Round {
            round: k,
            target,
            sparsity: outcome.sparsity,
            params_after: outcome.params_after,
            pruned,
            run: run.clone(),
            best_val_acc: result.best_val_acc,
            test_acc: result.test_acc,
        };
        eprintln!(
            "round {k}/{}: sparsity {:.2}% (target {:.2}%), test accuracy {:.2}%",
            args.rounds,
            100.0 * round.sparsity,
            100.0 * target,
            100.0 * round.test_acc
        );
        rounds.push(round);
        write_json(&record, &rounds)?;
        source = run;
    }
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

fn retrain(pruned: &Path, run: &Path, settings: &Settings, device: &Device) -> Result<RunResult> {
    let spec = retrain_spec(pruned, settings)?;
    let opts = TrainOptions {
        resume: true,
        device: Some(device.clone()),
        ..Default::default()
    };
    let mut progress = Progress::new();
    let result = train(&spec, run, &opts, &mut progress);
    progress.finish();
    Ok(result?)
}

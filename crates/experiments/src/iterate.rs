//! Iterative pruning: prune a little, retrain, repeat until the target sparsity, each round
//! recorded in `rounds.json`.
//!
//! Round `k` of `R` prunes to `1 - (1 - target)^(k / R)` of the conv weights (the same fraction
//! of the survivors every round), starting from the previous round's retrained model; weights
//! pruned earlier have magnitude 0 and stay pruned. A finished round is never redone, so a
//! killed iteration picks up where it stopped.

use std::path::{Path, PathBuf};

use prune_core::WeightSaliency;
use serde::{Deserialize, Serialize};
use train::engine::{Observer, TrainOptions, train};
use train::run::{read_json, write_json};

use crate::prune::{Pruning, prune_checkpoint};
use crate::spec::{RetrainSettings, retrain_checkpoint};
use crate::{Error, Result};

/// The record of every finished round, in the output directory.
pub const ROUNDS_FILE: &str = "rounds.json";

/// An iterative pruning.
#[derive(Debug, Clone, PartialEq)]
pub struct Iterate {
    /// How weights are ranked every round.
    pub saliency: WeightSaliency,
    /// The final fraction of conv weights removed, in (0, 1).
    pub target: f64,
    /// Rounds of prune-then-retrain.
    pub rounds: u32,
    /// How every round retrains.
    pub retrain: RetrainSettings,
}

/// One line of `rounds.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based.
    pub round: u32,
    /// The sparsity this round prunes to.
    pub target: f64,
    /// The conv-weight sparsity reached.
    pub sparsity: f64,
    /// Non-zero parameters after pruning.
    pub params_after: u64,
    /// The pruned checkpoint.
    pub pruned: PathBuf,
    /// The retraining run.
    pub run: PathBuf,
    /// The run's best validation accuracy.
    pub best_val_acc: f64,
    /// Its test accuracy at that epoch.
    pub test_acc: f64,
}

/// The sparsity round `k` (1-based) of `rounds` prunes to: the same fraction of the survivors
/// every round, reaching `target` at the last.
pub fn round_target(target: f64, k: u32, rounds: u32) -> f64 {
    1.0 - (1.0 - target).powf(f64::from(k) / f64::from(rounds))
}

impl Iterate {
    /// Checks the request before any work.
    pub fn check(&self) -> Result<()> {
        if !(self.target > 0.0 && self.target < 1.0) {
            return Err(Error::Config(format!(
                "the target sparsity must be in (0, 1), got {}",
                self.target
            )));
        }
        if self.rounds == 0 {
            return Err(Error::Config(
                "iterative pruning needs at least 1 round".into(),
            ));
        }
        Ok(())
    }

    /// Runs the rounds not yet in `out/rounds.json`, from `start` (a trained run or model
    /// directory), training as `opts` says; `on_round` sees every round as it finishes.
    /// Returns every round, earlier calls' included.
    pub fn run(
        &self,
        start: &Path,
        out: &Path,
        opts: &TrainOptions,
        observer: &mut dyn Observer,
        on_round: &mut dyn FnMut(&Round),
    ) -> Result<Vec<Round>> {
        self.check()?;
        std::fs::create_dir_all(out).map_err(|source| Error::io(out.to_path_buf(), source))?;
        let record = out.join(ROUNDS_FILE);
        let mut rounds: Vec<Round> = if record.is_file() {
            read_json(&record)?
        } else {
            Vec::new()
        };
        let mut source = rounds
            .last()
            .map_or_else(|| start.to_path_buf(), |r| r.run.clone());
        let resume = TrainOptions {
            resume: true,
            ..opts.clone()
        };
        for k in rounds.len() as u32 + 1..=self.rounds {
            let target = round_target(self.target, k, self.rounds);
            let dir = out.join(format!("round-{k}"));
            let (pruned, run) = (dir.join("pruned"), dir.join("run"));
            let how = Pruning::Weights {
                saliency: self.saliency,
                sparsity: target,
            };
            let outcome = prune_checkpoint(&source, &how, &pruned)
                .map_err(|e| e.context(format!("round {k}: pruning {}", source.display())))?;
            let spec = retrain_checkpoint(&pruned, &self.retrain)
                .map_err(|e| e.context(format!("round {k}")))?;
            let result = train(&spec, &run, &resume, observer)
                .map_err(|e| Error::from(e).context(format!("round {k}: run {}", run.display())))?;
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
            on_round(&round);
            rounds.push(round);
            write_json(&record, &rounds)?;
            source = run;
        }
        Ok(rounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_remove_the_same_fraction_of_the_survivors() {
        let t: Vec<f64> = (1..=3).map(|k| round_target(0.875, k, 3)).collect();
        assert!((t[0] - 0.5).abs() < 1e-12 && (t[1] - 0.75).abs() < 1e-12);
        assert!(
            (t[2] - 0.875).abs() < 1e-12,
            "the last round reaches the target"
        );
        assert!((round_target(0.9, 1, 1) - 0.9).abs() < 1e-12);
    }
}

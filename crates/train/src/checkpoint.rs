//! Checkpoints of a run: which model is kept ([`KeepBest`], a pure rule) and the writer that
//! puts an epoch's model, optimizer state and hook files on disk and commits them
//! ([`Checkpointer`]).

use std::collections::HashMap;
use std::fs;

use candle_core::{Device, Tensor};
use models::Model;

use crate::hooks::StepHook;
use crate::run::{Best, EpochMetrics, RunDir, RunState, write_atomic, write_json};
use crate::sgd::Sgd;
use crate::{Error, Result};

/// The optimizer state file inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The reference code's rule for the reported model: the epoch with the highest validation
/// accuracy, the earlier one on a tie (`is_best = prec1 > best_prec1`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepBest;

impl KeepBest {
    /// The new best model if epoch `m` beats `best` (always, for the first epoch).
    pub fn update(&self, best: Option<&Best>, m: &EpochMetrics) -> Option<Best> {
        let improved = best.is_none_or(|b| m.val_acc > b.val_acc);
        improved.then(|| Best {
            epoch: m.epoch,
            val_acc: m.val_acc,
            test_acc: m.test_acc,
            test_loss: m.test_loss,
            dir: RunState::best_dir(m.epoch),
        })
    }

    /// The checkpoint directories a run keeps in `state`: the last epoch's (to resume from)
    /// and the best model's; every other one is stale.
    pub fn kept_dirs(&self, state: &RunState) -> Vec<String> {
        let mut dirs = vec![state.last_dir.clone()];
        dirs.extend(state.best.as_ref().map(|b| b.dir.clone()));
        dirs
    }
}

/// Writes checkpoints into a run directory.
pub struct Checkpointer<'a> {
    run: &'a RunDir,
    policy: KeepBest,
}

impl<'a> Checkpointer<'a> {
    /// A writer into `run`, keeping models as `policy` says.
    pub fn new(run: &'a RunDir, policy: KeepBest) -> Self {
        Self { run, policy }
    }

    /// Writes epoch `m.epoch`'s checkpoint (and its best-val model when it is the new best),
    /// then commits it in `state.json` and removes what the commit made stale.
    pub fn commit(
        &self,
        model: &Model,
        sgd: &Sgd,
        hooks: &[Box<dyn StepHook>],
        state: &mut RunState,
        m: &EpochMetrics,
    ) -> Result<()> {
        let last_dir = RunState::epoch_dir(m.epoch);
        let dir = self.run.join(&last_dir);
        self.save_model(model, hooks, &last_dir)?;
        let opt_path = dir.join(OPTIMIZER_FILE);
        // On the CPU first: candle's writer would copy GPU tensors itself but unwraps the result.
        let opt = sgd
            .state()
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_device(&Device::Cpu)?)))
            .collect::<Result<HashMap<String, Tensor>>>()?;
        // Through our atomic writer, so a full disk names the file and leaves no half file.
        let bytes = safetensors::serialize(&opt, None).map_err(|e| Error::Corrupt {
            path: opt_path.clone(),
            problem: e.to_string(),
        })?;
        write_atomic(&opt_path, &bytes)?;
        if let Some(best) = self.policy.update(state.best.as_ref(), m) {
            self.save_model(model, hooks, &best.dir)?;
            state.best = Some(best);
        }
        state.epochs_done = m.epoch + 1;
        state.last_dir = last_dir;
        write_json(&self.run.state(), state)?;
        self.run.prune_stale(&self.policy.kept_dirs(state))
    }

    fn save_model(&self, model: &Model, hooks: &[Box<dyn StepHook>], rel: &str) -> Result<()> {
        let dir = self.run.join(rel);
        // A directory left by a run killed while writing it is incomplete: start it afresh.
        let _ = fs::remove_dir_all(&dir);
        model.save(&dir)?;
        for hook in hooks {
            hook.save(&dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: u32, val_acc: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            lr: 0.1,
            train_loss: 1.0,
            train_acc: 0.5,
            val_acc,
            val_loss: 1.0,
            test_acc: val_acc / 2.0,
            test_loss: 1.5,
            seconds: 1.0,
            images_per_sec: 10.0,
        }
    }

    fn run(policy: KeepBest, vals: &[f64]) -> Option<Best> {
        let mut best = None;
        for (e, &v) in vals.iter().enumerate() {
            if let Some(b) = policy.update(best.as_ref(), &epoch(e as u32, v)) {
                best = Some(b);
            }
        }
        best
    }

    #[test]
    fn the_first_epoch_is_the_best_until_one_beats_it() {
        let b = run(KeepBest, &[0.3]).unwrap();
        assert_eq!((b.epoch, b.dir.as_str()), (0, "best-0000"));
        let b = run(KeepBest, &[0.3, 0.5, 0.4]).unwrap();
        assert_eq!(b.epoch, 1);
        assert_eq!(
            (b.val_acc, b.test_acc),
            (0.5, 0.25),
            "its own test accuracy"
        );
    }

    #[test]
    fn a_tie_keeps_the_earlier_epoch() {
        assert_eq!(run(KeepBest, &[0.5, 0.5, 0.5]).unwrap().epoch, 0);
        assert_eq!(run(KeepBest, &[0.2, 0.5, 0.5]).unwrap().epoch, 1);
    }

    #[test]
    fn the_last_and_the_best_checkpoints_are_kept() {
        let state = RunState {
            epochs_done: 4,
            global_step: 40,
            last_dir: RunState::epoch_dir(3),
            best: run(KeepBest, &[0.1, 0.6, 0.2, 0.3]),
        };
        assert_eq!(KeepBest.kept_dirs(&state), ["epoch-0003", "best-0001"]);
        let no_best = RunState {
            best: None,
            ..state
        };
        assert_eq!(KeepBest.kept_dirs(&no_best), ["epoch-0003"]);
    }
}

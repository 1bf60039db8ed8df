//! Runs the grid's tasks: a dependency-respecting queue served by `jobs` threads. A task whose
//! output is complete is skipped; a started run resumes.

use std::sync::{Condvar, Mutex};

use candle_core::Device;
use train::engine::{EpochMetrics, Observer, TrainOptions, train};

use crate::grid::{Grid, Node, Task, run_dir};
use crate::prune::prune_checkpoint;
use crate::{Error, Result, one_line};

/// What a call to [`execute`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Training runs that ran (at least partly) in this call.
    pub trained: usize,
    /// Pruning steps that ran in this call.
    pub pruned: usize,
    /// Tasks that were complete already.
    pub skipped: usize,
    /// Tasks that failed, or were not run because one they depend on failed.
    pub failed: Vec<String>,
}

impl Summary {
    /// The line a reproduction prints at its end, once its report (`wrote`) is written.
    pub fn line(&self, seconds: f64, wrote: &std::path::Path) -> String {
        format!(
            "{} runs trained, {} pruned, {} complete already, {} failed, in {seconds:.0}s; wrote {}",
            self.trained,
            self.pruned,
            self.skipped,
            self.failed.len(),
            wrote.display()
        )
    }

    /// The failed tasks as an error (finished runs count in the report either way, and a rerun
    /// retries the rest), or the summary.
    pub fn into_result(self) -> Result<Self> {
        if self.failed.is_empty() {
            return Ok(self);
        }
        Err(Error::Config(format!(
            "{} task(s) failed; rerun to retry them:\n{}",
            self.failed.len(),
            self.failed.join("\n")
        )))
    }
}

/// Runs one task (as `cargo xtask run-task` does on a cluster), training on `device`; pruning
/// only reads weights, on the CPU. Returns whether it did work.
pub fn run_task(task: &Task, label: &str, device: &Device) -> Result<bool> {
    match task {
        Task::Train { runs_dir, spec } => {
            let dir = run_dir(runs_dir, spec);
            if dir.join("result.json").is_file() {
                return Ok(false);
            }
            let opts = TrainOptions {
                resume: true,
                device: Some(device.clone()),
                ..Default::default()
            };
            let mut log = EpochLog { label };
            crate::provenance::record_host(
                &dir,
                &crate::provenance::Host::current(if device.is_cpu() { "cpu" } else { "gpu" }),
            )?;
            let result = train(spec, &dir, &opts, &mut log)
                .map_err(|e| Error::from(e).context(format!("{label}: run {}", dir.display())))?;
            eprintln!(
                "{label}: test {:.2}% (best val epoch {}) in {}",
                100.0 * result.test_acc,
                result.best_epoch,
                dir.display()
            );
            Ok(true)
        }
        Task::Prune {
            from,
            version,
            ratio,
            out,
        } => {
            if out.join(crate::provenance::ORIGIN_FILE).is_file() {
                return Ok(false);
            }
            // origin.json is written last, so a pruning killed half-way is simply redone.
            let how = crate::grid::pfec_pruning(*version, *ratio);
            let outcome = prune_checkpoint(from, &how, out)
                .map_err(|e| e.context(format!("{label}: pruning {}", from.display())))?;
            eprintln!(
                "{label}: {} -> {} ({} params, {:.1}% fewer FLOPs)",
                outcome.config_before.name(),
                outcome.config_after.name(),
                outcome.params_after,
                100.0 * (1.0 - outcome.flops_after as f64 / outcome.config_before.flops() as f64)
            );
            Ok(true)
        }
    }
}

struct EpochLog<'a> {
    label: &'a str,
}

impl Observer for EpochLog<'_> {
    fn epoch_end(&mut self, m: &EpochMetrics) {
        eprintln!(
            "{}: epoch {:>3} lr {:.5} loss {:.4} val {:.2}% test {:.2}% {:.1} img/s {:.1}s",
            self.label,
            m.epoch + 1,
            m.lr,
            m.train_loss,
            100.0 * m.val_acc,
            100.0 * m.test_acc,
            m.images_per_sec,
            m.seconds
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
}

/// Runs every task of `grid` with up to `jobs` at once on `device` (one GPU shared by the jobs),
/// in dependency order; a failure stops only the tasks that depend on it.
pub fn execute(grid: &Grid, jobs: usize, device: &Device) -> Summary {
    // Runs the results already record are done, whether or not their folders are here.
    let mut start = Summary::default();
    let initial: Vec<State> = grid
        .nodes
        .iter()
        .map(|n| {
            if n.recorded {
                start.skipped += 1;
                State::Done
            } else {
                State::Waiting
            }
        })
        .collect();
    let states = Mutex::new((initial, start));
    let wake = Condvar::new();
    let next = |states: &mut Vec<State>, summary: &mut Summary| -> Option<Option<usize>> {
        // Propagate failures, then pick the first ready node.
        let mut changed = true;
        while changed {
            changed = false;
            for (i, node) in grid.nodes.iter().enumerate() {
                if states[i] == State::Waiting
                    && node.deps.iter().any(|&d| states[d] == State::Failed)
                {
                    states[i] = State::Failed;
                    summary
                        .failed
                        .push(format!("{}: not run, a task it needs failed", node.label()));
                    changed = true;
                }
            }
        }
        if states
            .iter()
            .all(|s| matches!(s, State::Done | State::Failed))
        {
            return None;
        }
        let ready = grid
            .nodes
            .iter()
            .enumerate()
            .position(|(i, n): (usize, &Node)| {
                states[i] == State::Waiting && n.deps.iter().all(|&d| states[d] == State::Done)
            });
        Some(ready)
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let picked = {
                        let mut guard = states.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            let (s, summary) = &mut *guard;
                            match next(s, summary) {
                                None => break None,
                                Some(Some(i)) => {
                                    s[i] = State::Running;
                                    break Some(i);
                                }
                                Some(None) => {
                                    guard = wake.wait(guard).unwrap_or_else(|p| p.into_inner());
                                }
                            }
                        }
                    };
                    let Some(i) = picked else {
                        wake.notify_all();
                        return;
                    };
                    let node = &grid.nodes[i];
                    let label = node.label();
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_task(&node.task, &label, device)
                    }))
                    .unwrap_or_else(|_| Err(Error::Config(format!("{label}: panicked"))));
                    let mut guard = states.lock().unwrap_or_else(|p| p.into_inner());
                    let (s, summary) = &mut *guard;
                    match outcome {
                        Ok(worked) => {
                            s[i] = State::Done;
                            match (worked, &node.task) {
                                (false, _) => summary.skipped += 1,
                                (true, Task::Train { .. }) => summary.trained += 1,
                                (true, Task::Prune { .. }) => summary.pruned += 1,
                            }
                        }
                        Err(e) => {
                            let line = one_line(&e);
                            eprintln!("{line}");
                            s[i] = State::Failed;
                            summary.failed.push(line);
                        }
                    }
                    drop(guard);
                    wake.notify_all();
                }
            });
        }
    });
    states.into_inner().unwrap_or_else(|p| p.into_inner()).1
}

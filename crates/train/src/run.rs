//! The run directory: spec, metrics, checkpoints and the result, each written atomically.
//!
//! ```text
//! runs/x/
//!   spec.json          the ExperimentSpec
//!   metrics.jsonl      one EpochMetrics per line
//!   epoch-0007/        the last checkpoint: model.safetensors, config.json, optimizer.safetensors
//!   best-0005/         the best-val model: model.safetensors, config.json
//!   state.json         which checkpoint is current (written last: the commit point)
//!   result.json        the summary, once the run is finished
//! ```
//!
//! A checkpoint directory is complete before `state.json` names it, and `state.json` is replaced
//! by a rename, so a run killed at any moment resumes from its last complete epoch.

use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Writes `bytes` to `path` through a temporary file beside it and a rename: readers see the old
/// file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    files::write_atomic(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses a JSON file we wrote (a spec, a state, a result: small files, capped at
/// [`files::SMALL`]), naming the file in any error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = files::read_to_string(path, files::SMALL).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

/// Writes a value as pretty JSON, atomically. The text is parsed back first: serde_json writes
/// a NaN as `null`, which no reader accepts, so a value that would not read back is refused
/// before the file is touched.
pub fn write_json<T: Serialize + DeserializeOwned>(path: &Path, value: &T) -> Result<()> {
    let corrupt = |problem: String| Error::Corrupt {
        path: path.to_path_buf(),
        problem,
    };
    let mut text = serde_json::to_string_pretty(value).map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_str::<T>(&text).map_err(|e| {
        corrupt(format!(
            "refusing to write a file that could not be read back ({e}; a NaN or infinite number?)"
        ))
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch, 0-based.
    pub epoch: u32,
    /// Learning rate at the epoch's first iteration.
    pub lr: f64,
    /// Mean training cross-entropy over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (augmented images, training-mode BatchNorm).
    pub train_acc: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Mean validation cross-entropy.
    pub val_loss: f64,
    /// Test accuracy.
    pub test_acc: f64,
    /// Mean test cross-entropy.
    pub test_loss: f64,
    /// Wall-clock seconds for the epoch, evaluation included.
    pub seconds: f64,
    /// Training images per second (evaluation excluded).
    pub images_per_sec: f64,
}

/// The best validation accuracy so far and where its model is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The epoch (0-based) it was reached at.
    pub epoch: u32,
    /// Validation accuracy, in [0, 1].
    pub val_acc: f64,
    /// Test accuracy of that model, in [0, 1].
    pub test_acc: f64,
    /// Mean test cross-entropy of that model.
    pub test_loss: f64,
    /// The model's directory, relative to the run directory.
    pub dir: String,
}

/// What `state.json` records: the last complete epoch and where its checkpoint is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epochs_done: u32,
    /// Iterations completed.
    pub global_step: u64,
    /// The last checkpoint's directory, relative to the run directory.
    pub last_dir: String,
    /// The best-val model so far.
    pub best: Option<Best>,
}

impl RunState {
    /// The checkpoint directory of epoch `epoch` (0-based).
    pub fn epoch_dir(epoch: u32) -> String {
        format!("epoch-{epoch:04}")
    }

    /// The best-val model directory of epoch `epoch` (0-based).
    pub fn best_dir(epoch: u32) -> String {
        format!("best-{epoch:04}")
    }

    /// Checks what can be checked without the spec: the directories named are the ones the
    /// engine writes for those epochs (so never a path outside the run), and the numbers are in
    /// range. `path` is the file, for the error.
    pub fn check(&self, path: &Path) -> Result<()> {
        let bad = |problem: String| Error::Corrupt {
            path: path.to_path_buf(),
            problem,
        };
        if self.epochs_done == 0 {
            return Err(bad("epochs_done is 0: no epoch was committed".into()));
        }
        let last = Self::epoch_dir(self.epochs_done - 1);
        if self.last_dir != last {
            return Err(bad(format!(
                "last_dir is {:?}; after {} epoch(s) it is {last:?}",
                self.last_dir, self.epochs_done
            )));
        }
        if let Some(b) = &self.best {
            if b.epoch >= self.epochs_done {
                return Err(bad(format!(
                    "the best epoch {} is not among the {} done",
                    b.epoch, self.epochs_done
                )));
            }
            if b.dir != Self::best_dir(b.epoch) {
                return Err(bad(format!(
                    "best.dir is {:?}; for epoch {} it is {:?}",
                    b.dir,
                    b.epoch,
                    Self::best_dir(b.epoch)
                )));
            }
            let unit = |x: f64| (0.0..=1.0).contains(&x);
            if !unit(b.val_acc) || !unit(b.test_acc) || !(b.test_loss.is_finite()) {
                return Err(bad(format!(
                    "the best model's numbers are out of range (val {}, test {}, loss {})",
                    b.val_acc, b.test_acc, b.test_loss
                )));
            }
        }
        Ok(())
    }

    /// [`check`](Self::check), and that the state belongs to a run of `epochs` epochs of
    /// `steps_per_epoch` iterations each.
    pub fn check_for(&self, path: &Path, epochs: u32, steps_per_epoch: u64) -> Result<()> {
        self.check(path)?;
        let bad = |problem: String| Error::Corrupt {
            path: path.to_path_buf(),
            problem,
        };
        if self.epochs_done > epochs {
            return Err(bad(format!(
                "{} epochs done, but the spec has {epochs}",
                self.epochs_done
            )));
        }
        let steps = u64::from(self.epochs_done).checked_mul(steps_per_epoch);
        if steps != Some(self.global_step) {
            return Err(bad(format!(
                "global_step is {}; {} epoch(s) of {steps_per_epoch} iterations make {}",
                self.global_step,
                self.epochs_done,
                steps.map_or("more than 2^64".to_string(), |s| s.to_string())
            )));
        }
        Ok(())
    }
}

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (not created).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `spec.json`.
    pub fn spec(&self) -> PathBuf {
        self.root.join("spec.json")
    }

    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// `result.json`.
    pub fn result(&self) -> PathBuf {
        self.root.join("result.json")
    }

    /// A directory inside the run.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The metrics of the epochs before `epochs_done` (lines past it belong to an epoch that
    /// was not committed before a kill, and will be redone).
    pub fn read_metrics(&self, epochs_done: u32) -> Result<Vec<EpochMetrics>> {
        let path = self.metrics();
        if !path.is_file() {
            return Ok(Vec::new());
        }
        // One line per epoch: a few hundred bytes each.
        let text = files::read_to_string(&path, files::SMALL).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let m: EpochMetrics = serde_json::from_str(line).map_err(|e| Error::Corrupt {
                path: path.clone(),
                problem: e.to_string(),
            })?;
            if m.epoch < epochs_done {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Writes `metrics.jsonl`, one line per epoch, atomically.
    pub fn write_metrics(&self, history: &[EpochMetrics]) -> Result<()> {
        let mut text = Vec::new();
        for m in history {
            serde_json::to_writer(&mut text, m).map_err(|e| Error::Corrupt {
                path: self.metrics(),
                problem: e.to_string(),
            })?;
            text.push(b'\n');
        }
        write_atomic(&self.metrics(), &text)
    }

    /// The state, if the run has completed an epoch; checked (see [`RunState::check`]), so the
    /// directories it names lie inside the run.
    pub fn read_state(&self) -> Result<Option<RunState>> {
        let path = self.state();
        if !path.exists() {
            return Ok(None);
        }
        let state: RunState = read_json(&path)?;
        state.check(&path)?;
        Ok(Some(state))
    }

    /// Removes the checkpoint directories not in `keep` (older epochs, older bests, and any
    /// half-written one from a killed run).
    pub fn prune_stale(&self, keep: &[String]) -> Result<()> {
        let entries = fs::read_dir(&self.root).map_err(|source| Error::Io {
            path: self.root.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("epoch-") || name.starts_with("best-");
            if ours && !keep.contains(&name) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

/// The model directory a path stands for: a run directory's best-val model (its last checkpoint
/// if no epoch has improved on validation), or the path itself.
pub fn resolve_model_dir(path: &Path) -> Result<PathBuf> {
    let run = RunDir::new(path);
    match run.read_state()? {
        Some(state) => Ok(run.join(state.best.map_or(state.last_dir, |b| b.dir).as_str())),
        None => Ok(path.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_would_not_read_back_is_not_written() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("best.json");
        let best = Best {
            epoch: 0,
            val_acc: 0.5,
            test_acc: 0.5,
            test_loss: f64::NAN,
            dir: RunState::best_dir(0),
        };
        let e = write_json(&path, &best).unwrap_err();
        assert!(e.to_string().contains("could not be read back"), "{e}");
        assert!(!path.exists());
        let fine = Best {
            test_loss: 0.25,
            ..best
        };
        write_json(&path, &fine).unwrap();
        assert_eq!(read_json::<Best>(&path).unwrap(), fine);
    }
}

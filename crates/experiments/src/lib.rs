//! What to run, for prunebench: the paper's rules written once.
//!
//! - [`spec`]: the experiment specs the paper's protocol makes ([`spec::retrain`],
//!   [`spec::scratch`]) and the budgets and schedules behind them ([`recipe`]);
//! - [`prune`]: typed pruning requests ([`prune::Pruning`]) applied to a model or checkpoint;
//! - [`provenance`]: where a checkpoint came from (`origin.json`, `command.txt`) and what it is
//!   by content ([`provenance::checkpoint_id`]);
//! - [`iterate`]: iterative pruning's rounds, resumable;
//! - [`grid`], [`exec`], [`slurm`]: a reproduction as a graph of tasks keyed by spec hashes, its
//!   local executor and its Slurm emission.
//!
//! `prunebench` and `cargo xtask` parse arguments and print; every rule is here.
//!
//! ```no_run
//! use experiments::{prune::Pruning, spec};
//! use prune_core::{FilterSaliency, PfecVersion};
//!
//! // Prune the best model of a finished run with PFEC-B, then retrain it with CLR for 40 epochs.
//! let run = std::path::Path::new("runs/resnet56");
//! let pruning = Pruning::pfec(Some(PfecVersion::B));
//! let pruned = experiments::prune::prune_checkpoint(run, &pruning, "pruned/r56-b".as_ref())?;
//! let start = experiments::provenance::start_of("pruned/r56-b".as_ref())?;
//! let origin = start.origin.clone().expect("pruned from a run");
//! let retrain = spec::retrain(&origin, &start, "clr", 40)?;
//! println!("{} -> {}", pruned.config_before.name(), retrain.hash());
//! # Ok::<(), experiments::Error>(())
//! ```

pub mod exec;
pub mod grid;
pub mod iterate;
pub mod provenance;
pub mod prune;
pub mod recipe;
pub mod slurm;
pub mod spec;

use std::path::PathBuf;

use thiserror::Error;

pub use train::{CheckpointId, ExperimentSpec, Init};

/// What can go wrong while deciding or running an experiment.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid request or setting.
    #[error("{0}")]
    Config(String),
    /// Something failed in a step named by `context` (a round, a task).
    #[error("{context}")]
    In {
        /// Where.
        context: String,
        /// What failed.
        source: Box<Error>,
    },
    /// Training failed (or a run file could not be read or written). Boxed: train's error is
    /// large, and every result here carries this one.
    #[error(transparent)]
    Train(Box<train::Error>),
    /// A model error (checkpoint, config).
    #[error(transparent)]
    Model(#[from] models::Error),
    /// A pruning error.
    #[error(transparent)]
    Prune(#[from] prune_core::Error),
    /// A schedule error.
    #[error(transparent)]
    Schedule(#[from] schedules::Error),
    /// A dataset error.
    #[error(transparent)]
    Data(#[from] datasets::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<train::Error> for Error {
    fn from(e: train::Error) -> Self {
        Self::Train(Box::new(e))
    }
}

impl Error {
    /// A file that could not be read or written (train's error, so both crates say it alike).
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::from(train::Error::Io {
            path: path.into(),
            source,
        })
    }

    /// A file that could not be parsed or made.
    pub fn corrupt(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::from(train::Error::Corrupt {
            path: path.into(),
            problem: problem.into(),
        })
    }

    /// This error inside `context` (`round 2`, `prune resnet56-B seed 1`).
    pub fn context(self, context: impl Into<String>) -> Self {
        Self::In {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `a: b: c`, as a log or a task list shows it.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

//! Training for prunebench: SGD with PyTorch's exact update ([`sgd`]), the training loop driven
//! by a `schedules` learning-rate schedule ([`engine`]) with pruning rules as step [`hooks`],
//! evaluation, and a run directory of resumable checkpoints ([`run`], [`checkpoint`]), all
//! described by an [`ExperimentSpec`]. What to run (the paper's recipes, pruning a checkpoint,
//! grids) is the `experiments` crate's.
//!
//! ```no_run
//! use datasets::DatasetKind;
//! use models::ModelConfig;
//! use train::{ExperimentSpec, engine::{TrainOptions, Silent, train}};
//!
//! let model = ModelConfig::from_name("resnet56", 10, 3)?;
//! let spec = ExperimentSpec::paper(DatasetKind::Cifar10, model);
//! let result = train(&spec, "runs/resnet56".as_ref(), &TrainOptions::default(), &mut Silent)?;
//! println!("test accuracy at the best validation epoch: {}", result.test_acc);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod checkpoint;
pub mod device;
pub mod engine;
pub mod hooks;
pub mod run;
pub mod sgd;
mod spec;

use std::path::PathBuf;

use thiserror::Error;

pub use spec::{CheckpointId, ExperimentSpec, Init};

/// What can go wrong while training.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid setting.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A run file that does not parse.
    #[error("{}: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {value} at epoch {epoch}, iteration {iteration} (step {step}); {kept}"
    )]
    NonFinite {
        /// Epoch, 0-based.
        epoch: u32,
        /// Iteration within the epoch, 0-based.
        iteration: usize,
        /// Global iteration.
        step: u64,
        /// The loss.
        value: f32,
        /// Where the last good checkpoint is.
        kept: String,
    },
    /// An evaluation loss that is NaN or infinite: the model has diverged.
    #[error("the {split} loss is {value}{context}: the model has diverged")]
    NonFiniteEval {
        /// `validation`, `test` or `evaluation`.
        split: &'static str,
        /// The mean loss.
        value: f64,
        /// Where and when (empty outside a run).
        context: String,
    },
    /// A run directory that holds another experiment, or a finished or started run that was
    /// not asked to resume.
    #[error("{0}")]
    RunDir(String),
    /// A model error (checkpoint, config).
    #[error(transparent)]
    Model(#[from] models::Error),
    /// A dataset error.
    #[error(transparent)]
    Data(#[from] datasets::Error),
    /// A pruning error (masks).
    #[error(transparent)]
    Prune(#[from] prune_core::Error),
    /// A schedule error.
    #[error(transparent)]
    Schedule(#[from] schedules::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A device name that is not `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device '{0}': use cpu, cuda or cuda:N (N = the GPU's index, from 0)")]
    UnknownDevice(String),
    /// A CUDA device asked of a build without candle's CUDA backend.
    #[error(
        "device '{device}': this binary was built without CUDA support; build one with \
         scripts/build-cuda.sh (cargo build --features cuda, see docs/cuda.md), or use the cpu"
    )]
    NoCuda {
        /// The device asked for.
        device: String,
    },
    /// A CUDA device that the CUDA build could not open (no such GPU, no driver).
    #[error("device '{device}': cannot open it")]
    CudaDevice {
        /// The device asked for.
        device: String,
        /// candle's (cudarc's) error.
        source: candle_core::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's error type: each variant names the file or tensor at fault.

use std::path::PathBuf;

/// What went wrong building, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config that describes no buildable network (bad depth, wrong number of widths, ...).
    #[error("invalid model config: {0}")]
    Config(String),
    /// Reading or writing a file failed (the cause, printed after it in an error chain, says
    /// why: not found, a FIFO, over its size cap, ...).
    #[error("{}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file that is not a readable safetensors file (truncated, corrupt header, offsets that
    /// do not cover the file, ...).
    #[error("{}: not a valid safetensors file: {detail}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong. A string, not the reader's error as a source: safetensors' errors
        /// print their own cause again, so a chain would show it twice.
        detail: String,
    },
    /// A config stored in a checkpoint (metadata or `config.json`) that does not parse.
    #[error("{}: bad model config: {detail}", file.display())]
    BadConfig {
        /// The file holding the config.
        file: PathBuf,
        /// Why it was rejected.
        detail: String,
    },
    /// A weights file with no config in its metadata and no `config.json` beside it.
    #[error(
        "{}: no model config (neither `{}` metadata nor config.json beside it)",
        file.display(),
        crate::checkpoint::CONFIG_METADATA_KEY
    )]
    NoConfig {
        /// The weights file.
        file: PathBuf,
    },
    /// A tensor the config needs is absent.
    #[error("{origin}: tensor `{tensor}` is missing")]
    MissingTensor {
        /// The file (or `in-memory tensors`).
        origin: String,
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor the config does not have.
    #[error("{origin}: unexpected tensor `{tensor}` (not part of this model config)")]
    UnexpectedTensor {
        /// The file (or `in-memory tensors`).
        origin: String,
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor whose shape differs from what the config implies.
    #[error("{origin}: tensor `{tensor}` has shape {found:?}, the config needs {expected:?}")]
    Shape {
        /// The file (or `in-memory tensors`).
        origin: String,
        /// The tensor's name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A tensor stored in a dtype that does not convert to f32 without loss (not F32, F16, BF16).
    #[error(
        "{origin}: tensor `{tensor}` has dtype {found}, expected F32 (F16 and BF16 are widened)"
    )]
    Dtype {
        /// The file (or `in-memory tensors`).
        origin: String,
        /// The tensor's name.
        tensor: String,
        /// The dtype found.
        found: String,
    },
    /// A weight that is NaN or infinite: a diverged run, or a corrupt file. Such a model
    /// evaluates to chance with a NaN loss, so it is refused where it is read or written.
    #[error(
        "{origin}: tensor `{tensor}` holds {value} at element {index} (weights must be finite)"
    )]
    NonFinite {
        /// The file (or `tensors to save`).
        origin: String,
        /// The tensor's name.
        tensor: String,
        /// The first faulty element, in row-major order.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A BatchNorm running variance below zero: no training produces one, and normalising by
    /// its square root gives NaN.
    #[error(
        "{origin}: BatchNorm running variance `{tensor}` is {value} at element {index} (must be at least 0)"
    )]
    NegativeVariance {
        /// The file (or `tensors to save`).
        origin: String,
        /// The tensor's name.
        tensor: String,
        /// The first faulty element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// Pruning failed (a plan that does not fit the model, a version it lacks, ...).
    #[error(transparent)]
    Prune(#[from] prune_core::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Training for prunebench: SGD with PyTorch's exact update, the training loop driven by a
//! `schedules` learning-rate schedule, evaluation and resumable checkpoints.
//!
//! See `DESIGN.md`, section 6.

pub mod sgd;

use thiserror::Error;

/// What can go wrong while training.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid setting.
    #[error("{0}")]
    Config(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

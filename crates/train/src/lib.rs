//! Training for prunebench: SGD with PyTorch's exact update, the training loop driven by a
//! `schedules` learning-rate schedule, evaluation and resumable checkpoints.
//!
//! See `DESIGN.md`, section 6. Nothing is implemented yet.

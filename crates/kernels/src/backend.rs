//! The runtime switch between candle's built-in ops and ours.
//!
//! The process-wide choice comes from `PRUNEBENCH_KERNELS` (`ours`, the default, or `candle`),
//! read once (an unknown value is ignored here; binaries refuse it with [`crate::check_env`]),
//! or from [`set_backend`]; [`with_backend`] overrides it for the calling thread only,
//! so a benchmark or a test can run both in one process without racing other threads. The choice
//! is made when an op is recorded (forward), so the backward pass follows it automatically.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::Device;

/// Which implementation the models use for convolutions and BatchNorm on CPU tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// candle's built-in `conv2d` and BatchNorm from generic ops.
    Candle,
    /// This crate's kernels (on CPU tensors; other devices always use candle's).
    Ours,
}

/// The environment variable read once for the process-wide default.
pub const ENV_VAR: &str = "PRUNEBENCH_KERNELS";

/// The values [`Backend::parse`] takes, as an error message lists them (it also takes the
/// aliases `builtin`, `built-in` and `kernels`).
pub(crate) const BACKEND_NAMES: &str = "candle, ours";

impl Backend {
    /// Parses `candle` or `ours` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "candle" | "builtin" | "built-in" => Some(Self::Candle),
            "ours" | "kernels" => Some(Self::Ours),
            _ => None,
        }
    }

    /// The backend `PRUNEBENCH_KERNELS` asks for: `Ok(None)` when unset, an error naming the
    /// value when it is neither `candle` nor `ours` or not UTF-8 (binaries report it, see
    /// [`crate::check_env`]; [`backend`] ignores it).
    pub fn from_env() -> Result<Option<Self>, crate::EnvError> {
        crate::env::read(ENV_VAR, BACKEND_NAMES, Self::parse)
    }

    /// Its name as `PRUNEBENCH_KERNELS` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Candle => "candle",
            Self::Ours => "ours",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// 0: not decided yet (read the environment on first use), 1: candle, 2: ours.
static GLOBAL: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static OVERRIDE: Cell<Option<Backend>> = const { Cell::new(None) };
}

fn encode(b: Backend) -> u8 {
    match b {
        Backend::Candle => 1,
        Backend::Ours => 2,
    }
}

/// The backend in force on this thread: a [`with_backend`] override, else the process-wide one
/// ([`set_backend`], else `PRUNEBENCH_KERNELS`, else [`Backend::Ours`]).
pub fn backend() -> Backend {
    if let Some(b) = OVERRIDE.with(Cell::get) {
        return b;
    }
    match GLOBAL.load(Ordering::Relaxed) {
        1 => Backend::Candle,
        2 => Backend::Ours,
        _ => {
            // A bad value falls back to the default rather than failing a library call.
            let b = Backend::from_env().ok().flatten().unwrap_or(Backend::Ours);
            // A racing `set_backend` wins over the environment.
            let _ = GLOBAL.compare_exchange(0, encode(b), Ordering::Relaxed, Ordering::Relaxed);
            backend()
        }
    }
}

/// Sets the process-wide backend (threads inside [`with_backend`] keep their override).
pub fn set_backend(b: Backend) {
    GLOBAL.store(encode(b), Ordering::Relaxed);
}

/// Runs `f` with `b` in force on the calling thread, then restores the previous choice (also
/// when `f` panics).
pub fn with_backend<R>(b: Backend, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Backend>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(b))));
    f()
}

/// Whether tensors on `device` should go through this crate's kernels now: a CPU device and the
/// [`Backend::Ours`] backend. CUDA and Metal tensors always take candle's ops.
pub fn use_ours(device: &Device) -> bool {
    device.is_cpu() && backend() == Backend::Ours
}

/// Who runs a training step's backward pass where both can: our own backward pass end to end
/// (`models::FastStep`, CIFAR ResNets on CPU tensors; the default), which accumulates no
/// per-node gradients and reuses its buffers between batches, or candle's autograd over our
/// ops. Both give the same numbers bit for bit (`models/tests/fast_step.rs`);
/// `PRUNEBENCH_BACKWARD=candle|ours` chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backward {
    /// candle's `Tensor::backward`.
    Candle,
    /// Our own backward pass where the model has one, candle's elsewhere.
    Ours,
}

/// The environment variable that chooses the [`Backward`] (read once per process).
pub const BACKWARD_VAR: &str = "PRUNEBENCH_BACKWARD";

/// The values [`Backward::parse`] takes.
pub(crate) const BACKWARD_NAMES: &str = "candle, ours";

impl Backward {
    /// Parses `candle` or `ours` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "candle" | "autograd" => Some(Self::Candle),
            "ours" => Some(Self::Ours),
            _ => None,
        }
    }

    /// The choice `PRUNEBENCH_BACKWARD` makes: `Ok(None)` when unset, an error naming the value
    /// when it is not a known one.
    pub fn from_env() -> Result<Option<Self>, crate::EnvError> {
        crate::env::read(BACKWARD_VAR, BACKWARD_NAMES, Self::parse)
    }

    /// The process's choice: `PRUNEBENCH_BACKWARD`, else [`Backward::Ours`] (a bad value
    /// falls back to it here; binaries refuse it at start-up with [`crate::check_env`]).
    pub fn current() -> Self {
        static CHOICE: std::sync::OnceLock<Backward> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| Self::from_env().ok().flatten().unwrap_or(Self::Ours))
    }

    /// Its name as `PRUNEBENCH_BACKWARD` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Candle => "candle",
            Self::Ours => "ours",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_override_nests_and_restores() {
        with_backend(Backend::Candle, || {
            assert_eq!(backend(), Backend::Candle);
            with_backend(Backend::Ours, || assert_eq!(backend(), Backend::Ours));
            assert_eq!(backend(), Backend::Candle);
            assert!(!use_ours(&Device::Cpu));
        });
        with_backend(Backend::Ours, || assert!(use_ours(&Device::Cpu)));
    }

    #[test]
    fn parses_names() {
        assert_eq!(Backend::parse(" Candle "), Some(Backend::Candle));
        assert_eq!(Backend::parse("ours"), Some(Backend::Ours));
        assert_eq!(Backend::parse("cudnn"), None);
    }
}

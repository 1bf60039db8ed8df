//! Which of our instruction-set paths the kernels take, and a switch to cap it.
//!
//! By default the kernels use the widest path this CPU has. Capping it makes one machine run
//! the code a smaller CPU would: `PRUNEBENCH_ISA=portable` (read once) or [`set_isa`] for the
//! process, [`with_isa`] for the calling thread only, so a test can run one op through every
//! path and compare without racing other tests. As with [`crate::with_backend`], the path is
//! chosen when an op is recorded (forward) and stored in it, so its backward pass takes the
//! same one, and the rayon threads the op runs on need no setting of their own.
//!
//! Only this crate's own code is switched: the `gemm` crate, which the portable path calls for
//! every product, still picks its own kernels from the CPU (AVX2/FMA where there is one).

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// One of our code paths, from the narrowest; each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Code compiled for the target's baseline only (x86-64: SSE2), on any CPU: the GEMM is
    /// the `gemm` crate's, with im2col; elementwise loops are the baseline build.
    Portable,
    /// Elementwise loops (BatchNorm, add + ReLU) in copies compiled for AVX2 + FMA; the same
    /// bits as [`Isa::Portable`].
    Avx2,
    /// Also our AVX-512 f32 GEMM and its windowed convolution and weight gradient (no im2col);
    /// results differ from the other paths by rounding only.
    Avx512,
}

/// The environment variable read once for the process-wide ceiling.
pub const ISA_VAR: &str = "PRUNEBENCH_ISA";

/// The values [`Isa::parse`] documents, as an error message lists them.
pub(crate) const ISA_NAMES: &str = "portable, avx2, avx512, native";

impl Isa {
    /// Every path, narrowest first.
    pub const ALL: [Self; 3] = [Self::Portable, Self::Avx2, Self::Avx512];

    /// Parses `portable`, `avx2`, `avx512`, or `native` (no ceiling: the same as `avx512`),
    /// case-insensitive.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" => Some(Self::Portable),
            "avx2" => Some(Self::Avx2),
            "avx512" | "native" => Some(Self::Avx512),
            _ => None,
        }
    }

    /// The ceiling `PRUNEBENCH_ISA` asks for: `Ok(None)` when unset, an error for a value
    /// [`Isa::parse`] refuses (binaries report it, see [`crate::check_env`]; [`isa`] ignores it).
    pub fn from_env() -> Result<Option<Self>, crate::EnvError> {
        crate::env::read(ISA_VAR, ISA_NAMES, Self::parse)
    }

    /// Its name as `PRUNEBENCH_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        self <= detected_isa()
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The widest path this CPU runs (checked once): [`Isa::Avx512`] needs AVX-512F, [`Isa::Avx2`]
/// AVX2 and FMA; every other CPU, and every other architecture, gets [`Isa::Portable`].
pub fn detected_isa() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    if !(has!("avx2") && has!("fma")) {
        Isa::Portable
    } else if has!("avx512f") {
        Isa::Avx512
    } else {
        Isa::Avx2
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Portable
}

// 0: not decided yet (read the environment on first use), else 1 + the ceiling's index.
static GLOBAL: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static OVERRIDE: Cell<Option<Isa>> = const { Cell::new(None) };
}

fn encode(i: Isa) -> u8 {
    i as u8 + 1
}

fn limit() -> Isa {
    if let Some(i) = OVERRIDE.with(Cell::get) {
        return i;
    }
    match GLOBAL.load(Ordering::Relaxed) {
        0 => {
            // A bad value falls back to no ceiling rather than failing a library call;
            // binaries refuse it up front with `check_env`.
            let i = Isa::from_env().ok().flatten().unwrap_or(Isa::Avx512);
            // A racing `set_isa` wins over the environment.
            let _ = GLOBAL.compare_exchange(0, encode(i), Ordering::Relaxed, Ordering::Relaxed);
            limit()
        }
        v => Isa::ALL[usize::from(v - 1).min(Isa::ALL.len() - 1)],
    }
}

/// The path ops recorded now on this thread take: the ceiling in force (a [`with_isa`]
/// override, else [`set_isa`], else `PRUNEBENCH_ISA`, else none) or what the CPU has
/// ([`detected_isa`]), whichever is narrower.
pub fn isa() -> Isa {
    limit().min(detected_isa())
}

/// Sets the process-wide ceiling (threads inside [`with_isa`] keep their override). A ceiling
/// above what the CPU has is allowed and means no ceiling.
pub fn set_isa(ceiling: Isa) {
    GLOBAL.store(encode(ceiling), Ordering::Relaxed);
}

/// Runs `f` with `ceiling` in force on the calling thread, then restores the previous choice
/// (also when `f` panics). Ops recorded inside keep the path, in forward and backward, wherever
/// they later run.
pub fn with_isa<R>(ceiling: Isa, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(ceiling))));
    f()
}

/// The paths a test should compare on this CPU: every one it supports, narrowest first. Says on
/// stderr which ones it cannot run, so a pass on a smaller CPU is not mistaken for a check of
/// the missing paths.
#[cfg(test)]
pub(crate) fn test_paths(test: &str) -> Vec<Isa> {
    let (run, missing): (Vec<Isa>, Vec<Isa>) = Isa::ALL.into_iter().partition(|i| i.supported());
    if !missing.is_empty() {
        eprintln!("{test}: this CPU lacks {missing:?}: only {run:?} checked");
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_nests_restores_and_never_exceeds_the_cpu() {
        with_isa(Isa::Portable, || {
            assert_eq!(isa(), Isa::Portable);
            with_isa(Isa::Avx512, || assert_eq!(isa(), detected_isa()));
            with_isa(Isa::Avx2, || {
                assert_eq!(isa(), Isa::Avx2.min(detected_isa()))
            });
            assert_eq!(isa(), Isa::Portable);
        });
        let caught = std::panic::catch_unwind(|| with_isa(Isa::Portable, || panic!("inside")));
        assert!(caught.is_err());
        with_isa(Isa::Avx512, || assert_eq!(isa(), detected_isa()));
    }

    #[test]
    fn the_override_stays_on_its_thread() {
        let elsewhere = || std::thread::spawn(isa).join().unwrap();
        let outside = elsewhere();
        for ceiling in Isa::ALL {
            with_isa(ceiling, || {
                assert_eq!(elsewhere(), outside, "{ceiling} leaked")
            });
        }
    }

    #[test]
    fn paths_are_ordered_and_named() {
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
        for i in Isa::ALL {
            assert_eq!(Isa::parse(i.name()), Some(i));
            assert_eq!(Isa::ALL[usize::from(encode(i) - 1)], i);
        }
        assert!(Isa::Portable.supported());
    }
}

//! Running plain loops with the CPU's wider vector instructions.
//!
//! Our crates are compiled for baseline x86-64 (SSE2), so a loop such as BatchNorm's
//! scale-and-shift or its f32-to-f64 sums runs 4 lanes wide, or scalar, even on CPUs with AVX2.
//! [`wide`] runs a [`Wide`] task inside a function compiled for AVX2 and FMA when the CPU has
//! them: the task's `run`, marked `#[inline(always)]`, is inlined there and its loops vectorised
//! 8 wide. (A closure is not enough: LLVM keeps a large closure out of line, compiled for the
//! baseline.) Rust does not fuse a multiply and an add into an FMA on its own, so results are
//! bit-identical to the baseline build. [`Isa::Portable`] (below [`Isa::Avx2`]) runs the
//! baseline copy on any CPU.

use crate::isa::Isa;

/// A loop to run with [`wide`]. Implementations mark `run` `#[inline(always)]`.
pub(crate) trait Wide {
    type Out;
    fn run(self) -> Self::Out;
}

/// Runs `task`, compiled for AVX2 + FMA where `isa` allows it and this CPU has them. Call it
/// inside each rayon task (not around a parallel iterator: the tasks run on other threads,
/// outside the compiled copy).
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn wide<K: Wide>(isa: Isa, task: K) -> K::Out {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<K: Wide>(task: K) -> K::Out {
            task.run()
        }
        if isa >= Isa::Avx2 && has_avx2() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time by `has_avx2`).
            return unsafe { avx2(task) };
        }
    }
    task.run()
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sum<'a>(&'a [f32]);

    impl Wide for Sum<'_> {
        type Out = f64;
        #[inline(always)]
        fn run(self) -> f64 {
            self.0.iter().map(|x| *x as f64).sum()
        }
    }

    #[test]
    fn runs_the_task_and_returns_its_value_on_every_path() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
        for isa in Isa::ALL {
            assert_eq!(
                wide(isa, Sum(&v)),
                (0..1000).map(|i| i as f64 * 0.5).sum::<f64>()
            );
        }
    }
}

//! Running plain loops with the CPU's wider vector instructions.
//!
//! Our crates are compiled for baseline x86-64 (SSE2), so a loop such as BatchNorm's
//! scale-and-shift or its f32-to-f64 sums runs 4 lanes wide, or scalar, even on CPUs with AVX2.
//! [`wide`] runs a [`Wide`] task inside a function compiled for AVX2 and FMA when the CPU has
//! them: the task's `run`, marked `#[inline(always)]`, is inlined there and its loops vectorised
//! 8 wide. (A closure is not enough: LLVM keeps a large closure out of line, compiled for the
//! baseline.) Rust does not fuse a multiply and an add into an FMA on its own, so results are
//! bit-identical to the baseline build; the tests below check that, and [`Isa::Portable`]
//! (below [`Isa::Avx2`]) runs the baseline copy on any CPU.

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
        // The same loops 16 f32 (8 f64) lanes wide: the same operations in the same order, so
        // the same bits (a fixed 8-lane f64 sum is one register here instead of two).
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn avx512<K: Wide>(task: K) -> K::Out {
            task.run()
        }
        if isa >= Isa::Avx512 && has_avx2() && crate::avx512::available() {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked at run time).
            return unsafe { avx512(task) };
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

    /// `y = max(0, x * a + b)` and `(sum x, sum x * y)` in 8 f64 lanes: the shapes of
    /// BatchNorm's loops (a multiply feeding an add, which an FMA would round differently).
    struct Affine<'a> {
        y: &'a mut [f32],
        x: &'a [f32],
        a: f32,
        b: f32,
    }

    impl Wide for Affine<'_> {
        type Out = (f64, f64);
        #[inline(always)]
        fn run(self) -> (f64, f64) {
            for (y, &x) in self.y.iter_mut().zip(self.x) {
                let v = x * self.a + self.b;
                *y = if v <= 0.0 { 0.0 } else { v };
            }
            let (mut s, mut p) = ([0f64; 8], [0f64; 8]);
            let full = self.x.len() / 8 * 8;
            for (xs, ys) in self.x[..full]
                .chunks_exact(8)
                .zip(self.y[..full].chunks_exact(8))
            {
                for l in 0..8 {
                    s[l] += xs[l] as f64;
                    p[l] += xs[l] as f64 * ys[l] as f64;
                }
            }
            for (&x, &y) in self.x[full..].iter().zip(&self.y[full..]) {
                s[0] += x as f64;
                p[0] += x as f64 * y as f64;
            }
            (s.iter().sum(), p.iter().sum())
        }
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    fn affine(isa: Isa, x: &[f32], a: f32, b: f32) -> (Vec<u32>, u64, u64) {
        let mut y = vec![f32::NAN; x.len()];
        let (s, p) = wide(isa, Affine { y: &mut y, x, a, b });
        (
            y.iter().map(|v| v.to_bits()).collect(),
            s.to_bits(),
            p.to_bits(),
        )
    }

    #[test]
    fn the_avx2_copy_gives_the_bits_of_the_baseline_at_every_tail() {
        let (a, b) = (1.0f32 / 3.0, 0.1f32);
        if !Isa::Avx2.supported() {
            eprintln!("no AVX2 + FMA on this CPU: only the baseline copy ran, nothing compared");
        }
        // Every tail of 8- and 16-wide vectors, and long runs (unrolled loops).
        let lengths = (0..=70).chain([255, 256, 257, 1000, 4099]);
        for len in lengths {
            let x = values(len, len as u32);
            let baseline = affine(Isa::Portable, &x, a, b);
            // Portable must really be the unfused, scalar-order arithmetic.
            let reference: Vec<u32> = x
                .iter()
                .map(|&v| {
                    let v = v * a + b;
                    (if v <= 0.0 { 0.0 } else { v }).to_bits()
                })
                .collect();
            assert_eq!(baseline.0, reference, "length {len}: baseline");
            if Isa::Avx2.supported() {
                assert_eq!(affine(Isa::Avx2, &x, a, b), baseline, "length {len}");
            }
        }
        // The inputs are sensitive: a fused multiply-add would round some of them differently,
        // so an FMA slipping into the AVX2 copy would fail the comparison above.
        let x = values(4099, 4099);
        assert!(x.iter().any(|&v| v.mul_add(a, b) != v * a + b));
    }

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

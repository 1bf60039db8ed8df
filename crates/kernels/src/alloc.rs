//! Process-wide settings for training on the CPU: keeping freed memory in the process instead
//! of handing it back to the kernel, and a short spin for candle's thread pool.
//!
//! A training step allocates and frees hundreds of activation-sized buffers (megabytes each).
//! glibc's defaults return such blocks to the kernel (`munmap`, or trimming the heap top), so the
//! next step page-faults every page back in and the kernel zeroes it: measured on ResNet-56,
//! 3.8 million page faults and a fifth of the CPU time in the kernel over a short benchmark.
//! Keeping the memory cuts that to a tenth and makes inference 1.6x faster.

use std::sync::OnceLock;

/// The largest block served from the heap rather than its own mapping: glibc's maximum on 64-bit
/// targets (a larger value is refused). Covers every activation of the CIFAR models at batch 64,
/// and at batch 256 all but VGG-16's first layers.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the heap top that may stay in the process.
const TRIM_THRESHOLD: i32 = i32::MAX;
/// Extra memory requested whenever the heap grows, so it grows rarely.
const TOP_PAD: i32 = 64 << 20;

/// Tells the C allocator to keep freed memory for reuse (glibc on Linux; elsewhere nothing).
/// Binaries call it first thing: it is process-wide, so libraries leave the choice to them.
/// Calling it again does nothing more. Returns whether the settings took.
pub fn keep_freed_memory() -> bool {
    static TOOK: OnceLock<bool> = OnceLock::new();
    *TOOK.get_or_init(imp)
}

/// The environment variable that bounds how long candle's CPU thread pool spins for work.
pub const CANDLE_SPIN_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
/// Our default for it. candle's (25,000 `pause`s, about half a millisecond here) keeps its idle
/// worker spinning on one of two cores after each of candle's elementwise ops, while our
/// kernels' rayon threads want both: measured on ResNet-56 training, that spinning was 9% of the
/// samples, and the backward pass ran 10-18% faster with 100.
pub const CANDLE_SPIN_DEFAULT: &str = "100";

/// [`keep_freed_memory`], and [`CANDLE_SPIN_DEFAULT`] for `CANDLE_BARRIER_POOL_SPIN_LIMIT`
/// unless the environment sets it. For binaries, first thing in `main`.
///
/// # Safety
///
/// It sets an environment variable, so no other thread may exist yet (as for
/// [`std::env::set_var`]).
#[allow(unsafe_code)]
pub unsafe fn configure_process() {
    keep_freed_memory();
    if std::env::var_os(CANDLE_SPIN_VAR).is_none() {
        // SAFETY: the caller guarantees this process has no other thread yet.
        unsafe { std::env::set_var(CANDLE_SPIN_VAR, CANDLE_SPIN_DEFAULT) };
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn imp() -> bool {
    // SAFETY: `mallopt` only changes glibc's allocator parameters; it is called once (OnceLock),
    // with parameters and values glibc documents, and touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn imp() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings() {
        assert!(super::keep_freed_memory());
        assert!(super::keep_freed_memory());
    }
}

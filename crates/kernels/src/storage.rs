//! Reading candle's CPU storage as slices and wrapping results back.

use candle_core::{CpuStorage, Layout, Result, WithDType, bail};

/// The elements of a contiguous tensor (our public wrappers make inputs contiguous first).
pub(crate) fn contiguous_slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) if end <= data.len() => Ok(&data[start..end]),
        _ => bail!("{op}: expected a contiguous tensor, got layout {l:?}"),
    }
}

/// Wraps a result vector as CPU storage.
pub(crate) fn into_storage<T: WithDType>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

//! Writing results: atomic files and a stdout that tolerates a closed pipe.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Whether an error comes from writing to a closed pipe (`prunebench ... | head`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A temporary path beside `path`, for writing a file whole and then renaming it into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, then a rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(train::run::write_atomic(path, bytes)?)
}

/// Renames a finished temporary file into place, removing it if that fails.
pub fn commit_temp(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path)
        .inspect_err(|_| {
            let _ = fs::remove_file(tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Prints a line to standard output, returning (not panicking on) a closed pipe.
pub fn print_line(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

/// Prints a value as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    print_line(&serde_json::to_string_pretty(value)?)
}

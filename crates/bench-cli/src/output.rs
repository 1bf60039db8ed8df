//! Writing results: atomic files and a stdout that tolerates a closed pipe.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Whether an error comes from writing to a closed pipe (`prunebench ... | head`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, then a rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(train::run::write_atomic(path, bytes)?)
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

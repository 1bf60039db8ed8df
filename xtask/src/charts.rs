//! Charts are written whole or not at all: drawn to a temporary file beside the target, then
//! renamed over it, so a killed or failed drawing never leaves half a figure.

use std::path::Path;

use anyhow::{Context, Result};

/// Runs `draw` on a temporary path beside `path` (same extension: plotters' bitmap backend
/// picks the image format by it), then renames it to `path`; creates the folder if needed.
pub fn via_temp(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    files::write_with(path, draw).with_context(|| format!("cannot draw {}", path.display()))
}

//! Reading files from places we do not trust, and writing them so that no reader sees half of one.
//!
//! Every reader of the workspace goes through [`read`] or [`read_to_string`] with a cap taken
//! from its format (a config is small; a checkpoint is as big as its header says): a file over
//! its cap is refused before anything is allocated for it, and a FIFO, a device or a socket is
//! refused by name instead of being read until memory runs out or blocking forever. The errors
//! are plain [`std::io::Error`]s (kind `InvalidData` or `Unsupported`) so each crate keeps its
//! own error type, which names the file.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("config.json");
//! files::write_atomic(&path, b"{}")?;
//! assert_eq!(files::read_to_string(&path, files::SMALL)?, "{}");
//! assert!(files::read(&path, 1).is_err()); // 2 bytes, over a cap of 1
//! assert!(files::read("/dev/zero", files::SMALL).is_err()); // a device, not a file
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

/// The cap for small text files we write ourselves: configs, plans, specs, run states, results
/// (16 MiB: a plan of a very wide network is a few hundred KiB).
pub const SMALL: u64 = 16 << 20;

/// The cap for one weights or dataset file (16 GiB: larger than any model or dataset this
/// project handles, smaller than what would exhaust a machine before the format check).
pub const LARGE: u64 = 16 << 30;

/// What a path is, in words, when it is not a regular file.
fn kind_of(meta: &fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Refuses anything but a regular file, by what it is.
fn regular(meta: &fs::Metadata) -> io::Result<()> {
    match kind_of(meta) {
        None => Ok(()),
        Some(kind) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("is {kind}, not a regular file"),
        )),
    }
}

/// Opens a regular file for reading, with its size; refuses FIFOs, devices, sockets and
/// directories, and files larger than `limit` bytes.
pub fn open(path: impl AsRef<Path>, limit: u64) -> io::Result<(File, u64)> {
    let path = path.as_ref();
    // Checked before opening (symlinks followed), since opening a FIFO blocks until a writer
    // comes; and again on the open file, since the path may have been swapped in between.
    regular(&fs::metadata(path)?)?;
    let file = File::open(path)?;
    let meta = file.metadata()?;
    regular(&meta)?;
    let len = meta.len();
    if len > limit {
        return Err(too_large(len, limit));
    }
    Ok((file, len))
}

/// The error for a file over its cap.
pub fn too_large(len: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "is {} bytes, more than the {} this kind of file may have",
            len, limit
        ),
    )
}

/// Reads a whole regular file of at most `limit` bytes. The buffer is sized from the file's
/// length, and the read stops one byte past the cap even if the file grows meanwhile.
pub fn read(path: impl AsRef<Path>, limit: u64) -> io::Result<Vec<u8>> {
    let (file, len) = open(path, limit)?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(out.len() as u64, limit));
    }
    Ok(out)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: impl AsRef<Path>, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

/// Writes `bytes` to `path` through a temporary file beside it, synced, then a rename: readers
/// see the old file or the new one, never half of one, and a full disk leaves the old one.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

/// The one way prunebench replaces a file: `write` makes it at a temporary path beside `path`
/// (with `path`'s extension, for writers that choose their format by it, as plotters' bitmap
/// backend does), which is then renamed over `path`; on any error the temporary file is removed
/// and `path` is left as it was.
pub fn write_with<E: From<io::Error>>(
    path: impl AsRef<Path>,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let path = path.as_ref();
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{stem}.tmp{}{ext}", std::process::id()));
    let done = write(&tmp).and_then(|()| Ok(fs::rename(&tmp, path)?));
    if done.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(read(&p, 5).unwrap(), b"hello");
        let e = read(&p, 4).unwrap_err();
        assert!(e.to_string().contains("5 bytes, more than the 4"), "{e}");
        let e = read("/dev/zero", SMALL).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
        let e = read(dir.path(), SMALL).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read(&p, SMALL).unwrap_err();
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chart.png");
        write_atomic(&p, b"old").unwrap();
        let e = write_with(&p, |tmp| {
            assert_eq!(tmp.extension().unwrap(), "png", "the format survives");
            fs::write(tmp, b"half")?;
            Err(io::Error::other("drawing failed"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "drawing failed");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write_with(&p, |tmp| fs::write(tmp, b"new")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        write_atomic(&p, &[0xff, 0xfe]).unwrap();
        assert_eq!(
            read_to_string(&p, SMALL).unwrap_err().to_string(),
            "is not UTF-8 text"
        );
    }
}

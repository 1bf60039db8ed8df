//! Downloading the official CIFAR tarballs, checked against their published MD5 and extracted
//! as torchvision does. Nothing half-done is ever left behind: the download goes to a temporary
//! file, the checksum is verified before anything is extracted, extraction goes to a temporary
//! folder, and only a complete folder is renamed into place.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use md5::{Digest, Md5};

use crate::cifar::Cifar;
use crate::{Error, Result};

/// A published dataset archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// Where it is published.
    pub url: String,
    /// Its published MD5, lowercase hex.
    pub md5: String,
    /// The folder it extracts to.
    pub folder: String,
}

impl Archive {
    /// The official binary tarball of a CIFAR (the addresses and MD5s of the CIFAR page, also
    /// listed by torchvision).
    pub fn cifar(cifar: Cifar) -> Self {
        let (url, md5) = match cifar {
            Cifar::Ten => (
                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
            ),
            Cifar::Hundred => (
                "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                "03b5dce01913d631647c71ecec9e9cb8",
            ),
        };
        Self {
            url: url.into(),
            md5: md5.into(),
            folder: cifar.folder().into(),
        }
    }

    fn file_name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or("download")
    }
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The folder was already there; nothing was downloaded.
    AlreadyPresent(PathBuf),
    /// Downloaded, verified and extracted to this folder.
    Extracted(PathBuf),
}

/// Downloads `archive` into `dir` unless `dir/<folder>` exists, verifies its MD5 and extracts it.
/// `progress(done, total)` is called as bytes arrive (`total` when the server says).
pub fn fetch(
    archive: &Archive,
    dir: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Fetched> {
    let target = dir.join(&archive.folder);
    if target.is_dir() {
        return Ok(Fetched::AlreadyPresent(target));
    }
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let part = dir.join(format!(".{}.part", archive.file_name()));
    let staging = dir.join(format!(".{}.extracting", archive.folder));
    let result = download(archive, dir, &part, progress)
        .and_then(|()| extract(&part, &staging, archive))
        .and_then(|()| {
            let from = staging.join(&archive.folder);
            fs::rename(&from, &target).map_err(Error::io(&target))
        });
    // Whatever happened, the temporary download and staging folder go.
    let _ = fs::remove_file(&part);
    let _ = fs::remove_dir_all(&staging);
    result.map(|()| Fetched::Extracted(target))
}

fn hint(archive: &Archive, dir: &Path) -> String {
    format!(
        "offline? download {} by hand (MD5 {}) and extract it into {}, giving {}",
        archive.url,
        archive.md5,
        dir.display(),
        dir.join(&archive.folder).display()
    )
}

/// The most bytes a download may bring (1 GiB: the CIFAR-100 tarball is 161 MB), whatever the
/// server announces: a server that never stops sending fills no disk.
pub const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

fn download(
    archive: &Archive,
    dir: &Path,
    part: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<()> {
    let fail = |reason: String| Error::Download {
        url: archive.url.clone(),
        reason,
        hint: hint(archive, dir),
    };
    let response = ureq::get(&archive.url)
        .call()
        .map_err(|e| fail(e.to_string()))?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(total) = total.filter(|&t| t > MAX_DOWNLOAD_BYTES) {
        return Err(fail(format!(
            "the server announces {total} bytes, more than the {MAX_DOWNLOAD_BYTES} a dataset archive may have"
        )));
    }
    let mut body = response.into_body().into_reader();
    let mut file = fs::File::create(part).map_err(Error::io(part))?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(Error::io(part))?;
        done += n as u64;
        if done > MAX_DOWNLOAD_BYTES {
            return Err(fail(format!(
                "more than the {MAX_DOWNLOAD_BYTES} bytes a dataset archive may have arrived"
            )));
        }
        progress(done, total);
    }
    file.sync_all().map_err(Error::io(part))?;
    if let Some(total) = total
        && done != total
    {
        return Err(fail(format!("truncated: {done} of {total} bytes arrived")));
    }
    let actual: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if actual != archive.md5.to_ascii_lowercase() {
        return Err(Error::Checksum {
            path: part.to_path_buf(),
            expected: archive.md5.clone(),
            actual,
        });
    }
    Ok(())
}

fn extract(tarball: &Path, staging: &Path, archive: &Archive) -> Result<()> {
    let _ = fs::remove_dir_all(staging);
    fs::create_dir_all(staging).map_err(Error::io(staging))?;
    let file = fs::File::open(tarball).map_err(Error::io(tarball))?;
    // `unpack` refuses entries that would land outside `staging` (absolute paths, `..`).
    tar::Archive::new(GzDecoder::new(file))
        .unpack(staging)
        .map_err(|e| Error::format(tarball, format!("cannot extract: {e}")))?;
    if !staging.join(&archive.folder).is_dir() {
        return Err(Error::format(
            tarball,
            format!("the archive holds no folder {}", archive.folder),
        ));
    }
    Ok(())
}

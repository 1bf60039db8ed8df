//! The hf cache layout (`<cache>/models--owner--name/{refs,blobs,snapshots}`), read and written
//! by us rather than by hf-hub, so that every name joined into a path has been checked first.
//!
//! hf-hub 1.0.0 joins the hub's `ETag`, `X-Linked-Etag` and `X-Repo-Commit` header values into
//! cache paths as they arrive (docs/hub.md has the details): an absolute path or `../..` there
//! makes it create, replace or delete files anywhere. Here a commit must be 40 hex digits, an
//! ETag 40 or 64, a file name and each revision component a plain name, and no directory below
//! the cache root may be a symlink (a cache poisoned by an older version is refused, not
//! followed). Files are only ever created new (`O_EXCL`) and renamed into place, so nothing that
//! already exists is written through, and removals name validated entries only.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A commit id as the hub names one: 40 hex digits (kept lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit(String);

impl Commit {
    /// `None` unless `raw` is exactly 40 hex digits.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        is_hex(raw, &[40]).then(|| Self(raw.to_ascii_lowercase()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A content hash as the hub's ETag carries it: git's blob sha1 (40 hex digits, regular files)
/// or sha256 (64, LFS files), after `W/` and quotes are stripped as hf-hub strips them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Etag(String);

impl Etag {
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let bare = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
        is_hex(bare, &[40, 64]).then(|| Self(bare.to_ascii_lowercase()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// sha256 of the content (an LFS file), else git's blob sha1.
    pub(crate) fn is_sha256(&self) -> bool {
        self.0.len() == 64
    }
}

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A single path component that cannot leave its directory: letters, digits, `-`, `_`, `.`,
/// not `.`/`..`, not hidden (our temporary files are), at most 255 bytes.
pub(crate) fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `path` lies inside `dir`, component by component, once both are canonical.
pub(crate) fn is_inside(dir: &Path, path: &Path) -> bool {
    match (fs::canonicalize(dir), fs::canonicalize(path)) {
        (Ok(dir), Ok(path)) => {
            path.starts_with(&dir)
                && path
                    .components()
                    .all(|c| !matches!(c, Component::ParentDir))
        }
        _ => false,
    }
}

/// An entry of a snapshot: the path handed out, and the blob's ETag its link names.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) path: PathBuf,
    pub(crate) etag: Etag,
}

/// One repo's folder in the cache.
#[derive(Debug)]
pub(crate) struct RepoCache {
    /// The cache root, canonical.
    root: PathBuf,
    /// `root/models--owner--name`.
    dir: PathBuf,
}

/// Makes temporary names unique within a process (the pid separates processes).
static TEMP: AtomicU64 = AtomicU64::new(0);

fn refused(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} {what}; refusing to follow it out of the cache",
            path.display()
        ),
    )
}

/// Whether `path` is a real directory (not a symlink to one): `Ok(false)` when absent.
fn plain_dir(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(true),
        Ok(_) => Err(refused(path, "is a symlink or not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `path` (one level) unless it is already a real directory.
fn make_dir(path: &Path) -> io::Result<()> {
    if plain_dir(path)? {
        return Ok(());
    }
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        // Another process made it meanwhile: check what it made.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => plain_dir(path).map(|_| ()),
        Err(e) => Err(e),
    }
}

impl RepoCache {
    /// The folder of `owner/name` under `cache`, whose root is created when `create` (online);
    /// `Ok(None)` when offline and the cache root does not exist.
    pub(crate) fn open(
        cache: &Path,
        owner: &str,
        name: &str,
        create: bool,
    ) -> io::Result<Option<Self>> {
        if !is_plain_name(owner) || !is_plain_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{owner}/{name} is not a plain repo id"),
            ));
        }
        if create {
            fs::create_dir_all(cache)?;
        } else if !cache.exists() {
            return Ok(None);
        }
        // The root is the user's choice and may itself be a symlink (a cache on another disk);
        // below it, nothing is followed.
        let root = fs::canonicalize(cache)?;
        let dir = root.join(format!("models--{owner}--{name}"));
        Ok(Some(Self { root, dir }))
    }

    /// The cache root, canonical.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn blobs(&self) -> PathBuf {
        self.dir.join("blobs")
    }

    fn snapshot_dir(&self, commit: &Commit) -> PathBuf {
        self.dir.join("snapshots").join(commit.as_str())
    }

    /// `refs/<revision>` split into checked components (`refs/pr/1` is a revision too).
    fn ref_path(&self, revision: &str) -> io::Result<Vec<PathBuf>> {
        let mut dirs = vec![self.dir.clone(), self.dir.join("refs")];
        for part in revision.split('/') {
            if !is_plain_name(part) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("revision {revision:?} is not a branch or tag name"),
                ));
            }
            let next = dirs[dirs.len() - 1].join(part);
            dirs.push(next);
        }
        Ok(dirs)
    }

    /// The commit `revision` pointed to when it was last fetched, if it was.
    pub(crate) fn read_ref(&self, revision: &str) -> io::Result<Option<Commit>> {
        let chain = self.ref_path(revision)?;
        let (file, dirs) = chain.split_last().expect("at least refs/ and one part");
        for d in dirs {
            if !plain_dir(d)? {
                return Ok(None);
            }
        }
        match fs::symlink_metadata(file) {
            Ok(m) if m.file_type().is_file() => {}
            Ok(_) => return Err(refused(file, "is not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let text = files::read_to_string(file, 1024)?;
        Commit::parse(text.trim()).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold a commit id (a cache poisoned by a hostile hub?)",
                    file.display()
                ),
            )
        })
    }

    /// Records that `revision` is `commit` (not for a revision that is a commit already).
    pub(crate) fn write_ref(&self, revision: &str, commit: &Commit) -> io::Result<()> {
        let chain = self.ref_path(revision)?;
        let (file, dirs) = chain.split_last().expect("at least refs/ and one part");
        for d in dirs {
            make_dir(d)?;
        }
        if let Ok(m) = fs::symlink_metadata(file)
            && !m.file_type().is_file()
        {
            return Err(refused(file, "is not a regular file"));
        }
        // A temporary beside it, then a rename: the rename replaces the entry, never writes
        // through it.
        files::write_atomic(file, commit.as_str().as_bytes())
    }

    /// The cached `file` of `commit`, when its snapshot entry is a link to a blob of this repo
    /// that exists. Anything else there (a link elsewhere, a directory) is an error.
    pub(crate) fn lookup(&self, commit: &Commit, file: &str) -> io::Result<Option<Entry>> {
        let snap = self.snapshot_dir(commit);
        for d in [
            self.dir.clone(),
            self.dir.join("snapshots"),
            snap.clone(),
            self.blobs(),
        ] {
            if !plain_dir(&d)? {
                return Ok(None);
            }
        }
        let path = snap.join(file);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            return Err(refused(&path, "is not a link to a blob"));
        }
        let target = fs::read_link(&path)?;
        let etag = target
            .strip_prefix("../../blobs")
            .ok()
            .and_then(|rest| rest.to_str())
            .and_then(Etag::parse)
            .filter(|e| target == Path::new("../../blobs").join(e.as_str()))
            .ok_or_else(|| {
                refused(
                    &path,
                    &format!("links to {}, not to a blob", target.display()),
                )
            })?;
        match self.blob(&etag)? {
            Some(_) => Ok(Some(Entry { path, etag })),
            None => Ok(None),
        }
    }

    /// The blob named `etag`, when it is a regular file.
    pub(crate) fn blob(&self, etag: &Etag) -> io::Result<Option<PathBuf>> {
        if !plain_dir(&self.dir)? || !plain_dir(&self.blobs())? {
            return Ok(None);
        }
        let path = self.blobs().join(etag.as_str());
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => Ok(Some(path)),
            Ok(_) => Err(refused(&path, "is not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A new, empty temporary file in `blobs/` for a download (created exclusively: an existing
    /// file or link of that name is never opened).
    pub(crate) fn temp_blob(&self, etag: &Etag) -> io::Result<(File, PathBuf)> {
        make_dir(&self.dir)?;
        make_dir(&self.blobs())?;
        let n = TEMP.fetch_add(1, Ordering::SeqCst);
        let path = self.blobs().join(format!(
            ".{}.{}.{n}.incomplete",
            etag.as_str(),
            std::process::id()
        ));
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((f, path))
    }

    /// Moves a downloaded and checked temporary file to its blob's name.
    pub(crate) fn commit_blob(&self, temp: &Path, etag: &Etag) -> io::Result<PathBuf> {
        let blob = self.blobs().join(etag.as_str());
        if let Ok(m) = fs::symlink_metadata(&blob)
            && !m.file_type().is_file()
        {
            return Err(refused(&blob, "is not a regular file"));
        }
        fs::rename(temp, &blob)?;
        Ok(blob)
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` (a relative link, as hf-hub makes
    /// it, so the two stay interchangeable), replacing an older entry by a rename.
    pub(crate) fn link(&self, commit: &Commit, file: &str, etag: &Etag) -> io::Result<PathBuf> {
        let snap = self.snapshot_dir(commit);
        for d in [self.dir.clone(), self.dir.join("snapshots"), snap.clone()] {
            make_dir(&d)?;
        }
        let path = snap.join(file);
        if let Ok(m) = fs::symlink_metadata(&path)
            && m.file_type().is_dir()
        {
            return Err(refused(&path, "is a directory"));
        }
        let n = TEMP.fetch_add(1, Ordering::SeqCst);
        let temp = snap.join(format!(".{file}.{}.{n}.link", std::process::id()));
        let target = Path::new("../../blobs").join(etag.as_str());
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &temp)?;
        #[cfg(not(unix))]
        fs::copy(self.blobs().join(etag.as_str()), &temp).map(|_| ())?;
        fs::rename(&temp, &path).inspect_err(|_| {
            let _ = fs::remove_file(&temp);
        })?;
        Ok(path)
    }

    /// Removes a cached file that failed its check: the snapshot entry and the blob, both
    /// named by checked values (removing a link removes the link, not what it points to).
    pub(crate) fn discard(&self, commit: &Commit, file: &str, etag: &Etag) {
        let ok = |d: &Path| plain_dir(d).unwrap_or(false);
        let snap = self.snapshot_dir(commit);
        if ok(&self.dir) && ok(&self.dir.join("snapshots")) && ok(&snap) {
            let entry = snap.join(file);
            if fs::symlink_metadata(&entry).is_ok_and(|m| !m.file_type().is_dir()) {
                let _ = fs::remove_file(entry);
            }
        }
        if ok(&self.dir) && ok(&self.blobs()) {
            let blob = self.blobs().join(etag.as_str());
            if fs::symlink_metadata(&blob).is_ok_and(|m| !m.file_type().is_dir()) {
                let _ = fs::remove_file(blob);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_that_are_paths_are_refused() {
        assert!(Commit::parse(&"a".repeat(40)).is_some());
        for bad in ["/tmp/x", "../../x", &"a".repeat(39), &"g".repeat(40), ""] {
            assert!(Commit::parse(bad).is_none(), "{bad}");
        }
        let sha = "0123456789abcdef".repeat(4);
        assert_eq!(Etag::parse(&format!("W/\"{sha}\"")).unwrap().as_str(), sha);
        assert!(Etag::parse(&format!("\"{}\"", &sha[..40])).is_some());
        for bad in ["\"/etc/passwd\"", "../..", "W/\"../../x\"", &sha[..50]] {
            assert!(Etag::parse(bad).is_none(), "{bad}");
        }
        for bad in ["", ".", "..", "a/b", ".hidden", "a\\b", "/abs"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
        assert!(is_plain_name("model.safetensors"));
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_cache_is_refused_and_not_removed_through() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let cache = RepoCache::open(&tmp.path().join("c"), "o", "n", true)
            .unwrap()
            .unwrap();
        let commit = Commit::parse(&"1".repeat(40)).unwrap();
        let etag = Etag::parse(&"2".repeat(40)).unwrap();
        let snap = cache.snapshot_dir(&commit);
        fs::create_dir_all(&snap).unwrap();
        fs::create_dir_all(cache.blobs()).unwrap();
        std::os::unix::fs::symlink(&victim, snap.join("config.json")).unwrap();
        let err = cache.lookup(&commit, "config.json").unwrap_err();
        assert!(err.to_string().contains("not to a blob"), "{err}");
        cache.discard(&commit, "config.json", &etag);
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        // A symlinked blobs/ directory is not followed either.
        fs::remove_dir(cache.blobs()).unwrap();
        std::os::unix::fs::symlink(tmp.path(), cache.blobs()).unwrap();
        assert!(cache.blob(&etag).is_err());
        assert!(cache.temp_blob(&etag).is_err());
        // A ref poisoned with a path is an error, not a commit.
        fs::create_dir_all(cache.dir.join("refs")).unwrap();
        fs::write(cache.dir.join("refs/main"), "/tmp").unwrap();
        assert!(cache.read_ref("main").is_err());
        assert!(cache.read_ref("../x").is_err());
    }
}

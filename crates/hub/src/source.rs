//! Where a checkpoint comes from: a local directory or `hf://owner/name[@revision]`. Parsed here
//! and nowhere else.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Error, Result};

/// The scheme that marks a hub checkpoint in a path argument.
pub const SCHEME: &str = "hf://";

/// A model repo on the hub and an optional revision (branch, tag or commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// The user or organisation.
    pub owner: String,
    /// The repo's name.
    pub name: String,
    /// The revision; `None` means `main`.
    pub revision: Option<String>,
}

impl RepoRef {
    /// `owner/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The revision asked for, `main` by default.
    pub fn revision_or_main(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)?;
        if let Some(rev) = &self.revision {
            write!(f, "@{rev}")?;
        }
        Ok(())
    }
}

impl FromStr for RepoRef {
    type Err = Error;

    /// Parses `owner/name` or `owner/name@revision` (an `hf://` prefix is accepted too).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |problem: &str| Error::BadRepoId {
            input: s.to_string(),
            problem: problem.to_string(),
        };
        let body = s.strip_prefix(SCHEME).unwrap_or(s);
        let (id, revision) = match body.split_once('@') {
            Some((id, rev)) => {
                if rev.is_empty() {
                    return Err(bad("empty revision after @"));
                }
                // Each part becomes a path component of the cache's refs/ (refs/pr/1 is a
                // revision too): plain names only.
                if !rev.split('/').all(crate::cache::is_plain_name) {
                    return Err(bad("the revision is not a branch, tag or commit name"));
                }
                (id, Some(rev.to_string()))
            }
            None => (body, None),
        };
        let Some((owner, name)) = id.split_once('/') else {
            return Err(bad("no owner (write owner/name)"));
        };
        // The hub's own rule for repo ids: letters, digits, '-', '_', '.'; no '..' or
        // leading/trailing '.' or '-'.
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 96
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !part.contains("..")
                && !part.starts_with(['.', '-'])
                && !part.ends_with(['.', '-'])
        };
        if !valid(owner) {
            return Err(bad("the owner is not a valid name"));
        }
        if !valid(name) {
            return Err(bad(
                "the name is not a valid repo name (one '/', letters, digits, '-', '_', '.')",
            ));
        }
        Ok(Self {
            owner: owner.to_string(),
            name: name.to_string(),
            revision,
        })
    }
}

/// A checkpoint argument: a local directory (a model or run directory) or a hub repo.
///
/// ```
/// use hub::CheckpointSource;
///
/// let hub = CheckpointSource::parse("hf://prunebench/resnet56-pfec-b@v1")?;
/// assert!(matches!(&hub, CheckpointSource::Hub(r) if r.revision.as_deref() == Some("v1")));
/// let local = CheckpointSource::parse("runs/resnet56")?;
/// assert!(matches!(local, CheckpointSource::Local(_)));
/// # Ok::<(), hub::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSource {
    /// A directory (or `.safetensors` file) on this machine.
    Local(PathBuf),
    /// `hf://owner/name[@revision]`.
    Hub(RepoRef),
}

impl CheckpointSource {
    /// `hf://...` is a hub repo; anything else is a local path.
    pub fn parse(s: &str) -> Result<Self> {
        if s.starts_with(SCHEME) {
            Ok(Self::Hub(s.parse()?))
        } else {
            Ok(Self::Local(PathBuf::from(s)))
        }
    }

    /// The same from a path argument (clap hands paths over as `PathBuf`); a path that is not
    /// UTF-8 is local.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.to_str() {
            Some(s) => Self::parse(s),
            None => Ok(Self::Local(path.to_path_buf())),
        }
    }
}

impl fmt::Display for CheckpointSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::Hub(r) => write!(f, "{SCHEME}{r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_ids_and_revisions() {
        let r: RepoRef = "owner/name".parse().unwrap();
        assert_eq!(
            (r.id(), r.revision_or_main()),
            ("owner/name".into(), "main")
        );
        let r: RepoRef = "hf://o-1/resnet56_pfec.b@refs-v2".parse().unwrap();
        assert_eq!(r.revision.as_deref(), Some("refs-v2"));
        assert_eq!(r.to_string(), "o-1/resnet56_pfec.b@refs-v2");
        let r: RepoRef = "o/n@refs/pr/1".parse().unwrap();
        assert_eq!(r.revision.as_deref(), Some("refs/pr/1"));
        for bad in [
            "name",
            "/name",
            "owner/",
            "a/b/c",
            "owner/na me",
            "owner/name@",
            "owner/..x",
            "owner/name@../x",
            "owner/name@a//b",
            "owner/name@/abs",
            "owner/name@.hidden",
            "",
        ] {
            assert!(bad.parse::<RepoRef>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn only_the_scheme_makes_a_hub_source() {
        assert!(matches!(
            CheckpointSource::parse("owner/name").unwrap(),
            CheckpointSource::Local(_)
        ));
        assert!(CheckpointSource::parse("hf://nope").is_err());
        let s = CheckpointSource::from_path(Path::new("hf://a/b@main")).unwrap();
        assert_eq!(s.to_string(), "hf://a/b@main");
    }
}

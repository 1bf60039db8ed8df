//! What can go wrong between a checkpoint and the hub: each variant names the repo and file, and
//! the HTTP status where there was one.

use std::path::PathBuf;

use thiserror::Error;

/// The crate's error type.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A checkpoint source or repo id that does not parse.
    #[error("{input:?} is not a hub repo: {problem} (expected owner/name[@revision])")]
    BadRepoId {
        /// What was given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// 401: no token was sent, or the hub did not accept it.
    #[error(
        "401 Unauthorized from {endpoint} for {repo} ({file}): the token is missing or invalid; set HF_TOKEN to a token with access"
    )]
    Unauthorized {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The file or operation.
        file: String,
    },
    /// 403: the token is valid but lacks the rights.
    #[error(
        "403 Forbidden from {endpoint} for {repo} ({file}): the token lacks the rights for this (a read token cannot push; a gated or private repo needs access)"
    )]
    Forbidden {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The file or operation.
        file: String,
    },
    /// 404: the repo, the revision or the file does not exist (or is private and not visible).
    #[error(
        "404 Not Found from {endpoint}: {file} at revision {revision} of {repo} (the repo, revision or file does not exist, or the repo is private)"
    )]
    NotFound {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The file.
        file: String,
    },
    /// `--offline` and the file is not in the cache.
    #[error(
        "offline: {file} of {repo}@{revision} is not in the cache {cache}; run once without --offline to fetch it"
    )]
    NotCached {
        /// `owner/name`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The file.
        file: String,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// A downloaded file whose size or hash differs from what the hub announced.
    #[error(
        "{file} of {repo}: the download does not match the hub's {what} (expected {expected}, got {found}); the cached copy was removed"
    )]
    Integrity {
        /// `owner/name`.
        repo: String,
        /// The file.
        file: String,
        /// `size`, `ETag (sha256)` or `ETag (git blob sha1)`.
        what: &'static str,
        /// What the hub announced.
        expected: String,
        /// What arrived.
        found: String,
    },
    /// Any other failure of a hub request.
    #[error("hub request for {repo} ({file}) failed: {source}")]
    Hub {
        /// `owner/name`.
        repo: String,
        /// The file or operation.
        file: String,
        /// hf-hub's error.
        source: Box<hf_hub::HFError>,
    },
    /// A checkpoint whose `config.json` and weights disagree, or that does not load.
    #[error("{dir}: {problem}")]
    Checkpoint {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A model error (config, tensors). Boxed, as the next: they are large and rare.
    #[error(transparent)]
    Model(Box<models::Error>),
    /// A run-directory error (origin.json, spec.json, result.json).
    #[error(transparent)]
    Train(Box<train::Error>),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl From<models::Error> for Error {
    fn from(e: models::Error) -> Self {
        Self::Model(Box::new(e))
    }
}

impl From<train::Error> for Error {
    fn from(e: train::Error) -> Self {
        Self::Train(Box::new(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps hf-hub's error for a request about `file` in `repo` at `revision` to ours, so that 401,
/// 403 and 404 say what to do and name the repo and file.
pub(crate) fn from_hf(
    e: hf_hub::HFError,
    endpoint: &str,
    repo: &str,
    revision: &str,
    file: &str,
    cache: &std::path::Path,
) -> Error {
    use hf_hub::HFError as H;
    let endpoint = endpoint.to_string();
    let (repo, file) = (repo.to_string(), file.to_string());
    match e {
        H::AuthRequired { .. } => Error::Unauthorized {
            endpoint,
            repo,
            file,
        },
        H::Forbidden { .. } => Error::Forbidden {
            endpoint,
            repo,
            file,
        },
        H::RepoNotFound { .. } | H::EntryNotFound { .. } | H::RevisionNotFound { .. } => {
            Error::NotFound {
                endpoint,
                repo,
                revision: revision.to_string(),
                file,
            }
        }
        H::Http { ref context } if context.status.as_u16() == 401 => Error::Unauthorized {
            endpoint,
            repo,
            file,
        },
        H::Http { ref context } if context.status.as_u16() == 403 => Error::Forbidden {
            endpoint,
            repo,
            file,
        },
        H::Http { ref context } if context.status.as_u16() == 404 => Error::NotFound {
            endpoint,
            repo,
            revision: revision.to_string(),
            file,
        },
        H::LocalEntryNotFound { .. } => Error::NotCached {
            repo,
            revision: revision.to_string(),
            file,
            cache: cache.to_path_buf(),
        },
        other => Error::Hub {
            repo,
            file,
            source: Box::new(other),
        },
    }
}

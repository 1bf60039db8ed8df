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
    /// A file name that is not one plain path component.
    #[error("{file:?} is not a plain file name (letters, digits, '-', '_', '.'; not hidden)")]
    BadFileName {
        /// What was given.
        file: String,
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
        "{file} of {repo}: the download does not match the hub's {what} (expected {expected}, got {found}); nothing of it was kept in the cache"
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
    /// The hub did not answer in time.
    #[error(
        "{endpoint} did not answer within {secs} s ({phase}) for {repo} ({file}); PRUNEBENCH_HUB_TIMEOUT sets the limit"
    )]
    Timeout {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The file or operation.
        file: String,
        /// `to connect` or `for an answer`.
        phase: &'static str,
        /// The limit that ran out, in seconds.
        secs: f64,
    },
    /// The hub could not be reached (refused, DNS, TLS).
    #[error("cannot reach {endpoint} for {repo} ({file}): {problem}")]
    Unreachable {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The file or operation.
        file: String,
        /// The innermost cause, as text.
        problem: String,
    },
    /// Another HTTP status than 401, 403 or 404.
    #[error("HTTP {status} from {endpoint} for {repo} ({file}){message}")]
    Status {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The file or operation.
        file: String,
        /// The status code.
        status: u16,
        /// `: ` and the hub's message, or empty.
        message: String,
    },
    /// An answer that cannot be used safely: a commit or ETag that is not a hash (and would
    /// become a path), no size, too many redirects. Nothing was written.
    #[error("{endpoint} answered for {repo} ({file}) with {problem}; refused, nothing was written")]
    BadAnswer {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The file.
        file: String,
        /// What is wrong with the answer.
        problem: String,
    },
    /// `PRUNEBENCH_HUB_TIMEOUT` that does not parse.
    #[error("PRUNEBENCH_HUB_TIMEOUT={value:?}: {problem} (write N or CONNECT,READ, in seconds)")]
    BadTimeout {
        /// What was given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Any other failure of a hub request made through hf-hub (a push), as one line.
    #[error("hub request to {endpoint} for {repo} ({file}) failed: {message}")]
    Hub {
        /// The hub's base URL.
        endpoint: String,
        /// `owner/name`.
        repo: String,
        /// The file or operation.
        file: String,
        /// hf-hub's error, flattened to one line (its own text repeats its cause).
        message: String,
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
    /// A provenance error (origin.json).
    #[error(transparent)]
    Experiments(Box<experiments::Error>),
    /// A local file could not be read or written. The cause is the source, printed once by the
    /// caller's chain (`{:#}`), not repeated here.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl From<models::Error> for Error {
    fn from(e: models::Error) -> Self {
        Self::Model(Box::new(e))
    }
}

impl From<experiments::Error> for Error {
    fn from(e: experiments::Error) -> Self {
        Self::Experiments(Box::new(e))
    }
}

impl From<train::Error> for Error {
    fn from(e: train::Error) -> Self {
        Self::Train(Box::new(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps hf-hub's error for a request about `file` in `repo` to ours, one line each: 401, 403 and
/// 404 say what to do and name the repo and file; a timeout says which one ran out; anything
/// else names the endpoint once (hf-hub's own text repeats the URL and its cause).
pub(crate) fn from_hf(
    e: hf_hub::HFError,
    endpoint: &str,
    repo: &str,
    revision: &str,
    file: &str,
    timeouts: crate::Timeouts,
) -> Error {
    use hf_hub::HFError as H;
    let endpoint_s = endpoint.to_string();
    let (repo_s, file_s) = (repo.to_string(), file.to_string());
    let status = |code: u16, server_message: Option<String>| match code {
        401 => Error::Unauthorized {
            endpoint: endpoint_s.clone(),
            repo: repo_s.clone(),
            file: file_s.clone(),
        },
        403 => Error::Forbidden {
            endpoint: endpoint_s.clone(),
            repo: repo_s.clone(),
            file: file_s.clone(),
        },
        404 => Error::NotFound {
            endpoint: endpoint_s.clone(),
            repo: repo_s.clone(),
            revision: revision.to_string(),
            file: file_s.clone(),
        },
        code => Error::Status {
            endpoint: endpoint_s.clone(),
            repo: repo_s.clone(),
            file: file_s.clone(),
            status: code,
            message: server_message
                .map(|m| format!(": {}", crate::http::one_line(&m)))
                .unwrap_or_default(),
        },
    };
    match e {
        H::AuthRequired { context } => status(401, context.server_message),
        H::Forbidden { context } => status(403, context.server_message),
        H::RepoNotFound { .. } | H::EntryNotFound { .. } | H::RevisionNotFound { .. } => {
            Error::NotFound {
                endpoint: endpoint_s,
                repo: repo_s,
                revision: revision.to_string(),
                file: file_s,
            }
        }
        H::Http { context } | H::Conflict { context } | H::RateLimited { context, .. } => {
            status(context.status.as_u16(), context.server_message)
        }
        H::Request { source, .. } => {
            crate::http::transport_error(&source, endpoint, repo, file, timeouts)
        }
        other => Error::Hub {
            endpoint: endpoint_s,
            repo: repo_s,
            file: file_s,
            message: crate::http::root_cause(&other),
        },
    }
}

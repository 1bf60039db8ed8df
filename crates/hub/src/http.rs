//! The two requests of a download, made by us (reqwest, on a runtime of our own) instead of by
//! hf-hub's `download_file`, which writes to paths built from unchecked headers and makes its
//! `HEAD` through a client without timeouts (docs/hub.md).
//!
//! `HEAD /{repo}/resolve/{revision}/{file}` gives the commit, the ETag and the size, checked
//! here before anything becomes a path; `GET /{repo}/resolve/{commit}/{file}` (by the commit
//! just resolved, so every file of a checkpoint comes from one commit) streams the body into a
//! new temporary file in the cache's `blobs/`, hashed on the way and cut off past the announced
//! size. Only a body whose size and hash match the ETag is renamed to its blob name; what the
//! `GET` answers in its own headers is ignored, so a hub that answers the two differently
//! cannot steer a write.

use std::io::Write;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, LOCATION};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::cache::{Commit, Etag, RepoCache};
use crate::{Error, Result};

/// How long to wait for the hub.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// To open the connection (TCP and TLS).
    pub connect: Duration,
    /// For each read: from sending a request to the first byte of its answer, and between any
    /// two reads of a body after that (a large download may take longer in all).
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(60),
        }
    }
}

/// The variable that sets [`Timeouts`]: `N` (seconds, both) or `C,R` (connect, read).
pub const TIMEOUT_ENV: &str = "PRUNEBENCH_HUB_TIMEOUT";

impl Timeouts {
    /// Parses `N` or `C,R`, in seconds (fractions allowed), each above 0 and at most a day.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |problem: &str| Error::BadTimeout {
            value: value.to_string(),
            problem: problem.to_string(),
        };
        let secs = |s: &str| -> Result<Duration> {
            let v: f64 = s
                .trim()
                .parse()
                .map_err(|_| bad("not a number of seconds"))?;
            if !(v > 0.0 && v <= 86_400.0) {
                return Err(bad("must be above 0 and at most 86400 seconds"));
            }
            Ok(Duration::from_secs_f64(v))
        };
        match value.split_once(',') {
            Some((c, r)) => Ok(Self {
                connect: secs(c)?,
                read: secs(r)?,
            }),
            None => {
                let d = secs(value)?;
                Ok(Self {
                    connect: d,
                    read: d,
                })
            }
        }
    }

    /// [`TIMEOUT_ENV`] if set, else the defaults (10 s to connect, 60 s per read).
    pub fn from_env() -> Result<Self> {
        match std::env::var(TIMEOUT_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v),
            _ => Ok(Self::default()),
        }
    }
}

/// A reqwest client with our timeouts and user agent; `redirects` off for the `HEAD`, whose
/// answer (a 302 to storage for LFS files) carries the headers we need.
pub(crate) fn client(t: Timeouts, redirects: bool) -> reqwest::Result<reqwest::Client> {
    let policy = if redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .user_agent(concat!("prunebench/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(t.connect)
        .read_timeout(t.read)
        .redirect(policy)
        .build()
}

/// What a request was for, to name it in errors.
pub(crate) struct Target<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) repo: String,
    pub(crate) file: &'a str,
    pub(crate) revision: &'a str,
    pub(crate) timeouts: Timeouts,
}

impl Target<'_> {
    fn url(&self, revision: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            self.repo,
            encode(revision),
            encode(self.file)
        )
    }

    fn bad_answer(&self, problem: String) -> Error {
        Error::BadAnswer {
            endpoint: self.endpoint.to_string(),
            repo: self.repo.clone(),
            file: self.file.to_string(),
            problem,
        }
    }

    /// A transport failure as one line: a timeout says which and how long; anything else names
    /// the endpoint once and the innermost cause (reqwest's own text repeats the URL).
    pub(crate) fn transport(&self, e: &reqwest::Error) -> Error {
        transport_error(e, self.endpoint, &self.repo, self.file, self.timeouts)
    }

    fn status(&self, status: StatusCode, headers: &HeaderMap) -> Error {
        let (endpoint, repo, file) = (
            self.endpoint.to_string(),
            self.repo.clone(),
            self.file.to_string(),
        );
        match status.as_u16() {
            401 => Error::Unauthorized {
                endpoint,
                repo,
                file,
            },
            403 => Error::Forbidden {
                endpoint,
                repo,
                file,
            },
            404 => Error::NotFound {
                endpoint,
                repo,
                revision: self.revision.to_string(),
                file,
            },
            code => Error::Status {
                endpoint,
                repo,
                file,
                status: code,
                message: header(headers, "x-error-message")
                    .map(|m| format!(": {}", one_line(&m)))
                    .unwrap_or_default(),
            },
        }
    }
}

/// See [`Target::transport`]; shared with the mapping of hf-hub's errors.
pub(crate) fn transport_error(
    e: &reqwest::Error,
    endpoint: &str,
    repo: &str,
    file: &str,
    t: Timeouts,
) -> Error {
    if e.is_timeout() {
        let connect = e.is_connect();
        return Error::Timeout {
            endpoint: endpoint.to_string(),
            repo: repo.to_string(),
            file: file.to_string(),
            phase: if connect {
                "to connect"
            } else {
                "for an answer"
            },
            secs: if connect { t.connect } else { t.read }.as_secs_f64(),
        };
    }
    Error::Unreachable {
        endpoint: endpoint.to_string(),
        repo: repo.to_string(),
        file: file.to_string(),
        problem: root_cause(e),
    }
}

/// The innermost error of a chain, which is the one that says what happened.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    one_line(&cur.to_string())
}

/// A server-sent text cut to one short line.
pub(crate) fn one_line(s: &str) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    line.trim().to_string()
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so a revision `refs/pr/1`
/// stays one path segment, as hf-hub sends it).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)?.to_str().ok().map(str::to_string)
}

/// What the hub's `HEAD` says about a file, every value checked.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) commit: Commit,
    pub(crate) etag: Etag,
    pub(crate) size: u64,
}

/// The hub connection of [`crate::Hub`]: two clients and the runtime they run on.
pub(crate) struct Http {
    rt: tokio::runtime::Runtime,
    head: reqwest::Client,
    get: reqwest::Client,
    token: Option<String>,
}

impl Http {
    pub(crate) fn new(t: Timeouts, token: Option<String>) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let build = |redirects| client(t, redirects).map_err(std::io::Error::other);
        Ok(Self {
            rt,
            head: build(false)?,
            get: build(true)?,
            token,
        })
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    /// The `HEAD` of `target` at its revision, following only relative redirects (the hub's
    /// answer for a renamed repo); an absolute one (LFS storage) is the answer.
    pub(crate) fn head(&self, target: &Target<'_>) -> Result<Meta> {
        let mut url = target.url(target.revision);
        let resp = self.rt.block_on(async {
            for _ in 0..5 {
                let resp = self
                    .auth(self.head.head(&url))
                    .send()
                    .await
                    .map_err(|e| target.transport(&e))?;
                if resp.status().is_redirection()
                    && let Some(loc) = header(resp.headers(), LOCATION.as_str())
                    && loc.starts_with('/')
                    && !loc.starts_with("//")
                {
                    url = format!("{}{loc}", target.endpoint);
                    continue;
                }
                return Ok(resp);
            }
            Err(target.bad_answer("more than 5 redirects".into()))
        })?;
        let (status, h) = (resp.status(), resp.headers());
        if !status.is_success() && !status.is_redirection() {
            return Err(target.status(status, h));
        }
        let raw_commit = header(h, "x-repo-commit").unwrap_or_default();
        let commit = Commit::parse(&raw_commit).ok_or_else(|| {
            target.bad_answer(format!(
                "X-Repo-Commit {:?}, not a 40-hex-digit commit id",
                one_line(&raw_commit)
            ))
        })?;
        let raw_etag = header(h, "x-linked-etag")
            .or_else(|| header(h, "etag"))
            .unwrap_or_default();
        let etag = Etag::parse(&raw_etag).ok_or_else(|| {
            target.bad_answer(format!(
                "ETag {:?}, not a sha1 or sha256 of the content",
                one_line(&raw_etag)
            ))
        })?;
        let raw_size = header(h, "x-linked-size")
            .or_else(|| header(h, "content-length"))
            .unwrap_or_default();
        let size: u64 = raw_size.trim().parse().map_err(|_| {
            target.bad_answer(format!("no file size (got {:?})", one_line(&raw_size)))
        })?;
        if size > files::LARGE {
            return Err(target.bad_answer(format!(
                "a size of {size} bytes, more than the {} a file may have here",
                files::LARGE
            )));
        }
        Ok(Meta { commit, etag, size })
    }

    /// Downloads `target` at `meta.commit` into a new temporary blob, checks its size and hash
    /// against `meta`, and moves it to its blob name. On any failure the temporary is removed
    /// and nothing is left in the cache.
    pub(crate) fn download(
        &self,
        target: &Target<'_>,
        meta: &Meta,
        cache: &RepoCache,
    ) -> Result<std::path::PathBuf> {
        let (mut file, temp) = cache.temp_blob(&meta.etag).map_err(|source| Error::Io {
            path: cache.root().to_path_buf(),
            source,
        })?;
        let io = |source| Error::Io {
            path: temp.clone(),
            source,
        };
        let result = (|| {
            let url = target.url(meta.commit.as_str());
            let mut hasher = Hasher::new(&meta.etag, meta.size);
            let mut got: u64 = 0;
            self.rt.block_on(async {
                let mut resp = self
                    .auth(self.get.get(&url))
                    .send()
                    .await
                    .map_err(|e| target.transport(&e))?;
                if resp.status() != StatusCode::OK {
                    return Err(target.status(resp.status(), resp.headers()));
                }
                while let Some(chunk) = resp.chunk().await.map_err(|e| target.transport(&e))? {
                    got = got.saturating_add(chunk.len() as u64);
                    if got > meta.size {
                        // Cut off here: the body is longer than announced, so wrong.
                        return Err(integrity(target, "size", meta.size, "more"));
                    }
                    hasher.update(&chunk);
                    file.write_all(&chunk).map_err(io)?;
                }
                Ok(())
            })?;
            if got != meta.size {
                return Err(integrity(
                    target,
                    "size",
                    meta.size,
                    &format!("{got} bytes"),
                ));
            }
            let (what, found) = hasher.finish();
            if found != meta.etag.as_str() {
                return Err(Error::Integrity {
                    repo: target.repo.clone(),
                    file: target.file.to_string(),
                    what,
                    expected: meta.etag.as_str().to_string(),
                    found,
                });
            }
            file.sync_all().map_err(io)?;
            cache.commit_blob(&temp, &meta.etag).map_err(io)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }
}

fn integrity(target: &Target<'_>, what: &'static str, expected: u64, found: &str) -> Error {
    Error::Integrity {
        repo: target.repo.clone(),
        file: target.file.to_string(),
        what,
        expected: format!("{expected} bytes"),
        found: found.to_string(),
    }
}

/// The hash an ETag names: sha256 of the content for LFS files, git's blob id
/// (`sha1("blob <len>\0" + content)`) for regular ones.
pub(crate) enum Hasher {
    Sha256(Sha256),
    GitBlob(Sha1),
}

impl Hasher {
    pub(crate) fn new(etag: &Etag, size: u64) -> Self {
        if etag.is_sha256() {
            Self::Sha256(Sha256::new())
        } else {
            let mut h = Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            Self::GitBlob(h)
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::GitBlob(h) => h.update(bytes),
        }
    }

    /// What was checked, in words, and the hex digest.
    pub(crate) fn finish(self) -> (&'static str, String) {
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            Self::Sha256(h) => ("ETag (sha256)", hex(&h.finalize())),
            Self::GitBlob(h) => ("ETag (git blob sha1)", hex(&h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_one_or_two_numbers_and_refuse_the_rest() {
        let t = Timeouts::parse("2.5").unwrap();
        assert_eq!(
            (t.connect, t.read),
            (Duration::from_millis(2500), Duration::from_millis(2500))
        );
        let t = Timeouts::parse("3,120").unwrap();
        assert_eq!(
            (t.connect, t.read),
            (Duration::from_secs(3), Duration::from_secs(120))
        );
        for bad in ["0", "-1", "nan", "inf", "x", "1,", "1e9"] {
            let e = Timeouts::parse(bad).unwrap_err().to_string();
            assert!(e.contains(TIMEOUT_ENV) && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn revisions_stay_one_path_segment() {
        assert_eq!(encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode("model.safetensors"), "model.safetensors");
    }
}

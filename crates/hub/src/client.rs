//! The hub client: fetch a checkpoint into the hf cache (checked), copy it out, push one.
//!
//! Downloads go through [`crate::http`] and [`crate::cache`], not hf-hub's `download_file`
//! (which joins the hub's headers into paths unchecked and has no timeout on its `HEAD`);
//! hf-hub makes the push, through a client with our timeouts.

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::Device;
use hf_hub::repository::CommitOperation;
use hf_hub::{HFClientBuilder, HFClientSync, RepoTypeModel};
use models::ModelConfig;
use models::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};

use crate::cache::{Commit, Entry, Etag, RepoCache, is_inside, is_plain_name};
use crate::error::from_hf;
use crate::http::{Hasher, Http, Target, Timeouts};
use crate::{CheckpointSource, Error, RepoRef, Result, card};

/// The model card file of a hub repo.
pub const CARD_FILE: &str = "README.md";

/// How to reach the hub. Every field left `None` comes from the environment as hf-hub reads it:
/// `HF_ENDPOINT`, `HF_HUB_CACHE` (else `$HF_HOME/hub`), `HF_TOKEN` (else `HF_TOKEN_PATH`, else
/// `$HF_HOME/token`), and the timeouts from `PRUNEBENCH_HUB_TIMEOUT` (else 10 s to connect, 60 s
/// per read).
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// The hub's base URL.
    pub endpoint: Option<String>,
    /// The download cache.
    pub cache_dir: Option<PathBuf>,
    /// The access token.
    pub token: Option<String>,
    /// Cache only: no request is sent; a file not in the cache is an error.
    pub offline: bool,
    /// Connect and read timeouts of every request.
    pub timeouts: Option<Timeouts>,
}

impl HubOptions {
    /// The environment's settings, with `offline` set when `HF_HUB_OFFLINE` is `1`/`true`/`yes`
    /// (the variable the Python client reads; hf-hub 1.0 does not).
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        Self {
            offline,
            ..Self::default()
        }
    }
}

/// What to push with the checkpoint.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Create the repo private (an existing repo keeps its visibility).
    pub private: bool,
    /// The commit message (default: "Upload <arch> from prunebench").
    pub message: Option<String>,
}

/// What a push made.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The repo.
    pub repo: String,
    /// The new commit, when the hub returned it.
    pub commit: Option<String>,
    /// The commit's URL, when the hub returned it.
    pub url: Option<String>,
    /// The files uploaded, in the commit's order.
    pub files: Vec<&'static str>,
    /// The model card that was uploaded as `README.md`.
    pub card: String,
}

/// A connection to the hub (or a stand-in at `HF_ENDPOINT`), with its download cache.
///
/// ```no_run
/// use hub::{Hub, HubOptions};
///
/// let hub = Hub::new(&HubOptions::from_env())?;
/// let dir = hub.fetch_checkpoint(&"prunebench/resnet56-pfec-b".parse()?)?;
/// let model = models::Model::load(&dir, &candle_core::Device::Cpu)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hub {
    /// hf-hub, for the push (and the stub's own tests).
    client: HFClientSync,
    /// Our requests, for downloads.
    http: Http,
    endpoint: String,
    cache_dir: PathBuf,
    offline: bool,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// The token as hf-hub finds it (`HF_HUB_DISABLE_IMPLICIT_TOKEN`, `HF_TOKEN`, `HF_TOKEN_PATH`,
/// `$HF_HOME/token`): resolved here once, so that our requests and hf-hub's send the same one.
fn resolve_token() -> Option<String> {
    let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    if var("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some() {
        return None;
    }
    if let Some(t) = var("HF_TOKEN") {
        return Some(t);
    }
    let from_file = |p: PathBuf| {
        files::read_to_string(p, 64 << 10)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    var("HF_TOKEN_PATH")
        .and_then(|p| from_file(PathBuf::from(p)))
        .or_else(|| from_file(hf_hub::hf_home().join("token")))
}

impl Hub {
    /// A client as `opts` says (see [`HubOptions`] for the defaults).
    pub fn new(opts: &HubOptions) -> Result<Self> {
        let timeouts = match opts.timeouts {
            Some(t) => t,
            None => Timeouts::from_env()?,
        };
        let token = opts.token.clone().or_else(resolve_token);
        let setup = |message: String| Error::Hub {
            endpoint: opts.endpoint.clone().unwrap_or_else(|| "the hub".into()),
            repo: "-".into(),
            file: "client setup".into(),
            message,
        };
        let mut builder = HFClientBuilder::new()
            // Our client: the timeouts (hf-hub sets none) and our user agent.
            .client(crate::http::client(timeouts, true).map_err(|e| setup(e.to_string()))?)
            // A refused connection is retried by hf-hub; a stand-in that is down should fail
            // fast rather than after the default back-off.
            .retry_max_attempts(2);
        if let Some(e) = &opts.endpoint {
            builder = builder.endpoint(e.clone());
        }
        if let Some(c) = &opts.cache_dir {
            builder = builder.cache_dir(c.clone());
        }
        if let Some(t) = &token {
            builder = builder.token(t.clone());
        }
        let client = builder
            .build()
            .map_err(|e| setup(crate::http::root_cause(&e)))?;
        let endpoint = client.endpoint().to_string();
        let cache_dir = client.cache_dir().to_path_buf();
        Ok(Self {
            client: HFClientSync::from_inner(client)
                .map_err(|e| setup(crate::http::root_cause(&e)))?,
            http: Http::new(timeouts, token).map_err(|e| setup(e.to_string()))?,
            endpoint,
            cache_dir,
            offline: opts.offline,
            timeouts,
        })
    }

    /// The hub's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The download cache.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The timeouts of every request.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    #[cfg(test)]
    pub(crate) fn client_for_tests(&self) -> &HFClientSync {
        &self.client
    }

    /// Whether requests are off.
    pub fn offline(&self) -> bool {
        self.offline
    }

    fn map(&self, repo: &RepoRef, file: &str) -> impl Fn(hf_hub::HFError) -> Error {
        let (endpoint, id, rev, file, timeouts) = (
            self.endpoint.clone(),
            repo.id(),
            repo.revision_or_main().to_string(),
            file.to_string(),
            self.timeouts,
        );
        move |e| from_hf(e, &endpoint, &id, &rev, &file, timeouts)
    }

    fn not_cached(&self, repo: &RepoRef, revision: &str, file: &str) -> Error {
        Error::NotCached {
            repo: repo.id(),
            revision: revision.to_string(),
            file: file.to_string(),
            cache: self.cache_dir.clone(),
        }
    }

    /// Downloads one file of `repo` into the cache (or finds it there when offline) and checks
    /// it: its size against the hub's, its content against the ETag (sha256 for LFS files, git's
    /// blob sha1 for regular ones). A download that fails is never stored; a cached file that
    /// fails is removed, so the next try downloads it afresh. The path returned lies inside the
    /// cache (docs/hub.md says how that is made sure of).
    pub fn fetch_file(&self, repo: &RepoRef, file: &str) -> Result<PathBuf> {
        self.fetch_at(repo, repo.revision_or_main(), file)
            .map(|(_, path)| path)
    }

    /// [`Self::fetch_file`] at `revision`; also returns the commit it resolved to.
    fn fetch_at(&self, repo: &RepoRef, revision: &str, file: &str) -> Result<(Commit, PathBuf)> {
        if !is_plain_name(file) {
            return Err(Error::BadFileName { file: file.into() });
        }
        let io = |source| Error::Io {
            path: self.cache_dir.clone(),
            source,
        };
        let pinned = Commit::parse(revision);
        let Some(cache) =
            RepoCache::open(&self.cache_dir, &repo.owner, &repo.name, !self.offline).map_err(io)?
        else {
            return Err(self.not_cached(repo, revision, file));
        };
        let (commit, path) = if self.offline {
            let commit = match pinned {
                Some(c) => c,
                None => cache
                    .read_ref(revision)
                    .map_err(io)?
                    .ok_or_else(|| self.not_cached(repo, revision, file))?,
            };
            let entry = cache
                .lookup(&commit, file)
                .map_err(io)?
                .ok_or_else(|| self.not_cached(repo, revision, file))?;
            self.check_cached(&cache, &commit, file, &entry, None, repo)?;
            (commit, entry.path)
        } else {
            // A pinned commit already cached and whole needs no request.
            let cached = match &pinned {
                Some(c) => cache.lookup(c, file).map_err(io)?,
                None => None,
            };
            match (pinned, cached) {
                (Some(c), Some(entry))
                    if self
                        .check_cached(&cache, &c, file, &entry, None, repo)
                        .is_ok() =>
                {
                    (c, entry.path)
                }
                _ => self.download(&cache, repo, revision, file)?,
            }
        };
        // Built from checked names below a canonical root with no symlinked directory on the
        // way, so this holds by construction; checked anyway, as the one thing that must.
        if !is_inside(
            &cache
                .root()
                .join(format!("models--{}--{}", repo.owner, repo.name))
                .join("blobs"),
            &path,
        ) {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not resolve into the cache's blobs", path.display()),
            )));
        }
        Ok((commit, path))
    }

    /// The online path of [`Self::fetch_at`]: `HEAD`, then the cached copy if it is whole, else
    /// a `GET` by the resolved commit.
    fn download(
        &self,
        cache: &RepoCache,
        repo: &RepoRef,
        revision: &str,
        file: &str,
    ) -> Result<(Commit, PathBuf)> {
        let io = |source| Error::Io {
            path: self.cache_dir.clone(),
            source,
        };
        let target = Target {
            endpoint: &self.endpoint,
            repo: repo.id(),
            file,
            revision,
            timeouts: self.timeouts,
        };
        let meta = self.http.head(&target)?;
        if let Some(entry) = cache.lookup(&meta.commit, file).map_err(io)? {
            let same = entry.etag == meta.etag;
            if same
                && self
                    .check_cached(cache, &meta.commit, file, &entry, Some(meta.size), repo)
                    .is_ok()
            {
                return self.finish(cache, revision, meta.commit, entry.path);
            }
        }
        // The blob may be cached for another commit (or a link was lost).
        let have = match cache.blob(&meta.etag).map_err(io)? {
            Some(blob) => verify(&blob, &meta.etag, Some(meta.size)).is_ok(),
            None => false,
        };
        if !have {
            self.http.download(&target, &meta, cache)?;
        }
        let path = cache.link(&meta.commit, file, &meta.etag).map_err(io)?;
        self.finish(cache, revision, meta.commit, path)
    }

    /// Records the branch or tag's commit for offline use, and hands the file out.
    fn finish(
        &self,
        cache: &RepoCache,
        revision: &str,
        commit: Commit,
        path: PathBuf,
    ) -> Result<(Commit, PathBuf)> {
        if Commit::parse(revision).is_none() {
            cache
                .write_ref(revision, &commit)
                .map_err(|source| Error::Io {
                    path: self.cache_dir.clone(),
                    source,
                })?;
        }
        Ok((commit, path))
    }

    /// Checks a cached entry against the ETag its link names; removes it when it fails.
    fn check_cached(
        &self,
        cache: &RepoCache,
        commit: &Commit,
        file: &str,
        entry: &Entry,
        size: Option<u64>,
        repo: &RepoRef,
    ) -> Result<()> {
        verify(&entry.path, &entry.etag, size).map_err(|fail| {
            cache.discard(commit, file, &entry.etag);
            match fail {
                Fail::Io(source) => Error::Io {
                    path: entry.path.clone(),
                    source,
                },
                Fail::Mismatch {
                    what,
                    expected,
                    found,
                } => Error::Integrity {
                    repo: repo.id(),
                    file: file.to_string(),
                    what,
                    expected,
                    found,
                },
            }
        })
    }

    /// Fetches `model.safetensors` and `config.json` of `repo` and checks that they agree;
    /// returns the cached snapshot directory holding them, ready for `models::Model::load`.
    pub fn fetch_checkpoint(&self, repo: &RepoRef) -> Result<PathBuf> {
        self.fetch_checkpoint_at(repo).map(|(_, dir)| dir)
    }

    fn fetch_checkpoint_at(&self, repo: &RepoRef) -> Result<(Commit, PathBuf)> {
        let (commit, weights) = self.fetch_at(repo, repo.revision_or_main(), WEIGHTS_FILE)?;
        // By the commit the weights came from: a push in between cannot mix two commits.
        let (_, config) = self.fetch_at(repo, commit.as_str(), CONFIG_FILE)?;
        let dir = weights.parent().map(Path::to_path_buf).unwrap_or_default();
        if config.parent() != Some(dir.as_path()) {
            return Err(Error::Checkpoint {
                dir,
                problem: format!(
                    "{WEIGHTS_FILE} and {CONFIG_FILE} of {repo} are not in one snapshot"
                ),
            });
        }
        check_checkpoint(&dir)?;
        Ok((commit, dir))
    }

    /// The local directory a checkpoint source stands for: a hub repo is fetched (and checked)
    /// first; a local path is returned as given.
    pub fn resolve(&self, source: &CheckpointSource) -> Result<PathBuf> {
        match source {
            CheckpointSource::Local(p) => Ok(p.clone()),
            CheckpointSource::Hub(r) => self.fetch_checkpoint(r),
        }
    }

    /// Fetches the checkpoint (and its model card, when the repo has one) and writes
    /// `model.safetensors`, `config.json` and `README.md` into `out`, each atomically. Returns
    /// the files written. Only files checked and inside the cache are read.
    pub fn pull(&self, repo: &RepoRef, out: &Path) -> Result<Vec<PathBuf>> {
        let (commit, dir) = self.fetch_checkpoint_at(repo)?;
        let card = match self.fetch_at(repo, commit.as_str(), CARD_FILE) {
            Ok((_, p)) => Some(p),
            // A repo made by hand may have no card; the checkpoint is still whole.
            Err(Error::NotFound { .. } | Error::NotCached { .. }) => None,
            Err(e) => return Err(e),
        };
        std::fs::create_dir_all(out).map_err(|source| Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
        let mut written = Vec::new();
        let sources = [
            (WEIGHTS_FILE, dir.join(WEIGHTS_FILE)),
            (CONFIG_FILE, dir.join(CONFIG_FILE)),
        ]
        .into_iter()
        .chain(card.map(|p| (CARD_FILE, p)));
        for (name, src) in sources {
            let bytes = files::read(&src, files::LARGE).map_err(|source| Error::Io {
                path: src.clone(),
                source,
            })?;
            let dest = out.join(name);
            files::write_atomic(&dest, &bytes).map_err(|source| Error::Io {
                path: dest.clone(),
                source,
            })?;
            written.push(dest);
        }
        Ok(written)
    }

    /// Pushes the checkpoint at `dir` (a model directory, a pruned checkpoint or a run directory,
    /// whose best-val model is pushed) to `repo`: creates the repo if needed, then one commit
    /// with `model.safetensors`, `config.json` and a generated `README.md` model card.
    pub fn push(&self, dir: &Path, repo: &RepoRef, opts: &PushOptions) -> Result<Pushed> {
        if self.offline {
            return Err(Error::Checkpoint {
                dir: dir.to_path_buf(),
                problem: "cannot push while offline".into(),
            });
        }
        let model_dir = train::run::resolve_model_dir(dir)?;
        let config = check_checkpoint(&model_dir)?;
        let card = card::model_card(dir)?;
        let id = repo.id();
        self.client
            .create_repository()
            .repo_id(&id)
            .repo_type(RepoTypeModel)
            .private(opts.private)
            .exist_ok(true)
            .send()
            .map_err(self.map(repo, "create repo"))?;
        let files = vec![WEIGHTS_FILE, CONFIG_FILE, CARD_FILE];
        let operations = vec![
            CommitOperation::add_file(WEIGHTS_FILE, model_dir.join(WEIGHTS_FILE)),
            CommitOperation::add_file(CONFIG_FILE, model_dir.join(CONFIG_FILE)),
            CommitOperation::add_bytes(CARD_FILE, card.clone().into_bytes()),
        ];
        let message = opts
            .message
            .clone()
            .unwrap_or_else(|| format!("Upload {} from prunebench", config.name()));
        let info = self
            .client
            .model(repo.owner.clone(), repo.name.clone())
            .create_commit()
            .operations(operations)
            .commit_message(message)
            .maybe_revision(repo.revision.clone())
            .send()
            .map_err(self.map(repo, "commit"))?;
        Ok(Pushed {
            repo: id,
            commit: info.commit_oid,
            url: info.commit_url,
            files,
            card,
        })
    }
}

/// Checks a checkpoint directory before anything uses it: `config.json` parses, every tensor of
/// `model.safetensors` has the name and shape that config asks for, and the config stored in
/// the weights' metadata (which the loader prefers) is the same one. Returns the config.
pub fn check_checkpoint(dir: &Path) -> Result<ModelConfig> {
    let bad = |problem: String| Error::Checkpoint {
        dir: dir.to_path_buf(),
        problem,
    };
    let config_path = dir.join(CONFIG_FILE);
    let text = files::read_to_string(&config_path, files::SMALL).map_err(|source| Error::Io {
        path: config_path.clone(),
        source,
    })?;
    let config = ModelConfig::from_json(&text)
        .map_err(|e| bad(format!("{CONFIG_FILE} is not a model config: {e}")))?;
    models::checkpoint::load_tensors(&dir.join(WEIGHTS_FILE), &config, &Device::Cpu)
        .map_err(|e| bad(format!("{CONFIG_FILE} does not match the weights: {e}")))?;
    let stored = models::checkpoint::load(dir, &Device::Cpu)?.config;
    if stored != config {
        return Err(bad(format!(
            "{CONFIG_FILE} ({}) differs from the config in {WEIGHTS_FILE}'s metadata ({})",
            config.name(),
            stored.name()
        )));
    }
    Ok(config)
}

/// Why a cached file failed its check.
enum Fail {
    Io(std::io::Error),
    Mismatch {
        what: &'static str,
        expected: String,
        found: String,
    },
}

/// The size (when known) and hash check of a cached file against the ETag it is named by.
fn verify(path: &Path, etag: &Etag, expected_size: Option<u64>) -> Result<(), Fail> {
    let (mut f, size) = files::open(path, files::LARGE).map_err(Fail::Io)?;
    if let Some(expected) = expected_size
        && expected != size
    {
        return Err(Fail::Mismatch {
            what: "size",
            expected: format!("{expected} bytes"),
            found: format!("{size} bytes"),
        });
    }
    let mut hasher = Hasher::new(etag, size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Fail::Io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let (what, found) = hasher.finish();
    if found != etag.as_str() {
        return Err(Fail::Mismatch {
            what,
            expected: etag.as_str().to_string(),
            found,
        });
    }
    Ok(())
}

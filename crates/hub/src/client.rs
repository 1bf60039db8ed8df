//! The hub client: fetch a checkpoint into the hf cache (checked), copy it out, push one.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::Device;
use hf_hub::repository::CommitOperation;
use hf_hub::{HFClientBuilder, HFClientSync, RepoTypeModel};
use models::ModelConfig;
use models::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::from_hf;
use crate::{CheckpointSource, Error, RepoRef, Result, card};

/// The model card file of a hub repo.
pub const CARD_FILE: &str = "README.md";

/// How to reach the hub. Every field left `None` comes from the environment as hf-hub reads it:
/// `HF_ENDPOINT`, `HF_HUB_CACHE` (else `$HF_HOME/hub`), `HF_TOKEN` (else `HF_TOKEN_PATH`, else
/// `$HF_HOME/token`).
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
    client: HFClientSync,
    endpoint: String,
    cache_dir: PathBuf,
    offline: bool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .finish()
    }
}

impl Hub {
    /// A client as `opts` says (see [`HubOptions`] for the defaults).
    pub fn new(opts: &HubOptions) -> Result<Self> {
        let mut builder = HFClientBuilder::new()
            .user_agent(concat!("prunebench/", env!("CARGO_PKG_VERSION")))
            // A refused connection is retried by hf-hub; a stand-in that is down should fail
            // fast rather than after the default back-off.
            .retry_max_attempts(2);
        if let Some(e) = &opts.endpoint {
            builder = builder.endpoint(e.clone());
        }
        if let Some(c) = &opts.cache_dir {
            builder = builder.cache_dir(c.clone());
        }
        if let Some(t) = &opts.token {
            builder = builder.token(t.clone());
        }
        let setup = |e| Error::Hub {
            repo: "-".into(),
            file: "client setup".into(),
            source: Box::new(e),
        };
        let client = builder.build().map_err(setup)?;
        let endpoint = client.endpoint().to_string();
        let cache_dir = client.cache_dir().to_path_buf();
        Ok(Self {
            client: HFClientSync::from_inner(client).map_err(setup)?,
            endpoint,
            cache_dir,
            offline: opts.offline,
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

    #[cfg(test)]
    pub(crate) fn client_for_tests(&self) -> &HFClientSync {
        &self.client
    }

    /// Whether requests are off.
    pub fn offline(&self) -> bool {
        self.offline
    }

    fn map(&self, repo: &RepoRef, file: &str) -> impl Fn(hf_hub::HFError) -> Error {
        let (endpoint, id, rev, file, cache) = (
            self.endpoint.clone(),
            repo.id(),
            repo.revision_or_main().to_string(),
            file.to_string(),
            self.cache_dir.clone(),
        );
        move |e| from_hf(e, &endpoint, &id, &rev, &file, &cache)
    }

    /// Downloads one file of `repo` into the cache (or finds it there when offline) and checks
    /// it: its size against the hub's, its content against the ETag the cache entry is named by
    /// (sha256 for LFS files, git's blob sha1 for regular ones). A file that fails is removed
    /// from the cache, so the next try downloads it afresh. hf-hub itself checks neither, and
    /// does not even check the status of the download's GET.
    pub fn fetch_file(&self, repo: &RepoRef, file: &str) -> Result<PathBuf> {
        let handle = self.client.model(repo.owner.clone(), repo.name.clone());
        let rev = repo.revision_or_main();
        let expected_size = if self.offline {
            None
        } else {
            match handle
                .get_file_metadata()
                .filepath(file)
                .revision(rev)
                .send()
            {
                // hf-hub reports 0 when the hub sent no size.
                Ok(meta) => (meta.file_size > 0).then_some(meta.file_size),
                // The hub answers an LFS file's HEAD with a redirect to its storage, and this
                // call of hf-hub follows it to an answer without the hub's headers. The size is
                // then unknown here; the ETag check below still covers it (sha256 of the whole
                // content).
                Err(hf_hub::HFError::MalformedResponse { .. }) => None,
                Err(e) => return Err(self.map(repo, file)(e)),
            }
        };
        let path = handle
            .download_file()
            .filename(file)
            .revision(rev.to_string())
            .local_files_only(self.offline)
            .send()
            .map_err(self.map(repo, file))?;
        if let Err(e) = verify(&path, expected_size, repo, file) {
            discard(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Fetches `model.safetensors` and `config.json` of `repo` and checks that they agree;
    /// returns the cached snapshot directory holding them, ready for `models::Model::load`.
    pub fn fetch_checkpoint(&self, repo: &RepoRef) -> Result<PathBuf> {
        let weights = self.fetch_file(repo, WEIGHTS_FILE)?;
        let config = self.fetch_file(repo, CONFIG_FILE)?;
        let dir = weights.parent().map(Path::to_path_buf).unwrap_or_default();
        if config.parent() != Some(dir.as_path()) {
            // The two requests resolved the revision to different commits (a push in between).
            return Err(Error::Checkpoint {
                dir,
                problem: format!(
                    "{repo} changed while downloading: {WEIGHTS_FILE} and {CONFIG_FILE} come from different commits; try again"
                ),
            });
        }
        check_checkpoint(&dir)?;
        Ok(dir)
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
    /// the files written.
    pub fn pull(&self, repo: &RepoRef, out: &Path) -> Result<Vec<PathBuf>> {
        let dir = self.fetch_checkpoint(repo)?;
        let card = match self.fetch_file(repo, CARD_FILE) {
            Ok(p) => Some(p),
            // A repo made by hand may have no card; the checkpoint is still whole.
            Err(Error::NotFound { .. } | Error::NotCached { .. }) => None,
            Err(e) => return Err(e),
        };
        fs::create_dir_all(out).map_err(|source| Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
        let mut written = Vec::new();
        let sources = [dir.join(WEIGHTS_FILE), dir.join(CONFIG_FILE)]
            .into_iter()
            .chain(card);
        for src in sources {
            let name = src
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            let dest = out.join(name);
            let bytes = fs::read(&src).map_err(|source| Error::Io {
                path: src.clone(),
                source,
            })?;
            train::run::write_atomic(&dest, &bytes)?;
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
    let text = fs::read_to_string(&config_path).map_err(|source| Error::Io {
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

/// The size and hash check of a cached file (see [`Hub::fetch_file`]).
fn verify(path: &Path, expected_size: Option<u64>, repo: &RepoRef, file: &str) -> Result<()> {
    let fail = |what, expected: String, found: String| Error::Integrity {
        repo: repo.id(),
        file: file.to_string(),
        what,
        expected,
        found,
    };
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = fs::metadata(path).map_err(io)?.len();
    if let Some(expected) = expected_size
        && expected != size
    {
        return Err(fail(
            "size",
            format!("{expected} bytes"),
            format!("{size} bytes"),
        ));
    }
    // The cache names each blob by the ETag hf-hub read from the hub's HEAD response; the
    // snapshot entry is a symlink to it (a copy on systems without symlinks: then there is
    // nothing to check against).
    let Some(etag) = fs::read_link(path)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    else {
        tracing::warn!(file = %path.display(), "no ETag recorded for this cached file; its hash is not checked");
        return Ok(());
    };
    let hex = |n: usize| etag.len() == n && etag.bytes().all(|b| b.is_ascii_hexdigit());
    let mut f = fs::File::open(path).map_err(io)?;
    if hex(64) {
        let found = digest_file::<Sha256>(&mut f, None).map_err(io)?;
        if !found.eq_ignore_ascii_case(&etag) {
            return Err(fail("ETag (sha256)", etag, found));
        }
    } else if hex(40) {
        // A regular (non-LFS) file's ETag is its git blob id: sha1("blob <len>\0" + content).
        let found = digest_file::<Sha1>(&mut f, Some(size)).map_err(io)?;
        if !found.eq_ignore_ascii_case(&etag) {
            return Err(fail("ETag (git blob sha1)", etag, found));
        }
    } else {
        tracing::warn!(file = %path.display(), %etag, "the ETag is not a content hash; only the size was checked");
    }
    Ok(())
}

fn digest_file<D: Digest>(f: &mut fs::File, git_blob_len: Option<u64>) -> std::io::Result<String> {
    let mut hasher = D::new();
    if let Some(len) = git_blob_len {
        hasher.update(format!("blob {len}\0").as_bytes());
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Removes a cached file that failed its check: the blob it points to and the snapshot entry.
fn discard(path: &Path) {
    if let Ok(blob) = fs::canonicalize(path)
        && blob != path
    {
        let _ = fs::remove_file(blob);
    }
    let _ = fs::remove_file(path);
}

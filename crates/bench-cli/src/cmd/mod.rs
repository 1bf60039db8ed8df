//! One module per subcommand: argument parsing and printing only.

pub mod data;
pub mod eval;
pub mod hub;
pub mod iterate;
pub mod model;
pub mod prune;
pub mod retrain;
pub mod schedule;
pub mod train;

/// `--device`, the same on every command that runs a model.
#[derive(clap::Args, Clone, Copy)]
pub struct DeviceArg {
    /// Where to run the model: cpu, cuda (the first GPU) or cuda:N. A GPU needs a binary built
    /// with CUDA (scripts/build-cuda.sh, docs/cuda.md).
    #[arg(long, value_name = "cpu|cuda|cuda:N", default_value = "cpu")]
    pub device: ::train::device::DeviceSpec,
}

impl DeviceArg {
    /// Opens the device; the error says what is missing (a CUDA build, the GPU).
    pub fn open(self) -> Result<candle_core::Device> {
        let device = self.device.open()?;
        tracing::info!(device = %self.device, "device");
        Ok(device)
    }
}

/// Output format of the commands that print a report.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Lines for a person.
    Text,
    /// JSON for a script.
    Json,
}

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use ::hub::{CheckpointSource, Hub, HubOptions};
use anyhow::{Context, Result};

/// `--offline`, set once by `main` before any command runs.
static OFFLINE: AtomicBool = AtomicBool::new(false);

/// Records the global `--offline` flag.
pub fn set_offline(offline: bool) {
    OFFLINE.store(offline, Ordering::SeqCst);
}

/// The hub client as the environment (`HF_ENDPOINT`, `HF_HOME`/`HF_HUB_CACHE`, `HF_TOKEN`,
/// `HF_HUB_OFFLINE`) and `--offline` say.
pub fn hub_client() -> Result<Hub> {
    let mut opts = HubOptions::from_env();
    opts.offline |= OFFLINE.load(Ordering::SeqCst);
    Ok(Hub::new(&opts)?)
}

/// A checkpoint argument made local: `hf://owner/name[@rev]` is fetched into the hf cache (and
/// checked) and its cached directory returned with a label that pins the commit
/// (`hf://owner/name@<commit>`, for provenance files); a local path is returned as given, twice,
/// after the same config-against-weights check when it holds a checkpoint.
pub fn checkpoint(arg: &Path) -> Result<(PathBuf, PathBuf)> {
    match CheckpointSource::from_path(arg)? {
        CheckpointSource::Local(p) => {
            // The loader prefers the config in the weights' metadata and would silently ignore
            // a config.json that disagrees: refuse it before any use, as for the hub.
            let dir = ::train::run::resolve_model_dir(&p)?;
            let (config, weights) = (
                dir.join(models::checkpoint::CONFIG_FILE),
                dir.join(models::checkpoint::WEIGHTS_FILE),
            );
            if config.is_file() && weights.is_file() {
                ::hub::check_checkpoint(&dir)
                    .with_context(|| format!("checkpoint {}", p.display()))?;
            }
            Ok((p.clone(), p))
        }
        CheckpointSource::Hub(repo) => {
            let dir = hub_client()?
                .fetch_checkpoint(&repo)
                .with_context(|| format!("checkpoint {}", arg.display()))?;
            // The snapshot directory is named by the commit it holds.
            let label = match dir.file_name() {
                Some(commit) => format!(
                    "{}{}@{}",
                    ::hub::SCHEME,
                    repo.id(),
                    commit.to_string_lossy()
                ),
                None => format!("{}{repo}", ::hub::SCHEME),
            };
            Ok((dir, PathBuf::from(label)))
        }
    }
}

/// Writes the command line that made `dir` into `dir/command.txt` (read by the model card), unless
/// an earlier command (one that started a resumed run) wrote it.
pub fn record_command(dir: &Path) -> Result<()> {
    let words: Vec<String> = std::env::args_os()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                "prunebench".to_string()
            } else {
                a.to_string_lossy().into_owned()
            }
        })
        .collect();
    Ok(experiments::provenance::record_command(dir, &words)?)
}

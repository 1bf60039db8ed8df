//! Where a checkpoint came from and what it is.
//!
//! A pruned checkpoint directory holds `origin.json` (the checkpoint it was pruned from, that
//! run's spec, and what the pruned checkpoint is by content) and `command.txt` (the command
//! that made it, read by the hub's model card). [`checkpoint_id`] names any checkpoint by
//! content, so a retraining's spec hash does not depend on the path it was given.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use train::run::{RunDir, read_json, resolve_model_dir, write_atomic, write_json};

use crate::spec::Start;
use crate::{CheckpointId, Error, ExperimentSpec, Result};

/// The provenance file of a pruned checkpoint.
pub const ORIGIN_FILE: &str = "origin.json";

/// The command that made a checkpoint or run directory.
pub const COMMAND_FILE: &str = "command.txt";

/// What `origin.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// The checkpoint the weights were pruned from, as given.
    pub checkpoint: PathBuf,
    /// The spec of the run that trained it, when it was a run directory (or itself pruned from
    /// one).
    pub spec: Option<ExperimentSpec>,
    /// What the pruned checkpoint is by content, when its source was a run directory: that
    /// run's hash and the pruning. Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<CheckpointId>,
}

/// Records in `dir/origin.json` that `dir`'s weights come from `source` (a run directory, a
/// model directory, or a pruned checkpoint with its own origin), pruned as `pruning` (its
/// canonical text) says.
pub fn write_origin(dir: &Path, source: &Path, pruning: &str) -> Result<()> {
    let run = RunDir::new(source);
    let (spec, id) = if run.spec().is_file() {
        let spec: ExperimentSpec = read_json(&run.spec())?;
        let id = CheckpointId::Pruned {
            origin: spec.hash(),
            pruning: pruning.to_string(),
        };
        (Some(spec), Some(id))
    } else {
        (read_origin(source)?.and_then(|o| o.spec), None)
    };
    let origin = Origin {
        checkpoint: source.to_path_buf(),
        spec,
        id,
    };
    Ok(write_json(&dir.join(ORIGIN_FILE), &origin)?)
}

/// Reads `dir/origin.json`, if there is one.
pub fn read_origin(dir: &Path) -> Result<Option<Origin>> {
    let path = dir.join(ORIGIN_FILE);
    if path.is_file() {
        Ok(read_json(&path).map(Some)?)
    } else {
        Ok(None)
    }
}

/// What the checkpoint at `path` is by content: a run directory is its spec hash; a pruned
/// checkpoint with an `origin.json` naming it is what that says; anything else is the SHA-256 of
/// its weights.
pub fn checkpoint_id(path: &Path) -> Result<CheckpointId> {
    let run = RunDir::new(path);
    if run.spec().is_file() {
        let spec: ExperimentSpec = read_json(&run.spec())?;
        return Ok(CheckpointId::Run { spec: spec.hash() });
    }
    if path.is_dir()
        && let Some(Origin { id: Some(id), .. }) = read_origin(path)?
    {
        return Ok(id);
    }
    let dir = resolve_model_dir(path)?;
    let weights = if dir.is_dir() {
        dir.join(models::checkpoint::WEIGHTS_FILE)
    } else {
        dir
    };
    Ok(CheckpointId::Weights {
        sha256: sha256_file(&weights)?,
    })
}

/// The checkpoint at `path` as a run starts from it: its model config, its content id and the
/// spec of the run its weights come from (the run itself, or `origin.json`'s).
pub fn start_of(path: &Path) -> Result<Start> {
    let (model, _) = train::engine::load_model(path, &candle_core::Device::Cpu)?;
    let run = RunDir::new(path);
    let origin = if run.spec().is_file() {
        Some(read_json(&run.spec())?)
    } else if path.is_dir() {
        read_origin(path)?.and_then(|o| o.spec)
    } else {
        None
    };
    Ok(Start {
        config: model.config().clone(),
        path: path.to_path_buf(),
        id: checkpoint_id(path)?,
        origin,
    })
}

/// The SHA-256 of a file, in hex, read in pieces (weights can be large).
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| Error::io(path.to_path_buf(), source);
    let (mut file, _) = files::open(path, files::LARGE).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
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

/// Writes `words` (a program and its arguments) into `dir/command.txt`, shell-quoted, unless an
/// earlier command (one that started a resumed run) wrote it.
pub fn record_command(dir: &Path, words: &[String]) -> Result<()> {
    let path = dir.join(COMMAND_FILE);
    if path.exists() {
        return Ok(());
    }
    let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    Ok(write_atomic(
        &path,
        format!("{}\n", line.join(" ")).as_bytes(),
    )?)
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_for_a_shell() {
        let tmp = tempfile::tempdir().unwrap();
        let words = ["prunebench", "train", "--out", "a b", "it's"].map(String::from);
        record_command(tmp.path(), &words).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(COMMAND_FILE)).unwrap();
        assert_eq!(text, "prunebench train --out 'a b' 'it'\\''s'\n");
        // A resumed run keeps the command that started it.
        record_command(tmp.path(), &["other".to_string()]).unwrap();
        let again = std::fs::read_to_string(tmp.path().join(COMMAND_FILE)).unwrap();
        assert_eq!(again, text);
    }

    #[test]
    fn a_host_names_the_running_binary_by_its_digest() {
        // Against an independent digest of the same file.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let hex: String = Sha256::digest(&exe)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let host = Host::current("cpu");
        assert_eq!(host.binary, Some(format!("sha256:{hex}")));
        // Records written before the field existed still read, without it.
        let old = r#"{"commit":"abc","machine":"m","cores":2,"device":"cpu","started":1}"#;
        let read: Host = serde_json::from_str(old).unwrap();
        assert_eq!(read.binary, None);
        assert!(!serde_json::to_string(&read).unwrap().contains("binary"));
    }

    #[test]
    fn a_plain_weights_file_is_named_by_its_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("w.safetensors");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            checkpoint_id(&f).unwrap(),
            CheckpointId::Weights {
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            }
        );
    }
}

/// The file of a run directory listing where it was trained: one [`Host`] per line, one line
/// each time a grid started or resumed the run.
pub const HOSTS_FILE: &str = "hosts.jsonl";

/// Where (and from which source tree) a run was trained, for the results' provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// `git rev-parse --short=12 HEAD` of the working directory, `+dirty` when tracked files
    /// differ from it; `unknown` outside a git checkout.
    pub commit: String,
    /// The CPU model (`model name` of /proc/cpuinfo, as `lscpu` prints it).
    pub machine: String,
    /// Cores the process could use.
    pub cores: usize,
    /// The training device: `cpu` or `gpu` (which GPU is not recorded).
    pub device: String,
    /// Seconds since the Unix epoch when training started or resumed.
    pub started: u64,
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the running executable: which
    /// build trained the run, where `commit` (the checkout's) may differ from the commit the
    /// binary was built from. Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

/// The running executable's digest for [`Host::binary`], computed once per process (a debug
/// build is hundreds of MB). `None` when the executable cannot be read.
fn binary_digest() -> Option<String> {
    static DIGEST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DIGEST
        .get_or_init(|| {
            let hex = sha256_file(&std::env::current_exe().ok()?).ok()?;
            Some(format!("sha256:{}", &hex[..16]))
        })
        .clone()
}

impl Host {
    /// This process's host, training on `device`.
    pub fn current(device: &str) -> Self {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
            Some(c) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
                Some(s) if !s.is_empty() => format!("{c}+dirty"),
                _ => c,
            },
            None => "unknown".into(),
        };
        let machine = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            commit,
            machine,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            device: device.into(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            binary: binary_digest(),
        }
    }
}

/// Appends `host` to the run directory's [`HOSTS_FILE`].
pub fn record_host(dir: &Path, host: &Host) -> Result<()> {
    use std::io::Write as _;
    let path = dir.join(HOSTS_FILE);
    std::fs::create_dir_all(dir).map_err(|source| Error::io(dir.to_path_buf(), source))?;
    let line =
        serde_json::to_string(host).map_err(|e| Error::corrupt(path.clone(), e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| Error::io(path.clone(), source))?;
    // One write of one line: a kill leaves whole lines, and a torn last line is skipped on read.
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(|source| Error::io(path.clone(), source))
}

/// The hosts a run directory records (none when it has no [`HOSTS_FILE`]); unreadable lines
/// are skipped (a torn last line after a kill).
pub fn read_hosts(dir: &Path) -> Result<Vec<Host>> {
    let path = dir.join(HOSTS_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text =
        files::read_to_string(&path, 1 << 20).map_err(|source| Error::io(path.clone(), source))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

//! `prunebench hub pull|push`: checkpoints to and from the Hugging Face hub.

use std::path::PathBuf;

use ::hub::{PushOptions, RepoRef};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use crate::cmd::{Format, hub_client};
use crate::output::{print_json, print_line};

#[derive(Subcommand)]
#[command(
    after_help = "Environment: HF_ENDPOINT (the hub's URL), HF_TOKEN, HF_HOME / HF_HUB_CACHE (the download cache), HF_HUB_OFFLINE=1 (as --offline)."
)]
pub enum Command {
    /// Download a checkpoint (model.safetensors, config.json, README.md) into a directory.
    Pull(PullArgs),
    /// Upload a checkpoint with a generated model card, creating the repo if needed.
    Push(PushArgs),
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// owner/name[@revision] (an hf:// prefix is accepted).
    repo: String,
    /// The directory to write the checkpoint into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// A model directory, a pruned checkpoint, or a run directory (its best-val model).
    dir: PathBuf,
    /// owner/name[@branch].
    repo: String,
    /// Create the repo private.
    #[arg(long)]
    private: bool,
    /// The commit message.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Serialize)]
struct PullReport {
    repo: String,
    out: PathBuf,
    files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct PushReport {
    repo: String,
    commit: Option<String>,
    url: Option<String>,
    files: Vec<&'static str>,
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Pull(args) => pull(args),
        Command::Push(args) => push(args),
    }
}

fn pull(args: PullArgs) -> Result<()> {
    let repo: RepoRef = args.repo.parse()?;
    let files = hub_client()?
        .pull(&repo, &args.out)
        .with_context(|| format!("pulling {repo}"))?;
    let report = PullReport {
        repo: repo.to_string(),
        out: args.out,
        files,
    };
    match args.format {
        Format::Json => print_json(&report),
        Format::Text => {
            let names: Vec<String> = report
                .files
                .iter()
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            print_line(&format!(
                "pulled {} into {} ({})",
                report.repo,
                report.out.display(),
                names.join(", ")
            ))
        }
    }
}

fn push(args: PushArgs) -> Result<()> {
    let repo: RepoRef = args.repo.parse()?;
    let opts = PushOptions {
        private: args.private,
        message: args.message,
    };
    let pushed = hub_client()?
        .push(&args.dir, &repo, &opts)
        .with_context(|| format!("pushing {} to {repo}", args.dir.display()))?;
    let report = PushReport {
        repo: pushed.repo,
        commit: pushed.commit,
        url: pushed.url,
        files: pushed.files,
    };
    match args.format {
        Format::Json => print_json(&report),
        Format::Text => print_line(&format!(
            "pushed {} to {} (commit {}): {}",
            args.dir.display(),
            report.repo,
            report.commit.as_deref().unwrap_or("unknown"),
            report.files.join(", ")
        )),
    }
}

//! `prunebench model info`: parameters, FLOPs and per-layer widths of a model config.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use models::{Layer, ModelConfig};
use serde::Serialize;

use crate::cmd::Format;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Parameters, FLOPs (multiply-adds on a 32x32 input) and per-layer widths.
    Info(InfoArgs),
}

#[derive(clap::Args)]
#[command(
    after_help = "ARCH: resnet20, resnet32, resnet44, resnet56, resnet110, vgg16, densenet40"
)]
struct InfoArgs {
    /// An unpruned architecture by name.
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    arch: Option<String>,
    /// Output classes (10 for CIFAR-10, 100 for CIFAR-100).
    #[arg(long, value_name = "N", default_value_t = 10)]
    classes: usize,
    /// Input image channels (3 for CIFAR, 1 for Fashion-MNIST).
    #[arg(long, value_name = "N", default_value_t = 3)]
    in_channels: usize,
    /// A model config JSON file (e.g. a checkpoint's config.json), or a checkpoint
    /// (hf://owner/name[@revision], checked against its weights), instead of ARCH.
    #[arg(long, value_name = "FILE|hf://REPO", conflicts_with_all = ["classes", "in_channels"])]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// What `--format json` prints.
#[derive(Serialize)]
struct Report<'a> {
    arch: String,
    params: u64,
    flops: u64,
    config: &'a ModelConfig,
    layers: Vec<LayerReport>,
    /// The channel groups `prune --ratio` (and `--layers`) prunes, with their widths.
    channel_groups: Vec<GroupReport>,
}

#[derive(Serialize)]
struct GroupReport {
    name: String,
    channels: usize,
}

fn groups(config: &ModelConfig) -> Vec<GroupReport> {
    config
        .channel_groups()
        .into_iter()
        .map(|g| GroupReport {
            name: g.name,
            channels: g.channels,
        })
        .collect()
}

#[derive(Serialize)]
struct LayerReport {
    #[serde(flatten)]
    layer: Layer,
    params: u64,
    flops: u64,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        ModelCommand::Info(args) => info(args),
    }
}

fn info(args: InfoArgs) -> Result<()> {
    let config = match (&args.config, &args.arch) {
        (Some(path), _) => {
            let (local, _) = crate::cmd::checkpoint(path)?;
            // A checkpoint directory stands for its config.json.
            let path = if local.is_dir() {
                local.join(models::checkpoint::CONFIG_FILE)
            } else {
                local
            };
            let path = &path;
            ModelConfig::load(path)?
        }
        (None, Some(arch)) => ModelConfig::from_name(arch, args.classes, args.in_channels)?,
        (None, None) => anyhow::bail!("give an ARCH or --config FILE"),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.format {
        Format::Json => {
            let report = Report {
                arch: config.name(),
                params: config.params(),
                flops: config.flops(),
                config: &config,
                layers: config
                    .layers()
                    .into_iter()
                    .map(|layer| LayerReport {
                        params: layer.params(),
                        flops: layer.flops(),
                        layer,
                    })
                    .collect(),
                channel_groups: groups(&config),
            };
            // Rendered first, so a closed pipe surfaces as an io::Error (main treats it as
            // success); serde_json's writer would hide it inside its own error type.
            let text = serde_json::to_string_pretty(&report)?;
            writeln!(out, "{text}")?;
        }
        Format::Text => write_text(&mut out, &config)?,
    }
    out.flush().context("cannot write to standard output")
}

fn write_text(out: &mut impl Write, config: &ModelConfig) -> Result<()> {
    let params = config.params();
    let flops = config.flops();
    writeln!(out, "arch     {}", config.name())?;
    writeln!(out, "classes  {}", config.num_classes())?;
    writeln!(out, "input    {}x32x32", config.in_channels())?;
    writeln!(out, "params   {params} ({:.3}M)", params as f64 / 1e6)?;
    writeln!(
        out,
        "flops    {flops} ({:.2}M multiply-adds)",
        flops as f64 / 1e6
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<22} {:<6} {:>6} {:>6} {:>4} {:>5} {:>10} {:>12}",
        "layer", "kind", "in", "out", "k/s", "size", "params", "flops"
    )?;
    for layer in config.layers() {
        let (kind, cin, cout, ks, size) = match &layer {
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                output_size,
                ..
            } => (
                "conv",
                *in_channels,
                *out_channels,
                format!("{kernel}/{stride}"),
                output_size.to_string(),
            ),
            Layer::BatchNorm { channels, .. } => {
                ("bn", *channels, *channels, "-".into(), "-".into())
            }
            Layer::Linear {
                in_features,
                out_features,
                ..
            } => (
                "linear",
                *in_features,
                *out_features,
                "-".into(),
                "-".into(),
            ),
        };
        writeln!(
            out,
            "{:<22} {:<6} {:>6} {:>6} {:>4} {:>5} {:>10} {:>12}",
            layer.name(),
            kind,
            cin,
            cout,
            ks,
            size,
            layer.params(),
            layer.flops()
        )?;
    }
    let groups = groups(config);
    writeln!(
        out,
        "\nchannel groups (what prune --ratio R prunes; --layers selects by name or prefix): {}",
        groups.len()
    )?;
    for g in groups {
        writeln!(out, "  {:<22} {:>5} channels", g.name, g.channels)?;
    }
    Ok(())
}

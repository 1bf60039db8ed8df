//! `prunebench schedule`: a learning-rate schedule per iteration, as CSV or JSON, and a chart.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use schedules::plot::{ChartOptions, Curve, draw_svg};
use schedules::{Budget, LrSchedule, Schedule};
use serde::Serialize;

use crate::output::write_atomic;

#[derive(clap::Args)]
#[command(
    after_help = "SPEC examples: ft, lrw, slr, clr, clr:max=0.1,min=1e-5,warmup=0.1, \
    step:0.1@0,0.01@80,0.001@120, onecycle:max=0.4, cosine:max=0.1,min=0"
)]
pub struct Args {
    /// The schedule, in its short text form (see below).
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    spec: Option<String>,
    /// Several schedules separated by commas, drawn on one chart (e.g. ft,lrw,slr,clr).
    #[arg(long, value_name = "SPECS")]
    compare: Option<String>,
    /// The budget in epochs.
    #[arg(long, value_name = "N")]
    epochs: u32,
    /// Iterations per epoch: one row each.
    #[arg(long, value_name = "S", default_value_t = 1)]
    steps_per_epoch: u32,
    /// Table format; printed unless only --plot is asked for.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write the table to this file (atomically) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Draw the learning rate against epochs as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Logarithmic learning-rate axis on the chart.
    #[arg(long)]
    log_y: bool,
    /// Chart title.
    #[arg(long)]
    title: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// `step,epoch,lr` (with a leading `schedule` column for --compare).
    Csv,
    /// One object per schedule with its parameters and every point.
    Json,
}

/// A schedule as the JSON output shows it.
#[derive(Serialize)]
struct Report<'a> {
    /// What the user typed.
    label: &'a str,
    /// The canonical text form, every parameter spelled out.
    spec: String,
    schedule: &'a Schedule,
    epochs: u32,
    steps_per_epoch: u32,
    points: Vec<schedules::Point>,
}

/// The most points one `schedule` command prints (all curves together).
const MAX_POINTS: u64 = 2_000_000;

pub fn run(args: Args) -> Result<()> {
    let budget = Budget::new(args.epochs, args.steps_per_epoch)?;
    let labels = match (&args.spec, &args.compare) {
        (Some(spec), _) => vec![spec.clone()],
        (None, Some(list)) => schedules::split_list(list),
        (None, None) => bail!("give a schedule SPEC or --compare SPECS"),
    };
    if labels.is_empty() {
        bail!("--compare needs at least one schedule");
    }
    // Every point is held and printed: a budget the library accepts (up to 10^8 iterations)
    // could still mean gigabytes of text. Sixteen times the paper's longest run is plenty.
    let points = budget.total_steps().saturating_mul(labels.len() as u64);
    if points > MAX_POINTS {
        bail!(
            "{} schedule(s) of {} epochs x {} iterations make {points} points; at most {MAX_POINTS} can be printed (lower --epochs or --steps-per-epoch)",
            labels.len(),
            args.epochs,
            args.steps_per_epoch
        );
    }
    let curves = labels
        .iter()
        .map(|label| {
            let schedule: Schedule = label
                .parse()
                .with_context(|| format!("schedule '{label}'"))?;
            let schedule = schedule
                .build(budget)
                .with_context(|| format!("schedule '{label}'"))?;
            Ok(Curve {
                label: label.clone(),
                schedule,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    if let Some(path) = &args.plot {
        let opts = ChartOptions {
            title: args
                .title
                .clone()
                .unwrap_or_else(|| format!("Learning rate, {} epochs", budget.epochs())),
            log_y: args.log_y,
            ..ChartOptions::default()
        };
        // Draw to a temporary file and rename, so a failed draw leaves no half chart.
        files::write_with(path, |tmp| -> Result<()> {
            draw_svg(tmp, &curves, &opts)?;
            Ok(())
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(path = %path.display(), "wrote chart");
    }

    let format = match (args.format, &args.plot) {
        (Some(f), _) => f,
        (None, None) => Format::Csv,
        (None, Some(path)) => {
            eprintln!("wrote {}", path.display());
            return Ok(());
        }
    };
    let compare = args.compare.is_some();
    match &args.output {
        Some(path) => {
            let mut buf = Vec::new();
            write_table(&mut buf, &curves, format, compare)?;
            write_atomic(path, &buf)
        }
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write_table(&mut out, &curves, format, compare)?;
            out.flush().context("cannot write to standard output")
        }
    }
}

fn write_table(
    out: &mut impl Write,
    curves: &[Curve],
    format: Format,
    compare: bool,
) -> Result<()> {
    match format {
        Format::Csv => {
            if compare {
                writeln!(out, "schedule,step,epoch,lr")?;
            } else {
                writeln!(out, "step,epoch,lr")?;
            }
            for c in curves {
                let label = csv_field(&c.label);
                for p in c.schedule.points() {
                    if compare {
                        write!(out, "{label},")?;
                    }
                    writeln!(out, "{},{},{}", p.step, p.epoch, p.lr)?;
                }
            }
        }
        Format::Json => {
            let reports: Vec<Report> = curves
                .iter()
                .map(|c| report(&c.label, &c.schedule))
                .collect();
            if compare {
                serde_json::to_writer_pretty(&mut *out, &reports)?;
            } else {
                serde_json::to_writer_pretty(&mut *out, &reports[0])?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn report<'a>(label: &'a str, s: &'a LrSchedule) -> Report<'a> {
    Report {
        label,
        spec: s.schedule().to_string(),
        schedule: s.schedule(),
        epochs: s.budget().epochs(),
        steps_per_epoch: s.budget().steps_per_epoch(),
        points: s.points().collect(),
    }
}

/// Quotes a CSV field that holds a comma or a quote (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

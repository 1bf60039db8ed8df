//! `cargo xtask reproduce <what>`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use schedules::plot::{ChartOptions, Curve, draw_svg};
use schedules::{Budget, Preset, Schedule};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Table 2: PFEC on CIFAR with fine-tuning, Scratch-E/B and CLR; resumable, parallel,
    /// or emitted for Slurm. Writes results/table2.md and .csv.
    Table2(crate::table2::Args),
    /// Figure 1: FT, LRW, SLR and CLR when retraining 72 epochs on CIFAR.
    Fig1 {
        /// Where to write the chart.
        #[arg(long, default_value = "results/fig1.svg")]
        out: PathBuf,
        /// Iterations per epoch: 704 is CIFAR's 45,000 training images (90/10 split) at batch 64.
        #[arg(long, default_value_t = 704)]
        steps_per_epoch: u32,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.what {
        What::Table2(args) => crate::table2::run(&args).map(|_| ()),
        What::Fig1 {
            out,
            steps_per_epoch,
        } => fig1(&out, steps_per_epoch),
    }
}

fn fig1(out: &std::path::Path, steps_per_epoch: u32) -> Result<()> {
    let budget = Budget::new(72, steps_per_epoch)?;
    let p = Preset::Cifar;
    let curves = [
        ("FT", Schedule::ft(p)),
        ("LRW", Schedule::lrw(p)),
        ("SLR", Schedule::slr(p)),
        ("CLR", Schedule::clr(p)),
    ]
    .into_iter()
    .map(|(label, s)| {
        Ok(Curve {
            label: label.into(),
            schedule: s.build(budget)?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = out.with_extension("svg.tmp");
    let opts = ChartOptions {
        title: "Figure 1: retraining for 72 epochs on CIFAR".into(),
        ..ChartOptions::default()
    };
    draw_svg(&tmp, &curves, &opts)?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

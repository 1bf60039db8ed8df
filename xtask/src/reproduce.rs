//! `cargo xtask reproduce <what>`.

use std::path::PathBuf;

use anyhow::Result;
use schedules::plot::{ChartOptions, Curve, draw_svg};
use schedules::{Budget, Preset, Schedule};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Table 2: PFEC with FT, CLR (and LRW, SLR), Scratch-E/B; resumable, parallel, or emitted
    /// for Slurm. Writes results/<profile>/table2.md, .csv, paired.csv and runs.jsonl.
    Table2(crate::table2::Args),
    /// Figure 2: one-shot PFEC, accuracy against the retraining budget for FT, LRW, SLR and
    /// CLR; shares Table 2's runs. Writes results/<profile>/fig2.{svg,png,csv,md}.
    Fig2(crate::fig2::Args),
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
        What::Fig2(args) => crate::fig2::run(&args).map(|_| ()),
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
    let opts = ChartOptions {
        title: "Figure 1: retraining for 72 epochs on CIFAR".into(),
        ..ChartOptions::default()
    };
    crate::charts::via_temp(out, |tmp| Ok(draw_svg(tmp, &curves, &opts)?))?;
    println!("wrote {}", out.display());
    Ok(())
}

//! `cargo xtask <task>`: repository chores in Rust (rust-analyzer's xtask pattern).
//!
//! Tasks: `reproduce fig1` draws the paper's Figure 1 (the four retraining schedules on CIFAR,
//! 72 epochs) to `results/fig1.svg`; `reproduce fig2` runs Figure 2's grid (accuracy against
//! the retraining budget) and draws it to `results/fig2.svg` and `.png`; `reproduce table2` runs
//! Table 2's grid and writes `results/table2.md` and `.csv`; `bench` prints training and
//! inference images/s of candle's ops, our kernels and PyTorch side by side; `run-task` (hidden)
//! runs one task of an emitted grid; `make-sample` writes the bundled Fashion-MNIST sample.

mod bench;
mod charts;
mod fig2;
mod reproduce;
mod sample;
mod table2;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "prunebench repository tasks")]
struct Cli {
    #[command(subcommand)]
    task: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce a figure or table of the paper.
    Reproduce(reproduce::Args),
    /// Training and inference images/s: candle's ops, our kernels and PyTorch side by side,
    /// and pruned models against unpruned ones.
    Bench(bench::Args),
    /// Write the bundled Fashion-MNIST sample (data/sample/fashion-mnist) from the full dataset.
    MakeSample(sample::Args),
    /// Run one task file of an emitted grid (`reproduce table2 --emit slurm DIR`): what each
    /// Slurm array task calls.
    #[command(hide = true)]
    RunTask {
        /// The task file (tasks/NNNN.json).
        file: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    // Training allocates and frees activation-sized buffers every step: keep them in the process.
    kernels::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.task {
        Command::Reproduce(args) => reproduce::run(args),
        Command::Bench(args) => bench::run(args),
        Command::MakeSample(args) => sample::run(args),
        Command::RunTask { file } => table2::run_task_file(&file),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `cargo xtask <task>`: repository chores in Rust (rust-analyzer's xtask pattern).
//!
//! Tasks: `reproduce fig1` draws the paper's Figure 1 (the four retraining schedules on CIFAR,
//! 72 epochs) to `results/fig1.svg`; `make-sample` writes the bundled Fashion-MNIST sample.

mod reproduce;
mod sample;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "prunebench repository tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Reproduce a figure or table of the paper.
    Reproduce(reproduce::Args),
    /// Write the bundled Fashion-MNIST sample (data/sample/fashion-mnist) from the full dataset.
    MakeSample(sample::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Reproduce(args) => reproduce::run(args),
        Task::MakeSample(args) => sample::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

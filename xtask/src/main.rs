//! `cargo xtask <task>`: repository chores in Rust (rust-analyzer's xtask pattern).
//!
//! Tasks: `reproduce fig1` draws the paper's Figure 1 (the four retraining schedules on CIFAR,
//! 72 epochs) to `results/fig1.svg`; `reproduce fig2` runs Figure 2's grid (accuracy against
//! the retraining budget) and draws it to `results/<profile>/fig2.svg` and `.png`; `reproduce
//! table2` runs Table 2's grid and writes `results/<profile>/table2.md`, `.csv`, `paired.csv`
//! (against fine-tuning, seed by seed) and `runs.jsonl` (the per-run records); `bench` prints training and
//! inference images/s of candle's ops, our kernels and PyTorch side by side (`--device cuda`:
//! candle's CUDA backend and PyTorch on the GPU); `run-task` (hidden)
//! runs one task of an emitted grid; `make-sample` writes the bundled Fashion-MNIST sample;
//! `fuzz` runs every libFuzzer target in `fuzz/` (nightly) and reports executions and crashes.

mod bench;
mod charts;
mod fig2;
mod fuzz;
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
    /// Run every fuzz target in fuzz/ for --seconds each (nightly and cargo-fuzz) and write
    /// executions and crashes to results/fuzz.json.
    Fuzz(fuzz::Args),
    /// Run one task file of an emitted grid (`reproduce table2 --emit slurm DIR`): what each
    /// Slurm array task calls.
    #[command(hide = true)]
    RunTask {
        /// Where a training task computes: cpu, cuda or cuda:N.
        #[arg(long, value_name = "cpu|cuda|cuda:N", default_value = "cpu")]
        device: train::device::DeviceSpec,
        /// The task file (tasks/NNNN.json).
        file: std::path::PathBuf,
    },
}

/// Opens `--device`. The library's error for CUDA without a CUDA build names the `prunebench`
/// build script; xtask is built another way.
fn open_device(spec: train::device::DeviceSpec) -> anyhow::Result<candle_core::Device> {
    match spec.open() {
        Err(train::Error::NoCuda { device }) => Err(anyhow::anyhow!(
            "device '{device}': this xtask was built without CUDA support; build it with CUDA: \
             `source scripts/cuda-env.sh`, then `cargo run -p xtask --features cuda -- ...` \
             (docs/cuda.md)"
        )),
        other => Ok(other?),
    }
}

fn main() -> std::process::ExitCode {
    // Keep freed activation buffers in the process and make candle's thread pool spin briefly
    // (kernels::configure_process says why).
    // SAFETY: the first statement of main: no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        kernels::configure_process()
    };
    if let Err(e) = kernels::check_env() {
        eprintln!("xtask: {e}");
        return std::process::ExitCode::from(2);
    }
    let cli = Cli::parse();
    let result = match cli.task {
        Command::Reproduce(args) => reproduce::run(args),
        Command::Bench(args) => bench::run(args),
        Command::MakeSample(args) => sample::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::RunTask { device, file } => table2::run_task_file(&file, device),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

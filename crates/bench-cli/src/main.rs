//! `prunebench`: prune convolutional networks and retrain them with the right schedule.
//!
//! A thin shell: each subcommand parses its arguments, calls a library crate and prints.

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "prunebench", version, about, long_about = None)]
struct Cli {
    /// Log more (repeat for more detail); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Hub checkpoints (hf://owner/name[@rev]) from the local cache only: no request is sent.
    #[arg(long, global = true)]
    offline: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a learning-rate schedule per iteration (CSV or JSON) and optionally plot it.
    Schedule(cmd::schedule::Args),
    /// Get and inspect datasets.
    #[command(subcommand)]
    Data(cmd::data::Command),
    /// Inspect a model: parameters, FLOPs and per-layer widths.
    Model(cmd::model::Args),
    /// Train a model with a schedule in a resumable run directory.
    Train(Box<cmd::train::Args>),
    /// Evaluate a checkpoint: accuracy and mean cross-entropy.
    Eval(cmd::eval::Args),
    /// Prune a model (PFEC, magnitude, random) and write the pruned checkpoint and its plan.
    Prune(Box<cmd::prune::Args>),
    /// Retrain a pruned checkpoint with FT, LRW, SLR or CLR.
    Retrain(Box<cmd::retrain::Args>),
    /// Iterative pruning: prune a little, retrain, repeat to a target sparsity.
    Iterate(Box<cmd::iterate::Args>),
    /// Pull checkpoints from and push them to the Hugging Face hub.
    #[command(subcommand)]
    Hub(cmd::hub::Command),
}

fn main() -> ExitCode {
    // Keep freed activation buffers in the process and make candle's thread pool spin briefly
    // (kernels::configure_process says why).
    // SAFETY: the first statement of main: no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        kernels::configure_process()
    };
    if let Err(e) = kernels::check_env() {
        eprintln!("prunebench: {e}");
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: print as clap does.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message up to its usage block, on one line.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!(
                "prunebench: {}",
                message.join(" ").trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    init_tracing(cli.verbose);
    cmd::set_offline(cli.offline);
    let result = match cli.command {
        Command::Schedule(args) => cmd::schedule::run(args),
        Command::Data(cmd) => cmd::data::run(cmd),
        Command::Model(args) => cmd::model::run(args),
        Command::Train(args) => cmd::train::run(*args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Prune(args) => cmd::prune::run(*args),
        Command::Retrain(args) => cmd::retrain::run(*args),
        Command::Iterate(args) => cmd::iterate::run(*args),
        Command::Hub(cmd) => cmd::hub::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain on one line.
            eprintln!("prunebench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal, and never with NO_COLOR set (no-color.org): a
    // log file or a CI capture gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks argument definitions only when a command is built: check every subcommand
    /// here, not when a user first runs it.
    #[test]
    fn every_command_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

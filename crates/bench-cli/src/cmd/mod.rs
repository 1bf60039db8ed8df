//! One module per subcommand: argument parsing and printing only.

pub mod data;
pub mod eval;
pub mod iterate;
pub mod model;
pub mod prune;
pub mod retrain;
pub mod schedule;
pub mod train;

/// Output format of the commands that print a report.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Lines for a person.
    Text,
    /// JSON for a script.
    Json,
}

//! One module per subcommand: argument parsing and printing only.

pub mod data;
pub mod model;
pub mod prune;
pub mod schedule;

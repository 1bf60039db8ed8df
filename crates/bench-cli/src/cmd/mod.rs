//! One module per subcommand: argument parsing and printing only.

pub mod model;
pub mod schedule;

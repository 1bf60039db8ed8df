//! Helpers shared by the end-to-end tests of the `prunebench` binary.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `prunebench` with `args`, whatever its exit status.
pub fn prunebench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prunebench"))
        .args(args)
        .output()
        .expect("run prunebench")
}

/// Runs `prunebench` and parses its standard output as JSON, failing the test (with its standard
/// error) if the command fails.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = prunebench(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as the `&str` an argument list wants.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Writes the learnable bars dataset (real Fashion-MNIST format) into `tmp/data` and returns that
/// folder.
pub fn bars(tmp: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let data = tmp.join("data");
    std::fs::create_dir(&data).expect("create the data folder");
    datasets::fixtures::write_bars(&data, n_train, n_test).expect("write the bars dataset");
    data
}

//! `cargo xtask reproduce table2` killed with SIGKILL part-way and rerun completes the table with
//! the same numbers as a reproduction that was never interrupted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xtask(tmp: &Path, runs: &str, results: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args([
        "reproduce",
        "table2",
        "--profile",
        "smoke",
        "--archs",
        "resnet56-B",
        "--seeds",
        "1",
    ])
    .arg("--data-dir")
    .arg(tmp.join("data"))
    .arg("--runs-dir")
    .arg(tmp.join(runs))
    .arg("--results-dir")
    .arg(tmp.join(results))
    .args(["--limits", "8,4"])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

fn finished_runs(runs: &Path) -> usize {
    std::fs::read_dir(runs)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("result.json").is_file())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_killed_reproduction_completes_with_the_numbers_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    datasets::fixtures::write_bars(&tmp.path().join("data"), 40, 10).unwrap();

    let whole = xtask(tmp.path(), "runs-a", "results-a").output().unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );

    // Kill -9 once the first run (the unpruned model) has finished, mid-grid.
    let mut child = xtask(tmp.path(), "runs-b", "results-b").spawn().unwrap();
    let start = Instant::now();
    while finished_runs(&tmp.path().join("runs-b")) < 1
        && start.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(finished_runs(&tmp.path().join("runs-b")) >= 1);
    let rerun = xtask(tmp.path(), "runs-b", "results-b").output().unwrap();
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );

    let a = std::fs::read_to_string(tmp.path().join("results-a/table2.csv")).unwrap();
    let b = std::fs::read_to_string(tmp.path().join("results-b/table2.csv")).unwrap();
    assert_eq!(a, b);
    assert!(a.contains(",resnet56,B,"), "{a}");
}

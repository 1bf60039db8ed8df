//! The committed tables are what `cargo xtask reproduce table2 --report-only` writes from the
//! committed per-run records: for every `results/<profile>/` holding `runs.jsonl`, the report is
//! rebuilt into a temporary folder (training nothing) and must equal the committed files byte for
//! byte. A table edited by hand, or records changed without regenerating it, fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn committed_tables_equal_what_report_only_writes_from_the_committed_records() {
    let results = repo().join("results");
    let mut checked = Vec::new();
    for profile in ["paper", "cpu", "sample", "smoke"] {
        let dir = results.join(profile);
        if !dir.join("runs.jsonl").is_file() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        for f in ["runs.jsonl", "torch.json"] {
            if dir.join(f).is_file() {
                std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(repo())
            .args(["reproduce", "table2", "--profile", profile, "--report-only"])
            .arg("--results-dir")
            .arg(tmp.path())
            // Never the real runs directory: report-only must not need it.
            .arg("--runs-dir")
            .arg(tmp.path().join("no-runs"))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{profile}: {log}");
        assert!(log.contains("trained nothing"), "{log}");
        assert!(
            !tmp.path().join("no-runs").exists(),
            "report-only touched the runs directory"
        );
        for f in ["table2.md", "table2.csv", "paired.csv"] {
            let committed = std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| panic!("results/{profile}/{f}: {e}"));
            let written = std::fs::read_to_string(tmp.path().join(f)).unwrap();
            assert_eq!(
                committed, written,
                "results/{profile}/{f} is not what --report-only writes from its runs.jsonl; \
                 regenerate it with `cargo xtask reproduce table2 --profile {profile} --report-only`"
            );
        }
        checked.push(profile);
    }
    // The default profile's results are committed (README); the check must not pass vacuously.
    assert!(
        checked.contains(&"sample"),
        "no results/sample/runs.jsonl: {checked:?}"
    );
}

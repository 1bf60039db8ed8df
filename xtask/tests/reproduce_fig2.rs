//! `cargo xtask reproduce fig2` on a tiny dataset: every point of the figure is filled, the
//! chart is written as SVG and PNG, and a rerun trains nothing.

use std::path::Path;
use std::process::{Command, Output};

fn fig2(tmp: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "reproduce",
            "fig2",
            "--profile",
            "smoke",
            "--archs",
            "resnet56-B",
        ])
        .args(["--budgets", "1,2", "--limits", "8,4"])
        .arg("--data-dir")
        .arg(tmp.join("data"))
        .arg("--runs-dir")
        .arg(tmp.join("runs"))
        .arg("--results-dir")
        .arg(tmp.join("results"))
        .output()
        .unwrap()
}

#[test]
fn the_figure_is_complete_and_a_rerun_trains_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    datasets::fixtures::write_bars(&tmp.path().join("data"), 40, 10).unwrap();

    let first = fig2(tmp.path());
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{log}");
    // The unpruned run, then 4 methods x 2 budgets, and one pruning.
    assert!(log.contains("9 runs trained, 1 pruned"), "{log}");

    let results = tmp.path().join("results");
    let csv = std::fs::read_to_string(results.join("fig2.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 8, "{csv}");
    for method in ["ft", "lrw", "slr", "clr"] {
        for budget in ["1", "2"] {
            let row = rows
                .iter()
                .find(|r| r[5] == method && r[6] == budget)
                .unwrap_or_else(|| panic!("no {method} at {budget} epochs in\n{csv}"));
            let acc: f64 = row[7].parse().unwrap();
            assert!((0.0..=100.0).contains(&acc), "{csv}");
            // ResNet-56-B removes 13.7% of the parameters (Li et al.: 13.7%).
            let removed: f64 = row[4].parse().unwrap();
            assert!((13.7..13.8).contains(&removed), "{csv}");
        }
    }
    let svg = std::fs::read_to_string(results.join("fig2.svg")).unwrap();
    for label in [
        "FT",
        "LRW",
        "SLR",
        "CLR",
        "ResNet-56-B PFEC, 14% Sparsity",
        "Epochs",
    ] {
        assert!(svg.contains(label), "fig2.svg lacks `{label}`");
    }
    let png = std::fs::read(results.join("fig2.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let md = std::fs::read_to_string(results.join("fig2.md")).unwrap();
    assert!(md.contains("smoke: pipeline check"), "{md}");

    let again = fig2(tmp.path());
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{log}");
    assert!(
        log.contains("0 runs trained, 0 pruned, 10 complete already"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(results.join("fig2.csv")).unwrap(),
        csv
    );
}

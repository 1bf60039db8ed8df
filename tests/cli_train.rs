//! End-to-end tests of `prunebench train` and `prunebench eval`: a run killed with SIGKILL and
//! resumed ends with exactly the numbers of an uninterrupted one; eval reads the run back.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prunebench as run;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prunebench"))
}

fn train_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--arch",
        "resnet8",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data,
        "--epochs",
        "4",
        "--schedule",
        "clr",
        "--batch-size",
        "16",
        "--limit-train",
        "48",
        "--seed",
        "3",
        "--out",
        out,
    ]
}

/// The metrics without their timings.
fn numbers(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("images_per_sec");
            v
        })
        .collect()
}

fn epochs_done(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .unwrap_or(0)
}

#[test]
fn killed_and_resumed_equals_uninterrupted_and_eval_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 120, 40);
    let data = data.to_str().unwrap();

    let whole = tmp.path().join("whole");
    let o = run(&train_args(data, whole.to_str().unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("test accuracy") && summary.contains("best validation epoch"),
        "{summary}"
    );
    // One log line per epoch on stderr when it is not a terminal.
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).matches("epoch ").count(),
        4
    );

    // Kill -9 once the first epoch is committed, then resume.
    let killed = tmp.path().join("killed");
    let mut child = bin()
        .args(train_args(data, killed.to_str().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while epochs_done(&killed) < 1 && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = epochs_done(&killed);
    assert!(done >= 1, "no epoch was committed");
    // Without --resume the started run is refused (unless it had finished anyway).
    if done < 4 {
        let o = run(&train_args(data, killed.to_str().unwrap()));
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    }
    let mut args = train_args(data, killed.to_str().unwrap());
    args.push("--resume");
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(numbers(&whole), numbers(&killed));

    // eval of the run directory = the best-val model's test accuracy in result.json.
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("result.json")).unwrap()).unwrap();
    let o = run(&[
        "eval",
        "--checkpoint",
        whole.to_str().unwrap(),
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["accuracy"], result["test_acc"]);
    assert_eq!(e["images"], 40);
    assert!(e["loss"].as_f64().unwrap() > 0.0);

    // eval on a dataset the model does not fit is one clear line.
    let o = run(&[
        "eval",
        "--checkpoint",
        whole.to_str().unwrap(),
        "--dataset",
        "cifar10",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.lines().count() == 1
            && err.contains("1-channel, 10-class model"),
        "{err}"
    );
}

#[test]
fn bad_train_input_is_one_line() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["train", "--arch", "resnet7", "--dataset", "fashion-mnist"],
            "6n+2",
        ),
        (
            &["train", "--arch", "resnet20", "--dataset", "mnist"],
            "unknown dataset 'mnist'",
        ),
        (
            &[
                "train",
                "--arch",
                "resnet20",
                "--dataset",
                "fashion-mnist",
                "--schedule",
                "clr:warmup=2",
            ],
            "warmup must be a fraction",
        ),
        (
            &[
                "train",
                "--arch",
                "resnet20",
                "--dataset",
                "cifar10",
                "--data-dir",
                "/nonexistent",
            ],
            "/nonexistent/cifar-10-batches-bin/data_batch_1.bin: not found",
        ),
    ];
    for (args, expected) in cases {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

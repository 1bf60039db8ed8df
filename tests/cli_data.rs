//! End-to-end tests of `prunebench data`, on the bundled sample.

use std::path::PathBuf;
use std::process::{Command, Output};

fn prunebench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prunebench"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run prunebench")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn inspect_counts_the_sample_per_split_and_class() {
    let o = prunebench(&[
        "data",
        "inspect",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        "data/sample/fashion-mnist",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dataset"], "fashion-mnist");
    assert_eq!(v["shape"], serde_json::json!([1, 32, 32]));
    assert_eq!(v["train"]["images"], 4500);
    assert_eq!(v["val"]["images"], 500);
    assert_eq!(v["test"]["images"], 1000);
    assert_eq!(v["test"]["per_class"], serde_json::json!(vec![100; 10]));
    let per_class: u64 = v["val"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(per_class, 500);
}

#[test]
fn inspect_reads_the_cifar_fixture_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&folder).unwrap();
    let fixture = root().join("data/sample/cifar10/test_batch.bin");
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::copy(&fixture, folder.join(name)).unwrap();
    }
    let o = prunebench(&[
        "data",
        "inspect",
        "--dataset",
        "cifar10",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["train"]["images"], 90);
    assert_eq!(v["val"]["images"], 10);
    assert_eq!(
        v["test"]["per_class"],
        serde_json::json!([2, 2, 0, 2, 0, 2, 4, 2, 4, 2])
    );
}

#[test]
fn a_missing_dataset_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = prunebench(&[
        "data",
        "inspect",
        "--dataset",
        "cifar100",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cifar-100-binary/train.bin: not found"),
        "{err}"
    );
    let o = prunebench(&["data", "fetch", "mnist"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("unknown dataset 'mnist'"),
        "{err}"
    );
}

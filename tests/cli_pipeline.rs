//! The whole chain from the command line: train -> prune (PFEC-B) -> retrain (CLR) -> eval, the
//! unstructured chain whose masked weights stay exactly zero through retraining, and the
//! Scratch-E/B budgets, and `--device`. On a tiny dataset in the real Fashion-MNIST format, so
//! it runs in seconds on a CPU.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{json, s};

/// Runs `prunebench`, failing the test if the command fails.
fn prunebench(args: &[&str]) {
    let o = common::prunebench(args);
    assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
}

#[test]
fn train_prune_retrain_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 60, 20);
    let (run, pruned, retrained) = (
        tmp.path().join("run"),
        tmp.path().join("pruned"),
        tmp.path().join("retrained"),
    );

    prunebench(&[
        "train",
        "--arch",
        "resnet56",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        s(&data),
        "--epochs",
        "1",
        "--schedule",
        "step:0.1@0,0.01@1",
        "--batch-size",
        "16",
        "--limit-train",
        "32",
        "--out",
        s(&run),
    ]);
    let p = json(&[
        "prune",
        "--checkpoint",
        s(&run),
        "--method",
        "pfec",
        "--version",
        "B",
        "--out",
        s(&pruned),
        "--format",
        "json",
    ]);
    assert_eq!(
        p["params_before"], 852_730,
        "ResNet-56 with one input channel: 853,018 - 2 * 16 * 9"
    );
    let cut = 1.0 - p["params_after"].as_f64().unwrap() / p["params_before"].as_f64().unwrap();
    assert!((cut - 0.137).abs() < 0.005, "params cut {cut}");
    // origin.json carries the run's spec to retraining.
    let origin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pruned.join("origin.json")).unwrap())
            .unwrap();
    assert_eq!(origin["spec"]["dataset"], "fashion-mnist");

    let r = json(&[
        "retrain",
        "--checkpoint",
        s(&pruned),
        "--schedule",
        "clr",
        "--epochs",
        "1",
        "--out",
        s(&retrained),
        "--format",
        "json",
    ]);
    assert_eq!(r["model"], "resnet56-pruned");
    assert_eq!(r["params"], p["params_after"]);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(retrained.join("spec.json")).unwrap())
            .unwrap();
    assert_eq!(spec["schedule"]["kind"], "clr");
    assert_eq!(
        spec["limit_train"], 32,
        "retraining inherits the origin run's data settings"
    );

    // The retrained run evaluates alone, and agrees with its result.json.
    let e = json(&[
        "eval",
        "--checkpoint",
        s(&retrained),
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        s(&data),
        "--format",
        "json",
    ]);
    assert_eq!(e["accuracy"], r["test_acc"]);
    assert_eq!(e["model"], "resnet56-pruned");
}

#[test]
fn masked_weights_stay_zero_through_retraining_and_lrw_follows_the_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 60, 20);
    let (run, sparse, retrained) = (
        tmp.path().join("run"),
        tmp.path().join("sparse"),
        tmp.path().join("retrained"),
    );
    prunebench(&[
        "train",
        "--arch",
        "resnet8",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        s(&data),
        "--epochs",
        "3",
        "--schedule",
        "step:0.1@0,0.01@2",
        "--batch-size",
        "16",
        "--limit-train",
        "32",
        "--out",
        s(&run),
    ]);
    prunebench(&[
        "prune",
        "--checkpoint",
        s(&run),
        "--method",
        "mwp",
        "--sparsity",
        "0.7",
        "--out",
        s(&sparse),
    ]);
    // LRW over 2 of the original's 3 epochs: 0.1 then 0.01.
    prunebench(&[
        "retrain",
        "--checkpoint",
        s(&sparse),
        "--schedule",
        "lrw",
        "--epochs",
        "2",
        "--out",
        s(&retrained),
    ]);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(retrained.join("spec.json")).unwrap())
            .unwrap();
    assert_eq!(spec["schedule"]["kind"], "lrw");
    assert_eq!(spec["schedule"]["original_epochs"], 3);
    let lrs: Vec<f64> = std::fs::read_to_string(retrained.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(lrs, vec![0.1, 0.01]);

    let masks = prune_core::Masks::load(&sparse.join("masks.safetensors"), &Device::Cpu).unwrap();
    let (model, dir) = train::engine::load_model(&retrained, &Device::Cpu).unwrap();
    assert!(
        dir.join("masks.safetensors").is_file(),
        "the retrained checkpoint keeps its masks"
    );
    let tensors = model.tensors().unwrap();
    let (mut pruned, mut moved) = (0usize, 0usize);
    for (name, mask) in masks.iter() {
        let (w, m) = (values(&tensors[name]), values(mask));
        let before = Model::load_weights(&sparse, name);
        for ((w, m), b) in w.iter().zip(&m).zip(&before) {
            if *m == 0.0 {
                pruned += 1;
                assert_eq!(*w, 0.0, "{name}: a pruned weight moved");
            } else if w != b {
                moved += 1;
            }
        }
    }
    assert!(
        pruned > 0 && moved > 0,
        "pruned {pruned}, kept weights moved {moved}"
    );
}

/// Reads one tensor of a checkpoint as f32 values.
struct Model;
impl Model {
    fn load_weights(dir: &Path, name: &str) -> Vec<f32> {
        let (m, _) = train::engine::load_model(dir, &Device::Cpu).unwrap();
        values(&m.tensors().unwrap()[name])
    }
}

/// A tensor's values in order, as f32.
fn values(t: &candle_core::Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn scratch_budgets_follow_liu_et_al() {
    let tmp = tempfile::tempdir().unwrap();
    let pruned = tmp.path().join("pruned");
    prunebench(&[
        "prune",
        "--arch",
        "resnet56",
        "--method",
        "pfec",
        "--version",
        "B",
        "--out",
        s(&pruned),
    ]);
    let config = pruned.join("config.json");
    let spec = |budget: &str| {
        json(&[
            "train",
            "--config",
            s(&config),
            "--dataset",
            "cifar10",
            "--scratch-budget",
            budget,
            "--print-spec",
        ])
    };
    let e = spec("e");
    assert_eq!(e["epochs"], 200);
    assert_eq!(e["schedule"]["pieces"][1]["epoch"], 100);
    assert_eq!(e["schedule"]["pieces"][2]["epoch"], 150);
    // B: int(200 * 125,485,696 / 90,907,264) = 276 epochs, drops at 138 and 207.
    let b = spec("b");
    assert_eq!(b["epochs"], 276);
    assert_eq!(b["schedule"]["pieces"][1]["epoch"], 138);
    assert_eq!(b["schedule"]["pieces"][2]["epoch"], 207);
    assert_eq!(b["model"]["arch"], "resnet");
}

#[test]
fn iterative_pruning_reaches_its_target_round_by_round() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 60, 20);
    let (run, iter) = (tmp.path().join("run"), tmp.path().join("iter"));
    prunebench(&[
        "train",
        "--arch",
        "resnet8",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        s(&data),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit-train",
        "32",
        "--out",
        s(&run),
    ]);
    let args = [
        "iterate",
        "--checkpoint",
        s(&run),
        "--method",
        "mwp",
        "--target",
        "0.75",
        "--rounds",
        "2",
        "--schedule",
        "ft:lr=0.01",
        "--epochs",
        "1",
        "--out",
        s(&iter),
        "--format",
        "json",
    ];
    let rounds = json(&args);
    let rounds = rounds.as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    // 1 - 0.25^(1/2) = 0.5, then 0.75 (MWP removes int(N p) + 1 weights: a hair above).
    for (r, want) in rounds.iter().zip([0.5, 0.75]) {
        let got = r["sparsity"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 0.01,
            "round {}: sparsity {got}",
            r["round"]
        );
    }
    // Round 2's retrained weights keep round 1's zeros.
    let m1 = prune_core::Masks::load(&iter.join("round-1/pruned/masks.safetensors"), &Device::Cpu)
        .unwrap();
    let (model, _) = train::engine::load_model(&iter.join("round-2/run"), &Device::Cpu).unwrap();
    let tensors = model.tensors().unwrap();
    for (name, mask) in m1.iter() {
        let (w, m) = (values(&tensors[name]), values(mask));
        assert!(
            w.iter().zip(&m).all(|(w, m)| *m != 0.0 || *w == 0.0),
            "{name}"
        );
    }
    // Finished rounds are not redone.
    let again = json(&args);
    assert_eq!(again.as_array().unwrap().len(), 2);
    let o = common::prunebench(&[
        "iterate",
        "--checkpoint",
        s(&run),
        "--method",
        "pfec",
        "--target",
        "0.5",
        "--out",
        s(&iter),
    ]);
    assert!(!o.status.success() && common::stderr(&o).contains("--method mwp or random-weight"));
}

/// `--device`: `cpu` is the default and gives the same numbers; `cuda` in a build without CUDA
/// (the one tests run) fails at once, before any run directory exists, saying how to get a CUDA
/// build; a name that is no device is a usage error naming the accepted forms.
#[test]
fn device_cpu_runs_and_cuda_without_a_cuda_build_says_how_to_build_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 10, 6);
    let model = tmp.path().join("model");
    let config = models::ModelConfig::from_name("resnet20", 10, 1).unwrap();
    models::Model::init(&config, 0, &Device::Cpu)
        .unwrap()
        .save(&model)
        .unwrap();
    let eval = |device: Option<&str>| {
        let mut args = vec![
            "eval",
            "--checkpoint",
            s(&model),
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            s(&data),
            "--format",
            "json",
        ];
        args.extend(device.map(|d| ["--device", d]).into_iter().flatten());
        common::prunebench(&args)
    };
    let report = |o: &std::process::Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", common::stderr(o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (cpu, default) = (report(&eval(Some("cpu"))), report(&eval(None)));
    assert_eq!(cpu["images"], 6);
    assert_eq!(cpu, default, "cpu is the default device");

    let bad = eval(Some("gpu"));
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(
        common::stderr(&bad).contains("cpu, cuda or cuda:N"),
        "{}",
        common::stderr(&bad)
    );

    if candle_core::utils::cuda_is_available() {
        return;
    }
    let cuda = eval(Some("cuda"));
    let err = common::stderr(&cuda);
    assert_eq!(cuda.status.code(), Some(1), "{err}");
    assert!(cuda.stdout.is_empty());
    for needle in [
        "device 'cuda:0'",
        "built without CUDA",
        "scripts/build-cuda.sh",
        "--features cuda",
    ] {
        assert!(err.contains(needle), "'{needle}' in: {err}");
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let run = tmp.path().join("run");
    let train = common::prunebench(&[
        "train",
        "--arch",
        "resnet20",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        s(&data),
        "--epochs",
        "1",
        "--out",
        s(&run),
        "--device",
        "cuda:1",
    ]);
    assert_eq!(train.status.code(), Some(1));
    assert!(common::stderr(&train).contains("built without CUDA"));
    assert!(
        !run.exists(),
        "nothing written for a device that cannot run"
    );
}

/// `PRUNEBENCH_BACKWARD=ours` (our own backward pass) and `=candle` (candle's autograd) train
/// the same model bit for bit: the same losses and accuracies epoch by epoch and the same weights
/// and running statistics at the end, on a pruned ResNet with the masks' hook in force.
#[test]
fn our_backward_pass_and_candle_autograd_train_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 48, 16);
    let base = tmp.path().join("base");
    prunebench(&[
        "train",
        "--arch",
        "resnet8",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        s(&data),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        s(&base),
    ]);
    let sparse = tmp.path().join("sparse");
    prunebench(&[
        "prune",
        "--checkpoint",
        s(&base),
        "--method",
        "mwp",
        "--sparsity",
        "0.5",
        "--out",
        s(&sparse),
    ]);
    let retrain = |backward: &str| {
        let out = tmp.path().join(format!("retrained-{backward}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_prunebench"))
            .env("PRUNEBENCH_BACKWARD", backward)
            .env("RUST_LOG", "info")
            .args(["retrain", "--checkpoint", s(&sparse), "--schedule", "clr"])
            .args(["--epochs", "2", "--out", s(&out)])
            .output()
            .unwrap();
        let log = common::stderr(&o);
        assert!(o.status.success(), "{backward}: {log}");
        let want = if backward == "ours" {
            "backward=\"ours\""
        } else {
            "backward=\"candle's autograd\""
        };
        assert!(log.contains(want), "{backward}: {log}");
        let metrics: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                // Wall-clock figures are the only thing allowed to differ.
                for k in ["seconds", "images_per_sec"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            })
            .collect();
        let (model, _) = train::engine::load_model(&out, &Device::Cpu).unwrap();
        (metrics, model.tensors().unwrap())
    };
    let (m_candle, t_candle) = retrain("candle");
    let (m_ours, t_ours) = retrain("ours");
    assert_eq!(m_candle.len(), 2);
    assert_eq!(m_ours, m_candle);
    assert_eq!(t_ours.len(), t_candle.len());
    for (name, a) in &t_candle {
        let (a, b) = (values(a), values(&t_ours[name]));
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} differs"
        );
    }
}

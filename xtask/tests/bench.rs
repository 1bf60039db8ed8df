//! `cargo xtask bench` at toy sizes: every table is measured and lands in the JSON with figures a
//! real measurement gives (positive speeds, phases that add up to no more than the step, a peak
//! memory above the process's start, one scaling cell per thread count and batch). Speed itself
//! is never asserted.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_toy_bench_fills_every_table_of_its_json() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--here", "--no-torch", "--no-candle"])
        .args(["--iters", "1", "--warmup", "0", "--rounds", "3"])
        .args(["--train-batch", "2", "--infer-batch", "2"])
        .args(["--models", "resnet20"])
        .args(["--scaling-model", "resnet20", "--scaling-batches", "2,4"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("resnet20 train: ours ") && stdout.contains("no PyTorch"),
        "{stdout}"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let positive = |v: &Value, what: &str| {
        let x = v.as_f64().unwrap_or_else(|| panic!("{what}: {v}"));
        assert!(x > 0.0 && x.is_finite(), "{what} = {x}");
        x
    };

    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    let ours = &models[0]["ours"];
    let train = positive(&ours["train"], "train img/s");
    // Three rounds, and the reported figure is their median.
    let mut rounds: Vec<f64> = models[0]["ours_rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["train"].as_f64().unwrap())
        .collect();
    assert_eq!(rounds.len(), 3, "{}", models[0]);
    rounds.sort_by(f64::total_cmp);
    assert_eq!(train, rounds[1]);
    assert_eq!(v["rounds"], 3);
    positive(&ours["infer"], "infer img/s");
    let phases: f64 = ["forward", "backward", "update"]
        .iter()
        .map(|p| positive(&ours["phases"][p], p))
        .sum();
    // A step of 2 images takes 2 / train seconds; its phases are timed inside it.
    assert!(
        phases <= 2.0 / train * 1.05,
        "phases {phases} s, step {} s",
        2.0 / train
    );
    assert_eq!(models[0]["params"], 269_722);

    let pruned = v["pruned"].as_array().unwrap();
    let names: Vec<&str> = pruned
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["resnet56-B", "resnet110-B", "vgg16 (PFEC)"]);
    for r in pruned {
        assert!(r["flops_ratio"].as_f64().unwrap() > 1.0, "{r}");
        positive(&r["train_speedup"], "train speed-up");
    }

    let memory = &v["memory"];
    assert_eq!(memory["model"], "resnet56");
    let peak = positive(&memory["ours_peak_rss_bytes"], "peak RSS");
    let above = positive(&memory["ours_above_start_bytes"], "peak above start");
    assert!(above < peak);
    assert!(memory["torch_peak_rss_bytes"].is_null());

    let scaling = v["scaling"].as_array().unwrap();
    let cells: Vec<(u64, u64)> = scaling
        .iter()
        .map(|r| (r["threads"].as_u64().unwrap(), r["batch"].as_u64().unwrap()))
        .collect();
    let threads = v["threads"].as_u64().unwrap();
    let mut want = vec![(1, 2), (1, 4)];
    if threads > 1 {
        want.extend([(threads, 2), (threads, 4)]);
    }
    assert_eq!(cells, want);
    for r in scaling {
        positive(&r["ours"]["train"], "scaling train img/s");
        positive(&r["ours"]["infer"], "scaling infer img/s");
    }
}

#[test]
fn bad_bench_arguments_are_refused_before_anything_runs() {
    for (args, needle) in [
        (&["--models", "resnet21"][..], "21"),
        (&["--scaling-batches", "1"][..], "--scaling-batches"),
        (&["--iters", "0"][..], "--iters"),
        (&["--rounds", "0"][..], "--rounds"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["bench", "--here", "--no-torch"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    }
}

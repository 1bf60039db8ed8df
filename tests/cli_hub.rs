//! Checkpoints through the hub from the command line, against the local stub of `hub::stub`:
//! prune -> retrain -> push -> pull / eval from hf:// (identical numbers), offline from the cache
//! with the stub stopped, a corrupted download refused, 401/403/404 messages, and a config that
//! does not fit its weights refused before evaluation.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{s, stderr, stdout};
use hub::stub::{Access, Stub};

/// Runs `prunebench` against `endpoint` with its own hf home (cache) and token, and nothing of
/// the caller's hub settings.
fn run(endpoint: &str, hf_home: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prunebench"));
    cmd.args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_HUB_OFFLINE");
    if let Some(t) = token {
        cmd.env("HF_TOKEN", t);
    }
    cmd.output().expect("run prunebench")
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}: {}", stderr(&o));
    o
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

fn failure(o: &Output) -> String {
    assert!(!o.status.success(), "should fail: {}", stdout(o));
    stderr(o)
}

#[test]
fn push_pull_eval_offline_corruption_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 40, 20);
    let (pruned, run_dir, home) = (
        tmp.path().join("pruned"),
        tmp.path().join("run"),
        tmp.path().join("hf"),
    );
    let stub = Stub::start().unwrap();
    stub.add_token("writer", Access::Write);
    stub.add_token("reader", Access::Read);
    let ep = stub.endpoint();
    let w = Some("writer");

    // A small pruned and retrained model, as a user would make it.
    ok(
        run(
            &ep,
            &home,
            w,
            &[
                "prune",
                "--arch",
                "resnet20",
                "--in-channels",
                "1",
                "--method",
                "mwp",
                "--sparsity",
                "0.5",
                "--out",
                s(&pruned),
            ],
        ),
        "prune",
    );
    ok(
        run(
            &ep,
            &home,
            w,
            &[
                "retrain",
                "--checkpoint",
                s(&pruned),
                "--dataset",
                "fashion-mnist",
                "--data-dir",
                s(&data),
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--limit-train",
                "16",
                "--schedule",
                "ft",
                "--out",
                s(&run_dir),
            ],
        ),
        "retrain",
    );

    let pushed = json(&ok(
        run(
            &ep,
            &home,
            w,
            &[
                "hub",
                "push",
                s(&run_dir),
                "tester/r20-mwp",
                "--private",
                "--message",
                "first",
                "--format",
                "json",
            ],
        ),
        "push",
    ));
    assert_eq!(pushed["repo"], "tester/r20-mwp");
    assert_eq!(stub.repo_private("tester/r20-mwp"), Some(true));
    let card = String::from_utf8(stub.file("tester/r20-mwp", "README.md").unwrap()).unwrap();
    for needle in [
        "library_name: prunebench",
        "- pruning",
        "- fashion_mnist",
        "- accuracy",
        "method: `mwp`",
        "schedule: `",
        "budget: 1 epochs",
        "one run, so no mean +- std",
        "Network Pruning that Matters: A Case Study on Retraining Variants",
        "prunebench prune --arch resnet20",
        "prunebench retrain --checkpoint",
        "before: `resnet20`",
    ] {
        assert!(card.contains(needle), "card lacks {needle:?}:\n{card}");
    }

    // Pull gives the pushed bytes; eval from hf:// gives the local numbers exactly.
    let pulled = tmp.path().join("pulled");
    ok(
        run(
            &ep,
            &home,
            Some("reader"),
            &["hub", "pull", "tester/r20-mwp", "--out", s(&pulled)],
        ),
        "pull",
    );
    let best = train::run::resolve_model_dir(&run_dir).unwrap();
    for f in ["model.safetensors", "config.json"] {
        assert_eq!(
            std::fs::read(pulled.join(f)).unwrap(),
            std::fs::read(best.join(f)).unwrap(),
            "{f}"
        );
    }
    let eval = |token, checkpoint: &str, offline: bool| {
        let mut args = vec![
            "eval",
            "--checkpoint",
            checkpoint,
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            s(&data),
            "--format",
            "json",
        ];
        if offline {
            args.push("--offline");
        }
        run(&ep, &home, token, &args)
    };
    let local = json(&ok(eval(None, s(&run_dir), false), "eval local"));
    let remote = json(&ok(
        eval(Some("reader"), "hf://tester/r20-mwp", false),
        "eval hf://",
    ));
    assert_eq!(remote["accuracy"], local["accuracy"]);
    assert_eq!(
        remote["loss"], local["loss"],
        "the same weights, the same logits"
    );
    let info = ok(
        run(
            &ep,
            &home,
            Some("reader"),
            &[
                "model",
                "info",
                "--config",
                "hf://tester/r20-mwp@main",
                "--format",
                "json",
            ],
        ),
        "model info",
    );
    assert_eq!(json(&info)["arch"], "resnet20");

    // Errors: no token, a read token pushing, a missing repo.
    let err = failure(&eval(None, "hf://tester/r20-mwp", false));
    assert!(
        err.contains("401") && err.contains("tester/r20-mwp") && err.contains("HF_TOKEN"),
        "{err}"
    );
    let err = failure(&run(
        &ep,
        &home,
        Some("reader"),
        &["hub", "push", s(&run_dir), "tester/other"],
    ));
    assert!(err.contains("403") && err.contains("tester/other"), "{err}");
    let err = failure(&eval(Some("reader"), "hf://tester/missing", false));
    assert!(
        err.contains("404") && err.contains("tester/missing") && err.contains("model.safetensors"),
        "{err}"
    );
    let err = failure(&run(
        &ep,
        &home,
        None,
        &["hub", "pull", "not-a-repo", "--out", "x"],
    ));
    assert!(err.contains("owner/name"), "{err}");

    // A config that does not fit the weights is refused before any evaluation.
    let other = models::ModelConfig::from_name("resnet32", 10, 1).unwrap();
    stub.add_file(
        "tester/bad",
        "model.safetensors",
        std::fs::read(best.join("model.safetensors")).unwrap(),
    );
    stub.add_file("tester/bad", "config.json", other.to_json().into_bytes());
    let o = eval(Some("reader"), "hf://tester/bad", false);
    let err = failure(&o);
    assert!(err.contains("does not match the weights"), "{err}");
    assert!(stdout(&o).is_empty(), "nothing was evaluated");

    // So is a local checkpoint whose config.json was swapped.
    let swapped = tmp.path().join("swapped");
    std::fs::create_dir(&swapped).unwrap();
    std::fs::copy(
        best.join("model.safetensors"),
        swapped.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(swapped.join("config.json"), other.to_json()).unwrap();
    let o = eval(None, s(&swapped), false);
    let err = failure(&o);
    assert!(err.contains("does not match the weights"), "{err}");
    assert!(stdout(&o).is_empty(), "nothing was evaluated");

    // A corrupted body is refused (fresh cache, so nothing is served from it).
    stub.add_file(
        "tester/corrupt",
        "model.safetensors",
        std::fs::read(best.join("model.safetensors")).unwrap(),
    );
    stub.add_file(
        "tester/corrupt",
        "config.json",
        std::fs::read(best.join("config.json")).unwrap(),
    );
    stub.corrupt("model.safetensors");
    let o = eval(Some("reader"), "hf://tester/corrupt", false);
    let err = failure(&o);
    assert!(
        err.contains("sha256") && err.contains("tester/corrupt"),
        "{err}"
    );

    // Offline, with the stub gone: the cache serves what was fetched, and nothing else.
    stub.stop();
    let offline = json(&ok(eval(None, "hf://tester/r20-mwp", true), "eval offline"));
    assert_eq!(offline["loss"], local["loss"]);
    // HF_HUB_OFFLINE=1, the Python client's variable, does the same as --offline.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prunebench"));
    cmd.args([
        "model",
        "info",
        "--config",
        "hf://tester/r20-mwp",
        "--format",
        "json",
    ])
    .env("HF_ENDPOINT", &ep)
    .env("HF_HOME", &home)
    .env("HF_HUB_OFFLINE", "1")
    .env_remove("HF_HUB_CACHE")
    .env_remove("HF_TOKEN");
    let o = ok(cmd.output().unwrap(), "HF_HUB_OFFLINE=1");
    assert_eq!(json(&o)["arch"], "resnet20");
    let again = tmp.path().join("again");
    ok(
        run(
            &ep,
            &home,
            None,
            &[
                "--offline",
                "hub",
                "pull",
                "tester/r20-mwp",
                "--out",
                s(&again),
            ],
        ),
        "offline pull",
    );
    assert!(again.join("README.md").is_file());
    let err = failure(&eval(None, "hf://tester/never", true));
    assert!(
        err.contains("offline") && err.contains("tester/never"),
        "{err}"
    );
}

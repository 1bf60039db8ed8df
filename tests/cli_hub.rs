//! Checkpoints through the hub from the command line, against the local stub of `hub::stub`:
//! prune -> retrain -> push -> pull / eval from hf:// (identical numbers), offline from the cache
//! with the stub stopped, a corrupted download refused, 401/403/404 messages, and a config that
//! does not fit its weights refused before evaluation; a hostile hub (header values that are
//! paths, a wrong size, a second answer that differs) that cannot touch a file outside the cache,
//! and a hub that never answers, given up on after PRUNEBENCH_HUB_TIMEOUT.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{s, stderr, stdout};
use hub::stub::{Access, Hostile, Silent, Stub};

/// Runs `prunebench` against `endpoint` with its own hf home (cache) and token, and nothing of
/// the caller's hub settings.
fn run(endpoint: &str, hf_home: &Path, token: Option<&str>, args: &[&str]) -> Output {
    run_with(endpoint, hf_home, token, &[], args)
}

/// [`run`] with extra environment variables.
fn run_with(
    endpoint: &str,
    hf_home: &Path,
    token: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prunebench"));
    cmd.args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("PRUNEBENCH_HUB_TIMEOUT");
    cmd.envs(env.iter().copied());
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

/// Every entry under `root` but `skip` (links not followed): kind and content.
fn tree(root: &Path, skip: &Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.starts_with(skip) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                format!(
                    "file of {} bytes: {:?}",
                    m.len(),
                    std::fs::read(&p).unwrap().get(..64)
                )
            };
            out.insert(p, what);
        }
    }
    out
}

/// The one error line of a failed run.
fn error_line(o: &Output) -> String {
    let err = failure(o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("prunebench:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    lines[0].to_string()
}

#[test]
fn a_hostile_hub_cannot_touch_files_outside_the_cache_and_a_silent_one_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::bars(tmp.path(), 8, 8);
    let ckpt = tmp.path().join("ckpt");
    let home = tmp.path().join("hf");
    ok(
        common::prunebench(&[
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
            s(&ckpt),
        ]),
        "prune",
    );
    // What a careless user keeps beside the cache: a checkpoint folder and a file.
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    for f in ["model.safetensors", "config.json"] {
        std::fs::copy(ckpt.join(f), victim.join(f)).unwrap();
    }
    std::fs::write(victim.join("notes.txt"), "precious").unwrap();
    let before = tree(tmp.path(), &home);

    let eval = |ep: &str, env: &[(&str, &str)]| {
        run_with(
            ep,
            &home,
            None,
            env,
            &[
                "eval",
                "--checkpoint",
                "hf://o/n",
                "--dataset",
                "fashion-mnist",
                "--data-dir",
                s(&data),
            ],
        )
    };
    let pull = |ep: &str, env: &[(&str, &str)]| {
        let out = tmp.path().join("out");
        run_with(
            ep,
            &home,
            None,
            env,
            &["hub", "pull", "o/n", "--out", s(&out)],
        )
    };
    let abs = |f: &str| victim.join(f).display().to_string();
    type Lies<'a> = Vec<(&'static str, &'static str, String, usize)>;
    let cases: Vec<(&str, Lies)> = vec![
        // The deletion: an ETag that is an existing file's path, with a wrong size.
        (
            "etag",
            vec![
                (
                    "config.json",
                    "ETag",
                    format!("\"{}\"", abs("config.json")),
                    0,
                ),
                ("config.json", "Content-Length", "3".into(), 0),
            ],
        ),
        (
            "linked-etag",
            vec![(
                "model.safetensors",
                "X-Linked-Etag",
                "../../../victim/notes.txt".into(),
                0,
            )],
        ),
        // The replacement: a commit that is an absolute directory.
        (
            "commit",
            vec![(
                "model.safetensors",
                "X-Repo-Commit",
                victim.display().to_string(),
                0,
            )],
        ),
        (
            "dotdot",
            vec![("config.json", "X-Repo-Commit", "../../x".into(), 0)],
        ),
        // Honest first, hostile from the second HEAD of the same file on (the run after).
        (
            "second",
            vec![(
                "model.safetensors",
                "X-Repo-Commit",
                victim.display().to_string(),
                1,
            )],
        ),
    ];
    for (name, lies) in cases {
        let stub = Stub::start().unwrap();
        for f in ["model.safetensors", "config.json"] {
            stub.add_file("o/n", f, std::fs::read(ckpt.join(f)).unwrap());
        }
        for (file, header, value, after_heads) in lies {
            stub.hostile(Hostile {
                file: file.into(),
                method: "HEAD".into(),
                header: header.into(),
                value,
                after_heads,
            });
        }
        let ep = stub.endpoint();
        if name == "second" {
            ok(eval(&ep, &[]), "the honest first answer");
        }
        for o in [eval(&ep, &[]), pull(&ep, &[])] {
            let line = error_line(&o);
            assert!(
                line.contains("refused, nothing was written"),
                "{name}: {line}"
            );
            assert!(
                line.matches(&ep).count() == 1,
                "{name}: endpoint once: {line}"
            );
            assert!(stdout(&o).is_empty(), "{name}: nothing evaluated");
        }
        assert_eq!(
            tree(tmp.path(), &home),
            before,
            "{name}: nothing outside the cache changed"
        );
    }

    // A hub that accepts the connection and never answers: given up on after the timeout.
    let silent = Silent::start().unwrap();
    let ep = silent.endpoint();
    for run in [&eval as &dyn Fn(&str, &[(&str, &str)]) -> Output, &pull] {
        let start = std::time::Instant::now();
        let o = run(&ep, &[("PRUNEBENCH_HUB_TIMEOUT", "1")]);
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        let line = error_line(&o);
        assert!(line.contains("did not answer within 1 s"), "{line}");
        assert_eq!(line.matches(&ep).count(), 1, "{line}");
    }
    let line = error_line(&pull(&ep, &[("PRUNEBENCH_HUB_TIMEOUT", "soon")]));
    assert!(line.contains("PRUNEBENCH_HUB_TIMEOUT=\"soon\""), "{line}");

    // An I/O error names the file and gives its cause once.
    let stub = Stub::start().unwrap();
    for f in ["model.safetensors", "config.json"] {
        stub.add_file("o/n", f, std::fs::read(ckpt.join(f)).unwrap());
    }
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = run(
        &stub.endpoint(),
        &home,
        None,
        &["hub", "pull", "o/n", "--out", s(&file)],
    );
    let line = error_line(&o);
    assert!(line.contains(s(&file)), "{line}");
    assert_eq!(line.matches("os error").count(), 1, "{line}");
}

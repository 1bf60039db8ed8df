//! Property tests of the run-state readers on hostile bytes (issue 14): `state.json`,
//! `spec.json`, `metrics.jsonl` lines, `result.json` and `origin.json`, truncated, with flipped
//! bytes or random bytes, never panic, and a cut-short file is an error naming it. The libFuzzer
//! target `run_files` (`cargo xtask fuzz`) searches the same space for longer. Here rather than
//! in `train` because `origin.json` is the experiments crate's.

use datasets::DatasetKind;
use experiments::provenance::{Origin, read_origin};
use models::{ModelConfig, ResNetConfig};
use proptest::prelude::*;
use train::ExperimentSpec;
use train::engine::{EpochMetrics, RunResult};
use train::run::{Best, RunDir, RunState, read_json, resolve_model_dir};

fn spec() -> ExperimentSpec {
    let model = ModelConfig::ResNet(ResNetConfig {
        depth: 8,
        in_channels: 1,
        num_classes: 10,
        block_widths: vec![2, 2, 2],
        detach_shortcut: false,
    });
    ExperimentSpec::paper(DatasetKind::FashionMnist, model)
}

/// Each run-state file as the engine writes it (pretty JSON; metrics as one line).
fn files() -> Vec<(&'static str, String)> {
    let state = RunState {
        epochs_done: 2,
        global_step: 200,
        last_dir: "epoch-0001".into(),
        best: Some(Best {
            epoch: 1,
            val_acc: 0.5,
            test_acc: 0.45,
            test_loss: 1.25,
            dir: "best-0001".into(),
        }),
    };
    let metrics = EpochMetrics {
        epoch: 0,
        lr: 0.1,
        train_loss: 2.0,
        train_acc: 0.2,
        val_acc: 0.3,
        val_loss: 1.9,
        test_acc: 0.25,
        test_loss: 1.95,
        seconds: 1.5,
        images_per_sec: 900.0,
    };
    let result = RunResult {
        spec_hash: spec().hash(),
        model: "resnet8-pruned".into(),
        params: 4000,
        flops: 400_000,
        epochs: 2,
        best_epoch: 1,
        best_val_acc: 0.5,
        test_acc: 0.45,
        test_loss: 1.25,
        final_test_acc: 0.45,
        best_model: "best-0001".into(),
        seconds: 3.0,
    };
    let origin = Origin {
        checkpoint: "runs/r8".into(),
        spec: Some(spec()),
        id: Some(train::CheckpointId::Pruned {
            origin: spec().hash(),
            pruning: "pfec:B".into(),
        }),
    };
    vec![
        ("state.json", serde_json::to_string_pretty(&state).unwrap()),
        ("spec.json", spec().to_json()),
        ("metrics.jsonl", serde_json::to_string(&metrics).unwrap()),
        (
            "result.json",
            serde_json::to_string_pretty(&result).unwrap(),
        ),
        (
            "origin.json",
            serde_json::to_string_pretty(&origin).unwrap(),
        ),
    ]
}

/// Reads `bytes` as the run file `name` through train's reader for it; true if it was read.
fn read(name: &str, bytes: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    fn named_in<E: std::fmt::Display>(name: &str) -> impl Fn(E) + '_ {
        // Every failure names the file it could not read.
        move |e: E| assert!(e.to_string().contains(name), "{e}")
    }
    let named = named_in::<train::Error>(name);
    match name {
        "state.json" => {
            let run = RunDir::new(dir.path());
            let state = run.read_state().map_err(named).ok().flatten();
            if state.is_some() {
                // Follows the state's directories (refused or not, never a panic).
                let _ = resolve_model_dir(dir.path());
            }
            state.is_some()
        }
        "spec.json" => read_json::<ExperimentSpec>(&path).map_err(named).is_ok(),
        // metrics.jsonl holds one JSON object per line.
        "metrics.jsonl" => std::str::from_utf8(bytes).is_ok_and(|text| {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .all(|l| serde_json::from_str::<EpochMetrics>(l).is_ok())
        }),
        "result.json" => read_json::<RunResult>(&path).map_err(named).is_ok(),
        "origin.json" => read_origin(dir.path())
            .map_err(named_in::<experiments::Error>(name))
            .ok()
            .flatten()
            .is_some(),
        other => unreachable!("{other}"),
    }
}

fn flip(bytes: &[u8], flips: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (i, x) in flips {
        let at = i.index(out.len());
        out[at] ^= x;
    }
    out
}

#[test]
fn the_unmangled_files_are_read() {
    for (name, text) in files() {
        assert!(read(name, text.as_bytes()), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_cut_short_run_file_is_an_error(which in 0usize..5, cut in any::<prop::sample::Index>()) {
        let (name, text) = &files()[which];
        // Cut before its closing brace, the JSON object is unterminated.
        let cut = cut.index(text.trim_end().len());
        // An empty metrics.jsonl is valid: no epoch finished.
        prop_assume!(*name != "metrics.jsonl" || cut > 0);
        prop_assert!(!read(name, &text.as_bytes()[..cut]), "{} cut at {}", name, cut);
    }

    #[test]
    fn flipped_bytes_never_panic(
        which in 0usize..5,
        f in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..12),
    ) {
        let (name, text) = &files()[which];
        let _ = read(name, &flip(text.as_bytes(), &f));
    }

    #[test]
    fn random_bytes_never_panic(which in 0usize..5, bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let (name, _) = &files()[which];
        let _ = read(name, &bytes);
    }
}

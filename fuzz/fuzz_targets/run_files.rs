//! The run-state files of a run directory, each through the reader `train` uses for it. The first
//! byte chooses the file (modulo 5), the rest is its content:
//! 0 `state.json` (`RunDir::read_state`, then `resolve_model_dir`, which follows it),
//! 1 `spec.json` (`read_json::<ExperimentSpec>`, then its hash and validation),
//! 2 `metrics.jsonl` (one `EpochMetrics` per non-blank line, as resuming reads it),
//! 3 `result.json` (`read_json::<RunResult>`),
//! 4 `origin.json` (`read_origin`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prunebench_fuzz::{put, scratch};
use train::ExperimentSpec;
use train::engine::{EpochMetrics, RunResult};
use experiments::provenance::read_origin;
use train::run::{RunDir, read_json, resolve_model_dir};

fuzz_target!(|data: &[u8]| {
    let Some((&which, content)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let run = RunDir::new(&dir);
    match which % 5 {
        0 => {
            put(&dir, "state.json", content);
            if let Ok(Some(state)) = run.read_state() {
                let _ = state.best.as_ref().map(|b| run.join(&b.dir));
                let _ = resolve_model_dir(&dir);
            }
        }
        1 => {
            let path = put(&dir, "spec.json", content);
            if let Ok(spec) = read_json::<ExperimentSpec>(&path) {
                let _ = spec.hash();
                let _ = spec.to_json();
                let _ = spec.model.validate();
                let _ = spec.schedule.validate();
            }
        }
        2 => {
            let path = put(&dir, "metrics.jsonl", content);
            // engine::read_metrics is private; this is its loop: the file as UTF-8 text, one
            // JSON object per non-blank line.
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let _ = serde_json::from_str::<EpochMetrics>(line);
                }
            }
        }
        3 => {
            let path = put(&dir, "result.json", content);
            let _ = read_json::<RunResult>(&path);
        }
        _ => {
            put(&dir, experiments::provenance::ORIGIN_FILE, content);
            let _ = read_origin(&dir);
        }
    }
});

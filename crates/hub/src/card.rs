//! The model card (`README.md`) pushed with a checkpoint, built only from what the checkpoint's
//! directories record: `plan.json` and `origin.json` of a pruned checkpoint, `spec.json` and
//! `result.json` of a (re)training run, and the `command.txt` that `prunebench` writes beside
//! them. Whatever is not recorded, the card says is unknown.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use experiments::provenance::{Origin, read_origin};
use models::ModelConfig;
use prune_core::PruningPlan;
use train::engine::RunResult;
use train::run::{RunDir, read_json, resolve_model_dir};
use train::{ExperimentSpec, Init};

use crate::{Result, check_checkpoint};

/// The file in which `prunebench` records the command line that made a directory.
pub use experiments::provenance::COMMAND_FILE;

/// The paper the retraining schedules come from.
pub const PAPER: &str = "Le, D. H. and Hua, B.-S. \"Network Pruning that Matters: A Case Study on Retraining Variants\". ICLR 2021. https://openreview.net/forum?id=Cb54AMqHQFP";

/// What the directories around a checkpoint record about how it was made.
#[derive(Debug, Default)]
struct Provenance {
    /// The run that (re)trained the pushed model, when a run directory was pushed.
    run: Option<(ExperimentSpec, Option<RunResult>)>,
    /// The pruned checkpoint's directory and its plan.
    pruned: Option<(PathBuf, PruningPlan)>,
    /// Where the pruned weights came from.
    origin: Option<Origin>,
    /// The accuracy of the model that was pruned, when its run recorded one.
    origin_result: Option<RunResult>,
    /// Command lines, oldest first, with what they made.
    commands: Vec<(&'static str, String)>,
}

fn read_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    Ok(if path.is_file() {
        Some(read_json(path)?)
    } else {
        None
    })
}

fn command(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join(COMMAND_FILE))
        .ok()
        .map(|s| s.trim().to_string())
}

fn gather(dir: &Path) -> Result<Provenance> {
    let mut p = Provenance::default();
    let run = RunDir::new(dir);
    let mut pruned_dir = Some(dir.to_path_buf());
    if run.spec().is_file() {
        let spec: ExperimentSpec = read_json(&run.spec())?;
        let result = read_opt(&run.result())?;
        pruned_dir = match &spec.init {
            Init::Checkpoint { path, .. } => Some(path.clone()),
            Init::Fresh { .. } => None,
        };
        p.run = Some((spec, result));
    }
    if let Some(pd) = pruned_dir {
        let plan_path = pd.join(experiments::prune::PLAN_FILE);
        if let Some(plan) = read_opt::<PruningPlan>(&plan_path)? {
            if let Some(c) = command(&pd) {
                p.commands.push(("pruned", c));
            }
            p.origin = read_origin(&pd)?;
            if let Some(o) = &p.origin {
                p.origin_result = read_opt(&RunDir::new(&o.checkpoint).result())?;
            }
            p.pruned = Some((pd, plan));
        }
    }
    if p.run.is_some()
        && let Some(c) = command(dir)
    {
        p.commands.push(("trained", c));
    }
    Ok(p)
}

fn dataset_id(d: datasets::DatasetKind) -> &'static str {
    match d {
        datasets::DatasetKind::Cifar10 => "cifar10",
        datasets::DatasetKind::Cifar100 => "cifar100",
        datasets::DatasetKind::FashionMnist => "fashion_mnist",
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn counts(c: &ModelConfig) -> String {
    format!(
        "{} parameters, {} FLOPs (multiply-adds, one 32x32 image)",
        c.params(),
        c.flops()
    )
}

/// The model card for the checkpoint at `dir` (a model directory, a pruned checkpoint, or a run
/// directory whose best-val model is the one pushed): YAML front matter for the hub, then the
/// architecture, the pruning, the retraining, the accuracy, the paper and the commands.
pub fn model_card(dir: &Path) -> Result<String> {
    let config = check_checkpoint(&resolve_model_dir(dir)?)?;
    let p = gather(dir)?;
    let dataset = p.run.as_ref().map(|(s, _)| s.dataset).or_else(|| {
        p.origin
            .as_ref()
            .and_then(|o| o.spec.as_ref())
            .map(|s| s.dataset)
    });
    let method = p.pruned.as_ref().map(|(_, plan)| plan.method.clone());

    let mut s = String::new();
    // Front matter: the hub reads these keys for search and the model page.
    s.push_str("---\nlibrary_name: prunebench\ntags:\n- pruning\n");
    if let Some(m) = &method {
        let _ = writeln!(s, "- {m}");
    }
    let _ = writeln!(s, "- {}", config.name());
    match dataset {
        Some(d) => {
            let _ = writeln!(s, "datasets:\n- {}", dataset_id(d));
        }
        None => s.push_str("datasets: []\n"),
    }
    s.push_str("metrics:\n- accuracy\n---\n\n");

    let _ = writeln!(s, "# {} (prunebench)\n", config.name());
    s.push_str("## Architecture\n\n");
    let _ = writeln!(
        s,
        "`{}`: {} input channel(s), {} classes; {}. `config.json` lists every layer width \
         (see prunebench's docs/hub.md for loading it in PyTorch).\n",
        config.name(),
        config.in_channels(),
        config.num_classes(),
        counts(&config)
    );

    s.push_str("## Pruning\n\n");
    match &p.pruned {
        Some((_, plan)) => {
            let version = plan
                .version
                .as_deref()
                .map_or_else(|| "none".to_string(), str::to_string);
            let _ = writeln!(
                s,
                "- method: `{}`; version: {version}",
                plan.method
            );
            // Unstructured pruning masks weights and keeps the architecture: the dense model
            // before is this one.
            let before = p
                .origin
                .as_ref()
                .and_then(|o| o.spec.as_ref())
                .map(|s| &s.model)
                .or((!plan.is_structured()).then_some(&config));
            match before {
                Some(b) => {
                    let _ = writeln!(s, "- before: `{}`, {}", b.name(), counts(b));
                }
                None => s.push_str("- before: unknown (the pruned model's origin run is not recorded)\n"),
            }
            let _ = writeln!(s, "- after: `{}`, {}", config.name(), counts(&config));
            if !plan.is_structured() {
                let total: usize = plan.tensors().iter().map(|t| t.total).sum();
                let pruned: usize = plan.tensors().iter().map(|t| t.pruned).sum();
                let _ = writeln!(
                    s,
                    "- unstructured: {pruned} of {total} conv weights ({}) are zero; the counts above are dense",
                    pct(pruned as f64 / total.max(1) as f64)
                );
            }
            if let Some(o) = &p.origin {
                let _ = writeln!(s, "- pruned from: `{}`", o.checkpoint.display());
            }
        }
        None => s.push_str(
            "Not recorded: this directory has no `plan.json`, so whether and how the model was pruned is unknown.\n",
        ),
    }
    s.push('\n');

    s.push_str("## Retraining\n\n");
    match &p.run {
        Some((spec, _)) => {
            let start = match &spec.init {
                Init::Checkpoint { path, .. } => format!("from `{}`", path.display()),
                Init::Fresh { seed } => format!("from scratch (init seed {seed})"),
            };
            let _ = writeln!(
                s,
                "- schedule: `{}`; budget: {} epochs; batch {}; SGD momentum {}, weight decay {}{}\n\
                 - started {start}; dataset {}; seed {}",
                spec.schedule,
                spec.epochs,
                spec.batch_size,
                spec.sgd.momentum,
                spec.sgd.weight_decay,
                if spec.sgd.nesterov { ", Nesterov" } else { "" },
                spec.dataset,
                spec.seed
            );
            if let Some(n) = spec.limit_train {
                let _ = writeln!(s, "- trained on the first {n} images of the training split only");
            }
        }
        None => s.push_str("Not retrained: this is the checkpoint as pruned (or as given), without a run directory.\n"),
    }
    s.push('\n');

    s.push_str("## Accuracy\n\n");
    match p
        .run
        .as_ref()
        .and_then(|(spec, r)| r.as_ref().map(|r| (spec, r)))
    {
        Some((spec, r)) => {
            let _ = writeln!(
                s,
                "- test accuracy {} on {} (the model of epoch {}, 0-based, the best on validation); \
                 one run, so no mean +- std over seeds is known",
                pct(r.test_acc),
                spec.dataset,
                r.best_epoch
            );
        }
        None => s.push_str("- after: unknown (no finished run recorded a test accuracy)\n"),
    }
    if let Some(r) = &p.origin_result {
        let _ = writeln!(
            s,
            "- before pruning: test accuracy {} (one run)",
            pct(r.test_acc)
        );
    }
    s.push('\n');

    s.push_str("## Reference\n\n");
    let _ = writeln!(s, "{PAPER}\n");

    s.push_str("## How it was made\n\n");
    if p.commands.is_empty() {
        s.push_str("The `prunebench` commands were not recorded for this checkpoint.\n");
    } else {
        s.push_str("```sh\n");
        for (what, c) in &p.commands {
            let _ = writeln!(s, "# {what}\n{c}");
        }
        s.push_str("```\n");
    }
    Ok(s)
}

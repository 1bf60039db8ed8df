//! `cargo xtask fuzz`: every libFuzzer target in `fuzz/` for `--seconds` each, then a table of
//! executions and crashes, also written as JSON (`results/fuzz.json`). docs/fuzzing.md describes
//! the targets and records a run.
//!
//! The targets need a nightly toolchain and cargo-fuzz; the rest of the workspace stays on
//! stable. The seed corpus is generated here from the library's own writers (a small model
//! saved, a plan selected, masks saved, ...), so the seeds always follow the current formats and
//! no binary blobs are committed. Inputs that once crashed a target live in
//! `fuzz/regressions/<target>/` and are replayed at the start of every run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use candle_core::Device;
use models::{Model, ModelConfig, ResNetConfig, VggConfig, VggItem};
use serde::Serialize;

/// The targets, in the order they run (`fuzz/Cargo.toml` has a `[[bin]]` for each).
pub const TARGETS: [&str; 8] = [
    "checkpoint",
    "plan",
    "masks",
    "idx_raw",
    "idx_gzip",
    "cifar",
    "run_files",
    "schedule",
];

/// libFuzzer options of every run: a unit that allocates more than 2 GiB or runs longer than
/// 10 s is a crash (the unbounded reads and hangs of issue 14 are bugs, not slow inputs).
const LIBFUZZER_LIMITS: [&str; 3] = ["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"];

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of fuzzing per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Run only this target (repeatable); default: all of them.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// The sanitizer cargo-fuzz builds with: address, leak, memory, thread or none.
    #[arg(long, default_value = "address")]
    sanitizer: String,
    /// Where to write the table as JSON.
    #[arg(long, default_value = "results/fuzz.json")]
    out: PathBuf,
}

/// One target's run, as the table and the JSON report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRun {
    /// The target's name.
    pub target: String,
    /// Inputs executed (libFuzzer's `stat::number_of_executed_units`).
    pub executions: u64,
    /// Crashes found: 0 or 1 (libFuzzer stops at the first).
    pub crashes: u32,
    /// What the crash was (`deadly signal`, `timeout`, `out-of-memory`, the panic message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
    /// The input that crashed it, as libFuzzer wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// libFuzzer's full output.
    pub log: String,
}

#[derive(Serialize)]
struct Report<'a> {
    seconds_per_target: u64,
    sanitizer: &'a str,
    targets: &'a [TargetRun],
}

pub fn run(args: Args) -> Result<()> {
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in &args.targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!(
                    "unknown fuzz target '{t}'; the targets are {}",
                    TARGETS.join(", ")
                );
            }
        }
        args.targets.iter().map(String::as_str).collect()
    };
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let root = repo_root();
    check_tools(&root)?;
    let fuzz = root.join("fuzz");
    write_seeds(&fuzz, &targets)?;

    // One build of every target first, so the seconds below are fuzzing, not compiling.
    println!(
        "building the fuzz targets (nightly, sanitizer {})",
        args.sanitizer
    );
    let status = nightly_cargo(&root)
        .args(["fuzz", "build", "-s", &args.sanitizer])
        .status()
        .context("cannot run `cargo +nightly fuzz build`")?;
    if !status.success() {
        bail!("`cargo +nightly fuzz build` failed ({status})");
    }

    let logs = fuzz.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut runs = Vec::new();
    for target in targets {
        println!("fuzzing {target} for {} s", args.seconds);
        let log = logs.join(format!("{target}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let corpus = fuzz.join("corpus").join(target);
        // Replayed before fuzzing: libFuzzer runs every input of every corpus folder first and
        // adds new inputs to the first folder only.
        let regressions = fuzz.join("regressions").join(target);
        let mut cmd = nightly_cargo(root.as_path());
        cmd.args(["fuzz", "run", "-s", &args.sanitizer, target])
            .arg(&corpus);
        if regressions.is_dir() {
            cmd.arg(&regressions);
        }
        cmd.arg("--")
            .arg(format!("-max_total_time={}", args.seconds))
            .args(LIBFUZZER_LIMITS)
            .stdout(Stdio::null())
            .stderr(file);
        let status = cmd
            .status()
            .with_context(|| format!("cannot run `cargo +nightly fuzz run {target}`"))?;
        let text = std::fs::read_to_string(&log)
            .with_context(|| format!("cannot read {}", log.display()))?;
        let mut run = parse_output(target, &text);
        run.log = relative(&root, &log);
        if !status.success() && run.crashes == 0 {
            // Not a crash libFuzzer reported (a build error, a killed process): say so.
            run.crashes = 1;
            run.crash = Some(format!("exited with {status} (see the log)"));
        }
        runs.push(run);
    }

    print_table(&runs);
    let out = root.join(&args.out);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let report = Report {
        seconds_per_target: args.seconds,
        sanitizer: &args.sanitizer,
        targets: &runs,
    };
    let mut json = serde_json::to_string_pretty(&report)?;
    json.push('\n');
    std::fs::write(&out, json).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", args.out.display());
    let crashed: Vec<&str> = runs
        .iter()
        .filter(|r| r.crashes > 0)
        .map(|r| r.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "crashes in {}: the inputs are in fuzz/artifacts/<target>/ (reproduce one with \
             `cargo +nightly fuzz run <target> <input>`)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly ...` in the repository root, with fuzz/'s own target folder: a
/// CARGO_TARGET_DIR meant for the stable build would make cargo-fuzz rebuild everything there.
fn nightly_cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .env_remove("CARGO_TARGET_DIR")
        .arg("+nightly");
    cmd
}

fn repo_root() -> PathBuf {
    // xtask/ is one level below the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Nightly and cargo-fuzz present, or an error saying how to install them.
fn check_tools(root: &Path) -> Result<()> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !nightly.is_ok_and(|s| s.success()) {
        bail!(
            "fuzzing needs a nightly toolchain (libFuzzer's instrumentation is nightly-only): \
             `rustup toolchain install nightly`"
        );
    }
    let fuzz = nightly_cargo(root)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !fuzz.is_ok_and(|s| s.success()) {
        bail!("fuzzing needs cargo-fuzz: `cargo install cargo-fuzz --locked`");
    }
    Ok(())
}

/// Reads libFuzzer's output: executions (its final stats, else its `Done N runs` line, else the
/// last `#N` status line) and the first crash.
pub fn parse_output(target: &str, text: &str) -> TargetRun {
    let after = |line: &str, key: &str| -> Option<u64> {
        let rest = line.trim().strip_prefix(key)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    let mut stats = None;
    let mut done = None;
    let mut status = None;
    let mut crash = None;
    let mut artifact = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(n) = after(line, "stat::number_of_executed_units:") {
            stats = Some(n);
        } else if let Some(n) = after(line, "Done") {
            done = Some(n);
        } else if let Some(n) = line.strip_prefix('#').and_then(|l| after(l, "")) {
            status = Some(n);
        }
        if crash.is_none() {
            if line.contains("panicked at ") {
                // Rust's panic line names the location; the message is on the next line.
                let message = lines.peek().map(|m| m.trim()).unwrap_or_default();
                let at = line.split("panicked at ").nth(1).unwrap_or_default().trim();
                crash = Some(format!("panic at {} {message}", at.trim_end_matches(':')));
            } else if let Some(kind) = line.split("ERROR: libFuzzer: ").nth(1) {
                crash = Some(kind.trim().to_string());
            } else if let Some(kind) = line.split("ERROR: AddressSanitizer: ").nth(1) {
                crash = Some(format!("AddressSanitizer: {}", kind.trim()));
            }
        }
        if let Some(path) = line.split("Test unit written to ").nth(1) {
            artifact.get_or_insert_with(|| path.trim().to_string());
        }
    }
    TargetRun {
        target: target.to_string(),
        executions: stats.or(done).or(status).unwrap_or(0),
        crashes: u32::from(crash.is_some() || artifact.is_some()),
        crash: crash.or_else(|| artifact.as_ref().map(|_| "crash (see the log)".to_string())),
        artifact,
        log: String::new(),
    }
}

fn print_table(runs: &[TargetRun]) {
    println!(
        "\n{:<12} {:>14} {:>8}  crash",
        "target", "executions", "crashes"
    );
    for r in runs {
        println!(
            "{:<12} {:>14} {:>8}  {}",
            r.target,
            r.executions,
            r.crashes,
            r.crash.as_deref().unwrap_or("-")
        );
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Writes each target's seeds into `fuzz/corpus/<target>/seed-*` (overwriting older seeds; the
/// inputs libFuzzer adds beside them are kept, so a later run starts from the grown corpus).
fn write_seeds(fuzz: &Path, targets: &[&str]) -> Result<()> {
    let work = fuzz.join("target").join("seed-work");
    let seeds = seed_files(&work)?;
    let _ = std::fs::remove_dir_all(&work);
    for target in targets {
        let dir = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, bytes) in seeds.get(target).into_iter().flatten() {
            let path = dir.join(format!("seed-{name}"));
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// Seed files by target: (file name, bytes).
pub type Seeds = HashMap<&'static str, Vec<(String, Vec<u8>)>>;

/// The seeds of every target. `work` is a scratch folder.
pub fn seed_files(work: &Path) -> Result<Seeds> {
    let mut seeds = Seeds::new();
    let read =
        |p: PathBuf| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()));

    // Checkpoints: a small model of each family, saved by Model::save (config in the metadata
    // and in config.json); and the ResNet's weights without metadata, so the loader takes the
    // config from config.json.
    let mut small = Vec::new();
    for (name, config) in small_configs()? {
        let dir = work.join(name);
        let model = Model::init(&config, 0, &Device::Cpu)?;
        model.save(&dir)?;
        let config_json = read(dir.join(models::checkpoint::CONFIG_FILE))?;
        let weights = read(dir.join(models::checkpoint::WEIGHTS_FILE))?;
        seeds
            .entry("checkpoint")
            .or_default()
            .push((name.to_string(), join(&config_json, &weights)));
        small.push((name, model, config_json));
    }
    let (_, resnet, resnet_json) = &small[0];
    let bare = work.join("bare.safetensors");
    candle_core::safetensors::save(&resnet.tensors()?, &bare)?;
    seeds
        .entry("checkpoint")
        .or_default()
        .push(("resnet-no-metadata".into(), join(resnet_json, &read(bare)?)));

    // Plans: PFEC-style L1 selection keeping 1 of 2 channels in two groups of the small ResNet,
    // and an unstructured plan's counts.
    let groups = resnet.config().channel_groups();
    let targets: Vec<(String, usize)> =
        groups.iter().take(2).map(|g| (g.name.clone(), 1)).collect();
    let weights = resnet.tensors()?;
    let plan = prune_core::select_filters(
        "pfec",
        Some("A"),
        &groups,
        &targets,
        prune_core::FilterSaliency::L1,
        &weights,
    )?;
    let conv = resnet.config().conv_weight_names();
    let unstructured = prune_core::PruningPlan {
        method: "mwp".into(),
        version: None,
        kind: prune_core::PlanKind::Unstructured {
            tensors: vec![prune_core::TensorSparsity {
                tensor: conv[0].clone(),
                total: 144,
                pruned: 72,
                sparsity: 0.5,
            }],
            threshold: 0.01,
        },
    };
    for (name, p) in [("pfec", &plan), ("mwp", &unstructured)] {
        seeds
            .entry("plan")
            .or_default()
            .push((name.into(), serde_json::to_vec_pretty(p)?));
    }

    // Masks: every other weight of each conv of the small ResNet, saved by Masks::save.
    let masks = prune_core::Masks::new(conv.iter().map(|name| {
        let w = &weights[name];
        let n = w.elem_count();
        let keep: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
        let mask = candle_core::Tensor::from_vec(keep, w.dims(), &Device::Cpu)
            .expect("mask of the weight's shape");
        (name.clone(), mask)
    }))?;
    let masks_file = work.join("masks.safetensors");
    masks.save(&masks_file)?;
    seeds
        .entry("masks")
        .or_default()
        .push(("resnet8".into(), read(masks_file)?));

    // IDX: three 28x28 images and their labels, written gzipped by the dataset's own writer.
    let images: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 251) as u8).collect();
    let labels = [0u8, 9, 4];
    let idx = work.join("idx");
    std::fs::create_dir_all(&idx)?;
    datasets::fashion::write_split(&idx, "train", &images, &labels)?;
    let (img_gz, lbl_gz) = datasets::fashion::files("train");
    let mut raw_images = Vec::new();
    for w in [0x0803u32, 3, 28, 28] {
        raw_images.extend_from_slice(&w.to_be_bytes());
    }
    raw_images.extend_from_slice(&images);
    let mut raw_labels = Vec::new();
    for w in [0x0801u32, 3] {
        raw_labels.extend_from_slice(&w.to_be_bytes());
    }
    raw_labels.extend_from_slice(&labels);
    seeds.entry("idx_raw").or_default().extend([
        ("images".to_string(), raw_images.clone()),
        ("labels".to_string(), raw_labels.clone()),
    ]);
    // idx_gzip's first byte: even, the rest is a gzip stream; odd, IDX bytes to compress.
    let tag = |mode: u8, bytes: Vec<u8>| [vec![mode], bytes].concat();
    seeds.entry("idx_gzip").or_default().extend([
        ("images-gz".to_string(), tag(0, read(idx.join(img_gz))?)),
        ("labels-gz".to_string(), tag(0, read(idx.join(lbl_gz))?)),
        ("images-raw".to_string(), tag(1, raw_images)),
        ("labels-raw".to_string(), tag(1, raw_labels)),
    ]);

    // CIFAR: two CIFAR-10 records (label, 3072 pixels) and two CIFAR-100 records (coarse label,
    // fine label, pixels).
    let pixels: Vec<u8> = (0..3072).map(|i| (i % 253) as u8).collect();
    let record = |labels: &[u8]| [labels, &pixels[..]].concat();
    seeds.entry("cifar").or_default().extend([
        ("cifar10".to_string(), [record(&[3]), record(&[7])].concat()),
        (
            "cifar100".to_string(),
            [record(&[4, 31]), record(&[19, 99])].concat(),
        ),
    ]);

    // Run files: the first byte picks the file (run_files.rs).
    let spec =
        train::ExperimentSpec::paper(datasets::DatasetKind::FashionMnist, resnet.config().clone());
    let state = train::run::RunState {
        epochs_done: 2,
        global_step: 200,
        last_dir: "epoch-0001".into(),
        best: Some(train::run::Best {
            epoch: 1,
            val_acc: 0.5,
            test_acc: 0.45,
            test_loss: 1.25,
            dir: "best-0001".into(),
        }),
    };
    let metrics: String = (0..2)
        .map(|epoch| {
            let m = train::engine::EpochMetrics {
                epoch,
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
            serde_json::to_string(&m).map(|line| line + "\n")
        })
        .collect::<Result<_, _>>()?;
    let result = train::engine::RunResult {
        spec_hash: spec.hash(),
        model: resnet.config().name(),
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
    let origin = experiments::provenance::Origin {
        checkpoint: "runs/r8".into(),
        id: Some(train::CheckpointId::Pruned {
            origin: spec.hash(),
            pruning: "pfec:B".into(),
        }),
        spec: Some(spec.clone()),
    };
    seeds.entry("run_files").or_default().extend([
        (
            "state".to_string(),
            tag(0, serde_json::to_vec_pretty(&state)?),
        ),
        ("spec".to_string(), tag(1, spec.to_json().into_bytes())),
        ("metrics".to_string(), tag(2, metrics.into_bytes())),
        (
            "result".to_string(),
            tag(3, serde_json::to_vec_pretty(&result)?),
        ),
        (
            "origin".to_string(),
            tag(4, serde_json::to_vec_pretty(&origin)?),
        ),
    ]);

    // Schedules: one of each kind, with every item the text form has.
    let texts = [
        "step:0.1@0,0.01@80,0.001@120",
        "step:preset=imagenet",
        "ft:preset=cifar,lr=0.001",
        "lrw:original=0.1@0;0.01@80;0.001@120,epochs=160",
        "slr:min=0.001,max=0.1,warmup=0.1,drops=0.5/0.75,factor=0.1",
        "slr:drops=none",
        "clr:preset=imagenet,init=0.01,max=0.1,min=0.0001,warmup=0.3,anneal=linear,momentum=0.85/0.95",
        "onecycle:max=0.4,init=0.01,momentum=off,anneal=cos",
        "cosine:max=0.1,min=0",
    ];
    for (i, text) in texts.iter().enumerate() {
        // Only valid seeds: a seed that stopped parsing would mean the format changed here.
        text.parse::<schedules::Schedule>()
            .with_context(|| format!("seed schedule '{text}'"))?;
        seeds
            .entry("schedule")
            .or_default()
            .push((format!("{i}"), text.as_bytes().to_vec()));
    }
    Ok(seeds)
}

/// Small models of each family (under 20,000 weights), for checkpoint seeds.
fn small_configs() -> Result<Vec<(&'static str, ModelConfig)>> {
    let resnet = ModelConfig::ResNet(ResNetConfig {
        depth: 8,
        in_channels: 1,
        num_classes: 2,
        block_widths: vec![2, 2, 2],
        detach_shortcut: false,
    });
    let pool = VggItem::MaxPool;
    let vgg = ModelConfig::Vgg(VggConfig {
        in_channels: 1,
        num_classes: 2,
        cfg: vec![
            VggItem::Conv(2),
            pool,
            VggItem::Conv(2),
            pool,
            VggItem::Conv(2),
            pool,
            VggItem::Conv(2),
            pool,
            VggItem::Conv(2),
        ],
        classifier_width: 2,
    });
    let densenet = ModelConfig::densenet(7, 2, 2, 1)?;
    Ok(vec![
        ("resnet8", resnet),
        ("vgg", vgg),
        ("densenet7", densenet),
    ])
}

/// The two-part input of the checkpoint target (fuzz/src/lib.rs `join`): a little-endian u16
/// length, the first part, the second.
fn join(first: &[u8], second: &[u8]) -> Vec<u8> {
    let first = &first[..first.len().min(usize::from(u16::MAX))];
    let mut out = (first.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_executions_of_a_clean_run() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 10 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 12 ft: 14 corp: 2/3b\nDone 51234 runs in 61 second(s)\n\
                   stat::number_of_executed_units: 51236\nstat::average_exec_per_sec:     839\n";
        let run = parse_output("plan", log);
        assert_eq!(run.executions, 51236);
        assert_eq!(run.crashes, 0);
        assert_eq!(run.crash, None);
        // Without final stats, the `Done` line; without it, the last status line.
        assert_eq!(
            parse_output("p", "#2\tINITED\nDone 77 runs in 1 second(s)\n").executions,
            77
        );
        assert_eq!(
            parse_output("p", "#2\tINITED\n#1024\tpulse\n").executions,
            1024
        );
    }

    #[test]
    fn reads_a_panic_and_its_input() {
        let log = "#2\tINITED cov: 10\n#300\tNEW cov: 11\n\
                   thread '<unnamed>' panicked at crates/datasets/src/fashion.rs:140:20:\n\
                   attempt to multiply with overflow\n\
                   ==12== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='fuzz/artifacts/idx_raw/'; Test unit written to fuzz/artifacts/idx_raw/crash-ab12\n\
                   stat::number_of_executed_units: 301\n";
        let run = parse_output("idx_raw", log);
        assert_eq!(run.executions, 301);
        assert_eq!(run.crashes, 1);
        assert_eq!(
            run.crash.as_deref(),
            Some(
                "panic at crates/datasets/src/fashion.rs:140:20 attempt to multiply with overflow"
            )
        );
        assert_eq!(
            run.artifact.as_deref(),
            Some("fuzz/artifacts/idx_raw/crash-ab12")
        );
    }

    #[test]
    fn reads_an_out_of_memory_crash() {
        let log = "==7== ERROR: libFuzzer: out-of-memory (malloc(4294967296))\n\
                   Test unit written to fuzz/artifacts/cifar/oom-1\n";
        let run = parse_output("cifar", log);
        assert_eq!(run.crashes, 1);
        assert_eq!(
            run.crash.as_deref(),
            Some("out-of-memory (malloc(4294967296))")
        );
    }

    #[test]
    fn every_target_has_seeds_and_a_fuzz_binary() {
        let work = tempfile::tempdir().unwrap();
        let seeds = seed_files(work.path()).unwrap();
        let manifest = std::fs::read_to_string(repo_root().join("fuzz/Cargo.toml")).unwrap();
        for target in TARGETS {
            assert!(
                !seeds.get(target).is_none_or(Vec::is_empty),
                "{target} has no seeds"
            );
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "fuzz/Cargo.toml has no [[bin]] {target}"
            );
        }
    }
}

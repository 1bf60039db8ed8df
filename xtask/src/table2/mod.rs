//! `cargo xtask reproduce table2`: the paper's Table 2 as a resumable grid of runs keyed by
//! their spec hashes, run locally with `--jobs N` or emitted as Slurm job arrays, and the
//! report of our numbers beside the paper's.

pub mod report;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datasets::DatasetKind;
pub use experiments::{exec, grid};
use train::device::DeviceSpec;

pub use exec::{Summary, run_task};
#[cfg(test)]
use grid::Column;
pub use grid::{Grid, ProfileName, Task, Variant};

/// The paper's Table 2, as committed (built in, so the report does not depend on the folder
/// the xtask runs from).
const PAPER_TABLE: (&str, &str) = (
    "data/paper/table2.csv",
    include_str!("../../../data/paper/table2.csv"),
);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// sample (the default: the bundled Fashion-MNIST sample, minutes, a real if small
    /// result), cpu (full Fashion-MNIST, about 4 hours on 2 cores), paper (CIFAR, the paper's
    /// budgets), smoke (a pipeline check in about a minute).
    #[arg(long, value_enum, default_value = "sample")]
    pub profile: ProfileName,
    /// Datasets, comma-separated (cifar10,cifar100,fashion-mnist) [default: the profile's].
    #[arg(long, value_delimiter = ',')]
    pub datasets: Option<Vec<String>>,
    /// Rows: vgg16, resnet56, resnet56-A, resnet56-B, resnet110, resnet110-A, resnet110-B,
    /// or ARCH@R for PFEC at ratio R of every layer (resnet20@0.5) [default: the profile's:
    /// Table 2's five for paper and smoke, resnet20@0.5 for sample and cpu].
    #[arg(long)]
    pub archs: Option<String>,
    /// Write Slurm job-array scripts and one task file per run into DIR instead of running.
    #[arg(long, value_names = ["slurm", "DIR"], num_args = 2)]
    pub emit: Option<Vec<String>>,
    /// With `--emit slurm`: CPU cores each array task asks for (`#SBATCH --cpus-per-task`). A
    /// GPU is asked for only when --device is a CUDA device.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub slurm_cpus: u32,
    /// Train nothing: add the runs directory's finished runs (if any) to the results folder's
    /// per-run records (`runs.jsonl`), then rebuild the tables from the records alone.
    #[arg(long)]
    pub report_only: bool,
    /// Also run the protocol in PyTorch (xtask/bench/torch_reproduce.py, with $PRUNEBENCH_PYTHON
    /// or python3, which must import torch) into results/<profile>/torch.json, and print its
    /// numbers beside ours. The sample profile only.
    #[arg(long)]
    pub torch_check: bool,
    #[command(flatten)]
    pub grid: GridArgs,
}

/// The flags Table 2 and Figure 2 share: where the data, the runs and the report live, and how
/// the grid runs.
#[derive(clap::Args, Debug, Clone)]
pub struct GridArgs {
    /// The dataset folder [default: the profile's; CIFAR: data/].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seeds 1..=N [default: the profile's].
    #[arg(long, value_name = "N")]
    pub seeds: Option<u32>,
    /// Runs at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Where the training runs compute: cpu, cuda or cuda:N (xtask built with --features cuda;
    /// see docs/cuda.md). Pruning reads weights on the CPU. Not part of a run's spec: a run
    /// started on one device resumes on another.
    #[arg(long, value_name = "cpu|cuda|cuda:N", default_value = "cpu")]
    pub device: DeviceSpec,
    /// Where runs live, one folder per spec hash (pruned checkpoints under pruned/)
    /// [default: runs/<profile>, shared by table2 and fig2].
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Where the report goes (table2.md and .csv; fig2.svg, .png, .csv and .md)
    /// [default: results/<profile>].
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// Print the plan and its cost; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Override the profile's image limits (for tests and quick looks): TRAIN,EVAL.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub limits: Option<Vec<usize>>,
}

impl GridArgs {
    /// The runs directory: as given, or `runs/<profile>`, which Table 2 and Figure 2 share so
    /// the unpruned models, their prunings and the runs both need are trained once.
    pub fn runs_dir(&self, profile: ProfileName) -> PathBuf {
        self.runs_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(profile.name()))
    }

    /// The results directory: as given, or `results/<profile>`.
    pub fn results_dir(&self, profile: ProfileName) -> PathBuf {
        self.results_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(profile.name()))
    }
}

fn profile(args: &Args) -> Result<grid::Profile> {
    let mut p = grid::Profile::new(args.profile);
    override_profile(&mut p, args.datasets.as_deref(), &args.grid)?;
    Ok(p)
}

/// Applies the command line's datasets, `--data-dir`, `--seeds` and `--limits` to a profile.
pub fn override_profile(
    p: &mut grid::Profile,
    datasets: Option<&[String]>,
    flags: &GridArgs,
) -> Result<()> {
    if let Some(names) = datasets {
        p.datasets = names
            .iter()
            .map(|n| {
                n.parse::<DatasetKind>()
                    .with_context(|| format!("dataset `{n}`"))
            })
            .collect::<Result<_>>()?;
        if p.datasets.is_empty() {
            bail!("--datasets names no dataset");
        }
    }
    if let Some(dir) = &flags.data_dir {
        if p.datasets.len() > 1 {
            bail!("--data-dir names one folder: give one dataset with --datasets");
        }
        p.data_dir = Some(dir.clone());
    }
    if let Some(n) = flags.seeds {
        if n == 0 {
            bail!("--seeds must be at least 1");
        }
        p.seeds = n;
    }
    if let Some(l) = &flags.limits {
        let [train, eval] = l.as_slice() else {
            bail!("--limits takes TRAIN,EVAL (two image counts), got {l:?}");
        };
        p.limit_train = Some(*train);
        p.limit_eval = Some(*eval);
    }
    Ok(())
}

fn runs_dir(args: &Args) -> PathBuf {
    args.grid.runs_dir(args.profile)
}

/// Expands, then prints, emits or runs the grid and writes the report.
pub fn run(args: &Args) -> Result<Option<Summary>> {
    let profile = profile(args)?;
    let variants = match &args.archs {
        Some(text) => Variant::parse_list(text)?,
        None => profile.variants.clone(),
    };
    let runs = runs_dir(args);
    let mut grid = grid::expand(&profile, &variants, &runs)?;
    let results = args.grid.results_dir(args.profile);
    let mut records = report::read_records(&results)?;
    mark_recorded(&mut grid, &records);
    if args.grid.dry_run {
        print!("{}", plan_text(&grid, &profile));
        println!("not run: imagenet resnet34 A and B (no ImageNet here)");
        return Ok(None);
    }
    if let Some(emit) = &args.emit {
        if emit[0] != "slurm" {
            bail!("--emit knows `slurm` only, got `{}`", emit[0]);
        }
        emit_slurm(&grid, Path::new(&emit[1]), args)?;
        return Ok(None);
    }
    let paper = report::read_paper(Path::new(PAPER_TABLE.0), PAPER_TABLE.1)?;
    if args.torch_check {
        torch_check(&profile, &results)?;
    }
    if args.report_only {
        // Trains nothing: adds what the runs directory (if any) has finished to the records and
        // keeps its unpruned checkpoints, then rebuilds the tables from the records alone.
        let added = report::collect_records(&grid, args.profile, &mut records)?;
        if added > 0 {
            report::write_records(&results, &records)?;
            eprintln!(
                "added {added} finished run(s) from {} to the records",
                runs.display()
            );
        }
        if profile.keep_checkpoints && runs.is_dir() {
            keep_checkpoints(&grid, &results.join(CHECKPOINTS))?;
        }
        report::write(&results, &grid, &records, &paper, &profile)?;
        eprintln!(
            "wrote {} from {} run record(s) in {}; trained nothing",
            results.join("table2.md").display(),
            records.len(),
            results.join(report::RECORDS_FILE).display()
        );
        return Ok(None);
    }
    let restored = restore_checkpoints(&results.join(CHECKPOINTS), &runs)?;
    if restored > 0 {
        eprintln!(
            "restored {restored} committed checkpoint(s) from {} into {}",
            results.join(CHECKPOINTS).display(),
            runs.display()
        );
    }
    let device = crate::open_device(args.grid.device)?;
    let started = Instant::now();
    let summary = exec::execute(&grid, args.grid.jobs, &device);
    if profile.keep_checkpoints {
        keep_checkpoints(&grid, &results.join(CHECKPOINTS))?;
    }
    // Records first: a table is always rebuilt from them, here and by --report-only.
    report::collect_records(&grid, args.profile, &mut records)?;
    report::write_records(&results, &records)?;
    report::write(&results, &grid, &records, &paper, &profile)?;
    conclude(summary, started, &results.join("table2.md")).map(Some)
}

/// Runs `xtask/bench/torch_reproduce.py` for the sample profile into `results/torch.json`.
fn torch_check(profile: &grid::Profile, results: &Path) -> Result<()> {
    if profile.name != ProfileName::Sample {
        bail!("--torch-check runs the sample profile's protocol only");
    }
    let python = std::env::var_os("PRUNEBENCH_PYTHON").unwrap_or_else(|| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/torch_reproduce.py");
    let data = profile
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data/sample/fashion-mnist"));
    std::fs::create_dir_all(results)
        .with_context(|| format!("cannot create {}", results.display()))?;
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .arg("--data-dir")
        .arg(&data)
        .args(["--seeds", &profile.seeds.to_string()])
        .arg("--out")
        .arg(results.join(report::TORCH_FILE));
    if let Some(n) = profile.limit_train {
        cmd.args(["--limit-train", &n.to_string()]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", python.to_string_lossy()))?;
    if !status.success() {
        bail!(
            "{} {} failed ({status}); it needs torch and numpy (PRUNEBENCH_PYTHON names the Python)",
            python.to_string_lossy(),
            script.display()
        );
    }
    Ok(())
}

/// Where a results folder keeps the unpruned runs later runs start from (cpu profile).
const CHECKPOINTS: &str = "checkpoints";

/// Marks the runs the records hold as done, and the prunings whose every dependent is: a fresh
/// clone with the committed results trains none of them again.
fn mark_recorded(grid: &mut Grid, records: &std::collections::BTreeMap<String, report::RunRecord>) {
    for n in &mut grid.nodes {
        if let Task::Train { spec, .. } = &n.task {
            n.recorded = records.contains_key(&spec.hash());
        }
    }
    for i in 0..grid.nodes.len() {
        if matches!(grid.nodes[i].task, Task::Prune { .. }) {
            let mut users = grid.nodes.iter().filter(|n| n.deps.contains(&i)).peekable();
            let any = users.peek().is_some();
            let all = users.all(|n| n.recorded);
            grid.nodes[i].recorded = any && all;
        }
    }
}

/// The files of a finished run that a pruning reads (its spec, state, result, logs and best-val
/// model), copied from `run` into `to`.
fn copy_finished_run(run: &Path, to: &Path) -> Result<()> {
    let state: train::run::RunState = train::run::read_json(&run.join("state.json"))?;
    let best = state
        .best
        .as_ref()
        .map_or(state.last_dir.clone(), |b| b.dir.clone());
    let tmp = to.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    std::fs::create_dir_all(tmp.join(&best))
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    for f in [
        "spec.json",
        "state.json",
        "result.json",
        "metrics.jsonl",
        "hosts.jsonl",
    ] {
        let src = run.join(f);
        if src.is_file() {
            std::fs::copy(&src, tmp.join(f))
                .with_context(|| format!("cannot copy {}", src.display()))?;
        }
    }
    for f in ["model.safetensors", "config.json"] {
        let src = run.join(&best).join(f);
        std::fs::copy(&src, tmp.join(&best).join(f))
            .with_context(|| format!("cannot copy {}", src.display()))?;
    }
    // Whole or not at all: a kill mid-copy leaves only the .partial folder, redone next time.
    std::fs::rename(&tmp, to)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

/// Copies each finished unpruned run of `grid` (its best-val model and records, ~1 MB for
/// ResNet-20) into `dir/<hash>/` if not there yet.
fn keep_checkpoints(grid: &Grid, dir: &Path) -> Result<()> {
    for n in &grid.nodes {
        if let (Some(grid::Column::Unpruned), Task::Train { runs_dir, spec }) = (n.column, &n.task)
        {
            let run = grid::run_dir(runs_dir, spec);
            let to = dir.join(spec.hash());
            if run.join("result.json").is_file() && !to.exists() {
                copy_finished_run(&run, &to)?;
            }
        }
    }
    Ok(())
}

/// Copies every committed checkpoint of `dir` whose run `runs` lacks into it; returns how many.
fn restore_checkpoints(dir: &Path, runs: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in entries.flatten() {
        let from = e.path();
        let name = e.file_name();
        let to = runs.join(&name);
        if from.join("result.json").is_file() && !to.join("result.json").is_file() {
            if to.exists() {
                bail!(
                    "{} holds an unfinished run of {}: remove it, or the committed checkpoint cannot be restored",
                    to.display(),
                    from.display()
                );
            }
            std::fs::create_dir_all(runs)
                .with_context(|| format!("cannot create {}", runs.display()))?;
            copy_finished_run(&from, &to)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The plan: one line per task, its cost in epochs x training images, and the totals.
pub fn plan_text(grid: &Grid, profile: &grid::Profile) -> String {
    let per_epoch = profile.images_per_epoch() as u64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>4}  {:<9} {:<14} {:<10} {:<7} {:>4} {:>6} {:>14}  {:<8} run",
        "#", "kind", "dataset", "arch", "version", "seed", "epochs", "epochs x imgs", "status"
    );
    let (mut total, mut missing, mut runs, mut done) = (0u64, 0u64, 0, 0);
    for (i, n) in grid.nodes.iter().enumerate() {
        let cost = u64::from(n.epochs()) * per_epoch;
        let is_done = n.is_done();
        let kind = n.kind();
        let where_ = match &n.task {
            Task::Train { runs_dir, spec } => grid::run_dir(runs_dir, spec).display().to_string(),
            Task::Prune { out, .. } => out.display().to_string(),
        };
        let _ = writeln!(
            out,
            "{i:>4}  {kind:<9} {:<14} {:<10} {:<7} {:>4} {:>6} {:>14}  {:<8} {where_}",
            n.dataset.name(),
            n.arch,
            n.version_name(),
            n.seed,
            n.epochs(),
            cost,
            if is_done { "done" } else { "to run" }
        );
        total += cost;
        if matches!(n.task, Task::Train { .. }) {
            runs += 1;
        }
        if is_done {
            done += 1;
        } else {
            missing += cost;
        }
    }
    let _ = writeln!(
        out,
        "total: {} tasks ({runs} training runs, {} prunings), {done} done; {total} image-epochs ({} still to run), {} training images per epoch",
        grid.nodes.len(),
        grid.nodes.len() - runs,
        missing,
        per_epoch
    );
    out
}

/// Prints what a reproduction did, once its report (`wrote`) is written, and turns failed
/// tasks into an error.
pub fn conclude(summary: Summary, started: Instant, wrote: &Path) -> Result<Summary> {
    eprintln!("{}", summary.line(started.elapsed().as_secs_f64(), wrote));
    Ok(summary.into_result()?)
}

/// Writes the grid as Slurm job arrays (experiments::slurm).
fn emit_slurm(grid: &Grid, dir: &Path, args: &Args) -> Result<()> {
    let opts = experiments::slurm::SlurmOptions {
        job_name: "prunebench-table2".into(),
        device: args.grid.device,
        cpus: args.slurm_cpus,
        report_command: format!(
            "cargo xtask reproduce table2 --profile {} --runs-dir {}",
            args.profile.name(),
            runs_dir(args).display()
        ),
    };
    let emitted = experiments::slurm::emit(grid, dir, &opts)?;
    println!(
        "wrote {} task files in {} stage(s) to {}; submit with: bash {}",
        emitted.tasks,
        emitted.stages,
        dir.display(),
        emitted.submit.display()
    );
    Ok(())
}

/// `cargo xtask run-task [--device D] FILE`: one task of an emitted grid (a cluster array task).
pub fn run_task_file(file: &Path, device: DeviceSpec) -> Result<()> {
    let device = crate::open_device(device)?;
    let task: Task = train::run::read_json(file)?;
    let label = file.display().to_string();
    let worked =
        run_task(&task, &label, &device).map_err(|e| anyhow::anyhow!(experiments::one_line(&e)))?;
    if !worked {
        eprintln!("{label}: complete already");
    }
    Ok(())
}

#[cfg(test)]
mod tests;

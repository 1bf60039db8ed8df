//! The report: our mean +- std over seeds per (row, column), the paper's number beside it, the
//! difference and the ranking of the four retraining methods, as Markdown and CSV.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use datasets::DatasetKind;
use train::engine::RunResult;

use experiments::provenance::Host;
use serde::{Deserialize, Serialize};

use super::grid::{Column, Grid, Profile, ProfileName, Task, Variant, run_dir};

/// A (mean, std) pair in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// None where the paper gives none (ImageNet) or we have one seed.
    pub std: Option<f64>,
    pub n: usize,
}

/// The paper's Table 2, keyed by (dataset, model, version) then column.
pub type PaperTable = BTreeMap<(String, String, String), BTreeMap<Column, Stat>>;

/// Parses the paper's table (`data/paper/table2.csv`, `path` names it in errors).
pub fn read_paper(path: &Path, text: &str) -> Result<PaperTable> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let header: Vec<&str> = lines
        .next()
        .with_context(|| format!("{}: no header", path.display()))?
        .split(',')
        .collect();
    let col = |name: &str| -> Result<usize> {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("{}: no column `{name}`", path.display()))
    };
    let (d, m, v) = (col("dataset")?, col("model")?, col("version")?);
    let mut out = PaperTable::new();
    for (k, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != header.len() {
            bail!(
                "{}: data line {} has {} fields, the header {}",
                path.display(),
                k + 1,
                f.len(),
                header.len()
            );
        }
        let mut row = BTreeMap::new();
        for c in Column::ALL {
            let num = |s: &str| -> Result<Option<f64>> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    s.parse()
                        .map(Some)
                        .with_context(|| format!("{}: `{s}` is not a number", path.display()))
                }
            };
            let mean = num(f[col(&format!("{}_mean", c.key()))?])?;
            let std = num(f[col(&format!("{}_std", c.key()))?])?;
            if let Some(mean) = mean {
                row.insert(c, Stat { mean, std, n: 5 });
            }
        }
        out.insert((f[d].into(), f[m].into(), f[v].into()), row);
    }
    Ok(out)
}

/// The per-run records of a results folder: one JSON object per line, the input of every table
/// (`--report-only` rebuilds the tables from it alone).
pub const RECORDS_FILE: &str = "runs.jsonl";

/// One finished run, as the results keep it: where it sits in the table, what it was, what it
/// gave, and where it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub profile: String,
    pub dataset: String,
    pub model: String,
    pub version: String,
    pub column: Column,
    pub seed: u32,
    /// The run's spec hash: its folder in the runs directory.
    pub spec_hash: String,
    /// Test accuracy of the best-val model, in [0, 1].
    pub test_acc: f64,
    pub best_val_acc: f64,
    /// 0-based.
    pub best_epoch: u32,
    pub epochs: u32,
    pub final_test_acc: f64,
    pub params: u64,
    pub flops: u64,
    /// Wall-clock seconds of training, evaluation included, summed over resumes.
    pub seconds: f64,
    /// Each start or resumption of the run: commit, CPU model, cores, device.
    pub hosts: Vec<Host>,
}

/// Reads `dir/runs.jsonl` (empty when absent), keyed by spec hash.
pub fn read_records(dir: &Path) -> Result<BTreeMap<String, RunRecord>> {
    let path = dir.join(RECORDS_FILE);
    let mut out = BTreeMap::new();
    if !path.exists() {
        return Ok(out);
    }
    let text = files::read_to_string(&path, 64 << 20)
        .with_context(|| format!("cannot read {}", path.display()))?;
    for (k, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: RunRecord = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not a run record", path.display(), k + 1))?;
        out.insert(r.spec_hash.clone(), r);
    }
    Ok(out)
}

/// Adds to `records` every finished run of `grid` they lack; returns how many were added.
pub fn collect_records(
    grid: &Grid,
    profile: ProfileName,
    records: &mut BTreeMap<String, RunRecord>,
) -> Result<usize> {
    let mut added = 0;
    for cell in &grid.cells {
        let Task::Train { runs_dir, spec } = &grid.nodes[cell.node].task else {
            continue;
        };
        let hash = spec.hash();
        let dir = run_dir(runs_dir, spec);
        let file = dir.join("result.json");
        if records.contains_key(&hash) || !file.is_file() {
            continue;
        }
        let r: RunResult = train::run::read_json(&file)?;
        let hosts = experiments::provenance::read_hosts(&dir)?;
        records.insert(
            hash.clone(),
            RunRecord {
                profile: profile.name().into(),
                dataset: cell.dataset.name().into(),
                model: cell.variant.arch.into(),
                version: cell.variant.version_name(),
                column: cell.column,
                seed: grid.nodes[cell.node].seed,
                spec_hash: hash,
                test_acc: r.test_acc,
                best_val_acc: r.best_val_acc,
                best_epoch: r.best_epoch,
                epochs: r.epochs,
                final_test_acc: r.final_test_acc,
                params: r.params,
                flops: r.flops,
                seconds: r.seconds,
                hosts,
            },
        );
        added += 1;
    }
    Ok(added)
}

/// Writes `dir/runs.jsonl` atomically, sorted by row, column and seed.
pub fn write_records(dir: &Path, records: &BTreeMap<String, RunRecord>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut all: Vec<&RunRecord> = records.values().collect();
    let order = |c: Column| Column::EVERY.iter().position(|x| *x == c);
    all.sort_by(|a, b| {
        (
            &a.dataset,
            &a.model,
            &a.version,
            order(a.column),
            a.seed,
            &a.spec_hash,
        )
            .cmp(&(
                &b.dataset,
                &b.model,
                &b.version,
                order(b.column),
                b.seed,
                &b.spec_hash,
            ))
    });
    let mut text = String::new();
    for r in all {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    train::run::write_atomic(&dir.join(RECORDS_FILE), text.as_bytes())?;
    Ok(())
}

/// One row of our table.
#[derive(Debug, Clone)]
pub struct Row {
    pub dataset: DatasetKind,
    pub variant: Variant,
    /// Per column, (seed, test accuracy in percent) of every recorded run.
    pub values: BTreeMap<Column, Vec<(u32, f64)>>,
    pub ours: BTreeMap<Column, Stat>,
    pub paper: BTreeMap<Column, Stat>,
}

impl Row {
    /// The retraining methods and scratch baselines, best first, by our mean.
    pub fn ranking(&self) -> Vec<Column> {
        let mut cols: Vec<Column> = Column::EVERY
            .into_iter()
            .filter(|c| *c != Column::Unpruned && self.ours.contains_key(c))
            .collect();
        cols.sort_by(|a, b| self.ours[b].mean.total_cmp(&self.ours[a].mean));
        cols
    }
}

/// Mean and sample standard deviation (n - 1, as the paper's 5 runs) of accuracies in percent.
pub fn stat(values: &[f64]) -> Option<Stat> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = (n > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    Some(Stat { mean, std, n })
}

/// The rows of `grid`'s table, in its order, filled from `records` (a cell without a record stays
/// empty).
pub fn rows(grid: &Grid, records: &BTreeMap<String, RunRecord>, paper: &PaperTable) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for cell in &grid.cells {
        let i = match out
            .iter()
            .position(|r| r.dataset == cell.dataset && r.variant == cell.variant)
        {
            Some(i) => i,
            None => {
                out.push(Row {
                    dataset: cell.dataset,
                    variant: cell.variant,
                    values: BTreeMap::new(),
                    ours: BTreeMap::new(),
                    paper: paper
                        .get(&paper_key(cell.dataset, cell.variant))
                        .cloned()
                        .unwrap_or_default(),
                });
                out.len() - 1
            }
        };
        let node = &grid.nodes[cell.node];
        let entry = out[i].values.entry(cell.column).or_default();
        if let Task::Train { spec, .. } = &node.task
            && let Some(r) = records.get(&spec.hash())
        {
            entry.push((node.seed, 100.0 * r.test_acc));
        }
    }
    for row in &mut out {
        row.ours = row
            .values
            .iter()
            .filter_map(|(c, v)| {
                let accs: Vec<f64> = v.iter().map(|(_, a)| *a).collect();
                stat(&accs).map(|s| (*c, s))
            })
            .collect();
    }
    out
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.wrapping_sub(1)).copied().unwrap_or(1.960)
}

/// A column against fine-tuning, seed by seed: the same pruned checkpoint (retraining) or the
/// same seed (scratch), the difference in accuracy points.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    pub column: Column,
    /// (seed, column minus FT) for the seeds both have.
    pub diffs: Vec<(u32, f64)>,
    pub mean: f64,
    /// The 95% interval of the mean difference (Student's t, n - 1 degrees of freedom); none
    /// for one seed.
    pub ci: Option<(f64, f64)>,
    /// Seeds where the column beat FT, tied it, lost to it.
    pub better: usize,
    pub ties: usize,
    pub worse: usize,
}

impl Paired {
    /// `better`, `worse` (the interval excludes 0), `equal` (every seed tied), `no difference`.
    pub fn verdict(&self) -> &'static str {
        match self.ci {
            _ if self.ties == self.diffs.len() => "equal",
            Some((lo, _)) if lo > 0.0 => "better",
            Some((_, hi)) if hi < 0.0 => "worse",
            _ => "no difference",
        }
    }
}

/// Every column but the unpruned model and FT itself, against FT.
pub fn paired(row: &Row) -> Vec<Paired> {
    let Some(ft) = row.values.get(&Column::Finetune) else {
        return Vec::new();
    };
    let ft: BTreeMap<u32, f64> = ft.iter().copied().collect();
    let mut out = Vec::new();
    for (&column, values) in &row.values {
        if matches!(column, Column::Unpruned | Column::Finetune) {
            continue;
        }
        let mut diffs: Vec<(u32, f64)> = values
            .iter()
            .filter_map(|(seed, a)| ft.get(seed).map(|f| (*seed, a - f)))
            .collect();
        diffs.sort_by_key(|(s, _)| *s);
        if diffs.is_empty() {
            continue;
        }
        let d: Vec<f64> = diffs.iter().map(|(_, x)| *x).collect();
        let s = stat(&d).expect("non-empty");
        let ci = s.std.map(|sd| {
            let half = t975(s.n - 1) * sd / (s.n as f64).sqrt();
            (s.mean - half, s.mean + half)
        });
        out.push(Paired {
            column,
            mean: s.mean,
            ci,
            better: d.iter().filter(|x| **x > 0.0).count(),
            ties: d.iter().filter(|x| **x == 0.0).count(),
            worse: d.iter().filter(|x| **x < 0.0).count(),
            diffs,
        });
    }
    let order = |c: Column| Column::EVERY.iter().position(|x| *x == c);
    out.sort_by_key(|p| order(p.column));
    out
}

fn fmt_paired(p: &Paired) -> String {
    let ci =
        p.ci.map_or(String::new(), |(lo, hi)| format!(" [{lo:+.2}, {hi:+.2}]"));
    format!(
        "{:+.2}{ci}, better in {} of {}",
        p.mean,
        p.better,
        p.diffs.len()
    )
}

/// One sentence: whether the paper's claim (LRW, SLR and CLR at least as good as FT at the same
/// budget) held in this row. A method counts as better or worse than FT only when the 95%
/// interval of its paired difference excludes zero (the rule is fixed before any run).
pub fn claim(pairs: &[Paired]) -> String {
    let methods: Vec<&Paired> = pairs
        .iter()
        .filter(|p| matches!(p.column, Column::Lrw | Column::Slr | Column::Clr))
        .collect();
    if methods.is_empty() {
        return "no retraining method to compare with FT yet".into();
    }
    let n = methods.iter().map(|p| p.diffs.len()).min().unwrap_or(0);
    let names = |v: &str| -> Vec<&str> {
        methods
            .iter()
            .filter(|p| p.verdict() == v)
            .map(|p| p.column.title())
            .collect()
    };
    let (better, worse, equal, none) = (
        names("better"),
        names("worse"),
        names("equal"),
        names("no difference"),
    );
    let mut parts = Vec::new();
    if !better.is_empty() {
        parts.push(format!("{} above FT", better.join(", ")));
    }
    if !worse.is_empty() {
        parts.push(format!("{} below FT", worse.join(", ")));
    }
    if !equal.is_empty() {
        parts.push(format!("{} equal to FT on every seed", equal.join(", ")));
    }
    if !none.is_empty() {
        parts.push(format!("{} not distinguishable from FT", none.join(", ")));
    }
    let verdict = if !worse.is_empty() {
        "did not hold"
    } else if !better.is_empty() {
        "held"
    } else {
        "was neither confirmed nor refuted"
    };
    format!(
        "The paper's claim (LRW, SLR, CLR >= FT at the same budget) {verdict} here: {} ({n} seed(s), 95% intervals).",
        parts.join("; ")
    )
}

/// The paper's row a row of ours compares with: Fashion-MNIST (cpu, sample and smoke profiles)
/// only nominally, against CIFAR-10's.
fn paper_key(dataset: DatasetKind, variant: Variant) -> (String, String, String) {
    let d = match dataset {
        DatasetKind::FashionMnist => "cifar10",
        other => other.name(),
    };
    (d.into(), variant.arch.into(), variant.version_name())
}

fn fmt_stat(s: Option<&Stat>) -> String {
    match s {
        None => "-".into(),
        Some(Stat {
            mean,
            std: Some(sd),
            ..
        }) => format!("{mean:.2} ± {sd:.2}"),
        Some(Stat { mean, .. }) => format!("{mean:.2}"),
    }
}

/// What the records say about the work: runs, summed wall time and machines.
fn provenance_line(records: &BTreeMap<String, RunRecord>, grid: &Grid) -> String {
    let wanted: std::collections::BTreeSet<String> = grid
        .cells
        .iter()
        .filter_map(|c| match &grid.nodes[c.node].task {
            Task::Train { spec, .. } => Some(spec.hash()),
            Task::Prune { .. } => None,
        })
        .collect();
    let used: Vec<&RunRecord> = wanted.iter().filter_map(|h| records.get(h)).collect();
    let hours = used.iter().map(|r| r.seconds).sum::<f64>() / 3600.0;
    let mut machines: Vec<String> = used
        .iter()
        .flat_map(|r| r.hosts.iter())
        .map(|h| format!("{} ({} cores, {})", h.machine, h.cores, h.device))
        .collect();
    machines.sort();
    machines.dedup();
    format!(
        "{} of {} runs finished, {hours:.2} h of training in all (the runs' wall times summed, evaluation included), on {}.",
        used.len(),
        wanted.len(),
        if machines.is_empty() {
            "machines not recorded".into()
        } else {
            machines.join("; ")
        }
    )
}

/// The Markdown report.
pub fn markdown(
    rows: &[Row],
    profile: &Profile,
    grid: &Grid,
    records: &BTreeMap<String, RunRecord>,
) -> String {
    let columns = profile.columns();
    let seeds = profile.seeds;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Table 2: PFEC (l1-norm filter pruning), {} profile\n",
        profile.name.name()
    );
    if profile.name == ProfileName::Smoke {
        let _ = writeln!(md, "**smoke: pipeline check, not a result.**\n");
    }
    let with_paper = rows.iter().any(|r| !r.paper.is_empty());
    let complete = rows.iter().all(|r| {
        columns
            .iter()
            .all(|c| r.ours.get(c).is_some_and(|s| s.n == seeds as usize))
    });
    if profile.name != ProfileName::Paper && with_paper {
        let _ = writeln!(
            md,
            "Ours are on Fashion-MNIST with scaled-down budgets; the paper's numbers are CIFAR-10's, beside them for form only.\n"
        );
    }
    let _ = writeln!(
        md,
        "Test accuracy (%) of the best-val model, mean ± std over {}{}. \
         Ranking: the retraining methods and scratch baselines by our mean; the best two are in bold. \
         Generated by `cargo xtask reproduce table2 --profile {}` from `{RECORDS_FILE}`; see docs/reproducing.md.\n",
        if complete {
            format!("{seeds} seed(s)")
        } else {
            format!(
                "the seeds finished so far of 1-{seeds} (`n` per cell in table2.csv; one seed shows no std)"
            )
        },
        if with_paper {
            " (`ours / paper (ours - paper)`)"
        } else {
            ""
        },
        profile.name.name()
    );
    let _ = writeln!(md, "{}\n", provenance_line(records, grid));
    let _ = write!(md, "| dataset | model | version |");
    for c in &columns {
        let _ = write!(md, " {} |", c.title());
    }
    let _ = writeln!(md, " ranking |");
    let _ = writeln!(md, "|---|---|---|{}---|", "---|".repeat(columns.len()));
    for row in rows {
        let ranking = row.ranking();
        let _ = write!(
            md,
            "| {} | {} | {} |",
            row.dataset,
            row.variant.arch,
            row.variant.version_name()
        );
        for &c in &columns {
            let ours = row.ours.get(&c);
            let paper = row.paper.get(&c);
            let mut cell = fmt_stat(ours);
            if ranking.iter().take(2).any(|r| *r == c) {
                cell = format!("**{cell}**");
            }
            if with_paper {
                let diff = match (ours, paper) {
                    (Some(o), Some(p)) => format!(" ({:+.2})", o.mean - p.mean),
                    _ => String::new(),
                };
                let _ = write!(md, " {cell} / {}{diff} |", fmt_stat(paper));
            } else {
                let _ = write!(md, " {cell} |");
            }
        }
        let names: Vec<&str> = ranking.iter().map(|c| c.title()).collect();
        let _ = writeln!(md, " {} |", names.join(" > "));
    }
    let any_pairs = rows.iter().any(|r| !paired(r).is_empty());
    if any_pairs {
        let _ = writeln!(
            md,
            "\n## Against fine-tuning, seed by seed\n\nPer seed, the method's test accuracy minus FT's (percentage points): retraining methods start from the same pruned checkpoint as FT, scratch baselines share its seed. Mean, its 95% interval (Student's t), and in how many seeds the method beat FT.\n"
        );
        let _ = writeln!(
            md,
            "| dataset | model | version | method | per seed | mean [95% interval], better in k of n | verdict |\n|---|---|---|---|---|---|---|"
        );
        for row in rows {
            for p in paired(row) {
                let per_seed: Vec<String> = p
                    .diffs
                    .iter()
                    .map(|(s, d)| format!("{s}: {d:+.2}"))
                    .collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} − FT | {} | {} | {} |",
                    row.dataset,
                    row.variant.arch,
                    row.variant.version_name(),
                    p.column.title(),
                    per_seed.join(", "),
                    fmt_paired(&p),
                    p.verdict()
                );
            }
        }
        let _ = writeln!(md);
        for row in rows {
            let _ = writeln!(
                md,
                "- {} {}: {}",
                row.dataset,
                row.variant.label(),
                claim(&paired(row))
            );
        }
    }
    if profile.name == ProfileName::Paper || profile.name == ProfileName::Smoke {
        let _ = writeln!(
            md,
            "\n| dataset | model | version | status |\n|---|---|---|---|\n| imagenet | resnet34 | A | not run |\n| imagenet | resnet34 | B | not run |"
        );
    }
    md
}

/// The CSV report: one line per row, for each column our mean, std and n, the paper's mean and
/// std, and the difference; then the ranking.
pub fn csv(rows: &[Row], profile: &Profile) -> String {
    let columns = profile.columns();
    let mut out = String::from("profile,dataset,model,version");
    for c in &columns {
        let k = c.key();
        let _ = write!(
            out,
            ",{k}_mean,{k}_std,{k}_n,{k}_paper_mean,{k}_paper_std,{k}_diff"
        );
    }
    out.push_str(",ranking\n");
    let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.4}"));
    let name = profile.name.name();
    for row in rows {
        let _ = write!(
            out,
            "{name},{},{},{}",
            row.dataset,
            row.variant.arch,
            row.variant.version_name()
        );
        for c in &columns {
            let (o, p) = (row.ours.get(c), row.paper.get(c));
            let _ = write!(
                out,
                ",{},{},{},{},{},{}",
                f(o.map(|s| s.mean)),
                f(o.and_then(|s| s.std)),
                o.map_or(0, |s| s.n),
                f(p.map(|s| s.mean)),
                f(p.and_then(|s| s.std)),
                f(o.zip(p).map(|(o, p)| o.mean - p.mean))
            );
        }
        let names: Vec<&str> = row.ranking().iter().map(|c| c.key()).collect();
        let _ = writeln!(out, ",{}", names.join(">"));
    }
    if profile.name == ProfileName::Paper || profile.name == ProfileName::Smoke {
        for v in ["A", "B"] {
            let _ = writeln!(
                out,
                "{name},imagenet,resnet34,{v}{}",
                ",".repeat(columns.len() * 6) + "not run"
            );
        }
    }
    out
}

/// The paired statistics as CSV: one line per (row, method), the per-seed differences as
/// `seed:diff` separated by `;`.
pub fn paired_csv(rows: &[Row], profile: &Profile) -> String {
    let mut out = String::from(
        "profile,dataset,model,version,method,n,mean_diff,ci_low,ci_high,better,ties,worse,verdict,per_seed\n",
    );
    let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.4}"));
    for row in rows {
        for p in paired(row) {
            let per_seed: Vec<String> =
                p.diffs.iter().map(|(s, d)| format!("{s}:{d:.4}")).collect();
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{:.4},{},{},{},{},{},{},{}",
                profile.name.name(),
                row.dataset,
                row.variant.arch,
                row.variant.version_name(),
                p.column.key(),
                p.diffs.len(),
                p.mean,
                f(p.ci.map(|c| c.0)),
                f(p.ci.map(|c| c.1)),
                p.better,
                p.ties,
                p.worse,
                p.verdict(),
                per_seed.join(";")
            );
        }
    }
    out
}

/// Writes the tables into `dir` from the records alone, each file atomically: `table2.md`,
/// `table2.csv` and `paired.csv`.
pub fn write(
    dir: &Path,
    grid: &Grid,
    records: &BTreeMap<String, RunRecord>,
    paper: &PaperTable,
    profile: &Profile,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let rows = rows(grid, records, paper);
    let mut md = markdown(&rows, profile, grid, records);
    if let Some(check) = read_torch(dir)? {
        md.push_str(&torch_markdown(&rows, &check));
    }
    train::run::write_atomic(&dir.join("table2.md"), md.as_bytes())?;
    train::run::write_atomic(&dir.join("table2.csv"), csv(&rows, profile).as_bytes())?;
    train::run::write_atomic(
        &dir.join("paired.csv"),
        paired_csv(&rows, profile).as_bytes(),
    )?;
    Ok(())
}

/// The PyTorch cross-check's output (`xtask/bench/torch_reproduce.py`), kept in the results
/// folder as `torch.json`.
pub const TORCH_FILE: &str = "torch.json";

/// What `torch_reproduce.py` writes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TorchCheck {
    pub torch: String,
    pub threads: u32,
    pub wall_s: f64,
    pub machine: String,
    pub runs: Vec<TorchRun>,
}

/// One PyTorch run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TorchRun {
    pub seed: u32,
    pub column: Column,
    /// Test accuracy of the best-val epoch, in [0, 1].
    pub test_acc: f64,
}

/// Reads `dir/torch.json` when present.
pub fn read_torch(dir: &Path) -> Result<Option<TorchCheck>> {
    let path = dir.join(TORCH_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = files::read_to_string(&path, 1 << 20)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let check: TorchCheck = serde_json::from_str(&text)
        .with_context(|| format!("{}: not the output of torch_reproduce.py", path.display()))?;
    Ok(Some(check))
}

/// The cross-check section: per column our mean ± std beside PyTorch's, and the difference of
/// the means.
pub fn torch_markdown(rows: &[Row], check: &TorchCheck) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## PyTorch cross-check (the same protocol)\n\n`xtask/bench/torch_reproduce.py` runs this protocol in PyTorch {} ({} threads, {:.0} s on {}): the same split, model, schedules, pruning rule and model selection, and our random streams bit for bit (the split, the data order, the crops and flips, the initial weights). What differs is float arithmetic (oneDNN's summation order against ours), which compounds over training at rate 0.1, so single seeds drift apart; the means over the seeds are what should agree.\n",
        check.torch, check.threads, check.wall_s, check.machine
    );
    let _ = writeln!(
        md,
        "| column | ours | PyTorch | ours − PyTorch |\n|---|---|---|---|"
    );
    let Some(row) = rows.first() else {
        return md;
    };
    for c in Column::EVERY {
        let theirs: Vec<f64> = check
            .runs
            .iter()
            .filter(|r| r.column == c)
            .map(|r| 100.0 * r.test_acc)
            .collect();
        let (Some(o), Some(t)) = (row.ours.get(&c), stat(&theirs)) else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.2} |",
            c.title(),
            fmt_stat(Some(o)),
            fmt_stat(Some(&t)),
            o.mean - t.mean
        );
    }
    md
}

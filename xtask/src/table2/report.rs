//! The report: our mean +- std over seeds per (row, column), the paper's number beside it, the
//! difference and the ranking of the four retraining methods, as Markdown and CSV.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use datasets::DatasetKind;
use train::engine::RunResult;

use super::grid::{Column, Grid, ProfileName, Task, Variant, run_dir};

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

/// One row of our table.
#[derive(Debug, Clone)]
pub struct Row {
    pub dataset: DatasetKind,
    pub variant: Variant,
    pub ours: BTreeMap<Column, Stat>,
    pub paper: BTreeMap<Column, Stat>,
}

impl Row {
    /// The four retraining methods, best first, by our mean.
    pub fn ranking(&self) -> Vec<Column> {
        let mut cols: Vec<Column> = Column::ALL
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

/// Collects the finished runs of `grid` into rows (a cell without finished runs stays empty).
pub fn collect(grid: &Grid, paper: &PaperTable) -> Result<Vec<Row>> {
    // Rows in the grid's order (Table 2's); values keyed by the row's names.
    let mut values: BTreeMap<(String, String), BTreeMap<Column, Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<(DatasetKind, Variant)> = Vec::new();
    for cell in &grid.cells {
        if !order.contains(&(cell.dataset, cell.variant)) {
            order.push((cell.dataset, cell.variant));
        }
        let key = (cell.dataset.name().to_string(), cell.variant.label());
        let entry = values
            .entry(key)
            .or_default()
            .entry(cell.column)
            .or_default();
        if let Task::Train { runs_dir, spec } = &grid.nodes[cell.node].task {
            let file = run_dir(runs_dir, spec).join("result.json");
            if file.is_file() {
                let r: RunResult = train::run::read_json(&file)?;
                entry.push(100.0 * r.test_acc);
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|(dataset, variant)| {
            let ours = values[&(dataset.name().to_string(), variant.label())]
                .iter()
                .filter_map(|(c, v)| stat(v).map(|s| (*c, s)))
                .collect();
            Row {
                dataset,
                variant,
                ours,
                paper: paper
                    .get(&paper_key(dataset, variant))
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// The paper's row a row of ours compares with: Fashion-MNIST (cpu and smoke profiles) only
/// nominally, against CIFAR-10's.
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

/// The Markdown report.
pub fn markdown(rows: &[Row], profile: ProfileName, seeds: u32) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Table 2: PFEC (l1-norm filter pruning), {profile:?} profile\n"
    );
    if profile == ProfileName::Smoke {
        let _ = writeln!(md, "**smoke: pipeline check, not a result.**\n");
    }
    if profile != ProfileName::Paper {
        let _ = writeln!(
            md,
            "Ours are on Fashion-MNIST with scaled-down budgets; the paper's numbers are CIFAR-10's, beside them for form only.\n"
        );
    }
    let _ = writeln!(
        md,
        "Test accuracy (%) of the best-val model, mean ± std over {seeds} seed(s) (`ours / paper (ours - paper)`). \
         Ranking: the four retraining methods by our mean; the best two are in bold. Generated by \
         `cargo xtask reproduce table2`; see docs/reproducing.md.\n"
    );
    let _ = write!(md, "| dataset | model | version |");
    for c in Column::ALL {
        let _ = write!(md, " {} |", c.title());
    }
    let _ = writeln!(md, " ranking |");
    let _ = writeln!(md, "|---|---|---|{}---|", "---|".repeat(Column::ALL.len()));
    for row in rows {
        let ranking = row.ranking();
        let _ = write!(
            md,
            "| {} | {} | {} |",
            row.dataset,
            row.variant.arch,
            row.variant.version_name()
        );
        for c in Column::ALL {
            let ours = row.ours.get(&c);
            let paper = row.paper.get(&c);
            let mut cell = fmt_stat(ours);
            if ranking.iter().take(2).any(|r| *r == c) {
                cell = format!("**{cell}**");
            }
            let diff = match (ours, paper) {
                (Some(o), Some(p)) => format!(" ({:+.2})", o.mean - p.mean),
                _ => String::new(),
            };
            let _ = write!(md, " {cell} / {}{diff} |", fmt_stat(paper));
        }
        let names: Vec<&str> = ranking.iter().map(|c| c.title()).collect();
        let _ = writeln!(md, " {} |", names.join(" > "));
    }
    let _ = writeln!(
        md,
        "\n| dataset | model | version | status |\n|---|---|---|---|\n| imagenet | resnet34 | A | not run |\n| imagenet | resnet34 | B | not run |"
    );
    md
}

/// The CSV report: one line per row, for each column our mean, std and n, the paper's mean and
/// std, and the difference; then the ranking.
pub fn csv(rows: &[Row], profile: ProfileName) -> String {
    let mut out = String::from("profile,dataset,model,version");
    for c in Column::ALL {
        let k = c.key();
        let _ = write!(
            out,
            ",{k}_mean,{k}_std,{k}_n,{k}_paper_mean,{k}_paper_std,{k}_diff"
        );
    }
    out.push_str(",ranking\n");
    let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.4}"));
    let profile = format!("{profile:?}").to_lowercase();
    for row in rows {
        let _ = write!(
            out,
            "{profile},{},{},{}",
            row.dataset,
            row.variant.arch,
            row.variant.version_name()
        );
        for c in Column::ALL {
            let (o, p) = (row.ours.get(&c), row.paper.get(&c));
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
    for v in ["A", "B"] {
        let _ = writeln!(
            out,
            "{profile},imagenet,resnet34,{v}{}",
            ",".repeat(Column::ALL.len() * 6) + "not run"
        );
    }
    out
}

/// Writes both files into `dir`, each atomically.
pub fn write(dir: &Path, rows: &[Row], profile: ProfileName, seeds: u32) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    train::run::write_atomic(
        &dir.join("table2.md"),
        markdown(rows, profile, seeds).as_bytes(),
    )?;
    train::run::write_atomic(&dir.join("table2.csv"), csv(rows, profile).as_bytes())?;
    Ok(())
}

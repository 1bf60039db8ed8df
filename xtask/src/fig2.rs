//! `cargo xtask reproduce fig2`: the paper's Figure 2, one-shot PFEC with test accuracy against
//! the retraining budget for FT, LRW, SLR and CLR, on Table 2's machinery: the same runs
//! directory (runs keyed by spec hashes, so the unpruned models, their prunings and Table 2's
//! CLR runs are shared), the same executor and the same resumability.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use datasets::DatasetKind;
use plotters::coord::Shift;
use plotters::prelude::*;
use schedules::plot::PALETTE;
use train::engine::RunResult;

use crate::table2::grid::{Grid, Profile, ProfileName, Task, Variant, run_dir};
use crate::table2::report::{Stat, stat};
use crate::table2::{self as t2, exec};

/// The retraining methods of the figure: the text `prunebench retrain` takes, and the legend.
pub const METHODS: [(&str, &str); 4] =
    [("ft", "FT"), ("lrw", "LRW"), ("slr", "SLR"), ("clr", "CLR")];

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// paper (CIFAR-10, budgets 40, 56, ..., 152 epochs, 3 seeds), cpu (full Fashion-MNIST)
    /// and sample (the bundled sample), budgets 1, 2, 3, 4; smoke (the bundled sample, budgets
    /// 1 and 2: minutes).
    #[arg(long, value_enum, default_value = "smoke")]
    pub profile: ProfileName,
    /// The dataset [default: the profile's: cifar10 (paper), fashion-mnist].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Panels: the figure's are ResNet-56-B (14% of the parameters removed), ResNet-110-B (32%)
    /// and VGG-16 (64%); any of Table 2's rows works.
    #[arg(long, default_value = "resnet56-B,resnet110-B,vgg16")]
    pub archs: String,
    /// Retraining budgets in epochs, comma-separated [default: the profile's].
    #[arg(long, value_delimiter = ',', value_name = "EPOCHS")]
    pub budgets: Option<Vec<u32>>,
    /// Retraining methods, comma-separated, from ft, lrw, slr, clr.
    #[arg(long, default_value = "ft,lrw,slr,clr")]
    pub methods: String,
    #[command(flatten)]
    pub grid: t2::GridArgs,
}

/// The profile of Figure 2 and its budgets: Table 2's profile, with the paper profile on
/// CIFAR-10 alone over 3 seeds (the paper's Figure 2), and the smoke profile's original
/// training long enough (2 epochs) for LRW to rewind both budgets.
pub fn profile(args: &Args) -> Result<(Profile, Vec<u32>)> {
    let mut p = Profile::new(args.profile);
    let mut budgets: Vec<u32> = match args.profile {
        ProfileName::Paper => {
            p.datasets = vec![DatasetKind::Cifar10];
            p.seeds = 3;
            (40..=152).step_by(16).collect()
        }
        // LRW rewinds at most the 4 epochs of the original training.
        ProfileName::Cpu | ProfileName::Sample => vec![1, 2, 3, 4],
        ProfileName::Smoke => {
            p.original_epochs = 2;
            vec![1, 2]
        }
    };
    let datasets = args.dataset.clone().map(|d| vec![d]);
    t2::override_profile(&mut p, datasets.as_deref(), &args.grid)?;
    if let Some(b) = &args.budgets {
        budgets.clone_from(b);
    }
    budgets.sort_unstable();
    budgets.dedup();
    if budgets.is_empty() || budgets[0] == 0 {
        bail!("--budgets needs at least one budget, each at least 1 epoch");
    }
    Ok((p, budgets))
}

/// Parses `--methods` into the figure's order.
pub fn parse_methods(text: &str) -> Result<Vec<&'static str>> {
    let asked: Vec<String> = text
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = asked.iter().find(|a| !METHODS.iter().any(|(m, _)| m == a)) {
        bail!("unknown method `{bad}`: Figure 2 has ft, lrw, slr, clr");
    }
    let out: Vec<&'static str> = METHODS
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| asked.iter().any(|a| a == m))
        .collect();
    if out.is_empty() {
        bail!("--methods names no method");
    }
    Ok(out)
}

pub use experiments::grid::fig2::{Point, expand};

/// A panel of the figure: one pruned model, its curves.
#[derive(Debug, Clone)]
pub struct Panel {
    pub dataset: DatasetKind,
    pub variant: Variant,
    /// Parameters removed by the pruning, in percent (the paper's "sparsity").
    pub removed_pct: f64,
    /// Per method (figure order): (budget, stat over seeds) for each budget with results.
    pub curves: Vec<(&'static str, Vec<(u32, Stat)>)>,
}

/// Reads the finished runs of the points into panels (budgets without results are left out).
pub fn collect(grid: &Grid, points: &[Point], methods: &[&'static str]) -> Result<Vec<Panel>> {
    let mut panels: Vec<Panel> = Vec::new();
    for p in points {
        if panels
            .iter()
            .any(|q| q.dataset == p.dataset && q.variant == p.variant)
        {
            continue;
        }
        let Task::Train { spec, .. } = &grid.nodes[p.node].task else {
            bail!("point {} is not a training run", grid.nodes[p.node].label());
        };
        let full = spec.model.unpruned()?;
        panels.push(Panel {
            dataset: p.dataset,
            variant: p.variant,
            removed_pct: 100.0 * (1.0 - spec.model.params() as f64 / full.params() as f64),
            curves: methods.iter().map(|m| (*m, Vec::new())).collect(),
        });
    }
    for panel in &mut panels {
        for (method, curve) in &mut panel.curves {
            let mut budgets: Vec<u32> = points.iter().map(|p| p.budget).collect();
            budgets.sort_unstable();
            budgets.dedup();
            for budget in budgets {
                let mut accs = Vec::new();
                for p in points.iter().filter(|p| {
                    p.dataset == panel.dataset
                        && p.variant == panel.variant
                        && p.method == *method
                        && p.budget == budget
                }) {
                    if let Task::Train { runs_dir, spec } = &grid.nodes[p.node].task {
                        let file = run_dir(runs_dir, spec).join("result.json");
                        if file.is_file() {
                            let r: RunResult = train::run::read_json(&file)?;
                            accs.push(100.0 * r.test_acc);
                        }
                    }
                }
                if let Some(s) = stat(&accs) {
                    curve.push((budget, s));
                }
            }
        }
    }
    Ok(panels)
}

/// `ResNet-56 PFEC, 14% Sparsity`, as the paper's panel titles.
fn panel_title(panel: &Panel) -> String {
    let arch = match panel.variant.arch {
        "resnet56" => "ResNet-56",
        "resnet110" => "ResNet-110",
        "vgg16" => "VGG-16",
        other => other,
    };
    let version = panel
        .variant
        .version
        .map(|v| format!("-{v}"))
        .unwrap_or_default();
    format!("{arch}{version} PFEC, {:.0}% Sparsity", panel.removed_pct)
}

fn legend(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|(m, _)| *m == method)
        .map_or("?", |(_, l)| l)
}

/// The CSV: one line per (panel, method, budget).
pub fn csv(panels: &[Panel], profile: ProfileName) -> String {
    let mut out =
        String::from("profile,dataset,model,version,params_removed_pct,method,epochs,mean,std,n\n");
    for panel in panels {
        for (method, curve) in &panel.curves {
            for (budget, s) in curve {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{:.2},{method},{budget},{:.4},{},{}",
                    format!("{profile:?}").to_lowercase(),
                    panel.dataset.name(),
                    panel.variant.arch,
                    panel.variant.version_name(),
                    panel.removed_pct,
                    s.mean,
                    s.std.map_or(String::new(), |d| format!("{d:.4}")),
                    s.n
                );
            }
        }
    }
    out
}

/// The Markdown table: per panel, a row per method and a column per budget.
pub fn markdown(panels: &[Panel], budgets: &[u32], profile: ProfileName, seeds: u32) -> String {
    let mut md =
        format!("# Figure 2: one-shot PFEC against the retraining budget, {profile:?} profile\n\n");
    if profile == ProfileName::Smoke {
        md.push_str("**smoke: pipeline check, not a result.**\n\n");
    }
    let _ = writeln!(
        md,
        "Test accuracy (%) of the best-val model, mean ± std over {seeds} seed(s), by retraining \
         epochs. The paper gives Figure 2 as a chart only: compare with it by eye (fig2.svg). \
         Generated by `cargo xtask reproduce fig2`; see docs/reproducing.md.\n"
    );
    for panel in panels {
        let _ = writeln!(md, "## {} ({})\n", panel_title(panel), panel.dataset);
        let _ = write!(md, "| method |");
        for b in budgets {
            let _ = write!(md, " {b} |");
        }
        let _ = writeln!(md, "\n|---|{}", "---|".repeat(budgets.len()));
        for (method, curve) in &panel.curves {
            let _ = write!(md, "| {} |", legend(method));
            for b in budgets {
                let cell = match curve.iter().find(|(x, _)| x == b) {
                    Some((
                        _,
                        Stat {
                            mean,
                            std: Some(sd),
                            ..
                        },
                    )) => format!("{mean:.2} ± {sd:.2}"),
                    Some((_, s)) => format!("{:.2}", s.mean),
                    None => "-".into(),
                };
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
        md.push('\n');
    }
    md
}

/// Draws the panels side by side on `root`: accuracy against epochs, one line per method with
/// error bars of one standard deviation.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[Panel],
    budgets: &[u32],
    title: &str,
) -> Result<()> {
    let e = |e: &dyn std::fmt::Display| anyhow!("{e}");
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|x| e(&x))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    let (lo, hi) = (
        i64::from(budgets[0]),
        i64::from(*budgets.last().unwrap_or(&1)),
    );
    let pad = ((hi - lo) / 12).max(1);
    for (panel, area) in panels.iter().zip(&areas) {
        let ys = panel.curves.iter().flat_map(|(_, c)| {
            c.iter().flat_map(|(_, s)| {
                let sd = s.std.unwrap_or(0.0);
                [s.mean - sd, s.mean + sd]
            })
        });
        let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        let (y0, y1) = if y0.is_finite() {
            (y0, y1)
        } else {
            (0.0, 100.0)
        };
        let ypad = ((y1 - y0) * 0.08).max(0.5);
        let mut chart = ChartBuilder::on(area)
            .caption(panel_title(panel), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(
                // Whole epochs: integer ticks, as the paper's axis.
                lo - pad..hi + pad,
                (y0 - ypad).max(0.0)..(y1 + ypad).min(100.0),
            )
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("Epochs")
            .y_desc("Accuracy (%)")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()
            .map_err(|x| e(&x))?;
        for (k, (method, curve)) in panel.curves.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let pts: Vec<(i64, f64)> = curve.iter().map(|(b, s)| (i64::from(*b), s.mean)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(legend(method))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|x| e(&x))?;
            chart
                .draw_series(curve.iter().filter_map(|(b, s)| {
                    s.std.map(|sd| {
                        ErrorBar::new_vertical(
                            i64::from(*b),
                            s.mean - sd,
                            s.mean,
                            s.mean + sd,
                            color.stroke_width(1),
                            8,
                        )
                    })
                }))
                .map_err(|x| e(&x))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Writes the chart as `stem.svg` and `stem.png`, each whole or not at all (drawn to a
/// temporary file, then renamed).
pub fn write_charts(stem: &Path, panels: &[Panel], budgets: &[u32], title: &str) -> Result<()> {
    schedules::plot::register_font()?;
    let size = (440 * panels.len().max(1) as u32, 420);
    let svg = stem.with_extension("svg");
    crate::charts::via_temp(&svg, |tmp| {
        draw(
            &SVGBackend::new(tmp, size).into_drawing_area(),
            panels,
            budgets,
            title,
        )
    })?;
    let png = stem.with_extension("png");
    crate::charts::via_temp(&png, |tmp| {
        draw(
            &BitMapBackend::new(tmp, size).into_drawing_area(),
            panels,
            budgets,
            title,
        )
    })?;
    Ok(())
}

/// Expands, then prints or runs the grid, and writes the figure and its tables.
pub fn run(args: &Args) -> Result<Option<exec::Summary>> {
    let (profile, budgets) = profile(args)?;
    let variants = Variant::parse_list(&args.archs)?;
    let methods = parse_methods(&args.methods)?;
    let runs = args.grid.runs_dir(args.profile);
    let (grid, points) = expand(&profile, &budgets, &methods, &variants, &runs)?;
    if args.grid.dry_run {
        print!("{}", t2::plan_text(&grid, &profile));
        return Ok(None);
    }
    let device = crate::open_device(args.grid.device)?;
    let started = Instant::now();
    let summary = exec::execute(&grid, args.grid.jobs, &device);
    let panels = collect(&grid, &points, &methods)?;
    let dir = &args.grid.results_dir(args.profile);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    train::run::write_atomic(&dir.join("fig2.csv"), csv(&panels, args.profile).as_bytes())?;
    train::run::write_atomic(
        &dir.join("fig2.md"),
        markdown(&panels, &budgets, args.profile, profile.seeds).as_bytes(),
    )?;
    let mut title = format!("Figure 2: one-shot PFEC on {}", profile.datasets[0]);
    if args.profile == ProfileName::Smoke {
        title.push_str(" (smoke: pipeline check, not a result)");
    }
    write_charts(&dir.join("fig2"), &panels, &budgets, &title)?;
    t2::conclude(summary, started, &dir.join("fig2.{svg,png,csv,md}")).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(profile: &str, extra: &[&str]) -> Args {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let mut argv = vec!["fig2", "--profile", profile];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).args
    }

    #[test]
    fn the_paper_profile_is_the_figure_with_table_2s_runs_shared() {
        let a = args("paper", &[]);
        let (p, budgets) = profile(&a).unwrap();
        assert_eq!(budgets, [40, 56, 72, 88, 104, 120, 136, 152]);
        assert_eq!(p.datasets, [DatasetKind::Cifar10]);
        let variants = Variant::parse_list(&a.archs).unwrap();
        let runs = Path::new("runs");
        let (grid, points) = expand(
            &p,
            &budgets,
            &parse_methods(&a.methods).unwrap(),
            &variants,
            runs,
        )
        .unwrap();
        // 3 panels x 3 seeds: an unpruned run and a pruning each, then 4 methods x 8 budgets.
        assert_eq!(points.len(), 3 * 3 * 4 * 8);
        assert_eq!(grid.nodes.len(), 3 * 3 * (2 + 4 * 8));

        // Table 2's fine-tuning and CLR runs (40 epochs) are the figure's FT and CLR at 40.
        let t2 = crate::table2::grid::expand(&Profile::new(ProfileName::Paper), &variants, runs)
            .unwrap();
        let hashes = |g: &Grid| -> Vec<String> {
            g.nodes
                .iter()
                .filter_map(|n| match &n.task {
                    Task::Train { spec, .. } => Some(spec.hash()),
                    Task::Prune { .. } => None,
                })
                .collect()
        };
        let ours = hashes(&grid);
        let shared = hashes(&t2).into_iter().filter(|h| ours.contains(h)).count();
        // Per panel and seed (3 x 3): the unpruned run, FT and CLR at 40 epochs.
        assert_eq!(shared, 3 * 3 * 3);
    }

    #[test]
    fn lrw_longer_than_the_original_training_is_refused() {
        let a = args("smoke", &["--budgets", "1,3"]);
        let (p, budgets) = profile(&a).unwrap();
        let err = expand(&p, &budgets, &["lrw"], &Variant::CIFAR[..1], Path::new("r")).unwrap_err();
        assert!(err.to_string().contains("3-epoch budget"), "{err}");
        // Without LRW the budget is fine.
        expand(
            &p,
            &budgets,
            &["ft", "clr"],
            &Variant::CIFAR[..1],
            Path::new("r"),
        )
        .unwrap();
        assert!(parse_methods("ft,foo").is_err());
        assert_eq!(parse_methods("clr, FT").unwrap(), ["ft", "clr"]);
    }

    #[test]
    fn charts_draw_error_bars_on_the_papers_axes() {
        let budgets: Vec<u32> = (40..=152).step_by(16).collect();
        let curve = |base: f64| -> Vec<(u32, Stat)> {
            budgets
                .iter()
                .map(|&b| {
                    let s = stat(&[
                        base + f64::from(b) / 100.0,
                        base + f64::from(b) / 50.0,
                        base,
                    ])
                    .unwrap();
                    (b, s)
                })
                .collect()
        };
        let panel = Panel {
            dataset: DatasetKind::Cifar10,
            variant: Variant::CIFAR[2],
            removed_pct: 13.7,
            curves: vec![
                ("ft", curve(92.0)),
                ("lrw", curve(93.0)),
                ("slr", curve(93.2)),
                ("clr", curve(93.4)),
            ],
        };
        let tmp = tempfile::tempdir().unwrap();
        let stem = tmp.path().join("charts").join("fig2");
        write_charts(&stem, &[panel.clone(), panel], &budgets, "Figure 2").unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        // Ticks on whole epochs, the four legend entries, the panel title.
        for text in [
            "\n100\n",
            "\n40\n",
            "\nCLR\n",
            "\nLRW\n",
            "\nEpochs\n",
            "ResNet-56-B PFEC, 14% Sparsity",
        ] {
            assert!(svg.contains(text), "fig2.svg lacks {text}");
        }
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        // Nothing left behind but the two charts.
        assert_eq!(
            std::fs::read_dir(stem.parent().unwrap()).unwrap().count(),
            2
        );
    }
}

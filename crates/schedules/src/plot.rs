//! SVG charts of learning rate against epochs, such as the paper's Figure 1 (feature `plot`).

use std::path::Path;

use plotters::prelude::*;

use crate::LrSchedule;

/// One curve of a chart: a built schedule and the label its legend shows.
#[derive(Debug, Clone)]
pub struct Curve {
    /// The legend label, e.g. the text form the user typed.
    pub label: String,
    /// The schedule to draw.
    pub schedule: LrSchedule,
}

/// Chart options.
#[derive(Debug, Clone)]
pub struct ChartOptions {
    /// The title above the chart.
    pub title: String,
    /// A logarithmic learning-rate axis (the rates span two or more decades).
    pub log_y: bool,
    /// Width and height in pixels.
    pub size: (u32, u32),
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            title: "Learning rate".into(),
            log_y: false,
            size: (900, 540),
        }
    }
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart to {path}: {message}")]
pub struct PlotError {
    /// The file being written.
    pub path: String,
    /// What the drawing library reported.
    pub message: String,
}

/// DejaVu Sans cut to ASCII and a few symbols (`assets/README.md`): charts need a font to lay
/// out text, and an embedded one renders the same on every machine, fonts installed or not.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Makes the embedded font plotters' `sans-serif` (every style); idempotent. [`draw_svg`] calls
/// it; call it before drawing charts of your own with plotters.
pub fn register_font() -> Result<(), PlotError> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError {
            path: "assets/DejaVuSans-subset.ttf".into(),
            message: "the embedded font does not parse".into(),
        })
    }
}

/// The colours of successive curves (matplotlib's `tab10`, as the paper's figures).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// At most this many points per curve: enough for a smooth curve and near-vertical steps.
const MAX_POINTS: u64 = 4000;

/// The polyline of a schedule as `(epoch, lr)` points: each sampled iteration holds its rate
/// until the next sample, so epoch-wise steps draw as steps and the line ends at the budget's
/// last epoch. At most [`MAX_POINTS`] iterations are sampled, evenly over the budget.
pub fn polyline(schedule: &LrSchedule) -> Vec<(f64, f64)> {
    let total = schedule.total_steps();
    let n = total.min(MAX_POINTS);
    let spe = f64::from(schedule.budget().steps_per_epoch());
    let steps: Vec<u64> = (0..n).map(|j| j * total / n).chain([total]).collect();
    let mut out = Vec::with_capacity(2 * steps.len());
    for w in steps.windows(2) {
        let lr = schedule.lr(w[0]);
        out.push((w[0] as f64 / spe, lr));
        out.push((w[1] as f64 / spe, lr));
    }
    out
}

/// Draws the curves, one colour each with a legend, as an SVG file at `path`.
///
/// The x axis runs over the longest budget in epochs, the y axis over the rates drawn. The
/// file is written whole or not at all only as far as the SVG backend does it: callers that
/// need atomicity write to a temporary path and rename.
pub fn draw_svg(path: &Path, curves: &[Curve], opts: &ChartOptions) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    register_font()?;
    let sampled: Vec<Vec<(f64, f64)>> = curves.iter().map(|c| polyline(&c.schedule)).collect();
    let x_max = curves
        .iter()
        .map(|c| f64::from(c.schedule.budget().epochs()))
        .fold(1.0, f64::max);
    let all = sampled.iter().flatten().map(|p| p.1);
    let y_max = all.clone().fold(0.0, f64::max);
    let y_min_pos = all.filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min);

    let root = SVGBackend::new(path, opts.size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&opts.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72);

    let palette = PALETTE;

    macro_rules! draw_series {
        ($chart:expr, $map_y:expr) => {{
            let chart = &mut $chart;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .y_desc("learning rate")
                .y_label_formatter(&|y| rate_label(*y, opts.log_y))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, (curve, points)) in curves.iter().zip(&sampled).enumerate() {
                let color = palette[i % palette.len()];
                let map_y = $map_y;
                chart
                    .draw_series(LineSeries::new(
                        points.iter().map(|&(x, y)| (x, map_y(y))),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?
                    .label(curve.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 16))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }

    if opts.log_y && y_min_pos.is_finite() {
        let mut chart = builder
            .build_cartesian_2d(0.0..x_max, (y_min_pos / 2.0..y_max * 2.0).log_scale())
            .map_err(|e| err(&e))?;
        // A zero rate has no place on a log axis: draw it at the axis floor.
        let floor = y_min_pos / 2.0;
        draw_series!(chart, |y: f64| y.max(floor));
    } else {
        let mut chart = builder
            .build_cartesian_2d(0.0..x_max, 0.0..y_max * 1.08)
            .map_err(|e| err(&e))?;
        draw_series!(chart, |y: f64| y);
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// An axis label for a rate: `0.05` on a linear axis, `1e-3` on a log axis.
fn rate_label(y: f64, log: bool) -> String {
    if log {
        return format!("{y:.0e}");
    }
    let s = format!("{y:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.into() }
}

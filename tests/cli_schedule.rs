//! End-to-end tests of `prunebench schedule`, driving the real binary.

mod common;

use common::{prunebench, stderr, stdout};

#[test]
fn clr_csv_has_one_row_per_iteration_following_the_formula() {
    let o = prunebench(&[
        "schedule",
        "clr",
        "--epochs",
        "40",
        "--steps-per-epoch",
        "704",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,epoch,lr"));
    let rows: Vec<(u64, f64, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 28_160);
    // PyTorch's OneCycleLR(max_lr=0.1, div_factor=100, final_div_factor=100, pct_start=0.1),
    // written out independently of the library.
    let total = 28_160.0f64;
    let u = 0.1 * total - 1.0;
    let anneal =
        |a: f64, b: f64, p: f64| b + (a - b) / 2.0 * ((std::f64::consts::PI * p).cos() + 1.0);
    for (i, &(step, epoch, lr)) in rows.iter().enumerate() {
        assert_eq!(step, i as u64);
        assert_eq!(epoch, i as f64 / 704.0);
        let x = i as f64;
        let expected = if x <= u {
            anneal(0.001, 0.1, x / u)
        } else {
            anneal(0.1, 1e-5, (x - u) / (total - 1.0 - u))
        };
        assert_eq!(lr, expected, "step {i}");
    }
    assert_eq!(rows.last().unwrap().2, 1e-5);
}

#[test]
fn one_row_per_epoch_by_default() {
    let o = prunebench(&["schedule", "lrw", "--epochs", "72"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 73);
    assert!(text.contains("\n31,31,0.01\n32,32,0.001\n"), "{text}");
}

#[test]
fn json_output_carries_the_schedule_and_its_points() {
    let o = prunebench(&[
        "schedule",
        "clr:warmup=0.2",
        "--epochs",
        "4",
        "--steps-per-epoch",
        "5",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schedule"]["kind"], "clr");
    assert_eq!(v["schedule"]["warmup"], 0.2);
    assert_eq!(v["epochs"], 4);
    assert_eq!(v["points"].as_array().unwrap().len(), 20);
    assert_eq!(v["points"][19]["lr"], 1e-5);
    assert_eq!(v["points"][0]["momentum"], 0.95);
    // The canonical text parses back to the same schedule.
    let spec = v["spec"].as_str().unwrap();
    let again = prunebench(&[
        "schedule",
        spec,
        "--epochs",
        "4",
        "--steps-per-epoch",
        "5",
        "--format",
        "json",
    ]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["points"], w["points"]);
}

#[test]
fn compare_plots_four_labelled_curves() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("fig1.svg");
    let o = prunebench(&[
        "schedule",
        "--compare",
        "ft,lrw,slr,clr",
        "--epochs",
        "72",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    // Each curve has its own colour: drawn once as the curve and once as its legend swatch.
    let coloured: Vec<&str> = text
        .split("<polyline")
        .skip(1)
        .map(|p| p.split('>').next().unwrap())
        .filter(|tag| !tag.contains("stroke=\"#000000\""))
        .collect();
    assert_eq!(
        coloured.len(),
        4 + 4,
        "four curves and four legend swatches"
    );
    for label in ["ft", "lrw", "slr", "clr"] {
        // plotters writes each text element's content on its own line.
        assert!(
            text.contains(&format!(">\n{label}\n</text>")),
            "legend lacks {label}"
        );
    }
    // No temporary file is left beside the chart.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["fig1.svg"]);
}

#[test]
fn compare_csv_is_long_format_with_quoted_specs() {
    let o = prunebench(&[
        "schedule",
        "--compare",
        "ft,clr:max=0.05,warmup=0.2",
        "--epochs",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "schedule,step,epoch,lr");
    assert_eq!(lines[1], "ft,0,0,0.001");
    assert!(
        lines[3].starts_with("\"clr:max=0.05,warmup=0.2\",0,0,"),
        "{}",
        lines[3]
    );
    assert_eq!(lines.len(), 5);
}

#[test]
fn output_file_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("lr.csv");
    let o = prunebench(&[
        "schedule",
        "ft",
        "--epochs",
        "3",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "step,epoch,lr\n0,0,0.001\n1,1,0.001\n2,2,0.001\n"
    );
}

#[test]
fn bad_input_is_one_line_naming_the_problem() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["schedule", "clx", "--epochs", "10"],
            "unknown schedule kind 'clx'",
        ),
        (
            &["schedule", "clr:max=-1", "--epochs", "10"],
            "lr_max must be a finite, non-negative",
        ),
        (&["schedule", "clr:max=NaN", "--epochs", "10"], "got NaN"),
        (
            &["schedule", "slr:warmup=1.5", "--epochs", "10"],
            "warmup must be a fraction in [0, 1)",
        ),
        (
            &["schedule", "ft", "--epochs", "0"],
            "epochs must be at least 1",
        ),
        (
            &["schedule", "ft", "--epochs", "5", "--steps-per-epoch", "0"],
            "steps per epoch must be at least 1",
        ),
        (&["schedule", "ft"], "--epochs"),
        (
            &["schedule", "lrw", "--epochs", "200"],
            "cannot rewind 200 epochs",
        ),
    ];
    for (args, expected) in cases {
        let o = prunebench(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        assert!(o.stdout.is_empty(), "{args:?} printed a table");
    }
}

#[test]
fn plot_into_a_missing_directory_fails_cleanly() {
    let o = prunebench(&[
        "schedule",
        "ft",
        "--epochs",
        "3",
        "--plot",
        "/nonexistent-dir/x.svg",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent-dir/"), "{err}");
}

#[test]
fn huge_budgets_are_refused_before_anything_is_built() {
    // Over the library's cap on iterations: refused by Budget::new.
    let o = prunebench(&[
        "schedule",
        "clr",
        "--epochs",
        "4294967295",
        "--steps-per-epoch",
        "4294967295",
        "--format",
        "json",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    // Within it, but more points than the command prints.
    let o = prunebench(&[
        "schedule",
        "ft",
        "--epochs",
        "1000",
        "--steps-per-epoch",
        "10000",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("10000000 points; at most 2000000"), "{e}");
    assert!(stdout(&o).is_empty());
}

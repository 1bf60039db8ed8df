//! The reduced smoke grid end to end: one row (ResNet-56-B), one seed, a tiny dataset in the
//! real Fashion-MNIST format; every cell filled; a rerun trains nothing and writes the same table.

use std::path::Path;

use super::*;

fn args(tmp: &Path) -> Args {
    Args {
        profile: ProfileName::Smoke,
        datasets: None,
        archs: Some("resnet56-B".into()),
        report_only: false,
        torch_check: false,
        emit: None,
        slurm_cpus: 8,
        grid: GridArgs {
            data_dir: Some(tmp.join("data")),
            seeds: Some(1),
            jobs: 2,
            device: train::device::DeviceSpec::Cpu,
            runs_dir: Some(tmp.join("runs")),
            results_dir: Some(tmp.join("results")),
            dry_run: false,
            limits: Some(vec![8, 4]),
        },
    }
}

fn result_mtimes(runs: &Path) -> Vec<(String, std::time::SystemTime)> {
    let mut out: Vec<_> = std::fs::read_dir(runs)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let f = e.path().join("result.json");
            let t = std::fs::metadata(&f).ok()?.modified().ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), t))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn smoke_grid_fills_its_row_and_a_rerun_trains_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    datasets::fixtures::write_bars(&tmp.path().join("data"), 40, 10).unwrap();
    let a = args(tmp.path());

    let first = run(&a).unwrap().unwrap();
    // unpruned, fine-tuning, CLR, Scratch-E (= Scratch-B: int(2 x 1.38) = 2 epochs, one run
    // for both cells), and one pruning.
    assert_eq!(first.trained, 4, "{first:?}");
    assert_eq!(first.pruned, 1);
    assert!(first.failed.is_empty());
    let csv =
        std::fs::read_to_string(a.grid.results_dir.as_deref().unwrap().join("table2.csv")).unwrap();
    let row = csv
        .lines()
        .find(|l| l.contains(",resnet56,B,"))
        .expect("the resnet56-B row");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let fields: Vec<&str> = row.split(',').collect();
    for c in Column::ALL {
        for suffix in ["mean", "paper_mean", "diff"] {
            let k = header
                .iter()
                .position(|h| *h == format!("{}_{suffix}", c.key()))
                .unwrap();
            assert!(!fields[k].is_empty(), "{} empty in {row}", header[k]);
        }
    }
    assert_eq!(fields.last().unwrap().split('>').count(), 4, "{row}");
    let md =
        std::fs::read_to_string(a.grid.results_dir.as_deref().unwrap().join("table2.md")).unwrap();
    assert!(md.contains("smoke: pipeline check, not a result"));
    assert!(md.contains("| imagenet | resnet34 | A | not run |"));

    let before = result_mtimes(a.grid.runs_dir.as_deref().unwrap());
    assert_eq!(before.len(), 4);

    // The unpruned run kept beside the results and restored into an empty runs directory is a
    // finished run whose best-val model loads (what a pruning reads).
    let mut p = grid::Profile::new(ProfileName::Smoke);
    override_profile(&mut p, None, &a.grid).unwrap();
    let g = grid::expand(
        &p,
        &Variant::parse_list("resnet56-B").unwrap(),
        a.grid.runs_dir.as_deref().unwrap(),
    )
    .unwrap();
    let kept = tmp.path().join("kept");
    keep_checkpoints(&g, &kept).unwrap();
    let restored = tmp.path().join("restored");
    assert_eq!(restore_checkpoints(&kept, &restored).unwrap(), 1);
    assert_eq!(
        restore_checkpoints(&kept, &restored).unwrap(),
        0,
        "restored once"
    );
    let Task::Train { spec, .. } = &g.nodes[0].task else {
        panic!()
    };
    let restored_run = restored.join(spec.hash());
    assert!(restored_run.join("result.json").is_file());
    train::engine::load_model(&restored_run, &candle_core::Device::Cpu).unwrap();
    let again = run(&a).unwrap().unwrap();
    assert_eq!(again.trained, 0);
    assert_eq!(again.pruned, 0);
    assert_eq!(again.skipped, 5);
    assert_eq!(result_mtimes(a.grid.runs_dir.as_deref().unwrap()), before);
    assert_eq!(
        std::fs::read_to_string(a.grid.results_dir.as_deref().unwrap().join("table2.md")).unwrap(),
        md,
        "the same table"
    );

    // Runs are named by content, not by where their checkpoints lie: a moved (or committed and
    // cloned) runs directory trains nothing and gives the same table.
    let moved = tmp.path().join("moved").join("runs");
    std::fs::create_dir(tmp.path().join("moved")).unwrap();
    std::fs::rename(a.grid.runs_dir.as_deref().unwrap(), &moved).unwrap();
    let mut b = a.clone();
    b.grid.runs_dir = Some(moved.clone());
    let after_move = run(&b).unwrap().unwrap();
    assert_eq!(
        (after_move.trained, after_move.pruned),
        (0, 0),
        "{after_move:?}"
    );
    assert_eq!(result_mtimes(&moved), before);
    assert_eq!(
        std::fs::read_to_string(b.grid.results_dir.as_deref().unwrap().join("table2.md")).unwrap(),
        md,
        "the same table from the moved runs"
    );

    // The records alone: with no runs directory at all (a fresh clone with the committed
    // results), nothing is trained again and the table is the same.
    std::fs::remove_dir_all(&moved).unwrap();
    let fresh = run(&b).unwrap().unwrap();
    assert_eq!((fresh.trained, fresh.pruned), (0, 0), "{fresh:?}");
    assert!(
        !moved.exists(),
        "nothing was trained into the runs directory"
    );
    assert_eq!(
        std::fs::read_to_string(b.grid.results_dir.as_deref().unwrap().join("table2.md")).unwrap(),
        md,
        "the same table from the records alone"
    );
}

#[test]
fn paper_grid_shares_unpruned_runs_and_prunes_once_per_version() {
    let profile = grid::Profile::new(ProfileName::Paper);
    let grid = grid::expand(&profile, &Variant::CIFAR, Path::new("runs")).unwrap();
    let count = |f: &dyn Fn(&grid::Node) -> bool| grid.nodes.iter().filter(|n| f(n)).count();
    // 2 datasets x 5 seeds x 3 architectures.
    assert_eq!(count(&|n| n.column == Some(Column::Unpruned)), 30);
    // 2 x 5 x 5 versions.
    assert_eq!(count(&|n| matches!(n.task, Task::Prune { .. })), 50);
    assert_eq!(count(&|n| n.column == Some(Column::Clr)), 50);
    assert_eq!(grid.cells.len(), 2 * 5 * 5 * 5);
    // Dependencies point backwards: the list is a valid execution order.
    for (i, n) in grid.nodes.iter().enumerate() {
        assert!(n.deps.iter().all(|&d| d < i));
    }
    let hashes: std::collections::HashSet<String> = grid
        .nodes
        .iter()
        .filter_map(|n| match &n.task {
            Task::Train { spec, .. } => Some(spec.hash()),
            Task::Prune { .. } => None,
        })
        .collect();
    assert_eq!(hashes.len(), 30 + 50 * 4, "every run has its own hash");
    assert_eq!(grid.nodes.len(), 30 + 50 * 5, "no run is listed twice");
}

#[test]
fn unknown_arch_is_an_error() {
    assert!(Variant::parse_list("resnet57").is_err());
    assert_eq!(Variant::parse_list("resnet56").unwrap().len(), 2);
}

#[test]
fn sample_std_and_the_paper_table_parse() {
    let s = report::stat(&[92.0, 93.0, 94.0]).unwrap();
    assert!((s.mean - 93.0).abs() < 1e-12 && (s.std.unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(report::stat(&[92.5]).unwrap().std, None);
    let paper = report::read_paper(Path::new(PAPER_TABLE.0), PAPER_TABLE.1).unwrap();
    let row = &paper[&("cifar10".into(), "resnet56".into(), "B".into())];
    assert_eq!(row[&Column::Clr].mean, 92.41);
    assert_eq!(row[&Column::ScratchE].std, Some(0.22));
    // ImageNet's Scratch-E/B have no std in the paper.
    let imagenet = &paper[&("imagenet".into(), "resnet34".into(), "A".into())];
    assert_eq!(imagenet[&Column::ScratchB].std, None);
}

#[test]
fn emit_slurm_writes_one_task_per_node_in_dependency_stages() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(tmp.path());
    a.archs = Some("resnet56".into());
    a.emit = Some(vec![
        "slurm".into(),
        tmp.path().join("slurm").display().to_string(),
    ]);
    // The cluster's binary opens the GPU, not this one: emitting works in a build without CUDA.
    a.grid.device = train::device::DeviceSpec::Cuda(0);
    assert!(run(&a).unwrap().is_none());
    let dir = tmp.path().join("slurm");
    let lines = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .lines()
            .count()
    };
    // Unpruned + Scratch-E (= B) per version; two prunings; FT and CLR per version.
    assert_eq!(
        (
            lines("stage0.list"),
            lines("stage1.list"),
            lines("stage2.list")
        ),
        (3, 2, 4)
    );
    let first: Task = train::run::read_json(&dir.join("tasks/0000.json")).unwrap();
    assert!(matches!(first, Task::Train { .. }));
    let submit = std::fs::read_to_string(dir.join("submit.sh")).unwrap();
    assert!(submit.contains("--array=0-3 ") || submit.contains("--array=0-2 "));
    assert!(submit.contains("--dependency=afterok"));
    let sbatch = std::fs::read_to_string(dir.join("table2.sbatch")).unwrap();
    assert!(
        sbatch.contains(" run-task --device cuda:0 \"${EMIT_DIR}/${TASK}\""),
        "{sbatch}"
    );
    // A CUDA device asks for a GPU.
    assert!(sbatch.contains("\n#SBATCH --gres=gpu:1\n"), "{sbatch}");
    assert!(sbatch.contains("\n#SBATCH --cpus-per-task=8\n"), "{sbatch}");
    assert!(!tmp.path().join("runs").exists(), "emitting trains nothing");

    // Slurm shows a job its one GPU as device 0, whichever card it is.
    a.grid.device = train::device::DeviceSpec::Cuda(1);
    assert!(run(&a).unwrap().is_none());
    let sbatch = std::fs::read_to_string(dir.join("table2.sbatch")).unwrap();
    assert!(sbatch.contains(" run-task --device cuda:0 "), "{sbatch}");
}

#[test]
fn emit_slurm_for_the_cpu_asks_for_no_gpu_and_the_cpus_given() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(tmp.path());
    let dir = tmp.path().join("slurm");
    a.emit = Some(vec!["slurm".into(), dir.display().to_string()]);
    a.slurm_cpus = 1;
    assert!(run(&a).unwrap().is_none());
    let sbatch = std::fs::read_to_string(dir.join("table2.sbatch")).unwrap();
    assert!(!sbatch.contains("--gres"), "{sbatch}");
    assert!(sbatch.contains("\n#SBATCH --cpus-per-task=1\n"), "{sbatch}");
    assert!(sbatch.contains(" run-task --device cpu "), "{sbatch}");
    // Every directive precedes the first command, or sbatch ignores it.
    let first_command = sbatch.lines().position(|l| !l.starts_with('#')).unwrap();
    assert!(
        sbatch
            .lines()
            .skip(first_command)
            .all(|l| !l.starts_with("#SBATCH")),
        "{sbatch}"
    );
}

#[test]
fn shortened_profiles_drop_the_rate_at_the_papers_fractions() {
    use schedules::Schedule;
    let lrs = |spec: &train::ExperimentSpec| -> Vec<f64> {
        let Schedule::Step { pieces } = &spec.schedule else {
            panic!("{:?}", spec.schedule)
        };
        (0..spec.epochs).map(|e| pieces.lr(e)).collect()
    };
    let mut cpu = grid::Profile::new(ProfileName::Cpu);
    cpu.original_epochs = 8;
    let base = grid::base_spec(&cpu, DatasetKind::FashionMnist, "resnet56", 1).unwrap();
    let r = lrs(&base);
    assert_eq!(r.len(), 8);
    // 0.1 for epochs 0-3, 0.01 for 4-5, 0.001 for 6-7 (80 and 120 of 160 in the paper).
    assert!(r[..4].iter().all(|&x| x == 0.1), "{r:?}");
    assert!(r[4..6].iter().all(|&x| (x - 0.01).abs() < 1e-12), "{r:?}");
    assert!(r[6..].iter().all(|&x| (x - 0.001).abs() < 1e-12), "{r:?}");
    // FT retrains at the rate the original training ended with.
    let start = grid::pruned_start(
        &base,
        &base.model,
        Path::new("p"),
        Variant::version("resnet56", None),
    );
    let ft = experiments::spec::retrain(&base, &start, "ft", 2).unwrap();
    assert!(matches!(ft.schedule, Schedule::Ft { lr } if (lr - 0.001).abs() < 1e-12));
    // The paper profile keeps the preset as written.
    let paper = grid::Profile::new(ProfileName::Paper);
    let base = grid::base_spec(&paper, DatasetKind::Cifar10, "resnet56", 1).unwrap();
    assert_eq!(base.schedule, Schedule::original(schedules::Preset::Cifar));
}

/// Records for every cell of `grid`, the accuracy given by `acc(column, seed)`.
fn records_for(
    grid: &Grid,
    acc: impl Fn(grid::Column, u32) -> f64,
) -> std::collections::BTreeMap<String, report::RunRecord> {
    let mut out = std::collections::BTreeMap::new();
    for cell in &grid.cells {
        let node = &grid.nodes[cell.node];
        let Task::Train { spec, .. } = &node.task else {
            continue;
        };
        let r = report::RunRecord {
            profile: "sample".into(),
            dataset: cell.dataset.name().into(),
            model: cell.variant.arch.into(),
            version: cell.variant.version_name(),
            column: cell.column,
            seed: node.seed,
            spec_hash: spec.hash(),
            test_acc: acc(cell.column, node.seed),
            best_val_acc: 0.5,
            best_epoch: 0,
            epochs: spec.epochs,
            final_test_acc: 0.5,
            params: 1,
            flops: 1,
            seconds: 60.0,
            hosts: vec![],
        };
        out.insert(r.spec_hash.clone(), r);
    }
    out
}

#[test]
fn the_sample_and_cpu_profiles_run_the_four_methods_on_a_half_resnet20() {
    use grid::Column;
    for name in [ProfileName::Sample, ProfileName::Cpu] {
        let p = grid::Profile::new(name);
        let g = grid::expand(&p, &p.variants, Path::new("runs")).unwrap();
        assert_eq!(p.seeds, 3);
        let mut cols = p.columns();
        cols.retain(|c| !matches!(c, Column::Unpruned | Column::ScratchE | Column::ScratchB));
        assert_eq!(
            cols,
            [Column::Finetune, Column::Lrw, Column::Slr, Column::Clr]
        );
        // Per seed: the unpruned run, 4 retrainings, Scratch-E (and Scratch-B for cpu).
        let per_seed = if name == ProfileName::Cpu { 7 } else { 6 };
        assert_eq!(g.cells.len(), 3 * per_seed, "{name:?}");
        // Every retraining starts from the seed's pruned checkpoint: a quarter of the original.
        for n in &g.nodes {
            if let (Some(c), Task::Train { spec, .. }) = (n.column, &n.task)
                && c.schedule().is_some()
            {
                assert_eq!(spec.epochs * 4, p.original_epochs, "{c:?}");
                assert_eq!(n.deps.len(), 1);
                assert!(matches!(
                    g.nodes[n.deps[0]].task,
                    Task::Prune {
                        ratio: Some(0.5),
                        ..
                    }
                ));
                if c == Column::Slr {
                    // Per iteration: a one-epoch budget would leave the per-epoch rule at FT's rate.
                    assert!(
                        matches!(&spec.schedule, schedules::Schedule::Slr(s) if s.per_iteration)
                    );
                }
            }
        }
        // Scratch-B, the longest runs, come last.
        if name == ProfileName::Cpu {
            let kinds: Vec<String> = g.nodes.iter().map(|n| n.kind()).collect();
            assert!(
                kinds[kinds.len() - 3..].iter().all(|k| k == "scratch_b"),
                "{kinds:?}"
            );
        }
    }
}

#[test]
fn paired_differences_their_interval_and_the_claim_sentence() {
    use grid::Column;
    let p = grid::Profile::new(ProfileName::Sample);
    let g = grid::expand(&p, &p.variants, Path::new("runs")).unwrap();
    // FT 0.70 + seed/100; LRW equal to FT; SLR below by 3, 4, 5 points; CLR above by 2, 3, 4.
    let records = records_for(&g, |c, seed| {
        let ft = 0.70 + f64::from(seed) / 100.0;
        match c {
            Column::Slr => ft - (2.0 + f64::from(seed)) / 100.0,
            Column::Clr => ft + (1.0 + f64::from(seed)) / 100.0,
            Column::Unpruned => 0.8,
            _ => ft,
        }
    });
    let paper = report::PaperTable::new();
    let rows = report::rows(&g, &records, &paper);
    assert_eq!(rows.len(), 1);
    let pairs = report::paired(&rows[0]);
    let get = |c| pairs.iter().find(|x| x.column == c).unwrap();
    let clr = get(Column::Clr);
    assert_eq!(clr.diffs.len(), 3);
    assert!((clr.mean - 3.0).abs() < 1e-9, "{clr:?}");
    // sd 1, n 3: 3 +- 4.303 / sqrt(3).
    let (lo, hi) = clr.ci.unwrap();
    assert!((lo - (3.0 - 4.303 / 3f64.sqrt())).abs() < 1e-9, "{lo}");
    assert!((hi - (3.0 + 4.303 / 3f64.sqrt())).abs() < 1e-9, "{hi}");
    assert_eq!((clr.better, clr.ties, clr.worse), (3, 0, 0));
    assert_eq!(clr.verdict(), "better");
    assert_eq!(get(Column::Lrw).verdict(), "equal");
    assert_eq!(get(Column::Slr).verdict(), "worse");
    let sentence = report::claim(&pairs);
    assert!(sentence.contains("did not hold"), "{sentence}");
    assert!(sentence.contains("SLR below FT"), "{sentence}");
    assert!(sentence.contains("CLR above FT"), "{sentence}");

    // The tables come from the records alone: writing twice gives the same bytes, and the
    // Markdown has the paired section.
    let tmp = tempfile::tempdir().unwrap();
    report::write(tmp.path(), &g, &records, &paper, &p).unwrap();
    let md = std::fs::read_to_string(tmp.path().join("table2.md")).unwrap();
    assert!(md.contains("## Against fine-tuning, seed by seed"), "{md}");
    assert!(
        md.contains("| CLR − FT | 1: +2.00, 2: +3.00, 3: +4.00 |"),
        "{md}"
    );
    report::write_records(tmp.path(), &records).unwrap();
    let back = report::read_records(tmp.path()).unwrap();
    assert_eq!(back, records);
    let again = tempfile::tempdir().unwrap();
    report::write(again.path(), &g, &back, &paper, &p).unwrap();
    for f in ["table2.md", "table2.csv", "paired.csv"] {
        assert_eq!(
            std::fs::read(tmp.path().join(f)).unwrap(),
            std::fs::read(again.path().join(f)).unwrap(),
            "{f}"
        );
    }
}

//! The reduced smoke grid end to end: one row (ResNet-56-B), one seed, a tiny dataset in the
//! real Fashion-MNIST format; every cell filled; a rerun trains nothing and writes the same table.

use std::path::Path;

use super::*;

fn args(tmp: &Path) -> Args {
    Args {
        profile: ProfileName::Smoke,
        datasets: None,
        archs: "resnet56-B".into(),
        emit: None,
        slurm_cpus: 8,
        grid: GridArgs {
            data_dir: Some(tmp.join("data")),
            seeds: Some(1),
            jobs: 2,
            device: train::device::DeviceSpec::Cpu,
            runs_dir: Some(tmp.join("runs")),
            results_dir: tmp.join("results"),
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
    let csv = std::fs::read_to_string(a.grid.results_dir.join("table2.csv")).unwrap();
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
    let md = std::fs::read_to_string(a.grid.results_dir.join("table2.md")).unwrap();
    assert!(md.contains("smoke: pipeline check, not a result"));
    assert!(md.contains("| imagenet | resnet34 | A | not run |"));

    let before = result_mtimes(a.grid.runs_dir.as_deref().unwrap());
    assert_eq!(before.len(), 4);
    let again = run(&a).unwrap().unwrap();
    assert_eq!(again.trained, 0);
    assert_eq!(again.pruned, 0);
    assert_eq!(again.skipped, 5);
    assert_eq!(result_mtimes(a.grid.runs_dir.as_deref().unwrap()), before);
    assert_eq!(
        std::fs::read_to_string(a.grid.results_dir.join("table2.md")).unwrap(),
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
        std::fs::read_to_string(b.grid.results_dir.join("table2.md")).unwrap(),
        md,
        "the same table from the moved runs"
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
    a.archs = "resnet56".into();
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
    let cpu = grid::Profile::new(ProfileName::Cpu);
    let base = grid::base_spec(&cpu, DatasetKind::FashionMnist, "resnet56", 1).unwrap();
    let r = lrs(&base);
    assert_eq!(r.len(), 8);
    // 0.1 for epochs 0-3, 0.01 for 4-5, 0.001 for 6-7 (80 and 120 of 160 in the paper).
    assert!(r[..4].iter().all(|&x| x == 0.1), "{r:?}");
    assert!(r[4..6].iter().all(|&x| (x - 0.01).abs() < 1e-12), "{r:?}");
    assert!(r[6..].iter().all(|&x| (x - 0.001).abs() < 1e-12), "{r:?}");
    // FT retrains at the rate the original training ended with.
    let start = grid::pruned_start(&base, &base.model, Path::new("p"), None);
    let ft = experiments::spec::retrain(&base, &start, "ft", 2).unwrap();
    assert!(matches!(ft.schedule, Schedule::Ft { lr } if (lr - 0.001).abs() < 1e-12));
    // The paper profile keeps the preset as written.
    let paper = grid::Profile::new(ProfileName::Paper);
    let base = grid::base_spec(&paper, DatasetKind::Cifar10, "resnet56", 1).unwrap();
    assert_eq!(base.schedule, Schedule::original(schedules::Preset::Cifar));
}

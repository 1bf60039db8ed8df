//! A reproduction as a dependency graph of tasks, and Table 2's: per (dataset, arch, seed) one
//! unpruned run, pruned once per PFEC version, feeding fine-tuning and CLR; Scratch-E/B train
//! the pruned architecture from scratch and depend on nothing. Every run is keyed by its spec's
//! hash, and every spec is built by [`crate::spec`], as `prunebench` builds it.

use std::path::{Path, PathBuf};

use datasets::DatasetKind;
use models::ModelConfig;
use prune_core::PfecVersion;
use serde::{Deserialize, Serialize};

use crate::prune::Pruning;
use crate::recipe::{self, ScratchBudget};
use crate::spec::{self, Start};
use crate::{CheckpointId, Error, ExperimentSpec, Result};

/// A column of Table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    /// The unpruned model.
    Unpruned,
    /// Fine-tuning the pruned model (FT).
    Finetune,
    /// Scratch-E: the pruned architecture from scratch, as many epochs.
    ScratchE,
    /// Scratch-B: the pruned architecture from scratch, as much computation.
    ScratchB,
    /// Retraining with CLR (cosine warm-up).
    Clr,
}

impl Column {
    /// Every column, in the paper's order.
    pub const ALL: [Column; 5] = [
        Column::Unpruned,
        Column::Finetune,
        Column::ScratchE,
        Column::ScratchB,
        Column::Clr,
    ];

    /// The name in the CSV headers (and in `data/paper/table2.csv`).
    pub fn key(self) -> &'static str {
        match self {
            Column::Unpruned => "unpruned",
            Column::Finetune => "finetune",
            Column::ScratchE => "scratch_e",
            Column::ScratchB => "scratch_b",
            Column::Clr => "clr",
        }
    }

    /// The paper's header.
    pub fn title(self) -> &'static str {
        match self {
            Column::Unpruned => "Unpruned",
            Column::Finetune => "Fine-tuning",
            Column::ScratchE => "Scratch-E",
            Column::ScratchB => "Scratch-B",
            Column::Clr => "CLR",
        }
    }
}

/// A row's model: an architecture and its PFEC version (none for VGG-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// The architecture (`vgg16`, `resnet56`, `resnet110`).
    pub arch: &'static str,
    /// The PFEC version (none for VGG-16).
    pub version: Option<PfecVersion>,
}

impl Variant {
    /// Table 2's CIFAR rows, in its order.
    pub const CIFAR: [Variant; 5] = [
        Variant {
            arch: "vgg16",
            version: None,
        },
        Variant {
            arch: "resnet56",
            version: Some(PfecVersion::A),
        },
        Variant {
            arch: "resnet56",
            version: Some(PfecVersion::B),
        },
        Variant {
            arch: "resnet110",
            version: Some(PfecVersion::A),
        },
        Variant {
            arch: "resnet110",
            version: Some(PfecVersion::B),
        },
    ];

    /// `A`, `B` or `-` as the paper's CSV writes it.
    pub fn version_name(self) -> String {
        self.version.map_or("-".into(), |v| v.to_string())
    }

    /// `vgg16`, `resnet56-A`, ...
    pub fn label(self) -> String {
        match self.version {
            Some(v) => format!("{}-{v}", self.arch),
            None => self.arch.to_string(),
        }
    }

    /// Parses `--archs`: `vgg16`, `resnet56` (both versions), `resnet56-B`, ...
    pub fn parse_list(text: &str) -> Result<Vec<Variant>> {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let matched: Vec<Variant> = Variant::CIFAR
                .into_iter()
                .filter(|v| {
                    v.arch.eq_ignore_ascii_case(item) || v.label().eq_ignore_ascii_case(item)
                })
                .collect();
            if matched.is_empty() {
                return Err(Error::Config(format!(
                    "unknown arch `{item}`: Table 2 has vgg16, resnet56, resnet56-A, resnet56-B, resnet110, resnet110-A, resnet110-B"
                )));
            }
            for v in matched {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::Config("--archs names no architecture".into()));
        }
        Ok(out)
    }
}

/// A reproduction profile: the data and the budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ProfileName {
    /// The paper's budgets on CIFAR-10/100: 160 + 40 epochs, Scratch-E 200, 5 seeds, batch 64.
    Paper,
    /// The same protocol on the full Fashion-MNIST, scaled to a 2-core CPU overnight.
    Cpu,
    /// The bundled Fashion-MNIST sample with tiny budgets: a pipeline check in minutes.
    Smoke,
}

/// The budgets and data of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Which profile.
    pub name: ProfileName,
    /// The datasets it covers.
    pub datasets: Vec<DatasetKind>,
    /// The dataset folder (None: each dataset's default).
    pub data_dir: Option<PathBuf>,
    /// Training images before the 90/10 split (for the cost estimate only).
    pub train_images: usize,
    /// Epochs of the original training (160 in the paper).
    pub original_epochs: u32,
    /// Epochs of each retraining (40 in the paper).
    pub retrain_epochs: u32,
    /// Scratch-E's epochs (original + retraining, 200 in the paper); Scratch-B scales it.
    pub scratch_epochs: u32,
    /// Seeds 1..=seeds.
    pub seeds: u32,
    /// Training batch size.
    pub batch_size: usize,
    /// Train on only the first N images of the training split.
    pub limit_train: Option<usize>,
    /// Evaluate on only the first N validation and test images.
    pub limit_eval: Option<usize>,
}

impl Profile {
    /// The profile's budgets and data.
    pub fn new(name: ProfileName) -> Self {
        match name {
            ProfileName::Paper => Self {
                name,
                datasets: vec![DatasetKind::Cifar10, DatasetKind::Cifar100],
                data_dir: None,
                train_images: 50_000,
                original_epochs: 160,
                retrain_epochs: 40,
                scratch_epochs: 200,
                seeds: 5,
                batch_size: 64,
                limit_train: None,
                limit_eval: None,
            },
            // Budgets from measured CPU throughput (docs/reproducing.md: ResNet-56 4, ResNet-110
            // ~2, VGG-16 9 training images/s): the paper's 4:1 ratio of original to retraining
            // epochs (the rate dropping at the paper's fractions, see `base_spec`) and
            // Scratch-E = their sum, on 500 training images, so the whole grid fits
            // a night (~8 h) on 2 cores.
            ProfileName::Cpu => Self {
                name,
                datasets: vec![DatasetKind::FashionMnist],
                data_dir: None,
                train_images: 60_000,
                original_epochs: 8,
                retrain_epochs: 2,
                scratch_epochs: 10,
                seeds: 1,
                batch_size: 64,
                limit_train: Some(500),
                limit_eval: Some(500),
            },
            ProfileName::Smoke => Self {
                name,
                datasets: vec![DatasetKind::FashionMnist],
                data_dir: Some(PathBuf::from("data/sample/fashion-mnist")),
                train_images: 5_000,
                original_epochs: 1,
                retrain_epochs: 1,
                scratch_epochs: 2,
                seeds: 1,
                batch_size: 32,
                // One iteration per epoch and 50 + 50 evaluation images: the whole grid in
                // minutes on 2 shared cores (docs/reproducing.md has the measured time).
                limit_train: Some(32),
                limit_eval: Some(50),
            },
        }
    }

    /// Training images per epoch after the split and the limit.
    pub fn images_per_epoch(&self) -> usize {
        let after_split = self.train_images - self.train_images / 10;
        self.limit_train.map_or(after_split, |l| l.min(after_split))
    }
}

/// One step of the reproduction, as a cluster task file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// Train a spec into `runs_dir/<hash>`.
    Train {
        /// The runs directory (the run is `runs_dir/<spec hash>`).
        runs_dir: PathBuf,
        /// The spec.
        spec: Box<ExperimentSpec>,
    },
    /// PFEC-prune the best-val model of the run `from` into `out`.
    Prune {
        /// The run whose best-val model is pruned.
        from: PathBuf,
        /// The PFEC version.
        version: Option<PfecVersion>,
        /// The pruned checkpoint's directory.
        out: PathBuf,
    },
}

/// A task in the graph, with what the report needs to place it.
#[derive(Debug, Clone)]
pub struct Node {
    /// What to do.
    pub task: Task,
    /// Indices of the nodes that must finish first.
    pub deps: Vec<usize>,
    /// The dataset (for the report).
    pub dataset: DatasetKind,
    /// The architecture (for the report).
    pub arch: &'static str,
    /// The version (pruning, and the runs after it); none for unpruned runs and VGG-16.
    pub version: Option<PfecVersion>,
    /// The Table 2 column a training run fills (none for pruning and Figure 2's retraining).
    pub column: Option<Column>,
    /// Figure 2's retraining: the schedule (`ft`, `lrw`, `slr`, `clr`) and its budget in epochs.
    pub curve: Option<(&'static str, u32)>,
    /// The seed (for the report).
    pub seed: u32,
}

impl Node {
    /// A training node for `spec` into `runs_dir`, filling no cell yet (set `column` or `curve`).
    pub fn train(
        runs_dir: &Path,
        spec: ExperimentSpec,
        deps: Vec<usize>,
        dataset: DatasetKind,
        variant: Variant,
        seed: u32,
    ) -> Self {
        let task = Task::Train {
            runs_dir: runs_dir.to_path_buf(),
            spec: Box::new(spec),
        };
        Self::new(task, deps, dataset, variant, seed)
    }

    /// A node running `task` for `variant`, filling no cell.
    fn new(
        task: Task,
        deps: Vec<usize>,
        dataset: DatasetKind,
        variant: Variant,
        seed: u32,
    ) -> Self {
        Self {
            task,
            deps,
            dataset,
            arch: variant.arch,
            version: variant.version,
            column: None,
            curve: None,
            seed,
        }
    }

    /// Epochs a training node runs (0 for pruning).
    pub fn epochs(&self) -> u32 {
        match &self.task {
            Task::Train { spec, .. } => spec.epochs,
            Task::Prune { .. } => 0,
        }
    }

    /// Whether the task's output is complete: `result.json` of a run, `origin.json` (written
    /// last) of a pruned checkpoint.
    pub fn is_done(&self) -> bool {
        match &self.task {
            Task::Train { runs_dir, spec } => run_dir(runs_dir, spec).join("result.json").is_file(),
            Task::Prune { out, .. } => out.join(crate::provenance::ORIGIN_FILE).is_file(),
        }
    }

    /// What the node does: `prune`, a Table 2 column (`unpruned`, `clr`, ...) or a Figure 2
    /// point (`lrw@56`).
    pub fn kind(&self) -> String {
        match (&self.task, self.column, self.curve) {
            (Task::Prune { .. }, _, _) => "prune".to_string(),
            (_, Some(c), _) => c.key().to_string(),
            (_, None, Some((method, epochs))) => format!("{method}@{epochs}"),
            _ => "train".to_string(),
        }
    }

    /// `kind arch version seed` for logs.
    pub fn label(&self) -> String {
        let what = self.kind();
        let version = self.version.map(|v| format!("-{v}")).unwrap_or_default();
        format!(
            "{what} {}/{}{version} seed {}",
            self.dataset, self.arch, self.seed
        )
    }
}

/// Where a spec's run lives.
pub fn run_dir(runs_dir: &Path, spec: &ExperimentSpec) -> PathBuf {
    runs_dir.join(spec.hash())
}

/// A cell of the table: the run of (row, column, seed).
#[derive(Debug, Clone)]
pub struct Cell {
    /// The dataset.
    pub dataset: DatasetKind,
    /// The row's model.
    pub variant: Variant,
    /// The column.
    pub column: Column,
    /// The node whose run fills the cell.
    pub node: usize,
}

/// The expanded grid.
#[derive(Debug, Clone, Default)]
pub struct Grid {
    /// The tasks, in dependency order.
    pub nodes: Vec<Node>,
    /// The table's cells.
    pub cells: Vec<Cell>,
    /// The training node of each spec hash.
    trains: std::collections::HashMap<String, usize>,
}

impl Grid {
    /// Adds a training node, or returns the node that already trains the same spec: the
    /// unpruned run feeds every version, short budgets can give Scratch-B as many epochs as
    /// Scratch-E, Figure 2's CLR point at Table 2's budget is Table 2's CLR run, and one run
    /// directory must never have two writers.
    pub fn push_train(&mut self, node: Node) -> usize {
        let Task::Train { spec, .. } = &node.task else {
            self.nodes.push(node);
            return self.nodes.len() - 1;
        };
        let next = self.nodes.len();
        let i = *self.trains.entry(spec.hash()).or_insert(next);
        if i == next {
            self.nodes.push(node);
        }
        i
    }
}

/// The spec of the unpruned run of (`dataset`, `arch`, `seed`) under `profile`: the paper's
/// recipe with the profile's budget and limits. Table 2 and Figure 2 build it alike, so a runs
/// directory shared by both trains it once.
pub fn base_spec(
    profile: &Profile,
    dataset: DatasetKind,
    arch: &str,
    seed: u32,
) -> Result<ExperimentSpec> {
    let shape = dataset.shape();
    let full = ModelConfig::from_name(arch, dataset.num_classes(), shape.channels)?;
    let mut base = ExperimentSpec::paper(dataset, full);
    base.data_dir.clone_from(&profile.data_dir);
    base.init = train::Init::Fresh {
        seed: u64::from(seed),
    };
    if profile.original_epochs != base.epochs {
        // The paper's rate drops (epochs 80 and 120 of 160) at the same fractions of a
        // shorter training, so it too ends at the small rate FT keeps and LRW replays.
        base.schedule = recipe::original_schedule(profile.original_epochs)?;
        base.epochs = profile.original_epochs;
    }
    base.batch_size = profile.batch_size;
    base.seed = u64::from(seed);
    base.split_seed = seed;
    base.limit_train = profile.limit_train;
    base.limit_eval = profile.limit_eval;
    Ok(base)
}

/// Where the PFEC-pruned best model of the run `base` goes.
pub fn pruned_dir(runs_dir: &Path, base: &ExperimentSpec, version: Option<PfecVersion>) -> PathBuf {
    runs_dir.join("pruned").join(match version {
        Some(v) => format!("{}-pfec-{v}", base.hash()),
        None => format!("{}-pfec", base.hash()),
    })
}

/// What the PFEC-pruned best model of the run `base` is, before it exists: the grid names it
/// as `prunebench retrain` names the checkpoint once made (from its `origin.json`), so the two
/// give the same spec hash.
pub fn pruned_start(
    base: &ExperimentSpec,
    pruned_config: &ModelConfig,
    pruned_dir: &Path,
    version: Option<PfecVersion>,
) -> Start {
    Start {
        config: pruned_config.clone(),
        path: pruned_dir.to_path_buf(),
        id: CheckpointId::Pruned {
            origin: base.hash(),
            pruning: Pruning::pfec(version).to_string(),
        },
        origin: Some(base.clone()),
    }
}

/// The unpruned run and its PFEC pruning for one (dataset, variant, seed): the two nodes every
/// retraining of that model depends on.
pub struct Trunk {
    /// The unpruned run's spec.
    pub base: ExperimentSpec,
    /// The unpruned run's node.
    pub unpruned: usize,
    /// The pruning node.
    pub prune: usize,
    /// The pruned checkpoint the retraining runs start from.
    pub pruned: Start,
}

impl Grid {
    /// Adds (or finds) the unpruned run of `variant.arch` and adds its pruning to `variant`.
    pub fn push_trunk(
        &mut self,
        profile: &Profile,
        dataset: DatasetKind,
        variant: Variant,
        seed: u32,
        runs_dir: &Path,
    ) -> Result<Trunk> {
        let base = base_spec(profile, dataset, variant.arch, seed)?;
        // One unpruned run per (dataset, arch, seed), shared by every version.
        let unpruned = self.push_train(Node {
            version: None,
            column: Some(Column::Unpruned),
            ..Node::train(runs_dir, base.clone(), vec![], dataset, variant, seed)
        });
        let pruned_config = crate::prune::pfec_config(&base.model, variant.version)
            .map_err(|e| e.context(format!("PFEC {}", variant.label())))?;
        let pruned_dir = pruned_dir(runs_dir, &base, variant.version);
        let pruned = pruned_start(&base, &pruned_config, &pruned_dir, variant.version);
        let prune = Task::Prune {
            from: run_dir(runs_dir, &base),
            version: variant.version,
            out: pruned_dir,
        };
        self.nodes
            .push(Node::new(prune, vec![unpruned], dataset, variant, seed));
        Ok(Trunk {
            base,
            unpruned,
            prune: self.nodes.len() - 1,
            pruned,
        })
    }
}

/// Expands the grid for `profile`, `variants` and seeds `1..=seeds`, nodes in dependency order.
pub fn expand(profile: &Profile, variants: &[Variant], runs_dir: &Path) -> Result<Grid> {
    let mut grid = Grid::default();
    for &dataset in &profile.datasets {
        for seed in 1..=profile.seeds {
            for &variant in variants {
                let trunk = grid.push_trunk(profile, dataset, variant, seed, runs_dir)?;
                let cell = |grid: &mut Grid, column, node| {
                    grid.cells.push(Cell {
                        dataset,
                        variant,
                        column,
                        node,
                    });
                };
                cell(&mut grid, Column::Unpruned, trunk.unpruned);

                for (column, text) in [(Column::Finetune, "ft"), (Column::Clr, "clr")] {
                    let spec =
                        spec::retrain(&trunk.base, &trunk.pruned, text, profile.retrain_epochs)?;
                    let node = grid.push_train(Node {
                        column: Some(column),
                        ..Node::train(runs_dir, spec, vec![trunk.prune], dataset, variant, seed)
                    });
                    cell(&mut grid, column, node);
                }
                for (column, budget) in [
                    (Column::ScratchE, ScratchBudget::E),
                    (Column::ScratchB, ScratchBudget::B),
                ] {
                    let spec = spec::scratch(
                        &trunk.base,
                        &trunk.pruned.config,
                        budget,
                        profile.scratch_epochs,
                    )?;
                    let node = grid.push_train(Node {
                        column: Some(column),
                        ..Node::train(runs_dir, spec, vec![], dataset, variant, seed)
                    });
                    cell(&mut grid, column, node);
                }
            }
        }
    }
    Ok(grid)
}

/// Figure 2's grid: Table 2's unpruned runs and prunings, each retrained with FT, LRW, SLR and
/// CLR at several budgets. Shares Table 2's runs directory: the runs both need train once.
pub mod fig2 {
    use std::path::Path;

    use datasets::DatasetKind;

    use super::{Grid, Node, Profile, Variant};
    use crate::{Error, Result};

    /// One point of the figure: the run of (panel, method, budget, seed).
    #[derive(Debug, Clone)]
    pub struct Point {
        /// The dataset.
        pub dataset: DatasetKind,
        /// The panel's pruned model.
        pub variant: Variant,
        /// `ft`, `lrw`, `slr` or `clr`.
        pub method: &'static str,
        /// The retraining budget in epochs.
        pub budget: u32,
        /// The node whose run gives the point.
        pub node: usize,
    }

    /// Expands the figure's grid: per (dataset, seed, panel) the unpruned run and its pruning, then
    /// one retraining per method and budget.
    pub fn expand(
        profile: &Profile,
        budgets: &[u32],
        methods: &[&'static str],
        variants: &[Variant],
        runs_dir: &Path,
    ) -> Result<(Grid, Vec<Point>)> {
        if methods.contains(&"lrw")
            && let Some(&longest) = budgets.iter().max()
            && longest > profile.original_epochs
        {
            return Err(Error::Config(format!(
                "LRW replays the last epochs of the original training: a {longest}-epoch budget is longer than its {} epochs",
                profile.original_epochs
            )));
        }
        let mut grid = Grid::default();
        let mut points = Vec::new();
        for &dataset in &profile.datasets {
            for seed in 1..=profile.seeds {
                for &variant in variants {
                    let trunk = grid.push_trunk(profile, dataset, variant, seed, runs_dir)?;
                    for &method in methods {
                        for &budget in budgets {
                            let spec =
                                crate::spec::retrain(&trunk.base, &trunk.pruned, method, budget)?;
                            let node = grid.push_train(Node {
                                curve: Some((method, budget)),
                                ..Node::train(
                                    runs_dir,
                                    spec,
                                    vec![trunk.prune],
                                    dataset,
                                    variant,
                                    seed,
                                )
                            });
                            points.push(Point {
                                dataset,
                                variant,
                                method,
                                budget,
                                node,
                            });
                        }
                    }
                }
            }
        }
        Ok((grid, points))
    }
}

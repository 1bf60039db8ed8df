//! A reproduction as a dependency graph of tasks, and Table 2's: per (dataset, arch, seed) one
//! unpruned run, pruned once per PFEC version, feeding fine-tuning and CLR; Scratch-E/B train
//! the pruned architecture from scratch and depend on nothing. Every run is keyed by its spec's
//! hash, and every spec is built by [`crate::spec`], as `prunebench` builds it.

use std::path::{Path, PathBuf};

use datasets::DatasetKind;
use models::ModelConfig;
use prune_core::PfecVersion;
use serde::{Deserialize, Serialize};

use crate::prune::{FilterAmount, Pruning};
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
    /// Learning-rate rewinding: the last epochs of the original schedule, replayed.
    Lrw,
    /// Scaled learning rate: the original step schedule compressed into the budget.
    Slr,
}

impl Column {
    /// Table 2's columns, in the paper's order.
    pub const ALL: [Column; 5] = [
        Column::Unpruned,
        Column::Finetune,
        Column::ScratchE,
        Column::ScratchB,
        Column::Clr,
    ];

    /// Every column a profile can have, in the order our tables print them: the unpruned
    /// model, the four retraining methods, then the scratch baselines.
    pub const EVERY: [Column; 7] = [
        Column::Unpruned,
        Column::Finetune,
        Column::Lrw,
        Column::Slr,
        Column::Clr,
        Column::ScratchE,
        Column::ScratchB,
    ];

    /// The retraining schedule a retraining column runs (`ft`, `lrw`, `slr`, `clr`).
    pub fn schedule(self) -> Option<&'static str> {
        match self {
            Column::Finetune => Some("ft"),
            Column::Lrw => Some("lrw"),
            Column::Slr => Some("slr"),
            Column::Clr => Some("clr"),
            _ => None,
        }
    }

    /// The name in the CSV headers (and in `data/paper/table2.csv`).
    pub fn key(self) -> &'static str {
        match self {
            Column::Unpruned => "unpruned",
            Column::Finetune => "finetune",
            Column::ScratchE => "scratch_e",
            Column::ScratchB => "scratch_b",
            Column::Clr => "clr",
            Column::Lrw => "lrw",
            Column::Slr => "slr",
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
            Column::Lrw => "LRW",
            Column::Slr => "SLR",
        }
    }
}

/// A row's model: an architecture and how PFEC prunes it, by one of the reference code's
/// versions (none for VGG-16) or by a ratio of every channel group's filters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    /// The architecture (`vgg16`, `resnet20`, `resnet56`, `resnet110`, ...).
    pub arch: &'static str,
    /// The PFEC version (none for VGG-16 and for a ratio).
    pub version: Option<PfecVersion>,
    /// The fraction of every channel group's filters PFEC removes, instead of a version.
    pub ratio: Option<f64>,
}

fn amount(version: Option<PfecVersion>, ratio: Option<f64>) -> FilterAmount {
    match ratio {
        Some(r) => FilterAmount::Ratio(r),
        None => FilterAmount::Version(version),
    }
}

/// PFEC (l1-norm filters) at a version, or at a ratio of every channel group when given: what
/// a grid's pruning task runs.
pub fn pfec_pruning(version: Option<PfecVersion>, ratio: Option<f64>) -> Pruning {
    Pruning::Filters {
        saliency: prune_core::FilterSaliency::L1,
        amount: amount(version, ratio),
    }
}

/// The architectures a `--archs` ratio row may name (`&'static` names for the report).
const RATIO_ARCHS: [&str; 7] = [
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "vgg16",
    "densenet40",
];

impl Variant {
    /// Table 2's CIFAR rows, in its order.
    pub const CIFAR: [Variant; 5] = [
        Variant::version("vgg16", None),
        Variant::version("resnet56", Some(PfecVersion::A)),
        Variant::version("resnet56", Some(PfecVersion::B)),
        Variant::version("resnet110", Some(PfecVersion::A)),
        Variant::version("resnet110", Some(PfecVersion::B)),
    ];

    /// `arch` pruned by a PFEC version.
    pub const fn version(arch: &'static str, version: Option<PfecVersion>) -> Self {
        Self {
            arch,
            version,
            ratio: None,
        }
    }

    /// `arch` with the fraction `ratio` of every channel group's filters pruned.
    pub const fn ratio(arch: &'static str, ratio: f64) -> Self {
        Self {
            arch,
            version: None,
            ratio: Some(ratio),
        }
    }

    /// How many filters PFEC removes.
    pub fn amount(self) -> FilterAmount {
        amount(self.version, self.ratio)
    }

    /// The pruning request (PFEC: l1-norm filters).
    pub fn pruning(self) -> Pruning {
        pfec_pruning(self.version, self.ratio)
    }

    /// `A`, `B`, `ratio=0.5` or `-` as the CSVs write it.
    pub fn version_name(self) -> String {
        match (self.ratio, self.version) {
            (Some(r), _) => format!("ratio={r}"),
            (None, Some(v)) => v.to_string(),
            (None, None) => "-".into(),
        }
    }

    /// `vgg16`, `resnet56-A`, `resnet20@0.5`, ... (what `--archs` takes).
    pub fn label(self) -> String {
        match (self.ratio, self.version) {
            (Some(r), _) => format!("{}@{r}", self.arch),
            (None, Some(v)) => format!("{}-{v}", self.arch),
            (None, None) => self.arch.to_string(),
        }
    }

    /// Parses `--archs`: `vgg16`, `resnet56` (both versions), `resnet56-B`, ..., or
    /// `ARCH@R` for PFEC at ratio R of every channel group (`resnet20@0.5`).
    pub fn parse_list(text: &str) -> Result<Vec<Variant>> {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let matched: Vec<Variant> = if let Some((arch, r)) = item.split_once('@') {
                let arch = RATIO_ARCHS
                    .into_iter()
                    .find(|a| a.eq_ignore_ascii_case(arch))
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "unknown arch `{arch}` in `{item}`: a ratio row takes one of {}",
                            RATIO_ARCHS.join(", ")
                        ))
                    })?;
                let ratio: f64 = r.parse().map_err(|_| {
                    Error::Config(format!("`{item}`: `{r}` is not a pruning ratio"))
                })?;
                let v = Variant::ratio(arch, ratio);
                v.pruning().check()?;
                vec![v]
            } else {
                Variant::CIFAR
                    .into_iter()
                    .filter(|v| {
                        v.arch.eq_ignore_ascii_case(item) || v.label().eq_ignore_ascii_case(item)
                    })
                    .collect()
            };
            if matched.is_empty() {
                return Err(Error::Config(format!(
                    "unknown arch `{item}`: Table 2 has vgg16, resnet56, resnet56-A, resnet56-B, resnet110, resnet110-A, resnet110-B, and ARCH@R prunes a ratio R of every layer (resnet20@0.5)"
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
    /// The paper's protocol scaled down on the full Fashion-MNIST: ResNet-20 at half its
    /// filters, 4 + 1 epochs, FT/LRW/SLR/CLR, Scratch-E/B, 3 seeds; about 4 hours on 2 cores.
    Cpu,
    /// The default: the same protocol on 2,048 images of the bundled Fashion-MNIST sample, 3
    /// seeds, in minutes on 2 cores; it learns (far above chance) but is not the paper's scale.
    Sample,
    /// The bundled Fashion-MNIST sample with tiny budgets: a pipeline check in minutes.
    Smoke,
}

impl ProfileName {
    /// `paper`, `cpu`, `sample`, `smoke`: the name on the command line and of the results folder.
    pub fn name(self) -> &'static str {
        match self {
            ProfileName::Paper => "paper",
            ProfileName::Cpu => "cpu",
            ProfileName::Sample => "sample",
            ProfileName::Smoke => "smoke",
        }
    }
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
    /// The rows when `--archs` is not given.
    pub variants: Vec<Variant>,
    /// The retraining columns (FT and CLR are Table 2's; LRW and SLR complete the paper's four).
    pub retraining: Vec<Column>,
    /// The scratch baselines.
    pub scratch: Vec<ScratchBudget>,
    /// SLR's text form: `slr` (the reference code's per-epoch rule), or `slr:per=iteration`
    /// where budgets of a few epochs would collapse it to FT's constant rate.
    pub slr: &'static str,
    /// Keep each finished unpruned run's best-val model beside the results (`cpu`: hours of
    /// training a fresh clone should not redo; ~1 MB a seed).
    pub keep_checkpoints: bool,
}

impl Profile {
    /// The profile's budgets and data.
    pub fn new(name: ProfileName) -> Self {
        let table2 = vec![Column::Finetune, Column::Clr];
        let four = vec![Column::Finetune, Column::Lrw, Column::Slr, Column::Clr];
        let both = vec![ScratchBudget::E, ScratchBudget::B];
        // ResNet-20 with half of every block's first conv removed (Li et al.'s rule, by ratio).
        let half_r20 = vec![Variant::ratio("resnet20", 0.5)];
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
                variants: Variant::CIFAR.to_vec(),
                retraining: table2,
                scratch: both,
                slr: "slr",
                keep_checkpoints: false,
            },
            // Sized from measured epoch times (docs/reproducing.md: ResNet-20 ~375 s per full
            // epoch here, the half-width one ~200 s): the paper's 4:1 ratio of original to
            // retraining epochs, the rate dropping at the paper's fractions (see `base_spec`),
            // Scratch-E = their sum, on the whole training split: about 4 hours on 2 cores.
            ProfileName::Cpu => Self {
                name,
                datasets: vec![DatasetKind::FashionMnist],
                data_dir: None,
                train_images: 60_000,
                original_epochs: 4,
                retrain_epochs: 1,
                scratch_epochs: 5,
                seeds: 3,
                batch_size: 64,
                limit_train: None,
                limit_eval: None,
                variants: half_r20,
                retraining: four,
                scratch: both,
                slr: "slr:per=iteration",
                keep_checkpoints: true,
            },
            // The cpu profile's protocol on 2,048 of the sample's 4,500 training images and
            // its whole 500 val + 1,000 test images, without Scratch-B: 39 epochs, 444 s here.
            ProfileName::Sample => Self {
                name,
                data_dir: Some(PathBuf::from("data/sample/fashion-mnist")),
                train_images: 5_000,
                limit_train: Some(2_048),
                scratch: vec![ScratchBudget::E],
                keep_checkpoints: false,
                ..Self::new(ProfileName::Cpu)
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
                variants: Variant::CIFAR.to_vec(),
                retraining: table2,
                scratch: both,
                slr: "slr",
                keep_checkpoints: false,
            },
        }
    }

    /// The text form of a retraining method's schedule (`ft`, `lrw`, `slr`, `clr`) in this
    /// profile: SLR as [`Profile::slr`] says, the others as named.
    pub fn schedule_text(&self, method: &'static str) -> &'static str {
        if method == "slr" { self.slr } else { method }
    }

    /// The columns of this profile's table, in print order.
    pub fn columns(&self) -> Vec<Column> {
        Column::EVERY
            .into_iter()
            .filter(|c| match c {
                Column::Unpruned => true,
                Column::ScratchE => self.scratch.contains(&ScratchBudget::E),
                Column::ScratchB => self.scratch.contains(&ScratchBudget::B),
                c => self.retraining.contains(c),
            })
            .collect()
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
        /// The fraction of every channel group's filters, instead of a version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ratio: Option<f64>,
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
    /// The pruning ratio (pruning, and the runs after it) of a ratio row.
    pub ratio: Option<f64>,
    /// The Table 2 column a training run fills (none for pruning and Figure 2's retraining).
    pub column: Option<Column>,
    /// Figure 2's retraining: the schedule (`ft`, `lrw`, `slr`, `clr`) and its budget in epochs.
    pub curve: Option<(&'static str, u32)>,
    /// The seed (for the report).
    pub seed: u32,
    /// Finished according to the results' records, whether or not its run directory is here:
    /// the executor does not run it again.
    pub recorded: bool,
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
            ratio: variant.ratio,
            column: None,
            curve: None,
            seed,
            recorded: false,
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
    /// last) of a pruned checkpoint, or a record of the finished run.
    pub fn is_done(&self) -> bool {
        if self.recorded {
            return true;
        }
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

    /// The version column of plans: `A`, `B`, `ratio=0.5` or `-`.
    pub fn version_name(&self) -> String {
        Variant {
            arch: self.arch,
            version: self.version,
            ratio: self.ratio,
        }
        .version_name()
    }

    /// `kind arch version seed` for logs.
    pub fn label(&self) -> String {
        let what = self.kind();
        let version = match (self.ratio, self.version) {
            (Some(r), _) => format!("@{r}"),
            (None, Some(v)) => format!("-{v}"),
            (None, None) => String::new(),
        };
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

/// Where the PFEC-pruned best model of the run `base` goes: `<hash>-pfec`, `<hash>-pfec-B`,
/// `<hash>-pfec-ratio0.5`.
pub fn pruned_dir(runs_dir: &Path, base: &ExperimentSpec, variant: Variant) -> PathBuf {
    runs_dir
        .join("pruned")
        .join(match (variant.ratio, variant.version) {
            (Some(r), _) => format!("{}-pfec-ratio{r}", base.hash()),
            (None, Some(v)) => format!("{}-pfec-{v}", base.hash()),
            (None, None) => format!("{}-pfec", base.hash()),
        })
}

/// What the PFEC-pruned best model of the run `base` is, before it exists: the grid names it
/// as `prunebench retrain` names the checkpoint once made (from its `origin.json`), so the two
/// give the same spec hash.
pub fn pruned_start(
    base: &ExperimentSpec,
    pruned_config: &ModelConfig,
    pruned_dir: &Path,
    variant: Variant,
) -> Start {
    Start {
        config: pruned_config.clone(),
        path: pruned_dir.to_path_buf(),
        id: CheckpointId::Pruned {
            origin: base.hash(),
            pruning: variant.pruning().to_string(),
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
            ratio: None,
            column: Some(Column::Unpruned),
            ..Node::train(runs_dir, base.clone(), vec![], dataset, variant, seed)
        });
        let pruned_config = crate::prune::pruned_config(&base.model, &variant.amount())
            .map_err(|e| e.context(format!("PFEC {}", variant.label())))?;
        let pruned_dir = pruned_dir(runs_dir, &base, variant);
        let pruned = pruned_start(&base, &pruned_config, &pruned_dir, variant);
        let prune = Task::Prune {
            from: run_dir(runs_dir, &base),
            version: variant.version,
            ratio: variant.ratio,
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
/// Scratch-B, the longest runs, comes after every other run of every seed: a grid stopped
/// early has whole seeds of the rest.
pub fn expand(profile: &Profile, variants: &[Variant], runs_dir: &Path) -> Result<Grid> {
    let mut grid = Grid::default();
    let mut last = Vec::new();
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

                for &column in &profile.retraining {
                    let text = column.schedule().ok_or_else(|| {
                        Error::Config(format!("{} is not a retraining column", column.title()))
                    })?;
                    let text = profile.schedule_text(text);
                    let spec =
                        spec::retrain(&trunk.base, &trunk.pruned, text, profile.retrain_epochs)?;
                    let node = grid.push_train(Node {
                        column: Some(column),
                        ..Node::train(runs_dir, spec, vec![trunk.prune], dataset, variant, seed)
                    });
                    cell(&mut grid, column, node);
                }
                for &budget in &profile.scratch {
                    let column = match budget {
                        ScratchBudget::E => Column::ScratchE,
                        ScratchBudget::B => Column::ScratchB,
                    };
                    let spec = spec::scratch(
                        &trunk.base,
                        &trunk.pruned.config,
                        budget,
                        profile.scratch_epochs,
                    )?;
                    let node = Node {
                        column: Some(column),
                        ..Node::train(runs_dir, spec, vec![], dataset, variant, seed)
                    };
                    if budget == ScratchBudget::B {
                        last.push(node);
                    } else {
                        let node = grid.push_train(node);
                        cell(&mut grid, column, node);
                    }
                }
            }
        }
    }
    for node in last {
        let dataset = node.dataset;
        let variant = Variant {
            arch: node.arch,
            version: node.version,
            ratio: node.ratio,
        };
        let i = grid.push_train(node);
        grid.cells.push(Cell {
            dataset,
            variant,
            column: Column::ScratchB,
            node: i,
        });
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
                            let text = profile.schedule_text(method);
                            let spec =
                                crate::spec::retrain(&trunk.base, &trunk.pruned, text, budget)?;
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

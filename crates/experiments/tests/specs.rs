//! Spec hashes that survive (issue 15): the CLI's retraining and the grid's give the same spec,
//! a retraining names its start by content, and golden hashes pin every kind of run so a change
//! of hash is a deliberate one.

use std::path::{Path, PathBuf};

use candle_core::Device;
use datasets::DatasetKind;
use experiments::grid::{self, Profile, ProfileName, Task, Variant};
use experiments::prune::{Pruning, pfec_config, prune_checkpoint};
use experiments::spec::{self, RetrainSettings, retrain_checkpoint};
use experiments::{CheckpointId, ExperimentSpec, Init};
use models::Model;
use prune_core::PfecVersion;
use train::run::{Best, RunDir, RunState, write_json};

fn smoke_base() -> ExperimentSpec {
    grid::base_spec(
        &Profile::new(ProfileName::Smoke),
        DatasetKind::FashionMnist,
        "resnet56",
        1,
    )
    .unwrap()
}

/// A finished run of `spec` in `dir` as the engine leaves it (its best model is an initialised
/// one): what pruning and retraining read, without training.
fn finished_run(dir: &Path, spec: &ExperimentSpec) {
    let run = RunDir::new(dir);
    std::fs::create_dir_all(dir).unwrap();
    write_json(&run.spec(), spec).unwrap();
    let model = Model::init(&spec.model, 1, &Device::Cpu).unwrap();
    model.save(&run.join("epoch-0000")).unwrap();
    model.save(&run.join("best-0000")).unwrap();
    let state = RunState {
        epochs_done: 1,
        global_step: 1,
        last_dir: RunState::epoch_dir(0),
        best: Some(Best {
            epoch: 0,
            val_acc: 0.5,
            test_acc: 0.5,
            test_loss: 1.0,
            dir: RunState::best_dir(0),
        }),
    };
    write_json(&run.state(), &state).unwrap();
}

fn settings(schedule: &str, epochs: u32) -> RetrainSettings {
    RetrainSettings {
        schedule: schedule.into(),
        epochs,
        dataset: None,
        data_dir: None,
        seed: None,
        batch_size: None,
        limit_train: None,
    }
}

#[test]
fn the_clis_retraining_and_the_grids_have_the_same_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let base = smoke_base();
    let runs = tmp.path().join("runs");
    let run = grid::run_dir(&runs, &base);
    finished_run(&run, &base);
    // What `prunebench prune --checkpoint RUN --method pfec --version B` then
    // `prunebench retrain --checkpoint PRUNED --schedule clr --epochs 1` build, into a folder of
    // the user's choosing...
    let by_hand = tmp.path().join("elsewhere/pruned-b");
    prune_checkpoint(&run, &Pruning::pfec(Some(PfecVersion::B)), &by_hand).unwrap();
    let profile = Profile::new(ProfileName::Smoke);
    for (column, text) in [(grid::Column::Finetune, "ft"), (grid::Column::Clr, "clr")] {
        let cli = retrain_checkpoint(&by_hand, &settings(text, profile.retrain_epochs)).unwrap();
        // ... is the grid's run of that cell, whose checkpoint lies elsewhere.
        let g = grid::expand(&profile, &[Variant::CIFAR[2]], &runs).unwrap();
        let cell = g
            .cells
            .iter()
            .find(|c| c.column == column && c.variant.version == Some(PfecVersion::B))
            .unwrap();
        let Task::Train { spec, .. } = &g.nodes[cell.node].task else {
            panic!("a training cell")
        };
        assert_eq!(cli.hash(), spec.hash(), "{text}");
        let Init::Checkpoint { path, id } = &cli.init else {
            panic!("{:?}", cli.init)
        };
        assert_eq!(
            path, &by_hand,
            "the spec still says where the checkpoint is"
        );
        assert_eq!(
            id.as_ref().unwrap(),
            &CheckpointId::Pruned {
                origin: base.hash(),
                pruning: "pfec:B".into()
            }
        );
    }
}

#[test]
fn a_start_named_by_content_hashes_without_its_path() {
    let base = smoke_base();
    let config = pfec_config(&base.model, Some(PfecVersion::A)).unwrap();
    let at = |p: &str| {
        grid::pruned_start(
            &base,
            &config,
            Path::new(p),
            Variant::version("resnet56", Some(PfecVersion::A)),
        )
    };
    let a = spec::retrain(&base, &at("runs/pruned/x"), "clr", 1).unwrap();
    let b = spec::retrain(&base, &at("/moved/runs/pruned/x"), "clr", 1).unwrap();
    assert_ne!(a, b, "the paths differ");
    assert_eq!(a.hash(), b.hash(), "the content does not");
    // Another pruning of the same run is another start.
    let other = spec::Start {
        id: CheckpointId::Pruned {
            origin: base.hash(),
            pruning: "pfec:B".into(),
        },
        ..at("runs/pruned/x")
    };
    assert_ne!(
        spec::retrain(&base, &other, "clr", 1).unwrap().hash(),
        a.hash()
    );
    // A spec written before content ids existed keeps its path in the hash, as it always had.
    let mut legacy = a.clone();
    legacy.init = Init::Checkpoint {
        path: PathBuf::from("runs/pruned/x"),
        id: None,
    };
    let mut legacy_moved = legacy.clone();
    legacy_moved.init = Init::Checkpoint {
        path: PathBuf::from("/moved/runs/pruned/x"),
        id: None,
    };
    assert_ne!(legacy.hash(), legacy_moved.hash());
    assert!(!legacy.to_json().contains("\"id\""), "None is not written");
}

#[test]
fn golden_hashes() {
    // Unpruned and scratch runs hash as before content ids (the smoke profile's, as
    // `cargo xtask reproduce table2 --profile smoke --dry-run` printed them at 3f6a460).
    let base = smoke_base();
    assert_eq!(base.hash(), "6f5968e111dc00cd");
    let b = pfec_config(&base.model, Some(PfecVersion::B)).unwrap();
    let scratch = spec::scratch(&base, &b, experiments::recipe::ScratchBudget::E, 2).unwrap();
    assert_eq!(scratch.hash(), "4caed4aa39bcddb3");
    // Retraining: the one hash change of issue 15 (the path left out), pinned from here on.
    let start = grid::pruned_start(
        &base,
        &b,
        Path::new("anywhere"),
        Variant::version("resnet56", Some(PfecVersion::B)),
    );
    assert_eq!(
        spec::retrain(&base, &start, "ft", 1).unwrap().hash(),
        "666362ccc9c99c9c"
    );
    assert_eq!(
        spec::retrain(&base, &start, "clr", 1).unwrap().hash(),
        "c087a43c56361beb"
    );
    // The paper's own base run of Table 2 (as before content ids, too).
    let paper = grid::base_spec(
        &Profile::new(ProfileName::Paper),
        DatasetKind::Cifar10,
        "resnet56",
        1,
    )
    .unwrap();
    assert_eq!(paper.hash(), "20dca722e4289b01");
}

#[test]
fn options_at_their_defaults_are_left_out_of_the_hash() {
    // OpenLTH's rule: a field added after the first specs is absent from the JSON while it holds
    // its default, so adding it changed no hash. Every such field is listed here; a new one
    // must join them.
    let base = smoke_base();
    let json = base.to_json();
    for field in ["limit_eval", "soft_prune", "\"id\""] {
        if field == "limit_eval" {
            continue; // the smoke profile sets it
        }
        assert!(!json.contains(field), "{field} at its default is written");
    }
    let mut on = base.clone();
    on.soft_prune = Some(0.3);
    assert_ne!(on.hash(), base.hash(), "a set option changes the hash");
    on.soft_prune = None;
    assert_eq!(on.hash(), base.hash());
    let mut limited = base.clone();
    limited.limit_eval = None;
    assert!(!limited.to_json().contains("limit_eval"));
}

//! The training loop on a tiny Fashion-MNIST-format dataset the test writes: a killed run
//! resumes to exactly the numbers of an uninterrupted one, a NaN loss stops the run keeping the
//! last good checkpoint, and run directories refuse what they should.

use std::path::Path;

use datasets::DatasetKind;
use models::{Model, ModelConfig};
use train::engine::{EpochMetrics, Silent, TrainOptions, train};
use train::{Error, ExperimentSpec, Init};

fn write_dataset(dir: &Path) {
    datasets::fixtures::write_bars(dir, 200, 50).unwrap();
}

fn spec(data: &Path, schedule: &str, epochs: u32) -> ExperimentSpec {
    let model = ModelConfig::from_name("resnet8", 10, 1).unwrap();
    let mut s = ExperimentSpec::paper(DatasetKind::FashionMnist, model);
    s.data_dir = Some(data.to_path_buf());
    s.schedule = schedule.parse().unwrap();
    s.epochs = epochs;
    s.batch_size = 32;
    s.eval_batch_size = 64;
    s.init = Init::Fresh { seed: 7 };
    s
}

fn metrics(run: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Everything but the timings.
fn numbers(m: &[EpochMetrics]) -> Vec<EpochMetrics> {
    m.iter()
        .map(|m| EpochMetrics {
            seconds: 0.0,
            images_per_sec: 0.0,
            ..m.clone()
        })
        .collect()
}

#[test]
fn a_killed_run_resumes_to_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data);
    let mut s = spec(&data, "clr", 3);
    s.limit_train = Some(64);

    let whole = tmp.path().join("whole");
    let a = train(&s, &whole, &TrainOptions::default(), &mut Silent).unwrap();
    assert_eq!(metrics(&whole).len(), 3);

    let parts = tmp.path().join("parts");
    let stop = TrainOptions {
        stop_after: Some(1),
        ..Default::default()
    };
    assert!(train(&s, &parts, &stop, &mut Silent).is_err());
    assert_eq!(metrics(&parts).len(), 1);
    // Without --resume a started run is refused.
    let e = train(&s, &parts, &TrainOptions::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("pass --resume"), "{e}");
    let resume = TrainOptions {
        resume: true,
        ..Default::default()
    };
    let b = train(&s, &parts, &resume, &mut Silent).unwrap();

    assert_eq!(numbers(&metrics(&whole)), numbers(&metrics(&parts)));
    assert_eq!(
        (a.best_epoch, a.test_acc, a.best_val_acc, a.final_test_acc),
        (b.best_epoch, b.test_acc, b.best_val_acc, b.final_test_acc)
    );
    // The best models are bit-identical.
    let ma = Model::load(&whole.join(&a.best_model), &candle_core::Device::Cpu)
        .unwrap()
        .tensors()
        .unwrap();
    let mb = Model::load(&parts.join(&b.best_model), &candle_core::Device::Cpu)
        .unwrap()
        .tensors()
        .unwrap();
    for (name, t) in &ma {
        let diff = (t - &mb[name])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
    // Only the last checkpoint and the best model are kept.
    let mut dirs: Vec<String> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-") || n.starts_with("best-"))
        .collect();
    dirs.sort();
    let mut expected = vec!["epoch-0002".to_string(), b.best_model.clone()];
    expected.sort();
    expected.dedup();
    assert_eq!(dirs, expected);
    // A finished run is not redone.
    let again = train(&s, &parts, &resume, &mut Silent).unwrap();
    assert_eq!(again, b);
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data);
    // A sane first epoch, then a rate that blows the weights up.
    let mut s = spec(&data, "step:0.01@0,1e30@1", 3);
    s.limit_train = Some(64);
    let run = tmp.path().join("run");
    let e = train(&s, &run, &TrainOptions::default(), &mut Silent).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::NonFinite { epoch: 1, .. }), "{text}");
    assert!(
        text.contains("at epoch 1, iteration") && text.contains("epoch-0000"),
        "{text}"
    );
    assert!(run.join("epoch-0000/model.safetensors").is_file());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["epochs_done"], 1);
    assert!(!run.join("result.json").exists());
}

#[test]
fn a_run_directory_holds_one_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data);
    let run = tmp.path().join("run");
    let mut s = spec(&data, "ft", 1);
    s.limit_train = Some(40);
    train(&s, &run, &TrainOptions::default(), &mut Silent).unwrap();
    let mut other = s.clone();
    other.seed = 2;
    let e = train(
        &other,
        &run,
        &TrainOptions {
            resume: true,
            ..Default::default()
        },
        &mut Silent,
    )
    .unwrap_err();
    assert!(e.to_string().contains("holds another experiment"), "{e}");
    // The spec on disk is the spec.
    let on_disk: ExperimentSpec =
        serde_json::from_str(&std::fs::read_to_string(run.join("spec.json")).unwrap()).unwrap();
    assert_eq!(on_disk, s);
}

#[test]
fn a_model_for_another_dataset_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path(), "ft", 1);
    s.model = ModelConfig::from_name("resnet8", 10, 3).unwrap();
    let e = train(
        &s,
        &tmp.path().join("run"),
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap_err();
    assert!(e.to_string().contains("takes 3 channels"), "{e}");
}

#[test]
fn soft_filter_pruning_zeroes_the_weakest_filters_after_every_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data);
    let mut s = spec(&data, "ft:lr=0.05", 2);
    s.limit_train = Some(32);
    s.soft_prune = Some(0.5);
    let run = tmp.path().join("run");
    let r = train(&s, &run, &TrainOptions::default(), &mut Silent).unwrap();
    let model = Model::load(&run.join(&r.best_model), &candle_core::Device::Cpu).unwrap();
    let tensors = model.tensors().unwrap();
    for group in model.config().channel_groups() {
        let w = &tensors[&group.score_tensor];
        let rows = w
            .flatten_from(1)
            .unwrap()
            .abs()
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let zero = rows.iter().filter(|&&v| v == 0.0).count();
        assert_eq!(
            zero,
            group.channels / 2,
            "{}: {zero} of {} filters zero",
            group.name,
            group.channels
        );
    }
    // The spec records it; a rate outside [0, 1) is refused.
    assert!(
        std::fs::read_to_string(run.join("spec.json"))
            .unwrap()
            .contains("\"soft_prune\": 0.5")
    );
    s.soft_prune = Some(1.0);
    let e = train(
        &s,
        &tmp.path().join("bad"),
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("soft-pruning rate must be in [0, 1)"),
        "{e}"
    );
}

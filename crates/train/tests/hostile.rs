//! Inputs a careless user or a tampered run folder can give the training loop: a model that
//! diverges, specs that are refused, run states that lie, masks that are not masks, empty
//! splits. Each is refused with an error naming the problem, and nothing finished is lost.

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use datasets::DatasetKind;
use models::{Model, ModelConfig};
use train::engine::{Silent, TrainOptions, train};
use train::{Error, ExperimentSpec, Init};

fn data(tmp: &Path) -> PathBuf {
    let dir = tmp.join("data");
    fs::create_dir(&dir).unwrap();
    datasets::fixtures::write_bars(&dir, 120, 30).unwrap();
    dir
}

fn spec(data: &Path, schedule: &str, epochs: u32) -> ExperimentSpec {
    let model = ModelConfig::from_name("resnet8", 10, 1).unwrap();
    let mut s = ExperimentSpec::paper(DatasetKind::FashionMnist, model);
    s.data_dir = Some(data.to_path_buf());
    s.schedule = schedule.parse().unwrap();
    s.epochs = epochs;
    s.batch_size = 32;
    s.eval_batch_size = 64;
    s.limit_train = Some(32);
    s.init = Init::Fresh { seed: 3 };
    s
}

/// Every JSON text under `dir`, by file.
fn json_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let ext = p.extension().and_then(|e| e.to_str());
        if matches!(ext, Some("json" | "jsonl")) {
            out.push((p.clone(), fs::read_to_string(&p).unwrap()));
        }
    }
    out
}

#[test]
fn a_model_that_diverges_on_its_last_step_stops_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    // One iteration at a rate of 1e8: its loss is finite, the weights after it are not.
    let s = spec(&data, "step:1e8@0", 1);
    let run = tmp.path().join("run");
    let e = train(&s, &run, &TrainOptions::default(), &mut Silent).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            Error::NonFiniteEval {
                split: "validation",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("validation loss is") && text.contains("after epoch 0"),
        "{text}"
    );
    assert!(!run.join("result.json").exists());
    assert!(!run.join("state.json").exists());
    for (path, text) in json_files(&run) {
        assert!(!text.contains("null"), "{}: {text}", path.display());
    }
    // The folder stays usable: the same spec fails the same way instead of on a bad file.
    let again = train(&s, &run, &TrainOptions::default(), &mut Silent).unwrap_err();
    assert!(matches!(again, Error::NonFiniteEval { .. }), "{again}");
}

#[test]
fn refused_specs_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let run = tmp.path().join("run");
    let zero = spec(&data, "ft", 0);
    let e = train(&zero, &run, &TrainOptions::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("at least 1 epoch"), "{e}");
    assert!(!run.exists());
    let mut nan = spec(&data, "ft", 1);
    nan.sgd.momentum = f64::NAN;
    let e = train(&nan, &run, &TrainOptions::default(), &mut Silent).unwrap_err();
    assert!(e.to_string().contains("momentum must be finite"), "{e}");
    assert!(!run.exists());
    // And the folder then takes a valid run.
    train(
        &spec(&data, "ft", 1),
        &run,
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap();
}

#[test]
fn empty_splits_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let mut s = spec(&data, "ft", 1);
    s.limit_eval = Some(0);
    let e = train(
        &s,
        &tmp.path().join("a"),
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap_err();
    assert!(e.to_string().contains("validation split"), "{e}");
    let mut s = spec(&data, "ft", 1);
    s.val_fraction = 0.0;
    let e = train(
        &s,
        &tmp.path().join("b"),
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    assert!(!tmp.path().join("a").exists() && !tmp.path().join("b").exists());
}

/// A run stopped after its first of two epochs, and what resuming it gives.
fn stopped_run(tmp: &Path) -> (ExperimentSpec, PathBuf) {
    let data = data(tmp);
    let s = spec(&data, "ft", 2);
    let run = tmp.join("run");
    let stop = TrainOptions {
        stop_after: Some(1),
        ..Default::default()
    };
    assert!(train(&s, &run, &stop, &mut Silent).is_err());
    (s, run)
}

/// Resumes the run; the error as its message.
fn resume(s: &ExperimentSpec, run: &Path) -> Result<train::engine::RunResult, String> {
    let opts = TrainOptions {
        resume: true,
        ..Default::default()
    };
    train(s, run, &opts, &mut Silent).map_err(|e| e.to_string())
}

fn edit_state(run: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = run.join("state.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn a_state_that_points_outside_the_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, run) = stopped_run(tmp.path());
    // A model outside the run that a followed path would load.
    let outside = tmp.path().join("outside");
    Model::init(&s.model, 9, &Device::Cpu)
        .unwrap()
        .save(&outside)
        .unwrap();
    let original = fs::read_to_string(run.join("state.json")).unwrap();
    for (field, value) in [
        ("last_dir", "../outside"),
        ("last_dir", outside.to_str().unwrap()),
        ("last_dir", "epoch-0001"),
    ] {
        fs::write(run.join("state.json"), &original).unwrap();
        edit_state(&run, |v| v[field] = value.into());
        let text = resume(&s, &run).unwrap_err();
        assert!(
            text.contains("state.json") && text.contains("last_dir"),
            "{value}: {text}"
        );
    }
    fs::write(run.join("state.json"), &original).unwrap();
    edit_state(&run, |v| v["best"]["dir"] = "../outside".into());
    let e = resume(&s, &run).unwrap_err();
    assert!(e.to_string().contains("best.dir"), "{e}");
    assert!(outside.join("model.safetensors").is_file());
}

#[test]
fn a_state_beyond_the_spec_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, run) = stopped_run(tmp.path());
    let original = fs::read_to_string(run.join("state.json")).unwrap();
    edit_state(&run, |v| {
        v["epochs_done"] = 5.into();
        v["last_dir"] = "epoch-0004".into();
    });
    let e = resume(&s, &run).unwrap_err();
    assert!(
        e.to_string().contains("5 epochs done, but the spec has 2"),
        "{e}"
    );
    fs::write(run.join("state.json"), &original).unwrap();
    edit_state(&run, |v| v["global_step"] = 7.into());
    let e = resume(&s, &run).unwrap_err();
    assert!(e.to_string().contains("global_step is 7"), "{e}");
    // The untouched state still resumes.
    fs::write(run.join("state.json"), &original).unwrap();
    resume(&s, &run).unwrap();
}

#[test]
fn a_checkpoint_of_another_model_in_the_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, run) = stopped_run(tmp.path());
    let other = ModelConfig::from_name("resnet14", 10, 1).unwrap();
    let dir = run.join("epoch-0000");
    fs::remove_file(dir.join("model.safetensors")).unwrap();
    Model::init(&other, 1, &Device::Cpu)
        .unwrap()
        .save(&dir)
        .unwrap();
    let e = resume(&s, &run).unwrap_err();
    assert!(
        e.to_string().contains("holds a resnet14 model") && e.to_string().contains("epoch-0000"),
        "{e}"
    );
}

/// A model directory with hand-written masks, and a retraining spec starting from it.
fn masked_start(tmp: &Path, masks: Vec<(String, Tensor)>) -> ExperimentSpec {
    let data = data(tmp);
    let mut s = spec(&data, "ft", 1);
    let dir = tmp.join("pruned");
    Model::init(&s.model, 1, &Device::Cpu)
        .unwrap()
        .save(&dir)
        .unwrap();
    let masks: std::collections::HashMap<String, Tensor> = masks.into_iter().collect();
    candle_core::safetensors::save(&masks, dir.join(prune_core::MASKS_FILE)).unwrap();
    s.init = Init::Checkpoint {
        path: dir,
        id: None,
    };
    s
}

#[test]
fn masks_that_are_not_masks_are_refused() {
    let config = ModelConfig::from_name("resnet8", 10, 1).unwrap();
    let name = config.conv_weight_names()[1].clone();
    let model = Model::init(&config, 1, &Device::Cpu).unwrap();
    let shape = model.tensors().unwrap()[&name].dims().to_vec();
    let filled = |v: f32| Tensor::full(v, shape.as_slice(), &Device::Cpu).unwrap();
    let cases: Vec<(Vec<(String, Tensor)>, &str)> = vec![
        (vec![(name.clone(), filled(0.5))], "0.5"),
        (vec![(name.clone(), filled(7.0))], "7"),
        (vec![(name.clone(), filled(f32::NAN))], "NaN"),
        (
            vec![("no.such.weight".to_string(), filled(1.0))],
            "no.such.weight",
        ),
        (
            vec![(
                name.clone(),
                Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
            )],
            "has shape [3]",
        ),
    ];
    for (masks, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let s = masked_start(tmp.path(), masks);
        let run = tmp.path().join("run");
        let e = train(&s, &run, &TrainOptions::default(), &mut Silent).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("masks.safetensors") && text.contains(needle),
            "{needle}: {text}"
        );
        assert!(!run.exists(), "{needle}: a refused start leaves no run");
    }
}

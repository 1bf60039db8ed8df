//! Checkpoint files: round trips, and every kind of bad file gives an error naming the file and
//! the first faulty tensor, never a panic. Bad files are written here, in a temporary directory.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, ModuleT, Tensor};
use models::checkpoint::{self, CONFIG_FILE, CONFIG_METADATA_KEY, WEIGHTS_FILE};
use models::{Error, Model, ModelConfig};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// A raw tensor for hand-made files: dtype, shape, little-endian bytes.
type Raw = (Dtype, Vec<usize>, Vec<u8>);

fn small() -> (ModelConfig, Model) {
    let config = ModelConfig::resnet(8, 10, 3).unwrap();
    let model = Model::init(&config, 11, &Device::Cpu).unwrap();
    (config, model)
}

fn raw_tensors(model: &Model) -> HashMap<String, Raw> {
    model
        .tensors()
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (n, (Dtype::F32, t.dims().to_vec(), bytes))
        })
        .collect()
}

fn write_raw(
    path: &Path,
    tensors: &HashMap<String, Raw>,
    metadata: Option<HashMap<String, String>>,
) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

fn meta(config: &ModelConfig) -> Option<HashMap<String, String>> {
    Some(HashMap::from([(
        CONFIG_METADATA_KEY.to_string(),
        config.to_json(),
    )]))
}

#[test]
fn save_then_load_gives_the_same_model() {
    let (config, model) = small();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    assert!(dir.path().join(WEIGHTS_FILE).is_file());
    let json = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
    assert_eq!(ModelConfig::from_json(&json).unwrap(), config);
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    let back = Model::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(back.config(), &config);
    let (a, b) = (model.tensors().unwrap(), back.tensors().unwrap());
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let x: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b[name].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(x, y, "{name}");
    }
    let input = Tensor::ones((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let la: Vec<Vec<f32>> = model.forward_t(&input, false).unwrap().to_vec2().unwrap();
    let lb: Vec<Vec<f32>> = back.forward_t(&input, false).unwrap().to_vec2().unwrap();
    assert_eq!(la, lb);
}

#[test]
fn config_json_beside_the_file_is_used_without_metadata_and_num_batches_tracked_is_ignored() {
    let (config, model) = small();
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_tensors(&model);
    raw.insert(
        "bn1.num_batches_tracked".into(),
        (Dtype::I64, vec![], 3i64.to_le_bytes().to_vec()),
    );
    let file = dir.path().join(WEIGHTS_FILE);
    write_raw(&file, &raw, None);
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::NoConfig { .. }), "{err}");
    std::fs::write(dir.path().join(CONFIG_FILE), config.to_json()).unwrap();
    let ckpt = checkpoint::load(&file, &Device::Cpu).unwrap();
    assert_eq!(ckpt.config, config);
    assert_eq!(ckpt.tensors.len(), config.tensor_specs().len());
}

/// Writes `raw` with the config in its metadata and returns the loader's error message.
fn load_error(config: &ModelConfig, raw: &HashMap<String, Raw>) -> (Error, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.safetensors");
    write_raw(&file, raw, meta(config));
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.safetensors"), "no file name in: {msg}");
    (err, msg)
}

#[test]
fn a_missing_tensor_is_named() {
    let (config, model) = small();
    let mut raw = raw_tensors(&model);
    raw.remove("layer2.0.bn1.running_var");
    let (err, msg) = load_error(&config, &raw);
    assert!(matches!(err, Error::MissingTensor { .. }), "{msg}");
    assert!(msg.contains("layer2.0.bn1.running_var"), "{msg}");
}

#[test]
fn an_unexpected_tensor_is_named() {
    let (config, model) = small();
    let mut raw = raw_tensors(&model);
    raw.insert(
        "layer9.0.conv1.weight".into(),
        (Dtype::F32, vec![1], vec![0; 4]),
    );
    let (err, msg) = load_error(&config, &raw);
    assert!(matches!(err, Error::UnexpectedTensor { .. }), "{msg}");
    assert!(msg.contains("layer9.0.conv1.weight"), "{msg}");
}

#[test]
fn a_wrong_shape_is_named() {
    let (config, model) = small();
    let mut raw = raw_tensors(&model);
    // A pruned width where the config says unpruned: 8 filters instead of 16.
    raw.insert(
        "layer1.0.conv1.weight".into(),
        (Dtype::F32, vec![8, 16, 3, 3], vec![0; 8 * 16 * 9 * 4]),
    );
    let (err, msg) = load_error(&config, &raw);
    assert!(matches!(err, Error::Shape { .. }), "{msg}");
    assert!(
        msg.contains("layer1.0.conv1.weight") && msg.contains("[8, 16, 3, 3]"),
        "{msg}"
    );
}

#[test]
fn a_wrong_dtype_is_named() {
    let (config, model) = small();
    let mut raw = raw_tensors(&model);
    raw.insert("fc.bias".into(), (Dtype::F64, vec![10], vec![0; 80]));
    let (err, msg) = load_error(&config, &raw);
    assert!(matches!(err, Error::Dtype { .. }), "{msg}");
    assert!(msg.contains("fc.bias") && msg.contains("F64"), "{msg}");
}

#[test]
fn truncated_corrupt_empty_and_absent_files_are_errors() {
    let (_, model) = small();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let good = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 100].to_vec()),
        ("header_cut", good[..40].to_vec()),
        ("empty", Vec::new()),
        (
            "garbage",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("huge_header_length", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
    ];
    for (name, bytes) in cases {
        let file = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&file, bytes).unwrap();
        let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = Model::load(&dir.path().join("absent"), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn a_corrupt_config_in_the_metadata_is_an_error() {
    let (_, model) = small();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(WEIGHTS_FILE);
    let metadata = HashMap::from([(
        CONFIG_METADATA_KEY.to_string(),
        "{\"arch\":\"resnet\"".to_string(),
    )]);
    write_raw(&file, &raw_tensors(&model), Some(metadata));
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::BadConfig { .. }), "{err}");
}

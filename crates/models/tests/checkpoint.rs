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

/// `raw` with the f32 tensor `name`'s element `index` set to `value`.
fn poke(raw: &mut HashMap<String, Raw>, name: &str, index: usize, value: f32) {
    let bytes = &mut raw.get_mut(name).unwrap().2;
    bytes[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn nan_and_infinite_weights_are_refused_by_name() {
    let (config, model) = small();
    for (tensor, value) in [
        ("layer1.0.conv1.weight", f32::NAN),
        ("fc.bias", f32::INFINITY),
        ("bn1.running_mean", f32::NEG_INFINITY),
    ] {
        let mut raw = raw_tensors(&model);
        poke(&mut raw, tensor, 3, value);
        let (err, msg) = load_error(&config, &raw);
        match err {
            Error::NonFinite {
                tensor: t,
                index,
                value: v,
                ..
            } => {
                assert_eq!((t.as_str(), index), (tensor, 3), "{msg}");
                assert_eq!(v.to_bits(), value.to_bits(), "{msg}");
            }
            other => panic!("expected NonFinite for {tensor}, got {other}"),
        }
    }
}

#[test]
fn a_negative_running_variance_is_refused_by_name() {
    let (config, model) = small();
    let mut raw = raw_tensors(&model);
    poke(&mut raw, "layer1.0.bn2.running_var", 5, -0.25);
    let (err, msg) = load_error(&config, &raw);
    assert!(
        matches!(&err, Error::NegativeVariance { tensor, index: 5, .. } if tensor == "layer1.0.bn2.running_var"),
        "{msg}"
    );
    assert!(msg.contains("-0.25"), "{msg}");
    // A negative running mean or BatchNorm weight is legitimate.
    let mut raw = raw_tensors(&model);
    poke(&mut raw, "layer1.0.bn2.running_mean", 5, -0.25);
    poke(&mut raw, "layer1.0.bn2.weight", 5, -0.25);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.safetensors");
    write_raw(&file, &raw, meta(&config));
    checkpoint::load(&file, &Device::Cpu).unwrap();
}

#[test]
fn saving_non_finite_weights_is_refused_and_writes_nothing() {
    let (config, model) = small();
    let mut tensors = model.tensors().unwrap();
    let w = &tensors["fc.weight"];
    let nan = (w * f64::NAN).unwrap();
    tensors.insert("fc.weight".into(), nan);
    let dir = tempfile::tempdir().unwrap();
    let err = checkpoint::save(dir.path(), &config, &tensors).unwrap_err();
    assert!(
        matches!(&err, Error::NonFinite { tensor, index: 0, .. } if tensor == "fc.weight"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn special_files_are_refused_by_name_without_reading_them() {
    let err = checkpoint::load(Path::new("/dev/zero"), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert_eq!(
        chain,
        "/dev/zero: is a character device, not a regular file"
    );

    // A weights file without metadata, and a FIFO where its config.json should be: refused, not
    // opened (opening a FIFO blocks until a writer comes).
    let (_, model) = small();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(WEIGHTS_FILE);
    write_raw(&file, &raw_tensors(&model), None);
    let fifo = dir.path().join(CONFIG_FILE);
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    let source = std::error::Error::source(&err).map(|s| s.to_string());
    assert!(
        matches!(&err, Error::Io { file, .. } if file == &fifo),
        "{err}"
    );
    assert_eq!(source.as_deref(), Some("is a FIFO, not a regular file"));
}

#[test]
fn a_header_that_does_not_cover_the_file_is_refused_before_the_data_is_read() {
    let (_, model) = small();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let good = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
    // Trailing bytes after the last tensor: the header no longer describes the file.
    let mut longer = good.clone();
    longer.extend([0u8; 1000]);
    let file = dir.path().join("longer.safetensors");
    std::fs::write(&file, &longer).unwrap();
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let data = good.len() - 8 - u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    assert!(
        err.to_string().contains(&format!(
            "the header's tensors end at byte {data} of the data, the file has {} bytes",
            data + 1000
        )),
        "{err}"
    );
    // A header length past the end of the file.
    let mut cut = good[..100].to_vec();
    cut[..8].copy_from_slice(&1000u64.to_le_bytes());
    let file = dir.path().join("cut.safetensors");
    std::fs::write(&file, &cut).unwrap();
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("a header of 1000 bytes does not fit in a file of 100 bytes"),
        "{err}"
    );
}

#[test]
fn an_oversized_config_in_the_metadata_is_refused() {
    let (_, model) = small();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(WEIGHTS_FILE);
    let huge = " ".repeat(files::SMALL as usize + 1);
    let metadata = HashMap::from([(CONFIG_METADATA_KEY.to_string(), huge)]);
    write_raw(&file, &raw_tensors(&model), Some(metadata));
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, Error::BadConfig { .. }) && err.to_string().contains("more than the"),
        "{err}"
    );
}

#[test]
fn huge_widths_in_a_config_json_are_refused_with_a_clear_error() {
    // Widths of 2^63 used to wrap the parameter count around to 1,498.
    let w = 1u64 << 63;
    let json = format!(
        r#"{{"arch":"resnet","depth":8,"in_channels":3,"num_classes":10,"block_widths":[{w},16,16]}}"#
    );
    let err = ModelConfig::from_json(&json).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid model config: ResNet block width must be at most 65536, got {w}")
    );
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = small();
    let file = dir.path().join(WEIGHTS_FILE);
    write_raw(&file, &raw_tensors(&model), None);
    std::fs::write(dir.path().join(CONFIG_FILE), &json).unwrap();
    let err = checkpoint::load(&file, &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::BadConfig { .. }), "{err}");
}

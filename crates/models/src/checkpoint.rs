//! Checkpoints: `model.safetensors` with PyTorch `state_dict` names (f32) and the config JSON in
//! its `__metadata__`, plus the same config as `config.json` beside it.
//!
//! PyTorch reads the weights with `safetensors.torch.load_file` and `load_state_dict(...,
//! strict=False)` (only `num_batches_tracked` is absent); we read PyTorch's files back, with or
//! without `num_batches_tracked`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// The weights file inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The config file inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// The safetensors metadata key that holds the config JSON.
pub const CONFIG_METADATA_KEY: &str = "prunebench_config";

/// A loaded checkpoint: the config and every tensor, validated against it.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The model config.
    pub config: ModelConfig,
    /// Every `state_dict` tensor by PyTorch name (no `num_batches_tracked`).
    pub tensors: HashMap<String, Tensor>,
}

/// Writes `dir/model.safetensors` (config in the metadata) and `dir/config.json`, each through a
/// temporary file and a rename so a crash never leaves half a file. The tensors are checked
/// against the config first.
pub fn save(dir: &Path, config: &ModelConfig, tensors: &HashMap<String, Tensor>) -> Result<()> {
    config.validate()?;
    let tensors = validate_tensors(config, tensors.clone(), "tensors to save")?;
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        file: dir.to_path_buf(),
        source,
    })?;
    let weights = dir.join(WEIGHTS_FILE);
    // Raw little-endian f32 bytes per tensor, held here so the views can borrow them.
    let mut raw: BTreeMap<&str, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, t) in &tensors {
        let values = t
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw.insert(name, (t.dims().to_vec(), bytes));
    }
    let bytes = serialize(config, &raw).map_err(|source| Error::Corrupt {
        file: weights.clone(),
        source,
    })?;
    write_atomic(&weights, &bytes)?;
    let mut json = config.to_json();
    json.push('\n');
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

fn serialize(
    config: &ModelConfig,
    raw: &BTreeMap<&str, (Vec<usize>, Vec<u8>)>,
) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
    let views = raw
        .iter()
        .map(|(name, (shape, bytes))| {
            Ok((*name, TensorView::new(Dtype::F32, shape.clone(), bytes)?))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let metadata = HashMap::from([(CONFIG_METADATA_KEY.to_string(), config.to_json())]);
    safetensors::serialize(views, Some(metadata))
}

/// Reads a checkpoint: `path` is its directory or its `.safetensors` file. The config comes from
/// the file's metadata, else from `config.json` beside it. Every tensor is checked against the
/// config; the first mismatch is an error naming the file and the tensor.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let file = if path.is_dir() {
        path.join(WEIGHTS_FILE)
    } else {
        path.to_path_buf()
    };
    let bytes = read(&file)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|source| Error::Corrupt {
        file: file.clone(),
        source,
    })?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(|source| Error::Corrupt {
        file: file.clone(),
        source,
    })?;
    let config = match metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_METADATA_KEY))
    {
        Some(json) => ModelConfig::from_json(json).map_err(|e| Error::BadConfig {
            file: file.clone(),
            detail: e.to_string(),
        })?,
        None => {
            let beside = file.with_file_name(CONFIG_FILE);
            if !beside.is_file() {
                return Err(Error::NoConfig { file });
            }
            let text = String::from_utf8_lossy(&read(&beside)?).into_owned();
            ModelConfig::from_json(&text).map_err(|e| Error::BadConfig {
                file: beside,
                detail: e.to_string(),
            })?
        }
    };
    let tensors = read_tensors(&st, &config, &file, device)?;
    Ok(Checkpoint { config, tensors })
}

/// Reads the tensors of a safetensors file (e.g. a PyTorch `state_dict` saved with
/// `safetensors.torch.save_file`) for a known config, checking each name, dtype and shape.
pub fn load_tensors(
    file: &Path,
    config: &ModelConfig,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    config.validate()?;
    let bytes = read(file)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|source| Error::Corrupt {
        file: file.to_path_buf(),
        source,
    })?;
    read_tensors(&st, config, file, device)
}

fn read_tensors(
    st: &SafeTensors,
    config: &ModelConfig,
    file: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let origin = file.display().to_string();
    check_names(config, st.names().into_iter(), &origin)?;
    let mut out = HashMap::new();
    for spec in config.tensor_specs() {
        let view = st.tensor(&spec.name).map_err(|_| Error::MissingTensor {
            origin: origin.clone(),
            tensor: spec.name.clone(),
        })?;
        // F16 and BF16 widen to f32 without loss (PyTorch fixtures store weights as F16 to stay
        // small); anything else would change values, so it is refused.
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(Error::Dtype {
                    origin,
                    tensor: spec.name,
                    found: format!("{other:?}"),
                });
            }
        };
        if view.shape() != spec.shape.as_slice() {
            return Err(Error::Shape {
                origin,
                tensor: spec.name,
                expected: spec.shape,
                found: view.shape().to_vec(),
            });
        }
        let t = Tensor::from_raw_buffer(view.data(), dtype, &spec.shape, device)?
            .to_dtype(DType::F32)?;
        out.insert(spec.name, t);
    }
    Ok(out)
}

/// `num_batches_tracked` is a PyTorch BatchNorm buffer we neither use nor require.
fn is_ignored(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
}

/// Every config tensor present, no tensor the config lacks; the first fault in forward order (for
/// missing) or name order (for unexpected) is reported.
fn check_names<'a>(
    config: &ModelConfig,
    names: impl Iterator<Item = &'a str>,
    origin: &str,
) -> Result<()> {
    let mut present: Vec<&str> = names.filter(|n| !is_ignored(n)).collect();
    present.sort_unstable();
    let specs = config.tensor_specs();
    for spec in &specs {
        if present.binary_search(&spec.name.as_str()).is_err() {
            return Err(Error::MissingTensor {
                origin: origin.to_string(),
                tensor: spec.name.clone(),
            });
        }
    }
    if present.len() != specs.len() {
        let mut wanted: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        wanted.sort_unstable();
        if let Some(extra) = present.iter().find(|n| wanted.binary_search(n).is_err()) {
            return Err(Error::UnexpectedTensor {
                origin: origin.to_string(),
                tensor: (*extra).to_string(),
            });
        }
    }
    Ok(())
}

/// Checks in-memory tensors against the config (names, shapes, a dtype that widens to f32 without
/// loss), dropping any `num_batches_tracked`.
pub(crate) fn validate_tensors(
    config: &ModelConfig,
    mut tensors: HashMap<String, Tensor>,
    origin: &str,
) -> Result<HashMap<String, Tensor>> {
    tensors.retain(|n, _| !is_ignored(n));
    check_names(config, tensors.keys().map(String::as_str), origin)?;
    for spec in config.tensor_specs() {
        let t = &tensors[&spec.name];
        if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            return Err(Error::Dtype {
                origin: origin.to_string(),
                tensor: spec.name,
                found: format!("{:?}", t.dtype()),
            });
        }
        if t.dims() != spec.shape.as_slice() {
            return Err(Error::Shape {
                origin: origin.to_string(),
                tensor: spec.name,
                expected: spec.shape,
                found: t.dims().to_vec(),
            });
        }
    }
    Ok(tensors)
}

fn read(file: &Path) -> Result<Vec<u8>> {
    fs::read(file).map_err(|source| Error::Io {
        file: file.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::Io {
            file: path.to_path_buf(),
            source,
        }
    })
}

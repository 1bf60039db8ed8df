//! Checkpoints: `model.safetensors` with PyTorch `state_dict` names (f32) and the config JSON in
//! its `__metadata__`, plus the same config as `config.json` beside it.
//!
//! PyTorch reads the weights with `safetensors.torch.load_file` and `load_state_dict(...,
//! strict=False)` (only `num_batches_tracked` is absent); we read PyTorch's files back, with or
//! without `num_batches_tracked`.
//!
//! Files are not trusted: a weights file is read only after its header's offsets are found to
//! cover exactly the file's length (at most [`files::LARGE`]), a config is at most
//! [`files::SMALL`], FIFOs and devices are refused by name, and every weight must be finite and
//! every running variance non-negative ([`check_values`]).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::layout::{TensorRole, TensorSpec};

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
    // A file the loader would refuse is not written: a diverged model fails here, by name.
    check_values(config, &tensors, "tensors to save")?;
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
    let bytes = serialize(config, &raw).map_err(|e| Error::Corrupt {
        file: weights.clone(),
        detail: e.to_string(),
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
/// config, and its values with [`check_values`]; the first fault is an error naming the file and
/// the tensor.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let file = if path.is_dir() {
        path.join(WEIGHTS_FILE)
    } else {
        path.to_path_buf()
    };
    let bytes = read_safetensors(&file)?;
    let st = deserialize(&bytes, &file)?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(&file, e))?;
    let config = match metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_METADATA_KEY))
    {
        Some(json) => {
            // The same cap as a `config.json`: the header may hold up to 100 MB.
            if json.len() as u64 > files::SMALL {
                return Err(Error::BadConfig {
                    file,
                    detail: format!(
                        "the config in the metadata is {} bytes, more than the {} a config may have",
                        json.len(),
                        files::SMALL
                    ),
                });
            }
            ModelConfig::from_json(json).map_err(|e| Error::BadConfig {
                file: file.clone(),
                detail: e.to_string(),
            })?
        }
        None => {
            let beside = file.with_file_name(CONFIG_FILE);
            // `exists`, not `is_file`: a FIFO or a directory there is refused by name below.
            if !beside.exists() {
                return Err(Error::NoConfig { file });
            }
            let text =
                files::read_to_string(&beside, files::SMALL).map_err(|source| Error::Io {
                    file: beside.clone(),
                    source,
                })?;
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
/// `safetensors.torch.save_file`) for a known config, checking each name, dtype, shape and
/// value ([`check_values`]).
pub fn load_tensors(
    file: &Path,
    config: &ModelConfig,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    config.validate()?;
    let bytes = read_safetensors(file)?;
    let st = deserialize(&bytes, file)?;
    read_tensors(&st, config, file, device)
}

/// safetensors' own cap on a header (`MAX_HEADER_SIZE` in safetensors 0.8).
const MAX_HEADER_BYTES: u64 = 100_000_000;

fn corrupt(file: &Path, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        file: file.to_path_buf(),
        detail: e.to_string(),
    }
}

fn deserialize<'a>(bytes: &'a [u8], file: &Path) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| corrupt(file, e))
}

/// The bytes of a safetensors file, read only once its header is known to describe exactly the
/// file's length: a file of at most [`files::LARGE`] bytes, an 8-byte header length, a JSON
/// header, then the tensor data whose last offset must be the end of the file.
///
/// safetensors checks the same (and more: contiguous offsets, sizes matching dtype and shape)
/// but only on the whole file in memory; checking the header first means a small header in
/// front of gigabytes of anything is refused after reading the header alone.
fn read_safetensors(file: &Path) -> Result<Vec<u8>> {
    let io = |source: std::io::Error| Error::Io {
        file: file.to_path_buf(),
        source,
    };
    let (f, len) = files::open(file, files::LARGE).map_err(io)?;
    // `take`: a file that grows while it is read still gives at most `len + 1` bytes.
    let mut f = f.take(len.saturating_add(1));
    if len < 8 {
        return Err(corrupt(
            file,
            format!("{len} bytes, shorter than the 8-byte header length"),
        ));
    }
    let mut head = [0u8; 8];
    f.read_exact(&mut head).map_err(io)?;
    let n = u64::from_le_bytes(head);
    if n > MAX_HEADER_BYTES || n > len - 8 {
        return Err(corrupt(
            file,
            format!("a header of {n} bytes does not fit in a file of {len} bytes"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    let data_end = header_data_end(&header).map_err(|detail| corrupt(file, detail))?;
    let expected = data_end.checked_add(8 + n);
    if expected != Some(len) {
        return Err(corrupt(
            file,
            format!(
                "the header's tensors end at byte {} of the data, the file has {} bytes after its {n}-byte header",
                data_end,
                len - 8 - n
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(&header);
    f.read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 != len {
        return Err(corrupt(
            file,
            format!(
                "the file changed while it was read ({len} bytes, then {})",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// The largest end offset in a safetensors header (0 when it lists no tensor); the full check
/// of every entry is safetensors' own, once the bytes are read.
fn header_data_end(header: &[u8]) -> std::result::Result<u64, String> {
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("invalid JSON in header: {e}"))?;
    map.iter()
        .filter(|(name, _)| name.as_str() != "__metadata__")
        .try_fold(0u64, |end, (name, info)| {
            let offsets = info
                .get("data_offsets")
                .and_then(|o| o.as_array())
                .filter(|o| o.len() == 2)
                .and_then(|o| Some((o[0].as_u64()?, o[1].as_u64()?)));
            match offsets {
                Some((start, stop)) if start <= stop => Ok(end.max(stop)),
                _ => Err(format!("tensor `{name}` has no valid data_offsets")),
            }
        })
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
        // Decoded on the CPU, where the values are checked before the tensor moves to `device`.
        let values = Tensor::from_raw_buffer(view.data(), dtype, &spec.shape, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        check_slice(&spec, &values, &origin)?;
        out.insert(
            spec.name,
            Tensor::from_vec(values, spec.shape.as_slice(), device)?,
        );
    }
    Ok(out)
}

/// Checks the values of a model's tensors: every element finite, every BatchNorm running
/// variance at least 0. The first fault, in the config's tensor order, is an error naming
/// `origin` (a file, or what the tensors are), the tensor, the element and its value.
///
/// [`load`] and [`load_tensors`] run it on everything they read and [`save`] on everything it
/// writes; call it on tensors from elsewhere before trusting them. `tensors` must hold every
/// tensor of `config` (as [`load`] returns them); one that is absent is an error.
pub fn check_values(
    config: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
    origin: &str,
) -> Result<()> {
    for spec in config.tensor_specs() {
        let t = tensors
            .get(&spec.name)
            .ok_or_else(|| Error::MissingTensor {
                origin: origin.to_string(),
                tensor: spec.name.clone(),
            })?;
        let values = t
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        check_slice(&spec, &values, origin)?;
    }
    Ok(())
}

fn check_slice(spec: &TensorSpec, values: &[f32], origin: &str) -> Result<()> {
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            origin: origin.to_string(),
            tensor: spec.name.clone(),
            index,
            value,
        });
    }
    if spec.role == TensorRole::RunningVar
        && let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| **v < 0.0)
    {
        return Err(Error::NegativeVariance {
            origin: origin.to_string(),
            tensor: spec.name.clone(),
            index,
            value,
        });
    }
    Ok(())
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

/// Writes `bytes` to `path` atomically (a temporary file beside it, synced, then renamed).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    files::write_atomic(path, bytes).map_err(|source| Error::Io {
        file: path.to_path_buf(),
        source,
    })
}

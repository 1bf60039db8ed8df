//! Unstructured masks: one 0/1 tensor per weight tensor, applied to the weights and kept through
//! training so pruned weights stay exactly zero.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};
use crate::plan::TensorSparsity;

/// The file a checkpoint directory keeps its masks in, beside `model.safetensors`.
pub const MASKS_FILE: &str = "masks.safetensors";

/// One binary mask per weight tensor, by the tensor's name; 1 keeps a weight, 0 removes it.
///
/// Masks are f32 in memory (multiplied into weights and gradients) and u8 on disk.
#[derive(Clone, Debug, Default)]
pub struct Masks {
    masks: BTreeMap<String, Tensor>,
}

impl Masks {
    /// Masks from named 0/1 tensors (any dtype; stored as f32).
    pub fn new(masks: impl IntoIterator<Item = (String, Tensor)>) -> Result<Self> {
        let masks = masks
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        Ok(Self { masks })
    }

    /// The mask of one tensor.
    pub fn get(&self, tensor: &str) -> Option<&Tensor> {
        self.masks.get(tensor)
    }

    /// Masks by tensor name, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.masks.iter()
    }

    /// How many tensors are masked.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    /// Whether no tensor is masked.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// The weights with every masked tensor multiplied by its mask; other tensors pass through.
    /// Pure: `weights` is not modified.
    pub fn apply(&self, weights: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        let mut out = weights.clone();
        for (name, mask) in &self.masks {
            let w = weights.get(name).ok_or_else(|| Error::MissingTensor {
                context: "masks".into(),
                tensor: name.clone(),
            })?;
            check_shape(name, mask, w)?;
            out.insert(name.clone(), w.mul(&mask.to_dtype(w.dtype())?)?);
        }
        Ok(out)
    }

    /// Per masked tensor: elements, pruned elements and sparsity, in name order.
    pub fn per_tensor(&self) -> Result<Vec<TensorSparsity>> {
        self.masks
            .iter()
            .map(|(name, mask)| {
                let total = mask.elem_count();
                let kept = mask.sum_all()?.to_scalar::<f32>()? as usize;
                let pruned = total - kept.min(total);
                Ok(TensorSparsity {
                    tensor: name.clone(),
                    total,
                    pruned,
                    sparsity: if total == 0 {
                        0.0
                    } else {
                        pruned as f64 / total as f64
                    },
                })
            })
            .collect()
    }

    /// The fraction of masked-tensor weights that are removed, over all masked tensors.
    pub fn sparsity(&self) -> Result<f64> {
        let stats = self.per_tensor()?;
        let total: usize = stats.iter().map(|s| s.total).sum();
        let pruned: usize = stats.iter().map(|s| s.pruned).sum();
        Ok(if total == 0 {
            0.0
        } else {
            pruned as f64 / total as f64
        })
    }

    /// Multiplies the gradient of every masked variable by its mask, before the optimizer step:
    /// momentum and weight decay then never move a pruned weight (Liu et al.'s weight-level
    /// `cifar_finetune.py` does `p.grad.data.mul_(mask)`). Variables without a gradient are skipped.
    pub fn mask_gradients(&self, grads: &mut GradStore, vars: &[(String, Var)]) -> Result<()> {
        for (name, var) in vars {
            let Some(mask) = self.masks.get(name) else {
                continue;
            };
            if let Some(g) = grads.get(var.as_tensor()) {
                check_shape(name, mask, g)?;
                let masked = g.mul(&mask.to_dtype(g.dtype())?)?;
                grads.insert(var.as_tensor(), masked);
            }
        }
        Ok(())
    }

    /// Multiplies every masked variable by its mask, after the optimizer step: weight decay
    /// applied inside the optimizer (or float residue) cannot revive a pruned weight.
    pub fn mask_vars(&self, vars: &[(String, Var)]) -> Result<()> {
        for (name, var) in vars {
            if let Some(mask) = self.masks.get(name) {
                let w = var.as_tensor();
                check_shape(name, mask, w)?;
                var.set(&w.mul(&mask.to_dtype(w.dtype())?)?)?;
            }
        }
        Ok(())
    }

    /// Saves the masks as a safetensors file of u8 tensors, by weight name, from any device.
    pub fn save(&self, path: &Path) -> Result<()> {
        // Copied to the CPU here, where a failure is an error: candle's writer copies GPU
        // tensors itself, but unwraps the result.
        let bytes: HashMap<String, Tensor> = self
            .masks
            .iter()
            .map(|(n, m)| Ok((n.clone(), m.to_dtype(DType::U8)?.to_device(&Device::Cpu)?)))
            .collect::<Result<_>>()?;
        candle_core::safetensors::save(&bytes, path).map_err(|source| Error::Io {
            file: path.to_path_buf(),
            source,
        })
    }

    /// Loads masks written by [`Masks::save`] onto `device`, refusing any element other than 0
    /// and 1 ([`Error::MaskValue`]). The file is at most [`MAX_FILE_BYTES`]; FIFOs and devices
    /// are refused by name.
    ///
    /// Whether the masks fit a model is [`Masks::check_tensors`]'s question: call it with the
    /// model's tensors before applying them.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = files::read(path, MAX_FILE_BYTES).map_err(|source| Error::Read {
            file: path.to_path_buf(),
            source,
        })?;
        // Decoded on the CPU, where the values are checked before anything moves to `device`.
        let tensors =
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|source| {
                Error::Io {
                    file: path.to_path_buf(),
                    source,
                }
            })?;
        drop(bytes);
        let origin = path.display().to_string();
        let mut masks = BTreeMap::new();
        for (name, t) in tensors {
            let t = t.to_dtype(DType::F32)?;
            check_binary(&name, &t, &origin)?;
            masks.insert(name, t.to_device(device)?);
        }
        Ok(Self { masks })
    }

    /// Checks that every element of every mask is exactly 0 or 1; the first fault names the
    /// tensor, the element and its value. [`Masks::load`] does it on every file it reads.
    pub fn check_binary(&self) -> Result<()> {
        self.masks
            .iter()
            .try_for_each(|(name, mask)| check_binary(name, mask, "masks"))
    }

    /// Checks the masks against a model's tensors, given as `(name, shape)`: every mask must
    /// name one of them and have its shape. The first fault in name order is
    /// [`Error::UnknownMaskTensor`] or [`Error::MaskShape`]. Tensors without a mask are fine.
    pub fn check_tensors<'a>(
        &self,
        tensors: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    ) -> Result<()> {
        let shapes: HashMap<&str, &[usize]> = tensors.into_iter().collect();
        for (name, mask) in &self.masks {
            let Some(&shape) = shapes.get(name.as_str()) else {
                return Err(Error::UnknownMaskTensor {
                    tensor: name.clone(),
                });
            };
            if mask.dims() != shape {
                return Err(Error::MaskShape {
                    tensor: name.clone(),
                    mask: mask.dims().to_vec(),
                    weight: shape.to_vec(),
                });
            }
        }
        Ok(())
    }
}

/// The cap on a masks file: one byte per masked weight, so a quarter of the cap on a weights file
/// of f32 ([`files::LARGE`]).
pub const MAX_FILE_BYTES: u64 = files::LARGE / 4;

fn check_binary(name: &str, mask: &Tensor, origin: &str) -> Result<()> {
    let values = mask
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    // `v == 0.0 || v == 1.0` is false for NaN, so NaN is refused too.
    match values
        .iter()
        .enumerate()
        .find(|(_, v)| !(**v == 0.0 || **v == 1.0))
    {
        Some((index, &value)) => Err(Error::MaskValue {
            origin: origin.to_string(),
            tensor: name.to_string(),
            index,
            value,
        }),
        None => Ok(()),
    }
}

fn check_shape(name: &str, mask: &Tensor, w: &Tensor) -> Result<()> {
    if mask.dims() != w.dims() {
        return Err(Error::MaskShape {
            tensor: name.to_string(),
            mask: mask.dims().to_vec(),
            weight: w.dims().to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn masks_zero_weights_count_sparsity_and_round_trip() {
        let masks = Masks::new([("w".to_string(), t(&[1., 0., 0., 1.]))]).unwrap();
        let weights: HashMap<String, Tensor> = [
            ("w".to_string(), t(&[1., 2., 3., 4.])),
            ("b".to_string(), t(&[5.])),
        ]
        .into();
        let out = masks.apply(&weights).unwrap();
        assert_eq!(out["w"].to_vec1::<f32>().unwrap(), [1., 0., 0., 4.]);
        assert_eq!(out["b"].to_vec1::<f32>().unwrap(), [5.]);
        assert_eq!(masks.sparsity().unwrap(), 0.5);
        assert_eq!(masks.per_tensor().unwrap()[0].pruned, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("masks.safetensors");
        masks.save(&path).unwrap();
        let back = Masks::load(&path, &Device::Cpu).unwrap();
        assert_eq!(
            back.get("w").unwrap().to_vec1::<f32>().unwrap(),
            [1., 0., 0., 1.]
        );
        let wrong: HashMap<String, Tensor> = [("w".to_string(), t(&[1.]))].into();
        assert!(matches!(masks.apply(&wrong), Err(Error::MaskShape { .. })));
        assert!(masks.apply(&HashMap::new()).is_err());
    }

    #[test]
    fn masked_gradient_steps_keep_pruned_weights_exactly_zero() {
        // Plain SGD with weight decay, as a training loop would run it around the masks.
        let masks = Masks::new([("w".to_string(), t(&[1., 0., 1., 0.]))]).unwrap();
        let var = Var::from_tensor(&t(&[0.5, 0.0, -0.3, 0.0])).unwrap();
        let vars = vec![("w".to_string(), var.clone())];
        let x = t(&[1., 2., 3., 4.]);
        for _ in 0..5 {
            let loss = var.as_tensor().mul(&x).unwrap().sum_all().unwrap();
            let mut grads = loss.backward().unwrap();
            masks.mask_gradients(&mut grads, &vars).unwrap();
            let g = grads.get(var.as_tensor()).unwrap();
            assert_eq!(g.to_vec1::<f32>().unwrap(), [1., 0., 3., 0.]);
            let decayed = (var.as_tensor() * 0.999).unwrap();
            var.set(&(decayed - (g * 0.1).unwrap()).unwrap()).unwrap();
            masks.mask_vars(&vars).unwrap();
        }
        let w = var.as_tensor().to_vec1::<f32>().unwrap();
        assert_eq!((w[1], w[3]), (0.0, 0.0));
        assert!(w[0] != 0.5 && w[2] != -0.3);
    }

    /// Writes f32 masks (not u8, as `save` does, so any value can be stored).
    fn write_f32(path: &Path, name: &str, values: &[f32]) {
        let masks: HashMap<String, Tensor> = [(name.to_string(), t(values))].into();
        candle_core::safetensors::save(&masks, path).unwrap();
    }

    #[test]
    fn masks_other_than_zero_and_one_are_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("masks.safetensors");
        for (values, index, bad) in [
            (vec![1., 0.5, 0.], 1, 0.5),
            (vec![0., 1., 7.], 2, 7.),
            (vec![f32::NAN, 1.], 0, f32::NAN),
            (vec![1., -0.0, f32::INFINITY], 2, f32::INFINITY),
        ] {
            write_f32(&path, "conv.weight", &values);
            match Masks::load(&path, &Device::Cpu).unwrap_err() {
                Error::MaskValue {
                    origin,
                    tensor,
                    index: i,
                    value,
                } => {
                    assert_eq!(origin, path.display().to_string());
                    assert_eq!((tensor.as_str(), i), ("conv.weight", index));
                    assert_eq!(value.to_bits(), bad.to_bits());
                }
                other => panic!("{values:?}: expected MaskValue, got {other}"),
            }
        }
        // -0.0 == 0.0: a valid mask.
        write_f32(&path, "conv.weight", &[1., -0.0, 0.]);
        Masks::load(&path, &Device::Cpu).unwrap();
        // Masks built in memory are checked on request.
        let m = Masks::new([("w".to_string(), t(&[1., 2.]))]).unwrap();
        assert_eq!(
            m.check_binary().unwrap_err().to_string(),
            "masks: mask for `w` holds 2 at element 1 (a mask holds only 0 and 1)"
        );
    }

    #[test]
    fn masks_must_name_tensors_of_the_model_with_their_shapes() {
        let masks = Masks::new([
            ("a.weight".to_string(), t(&[1., 0.])),
            ("b.weight".to_string(), t(&[1., 0., 1.])),
        ])
        .unwrap();
        let a = [2usize];
        let b = [3usize];
        let b_wrong = [1usize, 3];
        let c = [4usize];
        masks
            .check_tensors([("a.weight", &a[..]), ("b.weight", &b[..]), ("c", &c[..])])
            .unwrap();
        let err = masks
            .check_tensors([("a.weight", &a[..]), ("c", &c[..])])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mask for tensor `b.weight`, which the model does not have"
        );
        let err = masks
            .check_tensors([("a.weight", &a[..]), ("b.weight", &b_wrong[..])])
            .unwrap_err();
        assert!(matches!(err, Error::MaskShape { .. }), "{err}");
    }

    #[test]
    fn special_and_absent_files_are_refused_by_name() {
        let err = Masks::load(Path::new("/dev/zero"), &Device::Cpu).unwrap_err();
        assert!(matches!(&err, Error::Read { file, .. } if file == Path::new("/dev/zero")));
        assert_eq!(err.to_string(), "/dev/zero");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("masks.safetensors");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
        let err = Masks::load(&fifo, &Device::Cpu).unwrap_err();
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "is a FIFO, not a regular file"
        );
        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, [0xffu8; 64]).unwrap();
        let err = Masks::load(&garbage, &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}

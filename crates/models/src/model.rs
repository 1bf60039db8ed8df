//! A network of any family plus the variables that hold its weights.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::checkpoint::{self, validate_tensors};
use crate::config::ModelConfig;
use crate::densenet::DenseNet;
use crate::error::Result;
use crate::init::init_tensors;
use crate::resnet::ResNet;
use crate::vgg::Vgg;

/// The forward pass of one of the three families, built from a config and a `VarBuilder`.
///
/// Use this directly to build from any `VarBuilder` (a safetensors file, sliced tensors of a
/// pruned model); [`Model`] adds the variables, initialisation and checkpoints.
#[derive(Clone, Debug)]
pub enum Network {
    /// CIFAR ResNet.
    ResNet(ResNet),
    /// CIFAR VGG with BatchNorm.
    Vgg(Vgg),
    /// CIFAR DenseNet.
    DenseNet(DenseNet),
}

impl Network {
    /// Builds the network for `config` (validated first), fetching every tensor by its PyTorch
    /// name from `vb`.
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        Ok(match config {
            ModelConfig::ResNet(c) => Self::ResNet(ResNet::new(c, vb)?),
            ModelConfig::Vgg(c) => Self::Vgg(Vgg::new(c, vb)?),
            ModelConfig::DenseNet(c) => Self::DenseNet(DenseNet::new(c, vb)?),
        })
    }
}

impl ModuleT for Network {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self {
            Self::ResNet(m) => m.forward_t(x, train),
            Self::Vgg(m) => m.forward_t(x, train),
            Self::DenseNet(m) => m.forward_t(x, train),
        }
    }
}

/// A model ready to train or evaluate: its config, its network and the [`VarMap`] that owns every
/// tensor under its PyTorch name.
///
/// `forward_t(x, true)` normalises with batch statistics and updates the BatchNorm running
/// statistics in the `VarMap` (momentum 0.1, unbiased variance); `forward_t(x, false)` uses them.
/// The running statistics are variables too (candle keeps them in the `VarMap`) but must not be
/// given to an optimizer: take [`Model::trainable_vars`].
#[derive(Clone)]
pub struct Model {
    config: ModelConfig,
    network: Network,
    varmap: VarMap,
    device: Device,
}

impl Model {
    /// A freshly initialised model with the reference code's distributions, drawn from `seed`.
    pub fn init(config: &ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let tensors = init_tensors(config, seed, device)?;
        Self::from_valid_tensors(config, tensors, device)
    }

    /// A model holding copies of `tensors` (PyTorch names; `num_batches_tracked` is ignored),
    /// checked name by name, shape by shape against `config`.
    pub fn from_tensors(
        config: &ModelConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let tensors = validate_tensors(config, tensors, "in-memory tensors")?;
        Self::from_valid_tensors(config, tensors, device)
    }

    /// Loads a checkpoint written by [`Model::save`] or by PyTorch with the config in the
    /// metadata or a `config.json` beside it; `path` is the directory or the `.safetensors` file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let ckpt = checkpoint::load(path, device)?;
        Self::from_valid_tensors(&ckpt.config, ckpt.tensors, device)
    }

    /// Saves `model.safetensors` and `config.json` into `dir` (created if needed), atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save(dir, &self.config, &self.tensors()?)
    }

    fn from_valid_tensors(
        config: &ModelConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        let varmap = VarMap::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
            for (name, t) in tensors {
                // A fresh variable per tensor: training must never write into the caller's tensors.
                let t = t.to_device(device)?.to_dtype(DType::F32)?.contiguous()?;
                data.insert(name, Var::from_tensor(&t.copy()?)?);
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let network = Network::new(config, vb)?;
        Ok(Self {
            config: config.clone(),
            network,
            varmap,
            device: device.clone(),
        })
    }

    /// The config this model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Logits in evaluation mode (running statistics), the values of `forward_t(x, false)`
    /// but without an autograd graph: nothing of the pass stays alive but the logits
    /// (detached: no gradient flows back through them). For evaluation and inference; take
    /// `forward_t` where a gradient is wanted. A ResNet or a VGG on our CPU kernels runs with
    /// every BatchNorm that follows a conv folded into it and the ReLUs and residual adds fused
    /// into the convs' output (equal to `forward_t` up to float rounding, about 1e-6 relative);
    /// elsewhere the values are `forward_t`'s exactly.
    pub fn infer(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.network {
            Network::ResNet(m) => m.infer(x),
            Network::Vgg(m) => m.infer(x),
            other => Ok(other.forward_t(x, false)?.detach()),
        }
    }

    /// The network (forward pass only).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Every variable, running statistics included, by PyTorch name.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variables an optimizer should update (BatchNorm running statistics excluded), with
    /// their PyTorch names, in forward order.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let data = match self.varmap.data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.config
            .trainable_names()
            .into_iter()
            .filter_map(|n| data.get(&n).map(|v| (n, v.clone())))
            .collect()
    }

    /// A snapshot of every tensor (parameters and running statistics) by PyTorch name: copies,
    /// so later training steps do not change them.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let data = match self.varmap.data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        // `detach` alone would share the variable's storage, which training overwrites in place.
        data.iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().detach().copy()?)))
            .collect()
    }
}

impl Model {
    /// Sets the named variables (running statistics, say) back to `values`, as
    /// [`Model::tensors`] copied them.
    pub(crate) fn restore_running_stats(&self, values: &[(String, Tensor)]) -> Result<()> {
        let data = match self.varmap.data().lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (name, value) in values {
            if let Some(v) = data.get(name) {
                v.set(value)?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Model {
    // VarMap has no Debug; the config says what the model is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl ModuleT for Model {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.network.forward_t(x, train)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::ModelConfig;

    fn small_configs() -> Vec<ModelConfig> {
        vec![
            ModelConfig::resnet(20, 10, 3).unwrap(),
            ModelConfig::densenet(16, 12, 10, 1).unwrap(),
            {
                // A narrow VGG-16: the same layout at an eighth of the width.
                let mut c = ModelConfig::vgg16(100, 3).unwrap();
                if let ModelConfig::Vgg(v) = &mut c {
                    for item in &mut v.cfg {
                        if let crate::config::VggItem::Conv(w) = item {
                            *w /= 8;
                        }
                    }
                    v.classifier_width = 32;
                }
                c
            },
        ]
    }

    #[test]
    fn builders_use_exactly_the_layout_names_and_shapes() {
        for config in small_configs() {
            let model = Model::init(&config, 0, &Device::Cpu).unwrap();
            let have: BTreeSet<(String, Vec<usize>)> = model
                .tensors()
                .unwrap()
                .into_iter()
                .map(|(n, t)| (n, t.dims().to_vec()))
                .collect();
            let want: BTreeSet<(String, Vec<usize>)> = config
                .tensor_specs()
                .into_iter()
                .map(|s| (s.name, s.shape))
                .collect();
            assert_eq!(have, want, "{}", config.name());
            let trainable: usize = model
                .trainable_vars()
                .iter()
                .map(|(_, v)| v.as_tensor().elem_count())
                .sum();
            assert_eq!(trainable as u64, config.params());
        }
    }

    #[test]
    fn infer_gives_forward_t_eval_logits_without_a_graph() {
        for config in small_configs() {
            let model = Model::init(&config, 5, &Device::Cpu).unwrap();
            let x =
                Tensor::randn(0f32, 1.0, (3, config.in_channels(), 32, 32), &Device::Cpu).unwrap();
            // Running statistics other than the initial zeros and ones, for the fold to fold.
            model.forward_t(&x.affine(2.0, 0.5).unwrap(), true).unwrap();
            let eval = model.forward_t(&x, false).unwrap();
            let inferred = model.infer(&x).unwrap();
            let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (got, want) = (values(&inferred), values(&eval));
            if matches!(model.network(), Network::ResNet(_) | Network::Vgg(_)) {
                // BatchNorm folded into the filters: the same values up to float rounding.
                let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                let diff = got
                    .iter()
                    .zip(&want)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(diff <= 1e-4 * scale, "{}: {diff} of {scale}", config.name());
                // With candle's kernels the unfused pass runs: exactly forward_t's values.
                let unfused = kernels::with_backend(kernels::Backend::Candle, || {
                    (
                        model.infer(&x).unwrap(),
                        model.forward_t(&x, false).unwrap(),
                    )
                });
                assert_eq!(values(&unfused.0), values(&unfused.1), "{}", config.name());
            } else {
                assert_eq!(got, want, "{}", config.name());
            }
            // forward_t records its ops (the weights are variables); infer keeps nothing.
            assert!(eval.track_op(), "{}", config.name());
            assert!(!inferred.track_op(), "{}", config.name());
        }
    }

    #[test]
    fn forward_gives_logits_and_train_mode_updates_running_stats() {
        for config in small_configs() {
            let model = Model::init(&config, 3, &Device::Cpu).unwrap();
            let x =
                Tensor::randn(0f32, 1.0, (2, config.in_channels(), 32, 32), &Device::Cpu).unwrap();
            let before = model.tensors().unwrap();
            let eval = model.forward_t(&x, false).unwrap();
            assert_eq!(eval.dims(), [2, config.num_classes()]);
            let name = config
                .tensor_specs()
                .into_iter()
                .find(|s| s.name.ends_with("running_mean"))
                .unwrap()
                .name;
            let unchanged = model.tensors().unwrap();
            let same =
                |a: &Tensor, b: &Tensor| a.to_vec1::<f32>().unwrap() == b.to_vec1::<f32>().unwrap();
            assert!(
                same(&before[&name], &unchanged[&name]),
                "eval must not update"
            );
            let train = model.forward_t(&x, true).unwrap();
            assert_eq!(train.dims(), [2, config.num_classes()]);
            let after = model.tensors().unwrap();
            assert!(
                !same(&before[&name], &after[&name]),
                "train must update {name}"
            );
        }
    }

    #[test]
    fn gradients_reach_every_trainable_variable() {
        let config = ModelConfig::resnet(20, 10, 3).unwrap();
        let model = Model::init(&config, 5, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
        let loss = model
            .forward_t(&x, true)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in model.trainable_vars() {
            assert!(
                grads.get(var.as_tensor()).is_some(),
                "no gradient for {name}"
            );
        }
    }

    #[test]
    fn detached_shortcut_keeps_the_forward_and_cuts_the_identity_gradient() {
        let config = ModelConfig::resnet(8, 10, 3).unwrap();
        let mut detached = config.clone();
        if let ModelConfig::ResNet(r) = &mut detached {
            r.detach_shortcut = true;
        }
        let tensors = Model::init(&config, 9, &Device::Cpu)
            .unwrap()
            .tensors()
            .unwrap();
        let input =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap())
                .unwrap();
        let run = |c: &ModelConfig| {
            let m = Model::from_tensors(c, tensors.clone(), &Device::Cpu).unwrap();
            let y = m.forward_t(input.as_tensor(), false).unwrap();
            let g = y.sum_all().unwrap().backward().unwrap();
            let gx = g.get(input.as_tensor()).unwrap().flatten_all().unwrap();
            (
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                gx.to_vec1::<f32>().unwrap(),
            )
        };
        let (y_full, g_full) = run(&config);
        let (y_cut, g_cut) = run(&detached);
        assert_eq!(y_full, y_cut);
        assert_ne!(g_full, g_cut);
    }

    #[test]
    fn resnet_linear_keeps_pytorch_default_init() {
        let config = ModelConfig::resnet(20, 10, 3).unwrap();
        let t = init_tensors(&config, 4, &Device::Cpu).unwrap();
        let w = t["fc.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = t["fc.bias"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // uniform(-1/sqrt(64), 1/sqrt(64)) for both.
        assert!(w.iter().chain(&b).all(|v| v.abs() <= 0.125));
        assert!(w.iter().any(|v| v.abs() > 0.1));
        let bn = t["layer3.2.bn2.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(bn.iter().all(|&v| v == 1.0));
    }
}

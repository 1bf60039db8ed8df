//! CIFAR ResNet-20..110, VGG-16-BN and DenseNet-40 in Candle, each built from a configuration that
//! lists every prunable width, so a pruned model is the same code with smaller numbers. Layouts,
//! tensor names and initialisation follow the public PyTorch code the paper builds on (Liu et al.,
//! `rethinking-network-pruning/cifar/l1-norm-pruning/models`; HRankPlus for DenseNet), so
//! checkpoints move between prunebench and PyTorch as safetensors files with `state_dict` names.
//! Parameter and FLOPs counts come from a config alone.
//!
//! ```
//! use candle_core::{Device, ModuleT, Tensor};
//! use models::{Model, ModelConfig};
//!
//! let config = ModelConfig::from_name("resnet20", 10, 3)?;
//! assert_eq!(config.params(), 269_722);
//! let model = Model::init(&config, 42, &Device::Cpu)?;
//! let x = Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)?;
//! let logits = model.forward_t(&x, false)?; // evaluation mode: running statistics
//! assert_eq!(logits.dims(), [2, 10]);
//!
//! let dir = std::env::temp_dir().join(format!("models-doc-{}", std::process::id()));
//! model.save(&dir)?; // model.safetensors + config.json
//! let back = Model::load(&dir, &Device::Cpu)?;
//! assert_eq!(back.config(), model.config());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), models::Error>(())
//! ```

pub mod checkpoint;
pub mod config;
mod counts;
mod densenet;
pub mod error;
pub mod fast;
mod init;
mod layers;
pub mod layout;
mod model;
pub mod pruning;
mod resnet;
pub mod scores;
mod vgg;

pub use checkpoint::Checkpoint;
pub use config::{DenseNetConfig, ModelConfig, ResNetConfig, VggConfig, VggItem};
pub use densenet::DenseNet;
pub use error::{Error, Result};
pub use fast::{FastStep, TrainStep};
pub use init::init_tensors;
pub use layout::{Layer, TensorRole, TensorSpec};
pub use model::{Model, Network};
pub use resnet::ResNet;
pub use vgg::Vgg;

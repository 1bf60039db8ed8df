//! CIFAR VGG with BatchNorm, as `l1-norm-pruning/models/vgg.py` of Liu et al.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::config::{VggConfig, VggItem};
use crate::layers::{BatchNorm, Conv2d, batch_norm, conv_bn_relu, conv2d, linear, max_pool2};

/// A CIFAR VGG built from a [`VggConfig`].
#[derive(Clone, Debug)]
pub struct Vgg {
    pub(crate) features: Vec<Feature>,
    pub(crate) fc1: Linear,
    pub(crate) bn1: BatchNorm,
    pub(crate) fc2: Linear,
}

#[derive(Clone, Debug)]
pub(crate) enum Feature {
    ConvBnRelu(Conv2d, BatchNorm),
    MaxPool,
}

impl Vgg {
    /// Builds the network from tensors named as the reference `state_dict`: `feature.{i}.weight`
    /// with the `nn.Sequential` indices (conv, BN, ReLU take one index each, a max-pool one),
    /// then `classifier.0` (linear), `classifier.1` (BatchNorm1d), `classifier.3` (linear).
    pub(crate) fn new(config: &VggConfig, vb: VarBuilder) -> Result<Self> {
        let mut features = Vec::with_capacity(config.cfg.len());
        let mut cin = config.in_channels;
        let mut idx = 0;
        for item in &config.cfg {
            match *item {
                VggItem::Conv(w) => {
                    let conv = conv2d(&vb.pp(format!("feature.{idx}")), cin, w, 3, 1)?;
                    let bn = batch_norm(&vb.pp(format!("feature.{}", idx + 1)), w)?;
                    features.push(Feature::ConvBnRelu(conv, bn));
                    cin = w;
                    idx += 3;
                }
                VggItem::MaxPool => {
                    features.push(Feature::MaxPool);
                    idx += 1;
                }
            }
        }
        let hidden = config.classifier_width;
        Ok(Self {
            features,
            fc1: linear(&vb.pp("classifier.0"), cin, hidden)?,
            bn1: batch_norm(&vb.pp("classifier.1"), hidden)?,
            fc2: linear(&vb.pp("classifier.3"), hidden, config.num_classes)?,
        })
    }
}

impl Vgg {
    /// Evaluation mode without an autograd graph: on our CPU kernels the features with every
    /// BatchNorm folded into its conv ([`crate::fast`]), elsewhere `forward_t(x, false)` with
    /// each layer's output detached (so no pass's activations outlive the next layer).
    pub(crate) fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let x = match crate::fast::vgg_features(self, x).map_err(candle_core::Error::wrap)? {
            Some(features) => features,
            None => self.features_t(&x.detach(), false, true, None)?,
        };
        Ok(self.head_t(&x, false)?.detach())
    }

    /// The feature layers, each output detached where `detach` is set; every conv's output
    /// after its BatchNorm and ReLU also pushed onto `maps` where given.
    fn features_t(
        &self,
        x: &Tensor,
        train: bool,
        detach: bool,
        mut maps: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        for f in &self.features {
            x = match f {
                Feature::ConvBnRelu(conv, bn) => conv_bn_relu(conv, bn, &x, train)?,
                Feature::MaxPool => max_pool2(&x)?,
            };
            if detach {
                x = x.detach();
            }
            if let (Some(maps), Feature::ConvBnRelu(..)) = (maps.as_deref_mut(), f) {
                maps.push(x.clone());
            }
        }
        Ok(x)
    }

    /// HRank's maps, evaluation mode, detached: every conv's output after its BatchNorm and ReLU
    /// (the map of its channel group `feature.{idx}`), conv by conv.
    pub(crate) fn feature_maps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut maps = Vec::new();
        self.features_t(&x.detach(), false, true, Some(&mut maps))?;
        Ok(maps)
    }

    /// The final pool and the classifier.
    fn head_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // nn.AvgPool2d(2) on the final 2x2 map.
        let x = x.avg_pool2d(2)?.flatten_from(1)?;
        let x = self.bn1.forward_relu_t(&self.fc1.forward(&x)?, train)?;
        self.fc2.forward(&x)
    }
}

impl ModuleT for Vgg {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.head_t(&self.features_t(x, train, false, None)?, train)
    }
}

//! CIFAR DenseNet (BN-ReLU-conv layers, no bottleneck), as HRankPlus `models/cifar10/densenet.py`.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::config::DenseNetConfig;
use crate::layers::{BatchNorm, Conv2d, batch_norm, conv2d, linear};

/// A CIFAR DenseNet built from a [`DenseNetConfig`].
#[derive(Clone, Debug)]
pub struct DenseNet {
    conv1: Conv2d,
    blocks: Vec<Vec<BnReluConv>>,
    transitions: Vec<BnReluConv>,
    bn: BatchNorm,
    fc: Linear,
}

/// BN -> ReLU -> conv: a dense layer (3x3) or a transition (1x1).
#[derive(Clone, Debug)]
struct BnReluConv {
    bn1: BatchNorm,
    conv1: Conv2d,
}

impl BnReluConv {
    fn new(vb: &VarBuilder, cin: usize, cout: usize, kernel: usize) -> Result<Self> {
        Ok(Self {
            bn1: batch_norm(&vb.pp("bn1"), cin)?,
            conv1: conv2d(&vb.pp("conv1"), cin, cout, kernel, 1)?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.conv1.forward(&self.bn1.forward_relu_t(x, train)?)
    }
}

impl DenseNet {
    /// Builds the network from tensors named as the reference `state_dict`: `conv1.weight`,
    /// `dense{b}.{i}.bn1.*`, `dense{b}.{i}.conv1.weight`, `trans{t}.bn1.*`, `trans{t}.conv1.weight`,
    /// `bn.*`, `fc.*`.
    pub(crate) fn new(config: &DenseNetConfig, vb: VarBuilder) -> Result<Self> {
        let n = config.layer_widths.len() / 3;
        let conv1 = conv2d(&vb.pp("conv1"), config.in_channels, config.stem_width, 3, 1)?;
        let mut channels = config.stem_width;
        let mut blocks = Vec::with_capacity(3);
        let mut transitions = Vec::with_capacity(2);
        for block in 0..3 {
            let mut layers = Vec::with_capacity(n);
            for i in 0..n {
                let growth = config.layer_widths[block * n + i];
                let vb = vb.pp(format!("dense{}.{i}", block + 1));
                layers.push(BnReluConv::new(&vb, channels, growth, 3)?);
                channels += growth;
            }
            blocks.push(layers);
            if block < 2 {
                let out = config.transition_widths[block];
                let vb = vb.pp(format!("trans{}", block + 1));
                transitions.push(BnReluConv::new(&vb, channels, out, 1)?);
                channels = out;
            }
        }
        Ok(Self {
            conv1,
            blocks,
            transitions,
            bn: batch_norm(&vb.pp("bn"), channels)?,
            fc: linear(&vb.pp("fc"), channels, config.num_classes)?,
        })
    }
}

impl DenseNet {
    /// HRank's maps as HRankPlus' `rank_generation.py` takes them, evaluation mode, detached:
    /// a conv's output after the BatchNorm and ReLU of the layer that reads it next (the next
    /// dense layer, the transition, or the final BatchNorm), those of its channels only; a
    /// transition's after the average pool. In group order: stem, block 1's layers, transition
    /// 1, ...
    pub(crate) fn feature_maps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut x = self.conv1.forward(&x.detach())?.detach();
        let mut maps = Vec::new();
        // The latest producer's channels: the last `latest` of `x`, or all of them (`None`).
        let mut latest: Option<usize> = None;
        let mut take = |a: &Tensor, latest: Option<usize>| -> Result<()> {
            let c = a.dim(1)?;
            let w = latest.unwrap_or(c);
            maps.push(a.narrow(1, c - w, w)?.detach());
            Ok(())
        };
        for (b, layers) in self.blocks.iter().enumerate() {
            for layer in layers {
                let a = layer.bn1.forward_relu_t(&x, false)?;
                take(&a, latest)?;
                let out = layer.conv1.forward(&a)?;
                latest = Some(out.dim(1)?);
                x = Tensor::cat(&[&x, &out], 1)?.detach();
            }
            if let Some(t) = self.transitions.get(b) {
                let a = t.bn1.forward_relu_t(&x, false)?;
                take(&a, latest)?;
                x = t.conv1.forward(&a)?.avg_pool2d(2)?.detach();
                latest = None;
            }
        }
        take(&self.bn.forward_relu_t(&x, false)?, latest)?;
        Ok(maps)
    }
}

impl ModuleT for DenseNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // The stem conv has no BN after it: each dense layer normalises its own input.
        let mut x = self.conv1.forward(x)?;
        for (b, layers) in self.blocks.iter().enumerate() {
            for layer in layers {
                let out = layer.forward_t(&x, train)?;
                x = Tensor::cat(&[&x, &out], 1)?;
            }
            if let Some(t) = self.transitions.get(b) {
                x = t.forward_t(&x, train)?.avg_pool2d(2)?;
            }
        }
        let x = self.bn.forward_relu_t(&x, train)?;
        let x = x.avg_pool2d(8)?.flatten_from(1)?;
        self.fc.forward(&x)
    }
}

//! CIFAR ResNet with BasicBlocks, as `l1-norm-pruning/models/resnet.py` of Liu et al.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::config::{RESNET_STAGE_WIDTHS, ResNetConfig};
use crate::layers::{BatchNorm, Conv2d, add_relu, batch_norm, conv_bn_relu, conv2d, linear};

/// A CIFAR ResNet built from a [`ResNetConfig`].
#[derive(Clone, Debug)]
pub struct ResNet {
    pub(crate) conv1: Conv2d,
    pub(crate) bn1: BatchNorm,
    pub(crate) blocks: Vec<BasicBlock>,
    pub(crate) fc: Linear,
}

#[derive(Clone, Debug)]
pub(crate) struct BasicBlock {
    pub(crate) conv1: Conv2d,
    pub(crate) bn1: BatchNorm,
    pub(crate) conv2: Conv2d,
    pub(crate) bn2: BatchNorm,
    /// Output channels when the block changes shape: the shortcut pools and pads to them.
    pub(crate) downsample_to: Option<usize>,
    pub(crate) detach_shortcut: bool,
}

impl ResNet {
    /// Builds the network from tensors named as the reference `state_dict` (`conv1.weight`,
    /// `layer1.0.bn1.running_mean`, `fc.bias`, ...).
    pub(crate) fn new(config: &ResNetConfig, vb: VarBuilder) -> Result<Self> {
        let n = config.block_widths.len() / 3;
        let conv1 = conv2d(
            &vb.pp("conv1"),
            config.in_channels,
            RESNET_STAGE_WIDTHS[0],
            3,
            1,
        )?;
        let bn1 = batch_norm(&vb.pp("bn1"), RESNET_STAGE_WIDTHS[0])?;
        let mut blocks = Vec::with_capacity(3 * n);
        let mut inplanes = RESNET_STAGE_WIDTHS[0];
        for (stage, &planes) in RESNET_STAGE_WIDTHS.iter().enumerate() {
            for i in 0..n {
                let width = config.block_widths[stage * n + i];
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("layer{}.{i}", stage + 1));
                // The reference attaches `downsample` where `stride != 1 or inplanes != planes`.
                let downsample_to = (stride != 1 || inplanes != planes).then_some(planes);
                blocks.push(BasicBlock {
                    conv1: conv2d(&vb.pp("conv1"), inplanes, width, 3, stride)?,
                    bn1: batch_norm(&vb.pp("bn1"), width)?,
                    conv2: conv2d(&vb.pp("conv2"), width, planes, 3, 1)?,
                    bn2: batch_norm(&vb.pp("bn2"), planes)?,
                    downsample_to,
                    detach_shortcut: config.detach_shortcut,
                });
                inplanes = planes;
            }
        }
        let fc = linear(&vb.pp("fc"), inplanes, config.num_classes)?;
        Ok(Self {
            conv1,
            bn1,
            blocks,
            fc,
        })
    }
}

impl ResNet {
    /// Evaluation mode without keeping an autograd graph: the stem's and every block's output
    /// detached, so each block's activations are freed once the next block has its input.
    /// `forward_t(x, false)` on the model's variables records every op, and the graph keeps every
    /// activation of the pass alive until the logits are dropped: at batch 256 gigabytes, touched
    /// afresh on every call (page faults were a quarter of a ResNet-110 inference profile).
    pub(crate) fn infer(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(logits) = crate::fast::infer(self, x).map_err(candle_core::Error::wrap)? {
            return Ok(logits);
        }
        let x = self.eval_blocks(x, None)?;
        let x = x.avg_pool2d(8)?.flatten_from(1)?;
        Ok(self.fc.forward(&x)?.detach())
    }

    /// The stem and the blocks in evaluation mode, every output detached; each block's first
    /// conv's map after its BatchNorm and ReLU also pushed onto `maps` where given.
    fn eval_blocks(&self, x: &Tensor, mut maps: Option<&mut Vec<Tensor>>) -> Result<Tensor> {
        let mut x = conv_bn_relu(&self.conv1, &self.bn1, &x.detach(), false)?.detach();
        for block in &self.blocks {
            let (out, mid) = block.forward_with_mid(&x, false)?;
            if let Some(maps) = maps.as_deref_mut() {
                maps.push(mid.detach());
            }
            x = out.detach();
        }
        Ok(x)
    }
}

impl ResNet {
    /// HRank's maps, evaluation mode, detached: each block's `relu(bn1(conv1(x)))`, the map of
    /// its channel group (`layer{s}.{i}.conv1`), block by block.
    pub(crate) fn feature_maps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut maps = Vec::with_capacity(self.blocks.len());
        self.eval_blocks(x, Some(&mut maps))?;
        Ok(maps)
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = conv_bn_relu(&self.conv1, &self.bn1, x, train)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        // nn.AvgPool2d(8) on the 8x8 map of a 32x32 input.
        let x = x.avg_pool2d(8)?.flatten_from(1)?;
        self.fc.forward(&x)
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_with_mid(x, train)?.0)
    }
}

impl BasicBlock {
    /// The block's output and its first conv's map after BatchNorm and ReLU.
    fn forward_with_mid(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let mid = conv_bn_relu(&self.conv1, &self.bn1, x, train)?;
        let out = self.bn2.forward_t(&self.conv2.forward(&mid)?, train)?;
        let residual = match self.downsample_to {
            None => x.clone(),
            Some(planes) => {
                // Option A shortcut: 2x2 average pool, then zero channels appended.
                let x = if self.detach_shortcut {
                    x.detach()
                } else {
                    x.clone()
                };
                let pooled = x.avg_pool2d(2)?;
                let extra = planes.saturating_sub(pooled.dim(1)?);
                pooled.pad_with_zeros(1, 0, extra)?
            }
        };
        Ok((add_relu(&out, &residual)?, mid))
    }
}

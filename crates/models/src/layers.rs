//! Conv, BatchNorm and linear layers fetched by PyTorch name from a `VarBuilder`.
//!
//! The builders only read tensors: initial values come from [`crate::init`] (PyTorch-equal), or
//! from a checkpoint, or from sliced tensors of a pruned model.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Linear, VarBuilder};

/// A bias-free square conv with `padding = kernel / 2`, weight at `{prefix}.weight`.
pub(crate) fn conv2d(
    vb: &VarBuilder,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
) -> Result<Conv2d> {
    let weight = vb.get((out_channels, in_channels, kernel, kernel), "weight")?;
    let config = Conv2dConfig {
        padding: kernel / 2,
        stride,
        ..Default::default()
    };
    Ok(Conv2d::new(weight, None, config))
}

/// BatchNorm with PyTorch's defaults: eps 1e-5, momentum 0.1 (candle's update is
/// `running = (1 - momentum) * running + momentum * batch`, PyTorch's convention), unbiased
/// running variance.
pub(crate) fn batch_norm(vb: &VarBuilder, channels: usize) -> Result<BatchNorm> {
    let config = BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    candle_nn::batch_norm(channels, config, vb.clone())
}

/// A linear layer with bias; weight `[out, in]` as PyTorch.
pub(crate) fn linear(vb: &VarBuilder, in_features: usize, out_features: usize) -> Result<Linear> {
    let weight = vb.get((out_features, in_features), "weight")?;
    let bias = vb.get(out_features, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

/// conv -> BN -> ReLU, the unit of every VGG layer and the start of every ResNet block.
pub(crate) fn conv_bn_relu(
    conv: &Conv2d,
    bn: &BatchNorm,
    x: &Tensor,
    train: bool,
) -> Result<Tensor> {
    bn.forward_t(&conv.forward(x)?, train)?.relu()
}

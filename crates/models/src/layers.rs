//! Conv, BatchNorm and linear layers fetched by PyTorch name from a `VarBuilder`.
//!
//! The builders only read tensors: initial values come from [`crate::init`] (PyTorch-equal), or
//! from a checkpoint, or from sliced tensors of a pruned model.
//!
//! Conv and BatchNorm pick their implementation per call: the `kernels` crate's CPU ops when
//! `kernels::use_ours(device)` says so (CPU tensors, backend `ours`, the default), candle's
//! built-in ops otherwise (CUDA always). Both read and update the same variables.

use candle_core::{Module, ModuleT, Result, Tensor, Var};
use candle_nn::{BatchNormConfig, Linear, VarBuilder};

/// A bias-free conv, groups 1, weight `[out, in, kh, kw]` as PyTorch.
#[derive(Clone, Debug)]
pub(crate) struct Conv2d {
    pub(crate) weight: Tensor,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if kernels::use_ours(x.device()) {
            kernels::conv2d(x, &self.weight, self.stride, self.padding)
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, 1)
        }
    }
}

/// A bias-free square conv with `padding = kernel / 2`, weight at `{prefix}.weight`.
pub(crate) fn conv2d(
    vb: &VarBuilder,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
) -> Result<Conv2d> {
    let weight = vb.get((out_channels, in_channels, kernel, kernel), "weight")?;
    Ok(Conv2d {
        weight,
        stride,
        padding: kernel / 2,
    })
}

/// BatchNorm over dim 1 (BatchNorm2d and BatchNorm1d): candle's, or the `kernels` crate's on CPU.
#[derive(Clone, Debug)]
pub(crate) struct BatchNorm {
    builtin: candle_nn::BatchNorm,
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    /// The same storage as the `VarMap`'s variables (and `builtin`'s): updated in place.
    pub(crate) running_mean: Var,
    pub(crate) running_var: Var,
}

impl BatchNorm {
    pub(crate) fn config(&self, relu: bool) -> kernels::BatchNormConfig {
        kernels::BatchNormConfig {
            eps: self.builtin.eps(),
            momentum: self.builtin.momentum(),
            relu,
        }
    }

    /// BatchNorm then ReLU, fused on our kernels' path.
    pub(crate) fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_with(x, train, true)
    }

    fn forward_with(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        if !kernels::use_ours(x.device()) {
            let y = self.builtin.forward_t(x, train)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let (w, b, config) = (&self.weight, &self.bias, self.config(relu));
        if train {
            kernels::batch_norm_train(x, w, b, &self.running_mean, &self.running_var, config)
        } else {
            let (m, v) = (self.running_mean.as_tensor(), self.running_var.as_tensor());
            kernels::batch_norm_eval(x, w, b, m, v, config)
        }
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_with(x, train, false)
    }
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
    let builtin = candle_nn::batch_norm(channels, config, vb.clone())?;
    let Some((weight, bias)) = builtin.weight_and_bias() else {
        candle_core::bail!("batch norm built without affine parameters");
    };
    // `Var::from_tensor` of a variable's tensor shares its storage: no copy.
    Ok(BatchNorm {
        weight: weight.clone(),
        bias: bias.clone(),
        running_mean: Var::from_tensor(builtin.running_mean())?,
        running_var: Var::from_tensor(builtin.running_var())?,
        builtin,
    })
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
    bn.forward_relu_t(&conv.forward(x)?, train)
}

/// 2x2 max pooling with PyTorch's gradient (candle's own `max_pool2d` backward scales it by the
/// share of maxima in the window, a quarter for a single one; see [`kernels::max_pool2d`]).
pub(crate) fn max_pool2(x: &Tensor) -> Result<Tensor> {
    if kernels::use_ours(x.device()) {
        kernels::max_pool2d(x, 2)
    } else {
        kernels::max_pool2d_portable(x, 2)
    }
}

/// `relu(a + b)`: the end of a residual block, one fused op on our kernels' path.
pub(crate) fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if kernels::use_ours(a.device()) {
        kernels::add_relu(a, b)
    } else {
        (a + b)?.relu()
    }
}

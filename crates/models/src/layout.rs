//! The layers a config implies, with their PyTorch names and shapes, computed without tensors.
//!
//! This is the one description of each network that parameter counts, FLOPs, initialisation and
//! checkpoint validation all read; the model builders use the same names (a test checks it).

use serde::Serialize;

use crate::config::{
    DenseNetConfig, ModelConfig, RESNET_STAGE_WIDTHS, ResNetConfig, VggConfig, VggItem,
};

/// The input side length all counts assume: CIFAR's 32x32 (Fashion-MNIST is zero-padded to it).
pub const INPUT_SIZE: usize = 32;

/// One layer with weights, in the order of the forward pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layer {
    /// A bias-free 2-D convolution with square kernel and `padding = kernel / 2`.
    Conv2d {
        /// PyTorch module path, e.g. `layer2.3.conv1`.
        name: String,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Output side length for a 32x32 network input.
        output_size: usize,
    },
    /// BatchNorm over `channels` (2-D after a conv, 1-D in VGG's classifier).
    BatchNorm {
        /// PyTorch module path, e.g. `layer2.3.bn1`.
        name: String,
        /// Normalised channels.
        channels: usize,
        /// `true` for BatchNorm2d, `false` for BatchNorm1d.
        spatial: bool,
    },
    /// A linear layer with bias.
    Linear {
        /// PyTorch module path, e.g. `fc`.
        name: String,
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
}

impl Layer {
    /// The PyTorch module path.
    pub fn name(&self) -> &str {
        match self {
            Self::Conv2d { name, .. }
            | Self::BatchNorm { name, .. }
            | Self::Linear { name, .. } => name,
        }
    }

    /// Trainable parameters (BatchNorm running statistics excluded, as PyTorch's `parameters()`).
    ///
    /// Exact for the layers of a validated config ([`ModelConfig::validate`] caps every count);
    /// saturates at `u64::MAX` otherwise, never wraps around.
    pub fn params(&self) -> u64 {
        match self {
            Self::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => product(&[*in_channels, *out_channels, *kernel, *kernel]),
            Self::BatchNorm { channels, .. } => product(&[2, *channels]),
            Self::Linear {
                in_features,
                out_features,
                ..
            } => product(&[*in_features, *out_features]).saturating_add(*out_features as u64),
        }
    }

    /// Multiply-adds for one image: convs and linear layers only (no BatchNorm, ReLU, pooling or
    /// bias additions), the convention of the PFEC paper's FLOPs column. Exact for a validated
    /// config, saturating otherwise, as [`Layer::params`].
    pub fn flops(&self) -> u64 {
        match self {
            Self::Conv2d {
                in_channels,
                out_channels,
                kernel,
                output_size,
                ..
            } => product(&[
                *in_channels,
                *out_channels,
                *kernel,
                *kernel,
                *output_size,
                *output_size,
            ]),
            Self::BatchNorm { .. } => 0,
            Self::Linear {
                in_features,
                out_features,
                ..
            } => product(&[*in_features, *out_features]),
        }
    }

    /// The tensors this layer owns, with PyTorch names and layouts.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let spec = |suffix: &str, shape: Vec<usize>, role: TensorRole| TensorSpec {
            name: format!("{}.{suffix}", self.name()),
            shape,
            role,
        };
        match self {
            Self::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => vec![spec(
                "weight",
                vec![*out_channels, *in_channels, *kernel, *kernel],
                TensorRole::ConvWeight,
            )],
            Self::BatchNorm { channels, .. } => vec![
                spec("weight", vec![*channels], TensorRole::BnWeight),
                spec("bias", vec![*channels], TensorRole::BnBias),
                spec("running_mean", vec![*channels], TensorRole::RunningMean),
                spec("running_var", vec![*channels], TensorRole::RunningVar),
            ],
            Self::Linear {
                in_features,
                out_features,
                ..
            } => vec![
                spec(
                    "weight",
                    vec![*out_features, *in_features],
                    TensorRole::LinearWeight,
                ),
                spec("bias", vec![*out_features], TensorRole::LinearBias),
            ],
        }
    }
}

/// The product of `factors` in `u64`, saturating: an unvalidated config's count is "too many",
/// never a small wrapped-around number.
fn product(factors: &[usize]) -> u64 {
    factors
        .iter()
        .try_fold(1u64, |p, &f| p.checked_mul(f as u64))
        .unwrap_or(u64::MAX)
}

/// What a named tensor is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorRole {
    /// Conv kernel `[out, in, k, k]`.
    ConvWeight,
    /// BatchNorm scale (gamma).
    BnWeight,
    /// BatchNorm shift (beta).
    BnBias,
    /// BatchNorm running mean: a buffer, not trained.
    RunningMean,
    /// BatchNorm running variance (unbiased): a buffer, not trained.
    RunningVar,
    /// Linear weight `[out, in]`.
    LinearWeight,
    /// Linear bias `[out]`.
    LinearBias,
}

impl TensorRole {
    /// Whether the optimizer updates it; running statistics are updated by the forward pass.
    pub fn is_trainable(self) -> bool {
        !matches!(self, Self::RunningMean | Self::RunningVar)
    }
}

/// One named tensor of a model: name, shape and role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    /// PyTorch `state_dict` key, e.g. `layer1.0.bn1.running_var`.
    pub name: String,
    /// PyTorch layout.
    pub shape: Vec<usize>,
    /// What it is for.
    pub role: TensorRole,
}

impl ModelConfig {
    /// Every layer with weights, in forward order, for a 32x32 input.
    pub fn layers(&self) -> Vec<Layer> {
        match self {
            Self::ResNet(c) => resnet_layers(c),
            Self::Vgg(c) => vgg_layers(c),
            Self::DenseNet(c) => densenet_layers(c),
        }
    }

    /// Every tensor of the model's `state_dict` (without `num_batches_tracked`), in forward order.
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        self.layers().iter().flat_map(Layer::tensors).collect()
    }

    /// Names of the tensors an optimizer should update: everything but BatchNorm running stats.
    pub fn trainable_names(&self) -> Vec<String> {
        self.tensor_specs()
            .into_iter()
            .filter(|s| s.role.is_trainable())
            .map(|s| s.name)
            .collect()
    }
}

fn conv(
    name: String,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    in_size: usize,
) -> Layer {
    let pad = kernel / 2;
    Layer::Conv2d {
        name,
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        // Saturating: an unvalidated config (too many pools) must not panic here.
        output_size: (in_size + 2 * pad).saturating_sub(kernel) / stride.max(1) + 1,
    }
}

fn bn(name: String, channels: usize) -> Layer {
    Layer::BatchNorm {
        name,
        channels,
        spatial: true,
    }
}

fn resnet_layers(c: &ResNetConfig) -> Vec<Layer> {
    let n = c.block_widths.len() / 3;
    let mut layers = vec![
        conv(
            "conv1".into(),
            c.in_channels,
            RESNET_STAGE_WIDTHS[0],
            3,
            1,
            INPUT_SIZE,
        ),
        bn("bn1".into(), RESNET_STAGE_WIDTHS[0]),
    ];
    let mut size = INPUT_SIZE;
    let mut inplanes = RESNET_STAGE_WIDTHS[0];
    for (stage, &planes) in RESNET_STAGE_WIDTHS.iter().enumerate() {
        for i in 0..n {
            let width = c.block_widths[stage * n + i];
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let p = format!("layer{}.{i}", stage + 1);
            let first = conv(format!("{p}.conv1"), inplanes, width, 3, stride, size);
            if let Layer::Conv2d { output_size, .. } = first {
                size = output_size;
            }
            layers.push(first);
            layers.push(bn(format!("{p}.bn1"), width));
            layers.push(conv(format!("{p}.conv2"), width, planes, 3, 1, size));
            layers.push(bn(format!("{p}.bn2"), planes));
            inplanes = planes;
        }
    }
    layers.push(Layer::Linear {
        name: "fc".into(),
        in_features: inplanes,
        out_features: c.num_classes,
    });
    layers
}

fn vgg_layers(c: &VggConfig) -> Vec<Layer> {
    let mut layers = Vec::new();
    let mut size = INPUT_SIZE;
    let mut cin = c.in_channels;
    let mut idx = 0;
    for item in &c.cfg {
        match *item {
            VggItem::Conv(w) => {
                layers.push(conv(format!("feature.{idx}"), cin, w, 3, 1, size));
                layers.push(bn(format!("feature.{}", idx + 1), w));
                cin = w;
                idx += 3;
            }
            VggItem::MaxPool => {
                size /= 2;
                idx += 1;
            }
        }
    }
    layers.push(Layer::Linear {
        name: "classifier.0".into(),
        in_features: cin,
        out_features: c.classifier_width,
    });
    layers.push(Layer::BatchNorm {
        name: "classifier.1".into(),
        channels: c.classifier_width,
        spatial: false,
    });
    layers.push(Layer::Linear {
        name: "classifier.3".into(),
        in_features: c.classifier_width,
        out_features: c.num_classes,
    });
    layers
}

fn densenet_layers(c: &DenseNetConfig) -> Vec<Layer> {
    let n = c.layer_widths.len() / 3;
    let mut layers = vec![conv(
        "conv1".into(),
        c.in_channels,
        c.stem_width,
        3,
        1,
        INPUT_SIZE,
    )];
    let mut size = INPUT_SIZE;
    let mut channels = c.stem_width;
    for block in 0..3 {
        for i in 0..n {
            let p = format!("dense{}.{i}", block + 1);
            let growth = c.layer_widths[block * n + i];
            layers.push(bn(format!("{p}.bn1"), channels));
            layers.push(conv(format!("{p}.conv1"), channels, growth, 3, 1, size));
            channels += growth;
        }
        if block < 2 {
            let p = format!("trans{}", block + 1);
            let out = c.transition_widths.get(block).copied().unwrap_or(channels);
            layers.push(bn(format!("{p}.bn1"), channels));
            layers.push(conv(format!("{p}.conv1"), channels, out, 1, 1, size));
            channels = out;
            size /= 2;
        }
    }
    layers.push(bn("bn".into(), channels));
    layers.push(Layer::Linear {
        name: "fc".into(),
        in_features: channels,
        out_features: c.num_classes,
    });
    layers
}

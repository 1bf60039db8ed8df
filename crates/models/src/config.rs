//! Model configurations: every prunable width of a network, serializable to JSON.
//!
//! A pruned model is the same architecture with smaller numbers in its config, so a config plus
//! a weights file fully describes a checkpoint.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The output widths of the three ResNet stages; PFEC never prunes block outputs, so they are fixed.
pub const RESNET_STAGE_WIDTHS: [usize; 3] = [16, 32, 64];

/// The width of VGG's hidden classifier layer in the reference code (`nn.Linear(cfg[-1], 512)`).
pub const VGG_CLASSIFIER_WIDTH: usize = 512;

/// The VGG-16 feature layout of the reference code (`defaultcfg[16]`).
pub const VGG16_LAYOUT: [VggItem; 17] = {
    use VggItem::{Conv as C, MaxPool as M};
    [
        C(64),
        C(64),
        M,
        C(128),
        C(128),
        M,
        C(256),
        C(256),
        C(256),
        M,
        C(512),
        C(512),
        C(512),
        M,
        C(512),
        C(512),
        C(512),
    ]
};

/// The widest layer a config may have (any conv, linear or BatchNorm width, and the input
/// channels): 64x the widest layer of the paper's networks, and small enough that no count of a
/// validated config can overflow.
pub const MAX_WIDTH: usize = 1 << 16;

/// The most output classes a config may have (ImageNet-21k has 21,841).
pub const MAX_CLASSES: usize = 1_000_000;

/// The deepest network a config may describe: the depth of a ResNet or DenseNet, the conv layers
/// of a VGG. Above ResNet-1202, the deepest CIFAR network published (He et al. 2016).
pub const MAX_DEPTH: usize = 2_000;

/// The most tensor elements (parameters and running statistics) a model may hold: 2^32, that is
/// 16 GiB of f32 weights, the cap on a weights file ([`files::LARGE`]). Keeps every parameter
/// and FLOPs count far from `u64` overflow, and refuses a config before its tensors are allocated.
pub const MAX_ELEMENTS: u64 = 1 << 32;

/// One network: its family and every width that pruning may change.
///
/// Serialized with an `arch` tag: `{"arch": "resnet", "depth": 56, ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "arch")]
pub enum ModelConfig {
    /// CIFAR ResNet of depth 6n+2 with BasicBlocks (Liu et al., `l1-norm-pruning/models/resnet.py`).
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// CIFAR VGG with BatchNorm (Liu et al., `l1-norm-pruning/models/vgg.py`).
    #[serde(rename = "vgg")]
    Vgg(VggConfig),
    /// CIFAR DenseNet with BN-ReLU-conv layers (HRankPlus, `models/cifar10/densenet.py`).
    #[serde(rename = "densenet")]
    DenseNet(DenseNetConfig),
}

/// A CIFAR ResNet: 3x3 stem conv to 16 channels, three stages of `n = (depth - 2) / 6`
/// BasicBlocks with 16, 32 and 64 output channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// 6n+2: 20, 32, 44, 56, 110, ...
    pub depth: usize,
    /// Input image channels: 3 for CIFAR, 1 for Fashion-MNIST.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// The width of each block's first conv, stage by stage (`3n` entries); the reference's `cfg`.
    pub block_widths: Vec<usize>,
    /// Cut the gradient through the shortcut at the two stage transitions, as the reference code
    /// does by building it from `x.data`. Off by default.
    #[serde(default)]
    pub detach_shortcut: bool,
}

/// One entry of a VGG feature layout: a 3x3 conv (with BatchNorm and ReLU) or a 2x2 max-pool.
///
/// Serializes as the reference code's `cfg`: a number for a conv width, `"M"` for a max-pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VggItem {
    /// A bias-free 3x3 conv with this many output channels, then BatchNorm2d and ReLU.
    Conv(usize),
    /// `nn.MaxPool2d(2, 2)`.
    MaxPool,
}

/// A CIFAR VGG with BatchNorm: the feature layout, a 2x2 average pool, then
/// Linear - BatchNorm1d - ReLU - Linear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VggConfig {
    /// Input image channels: 3 for CIFAR, 1 for Fashion-MNIST.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// The feature layout, as the reference's `cfg` (`[64, 64, "M", 128, ...]`).
    pub cfg: Vec<VggItem>,
    /// The hidden classifier width (512 in the reference).
    #[serde(default = "default_classifier_width")]
    pub classifier_width: usize,
}

fn default_classifier_width() -> usize {
    VGG_CLASSIFIER_WIDTH
}

/// A CIFAR DenseNet (HRankPlus `densenet_40` layout): a 3x3 stem conv, three dense blocks of
/// `n = (depth - 4) / 3` BN-ReLU-conv3x3 layers whose outputs are concatenated to their inputs,
/// two BN-ReLU-conv1x1 transitions each followed by a 2x2 average pool, then BN-ReLU, an 8x8
/// average pool and a linear layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseNetConfig {
    /// 3n+4: 40 for DenseNet-40.
    pub depth: usize,
    /// The unpruned growth rate (12); each dense layer's width defaults to it.
    pub growth_rate: usize,
    /// Input image channels: 3 for CIFAR, 1 for Fashion-MNIST.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Output channels of the stem conv (`2 * growth_rate` unpruned).
    pub stem_width: usize,
    /// Output channels of each dense layer's conv, block by block (`3n` entries).
    pub layer_widths: Vec<usize>,
    /// Output channels of the two transitions' 1x1 convs (no compression: equal to their input).
    pub transition_widths: Vec<usize>,
}

impl ModelConfig {
    /// An unpruned CIFAR ResNet of the given depth (6n+2).
    pub fn resnet(depth: usize, num_classes: usize, in_channels: usize) -> Result<Self> {
        // Checked before the width list is allocated: `resnet6000000002` must not build 3e9 entries.
        check_resnet_depth(depth)?;
        check_io(in_channels, num_classes)?;
        let n = (depth - 2) / 6;
        let block_widths = RESNET_STAGE_WIDTHS
            .iter()
            .flat_map(|&w| std::iter::repeat_n(w, n))
            .collect();
        let config = Self::ResNet(ResNetConfig {
            depth,
            in_channels,
            num_classes,
            block_widths,
            detach_shortcut: false,
        });
        config.validate()?;
        Ok(config)
    }

    /// The unpruned CIFAR VGG-16 with BatchNorm.
    pub fn vgg16(num_classes: usize, in_channels: usize) -> Result<Self> {
        check_io(in_channels, num_classes)?;
        let config = Self::Vgg(VggConfig {
            in_channels,
            num_classes,
            cfg: VGG16_LAYOUT.to_vec(),
            classifier_width: VGG_CLASSIFIER_WIDTH,
        });
        config.validate()?;
        Ok(config)
    }

    /// An unpruned CIFAR DenseNet of the given depth (3n+4) and growth rate, without compression.
    pub fn densenet(
        depth: usize,
        growth_rate: usize,
        num_classes: usize,
        in_channels: usize,
    ) -> Result<Self> {
        check_densenet_depth(depth)?;
        check_io(in_channels, num_classes)?;
        check_width("DenseNet growth rate", growth_rate)?;
        let n = (depth - 4) / 3;
        let stem_width = 2 * growth_rate;
        // No compression: each transition keeps the channels its block ends with.
        let t1 = stem_width + n * growth_rate;
        let t2 = t1 + n * growth_rate;
        let config = Self::DenseNet(DenseNetConfig {
            depth,
            growth_rate,
            in_channels,
            num_classes,
            stem_width,
            layer_widths: vec![growth_rate; 3 * n],
            transition_widths: vec![t1, t2],
        });
        config.validate()?;
        Ok(config)
    }

    /// An unpruned model from its short name: `resnet20`, `resnet32`, `resnet44`, `resnet56`,
    /// `resnet110` (any 6n+2 depth), `vgg16`, `densenet40` (any 3n+4 depth, growth rate 12).
    pub fn from_name(name: &str, num_classes: usize, in_channels: usize) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        let depth = |rest: &str| {
            rest.parse::<usize>()
                .map_err(|_| Error::Config(format!("unknown architecture '{name}'")))
        };
        if let Some(rest) = lower.strip_prefix("resnet") {
            Self::resnet(depth(rest)?, num_classes, in_channels)
        } else if lower == "vgg16" {
            Self::vgg16(num_classes, in_channels)
        } else if let Some(rest) = lower.strip_prefix("densenet") {
            Self::densenet(depth(rest)?, 12, num_classes, in_channels)
        } else {
            Err(Error::Config(format!(
                "unknown architecture '{name}' (expected resnet20/32/44/56/110, vgg16 or densenet40)"
            )))
        }
    }

    /// A short name: `resnet56`, `vgg16`, `densenet40`, with `-pruned` when any width differs
    /// from the unpruned model of the same depth.
    pub fn name(&self) -> String {
        let base = match self {
            Self::ResNet(c) => format!("resnet{}", c.depth),
            Self::Vgg(c) => {
                let convs = c
                    .cfg
                    .iter()
                    .filter(|i| matches!(i, VggItem::Conv(_)))
                    .count();
                // The name counts ImageNet VGG's 13 convs + 3 linear layers; the CIFAR variant
                // keeps "VGG-16" though its classifier has two linear layers.
                format!("vgg{}", convs + 3)
            }
            Self::DenseNet(c) => format!("densenet{}", c.depth),
        };
        if self.is_unpruned() {
            base
        } else {
            format!("{base}-pruned")
        }
    }

    /// The unpruned model of the same family, depth, classes and input channels: the reference
    /// a pruned config's reductions (and Scratch-B's budget) are measured against.
    pub fn unpruned(&self) -> Result<Self> {
        match self {
            Self::ResNet(c) => {
                let mut full = Self::resnet(c.depth, c.num_classes, c.in_channels)?;
                if let Self::ResNet(f) = &mut full {
                    f.detach_shortcut = c.detach_shortcut;
                }
                Ok(full)
            }
            Self::Vgg(c) => Self::vgg16(c.num_classes, c.in_channels),
            Self::DenseNet(c) => {
                Self::densenet(c.depth, c.growth_rate, c.num_classes, c.in_channels)
            }
        }
    }

    fn is_unpruned(&self) -> bool {
        let reference = match self {
            Self::ResNet(c) => Self::resnet(c.depth, c.num_classes, c.in_channels),
            Self::Vgg(c) => {
                return c.cfg == VGG16_LAYOUT && c.classifier_width == VGG_CLASSIFIER_WIDTH;
            }
            Self::DenseNet(c) => {
                Self::densenet(c.depth, c.growth_rate, c.num_classes, c.in_channels)
            }
        };
        match (reference, self) {
            (Ok(Self::ResNet(r)), Self::ResNet(c)) => r.block_widths == c.block_widths,
            (Ok(r), _) => &r == self,
            (Err(_), _) => false,
        }
    }

    /// Input image channels.
    pub fn in_channels(&self) -> usize {
        match self {
            Self::ResNet(c) => c.in_channels,
            Self::Vgg(c) => c.in_channels,
            Self::DenseNet(c) => c.in_channels,
        }
    }

    /// Output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            Self::ResNet(c) => c.num_classes,
            Self::Vgg(c) => c.num_classes,
            Self::DenseNet(c) => c.num_classes,
        }
    }

    /// Checks that the config describes a network that can be built: depths, list lengths,
    /// widths between 1 and [`MAX_WIDTH`], at most [`MAX_CLASSES`] classes, and at most
    /// [`MAX_ELEMENTS`] tensor elements in all (so parameter and FLOPs counts are exact).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        check_io(self.in_channels(), self.num_classes())?;
        match self {
            Self::ResNet(c) => {
                check_resnet_depth(c.depth)?;
                let n = (c.depth - 2) / 6;
                if c.block_widths.len() != 3 * n {
                    return bad(format!(
                        "ResNet-{} needs {} block widths, got {}",
                        c.depth,
                        3 * n,
                        c.block_widths.len()
                    ));
                }
                if let Some(i) = c.block_widths.iter().position(|&w| w == 0) {
                    return bad(format!("ResNet block width {i} is zero"));
                }
                check_widths("ResNet block width", &c.block_widths)?;
            }
            Self::Vgg(c) => {
                let convs = c
                    .cfg
                    .iter()
                    .filter(|i| matches!(i, VggItem::Conv(_)))
                    .count();
                let pools = c.cfg.len() - convs;
                if convs == 0 {
                    return bad("VGG needs at least one conv layer".into());
                }
                if convs > MAX_DEPTH {
                    return bad(format!(
                        "VGG has {convs} conv layers, more than the {MAX_DEPTH} allowed"
                    ));
                }
                // 32x32 input; the classifier's 2x2 average pool needs a 2x2 map after the pools.
                if pools != 4 {
                    return bad(format!(
                        "VGG on 32x32 inputs needs exactly 4 max-pools, got {pools}"
                    ));
                }
                if c.cfg.last() == Some(&VggItem::MaxPool) {
                    return bad("VGG layout must end with a conv layer".into());
                }
                if c.cfg.contains(&VggItem::Conv(0)) || c.classifier_width == 0 {
                    return bad("VGG widths must be at least 1".into());
                }
                for item in &c.cfg {
                    if let VggItem::Conv(w) = *item {
                        check_width("VGG conv width", w)?;
                    }
                }
                check_width("VGG classifier width", c.classifier_width)?;
            }
            Self::DenseNet(c) => {
                check_densenet_depth(c.depth)?;
                let n = (c.depth - 4) / 3;
                if c.layer_widths.len() != 3 * n {
                    return bad(format!(
                        "DenseNet-{} needs {} layer widths, got {}",
                        c.depth,
                        3 * n,
                        c.layer_widths.len()
                    ));
                }
                if c.transition_widths.len() != 2 {
                    return bad(format!(
                        "DenseNet needs 2 transition widths, got {}",
                        c.transition_widths.len()
                    ));
                }
                if c.stem_width == 0
                    || c.layer_widths.contains(&0)
                    || c.transition_widths.contains(&0)
                {
                    return bad("DenseNet widths must be at least 1".into());
                }
                check_width("DenseNet growth rate", c.growth_rate)?;
                check_width("DenseNet stem width", c.stem_width)?;
                check_widths("DenseNet layer width", &c.layer_widths)?;
                check_widths("DenseNet transition width", &c.transition_widths)?;
            }
        }
        // Widths are capped, but a block's concatenation or a long network can still add up:
        // every tensor is counted with checked arithmetic before anything is allocated for it.
        let elements = self
            .tensor_specs()
            .iter()
            .try_fold(0u64, |sum, spec| {
                let n = spec
                    .shape
                    .iter()
                    .try_fold(1u64, |p, &d| p.checked_mul(d as u64))?;
                sum.checked_add(n)
            })
            .filter(|&n| n <= MAX_ELEMENTS);
        if elements.is_none() {
            return bad(format!(
                "the model would hold more than {MAX_ELEMENTS} tensor elements (16 GiB of f32)"
            ));
        }
        Ok(())
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> String {
        // Plain structs of numbers and strings: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads, parses and validates a `config.json` of at most [`files::SMALL`] bytes; FIFOs and
    /// devices are refused by name. Errors name the file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = files::read_to_string(path, files::SMALL).map_err(|source| Error::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| Error::BadConfig {
            file: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Parses and validates a config from JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("cannot parse model config: {e}")))?;
        config.validate()?;
        Ok(config)
    }
}

fn check_resnet_depth(depth: usize) -> Result<()> {
    if depth < 8 || !(depth - 2).is_multiple_of(6) || depth > MAX_DEPTH {
        return Err(Error::Config(format!(
            "ResNet depth must be 6n+2 with n >= 1, at most {MAX_DEPTH}, got {depth}"
        )));
    }
    Ok(())
}

fn check_densenet_depth(depth: usize) -> Result<()> {
    if depth < 7 || !(depth - 4).is_multiple_of(3) || depth > MAX_DEPTH {
        return Err(Error::Config(format!(
            "DenseNet depth must be 3n+4 with n >= 1, at most {MAX_DEPTH}, got {depth}"
        )));
    }
    Ok(())
}

fn check_io(in_channels: usize, num_classes: usize) -> Result<()> {
    if in_channels == 0 || num_classes == 0 {
        return Err(Error::Config(
            "in_channels and num_classes must be at least 1".into(),
        ));
    }
    if in_channels > MAX_WIDTH {
        return Err(Error::Config(format!(
            "in_channels must be at most {MAX_WIDTH}, got {in_channels}"
        )));
    }
    if num_classes > MAX_CLASSES {
        return Err(Error::Config(format!(
            "num_classes must be at most {MAX_CLASSES}, got {num_classes}"
        )));
    }
    Ok(())
}

fn check_width(what: &str, width: usize) -> Result<()> {
    if width > MAX_WIDTH {
        return Err(Error::Config(format!(
            "{what} must be at most {MAX_WIDTH}, got {width}"
        )));
    }
    Ok(())
}

fn check_widths(what: &str, widths: &[usize]) -> Result<()> {
    widths.iter().try_for_each(|&w| check_width(what, w))
}

impl Serialize for VggItem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Conv(w) => s.serialize_u64(*w as u64),
            Self::MaxPool => s.serialize_str("M"),
        }
    }
}

impl<'de> Deserialize<'de> for VggItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Width(usize),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Width(w) => Ok(Self::Conv(w)),
            Raw::Name(s) if s == "M" => Ok(Self::MaxPool),
            Raw::Name(s) => Err(serde::de::Error::custom(format!(
                "VGG layout entry must be a width or \"M\", got \"{s}\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_family() {
        for config in [
            ModelConfig::resnet(56, 10, 3).unwrap(),
            ModelConfig::vgg16(100, 1).unwrap(),
            ModelConfig::densenet(40, 12, 10, 3).unwrap(),
        ] {
            let back = ModelConfig::from_json(&config.to_json()).unwrap();
            assert_eq!(back, config);
        }
    }

    #[test]
    fn json_uses_arch_tag_and_reference_cfg_form() {
        let json = ModelConfig::vgg16(10, 3).unwrap().to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["arch"], "vgg");
        assert_eq!(v["cfg"][2], "M");
        assert_eq!(v["cfg"][0], 64);
        let resnet = r#"{"arch":"resnet","depth":20,"in_channels":3,"num_classes":10,
            "block_widths":[16,16,16,32,32,32,64,64,64]}"#;
        let c = ModelConfig::from_json(resnet).unwrap();
        assert_eq!(c.name(), "resnet20");
    }

    #[test]
    fn names_parse_and_bad_configs_are_rejected() {
        assert_eq!(
            ModelConfig::from_name("ResNet110", 10, 3).unwrap().name(),
            "resnet110"
        );
        assert_eq!(
            ModelConfig::from_name("densenet40", 10, 3).unwrap().name(),
            "densenet40"
        );
        assert!(ModelConfig::from_name("resnet57", 10, 3).is_err());
        assert!(ModelConfig::from_name("alexnet", 10, 3).is_err());
        let mut c = ModelConfig::resnet(20, 10, 3).unwrap();
        if let ModelConfig::ResNet(r) = &mut c {
            r.block_widths.pop();
        }
        assert!(c.validate().is_err());
        let err = ModelConfig::from_json(
            r#"{"arch":"vgg","in_channels":3,"num_classes":10,"cfg":[64,"X"]}"#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn pruned_widths_show_in_the_name() {
        let mut c = ModelConfig::resnet(56, 10, 3).unwrap();
        if let ModelConfig::ResNet(r) = &mut c {
            r.block_widths[0] = 8;
        }
        assert_eq!(c.name(), "resnet56-pruned");
    }

    #[test]
    fn huge_depths_classes_and_channels_are_refused_before_allocating() {
        let msg = |r: Result<ModelConfig>| r.unwrap_err().to_string();
        // 6n+2 with n = 10^9: the width list alone would be 12 GB.
        assert_eq!(
            msg(ModelConfig::from_name("resnet6000000002", 10, 3)),
            "invalid model config: ResNet depth must be 6n+2 with n >= 1, at most 2000, got 6000000002"
        );
        assert_eq!(
            msg(ModelConfig::from_name("densenet3000000004", 10, 3)),
            "invalid model config: DenseNet depth must be 3n+4 with n >= 1, at most 2000, got 3000000004"
        );
        assert_eq!(
            msg(ModelConfig::resnet(20, usize::MAX, 3)),
            format!(
                "invalid model config: num_classes must be at most 1000000, got {}",
                usize::MAX
            )
        );
        assert_eq!(
            msg(ModelConfig::vgg16(10, 1_000_000_000)),
            "invalid model config: in_channels must be at most 65536, got 1000000000"
        );
        assert_eq!(
            msg(ModelConfig::densenet(40, usize::MAX, 10, 3)),
            format!(
                "invalid model config: DenseNet growth rate must be at most 65536, got {}",
                usize::MAX
            )
        );
        // ResNet-1202, the deepest CIFAR ResNet published (19.4M parameters in He et al.), is
        // within the caps. By hand, n = 200: stem 432 + 32; stage 1, 200 x (2 x 2304 + 64);
        // stage 2, 13,952 + 199 x 18,560; stage 3, 55,552 + 199 x 73,984; fc 650.
        assert_eq!(
            ModelConfig::resnet(1202, 10, 3).unwrap().params(),
            19_421_274
        );
    }

    #[test]
    fn widths_within_their_cap_that_add_up_to_too_much_are_refused() {
        // Every width at the cap: 16 convs of 65536 x 65536 x 9 is 618G weights.
        let json = format!(
            r#"{{"arch":"vgg","in_channels":3,"num_classes":10,"cfg":[{w},"M",{w},"M",{w},"M",{w},"M",{w}]}}"#,
            w = MAX_WIDTH
        );
        assert_eq!(
            ModelConfig::from_json(&json).unwrap_err().to_string(),
            "invalid model config: the model would hold more than 4294967296 tensor elements (16 GiB of f32)"
        );
        let json = format!(
            r#"{{"arch":"vgg","in_channels":3,"num_classes":10,"cfg":[{}]}}"#,
            ["1"; 2001].join(",")
        );
        assert!(
            ModelConfig::from_json(&json)
                .unwrap_err()
                .to_string()
                .contains("2001 conv layers, more than the 2000 allowed")
        );
    }

    #[test]
    fn counts_saturate_instead_of_wrapping_for_unvalidated_configs() {
        let mut c = ModelConfig::resnet(8, 10, 3).unwrap();
        if let ModelConfig::ResNet(r) = &mut c {
            r.block_widths = vec![1 << 63, 16, 16];
        }
        assert!(c.validate().is_err());
        // Used to wrap around to 1,498 parameters.
        assert_eq!(c.params(), u64::MAX);
        assert_eq!(c.flops(), u64::MAX);
        // At the caps, a validated config's counts are exact (no saturation): checked against
        // the closed form of a VGG whose first conv is as wide as allowed.
        let mut v = ModelConfig::vgg16(10, 3).unwrap();
        if let ModelConfig::Vgg(cfg) = &mut v {
            cfg.cfg[0] = VggItem::Conv(MAX_WIDTH);
        }
        v.validate().unwrap();
        let base = ModelConfig::vgg16(10, 3).unwrap();
        let w = MAX_WIDTH as u64;
        // conv0: 3 -> w (was 64); conv1: w -> 64 (was 64 -> 64); BN0: 2w (was 128).
        let extra = (3 * w * 9 - 3 * 64 * 9) + (w * 64 * 9 - 64 * 64 * 9) + (2 * w - 128);
        assert_eq!(v.params(), base.params() + extra);
    }

    #[test]
    fn config_files_are_read_with_a_cap_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let config = ModelConfig::resnet(20, 10, 3).unwrap();
        std::fs::write(&path, config.to_json()).unwrap();
        assert_eq!(ModelConfig::load(&path).unwrap(), config);
        std::fs::write(&path, r#"{"arch":"resnet","depth":21}"#).unwrap();
        let err = ModelConfig::load(&path).unwrap_err();
        assert!(
            matches!(&err, Error::BadConfig { file, .. } if file == &path),
            "{err}"
        );
        let err = ModelConfig::load(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert_eq!(err.to_string(), "/dev/zero");
    }
}

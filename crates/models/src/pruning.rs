//! What each family offers to pruning: its channel groups (declared, not traced), the tensors
//! unstructured pruning masks, the PFEC targets of the reference code, and the smaller config a
//! structured plan leaves.

use std::collections::BTreeMap;

use prune_core::{ChannelGroup, GroupMember, PfecVersion, PruningPlan};

use crate::config::{DenseNetConfig, ModelConfig, VggConfig, VggItem};
use crate::error::{Error, Result};
use crate::layout::TensorRole;
use crate::model::Model;

const BN_TENSORS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// The four BatchNorm vectors of module `bn`, each on axis 0 at `offset`.
fn bn_members(bn: &str, offset: usize) -> impl Iterator<Item = GroupMember> + '_ {
    BN_TENSORS
        .iter()
        .map(move |t| GroupMember::at(format!("{bn}.{t}"), 0, offset))
}

impl ModelConfig {
    /// Checks unstructured masks against this model: every mask names one of its tensors and
    /// has that tensor's shape ([`prune_core::Masks::check_tensors`]). Values are checked when
    /// masks are read ([`prune_core::Masks::load`] refuses anything but 0 and 1).
    pub fn check_masks(&self, masks: &prune_core::Masks) -> Result<()> {
        let specs = self.tensor_specs();
        masks.check_tensors(specs.iter().map(|s| (s.name.as_str(), s.shape.as_slice())))?;
        Ok(())
    }

    /// The channel groups pruning may shrink, in forward order. Each is named after the conv that
    /// produces its channels and lists every tensor axis that carries them:
    ///
    /// - ResNet: each block's first conv (`layer1.0.conv1`): its filters (axis 0), its BatchNorm
    ///   `bn1` (axis 0) and the block's second conv's input (`conv2.weight`, axis 1). Block
    ///   outputs are tied together by the identity shortcuts and are never pruned.
    /// - VGG: each conv (`feature.0`): its filters, its BatchNorm and the next conv's input, the
    ///   last conv feeding `classifier.0.weight` (axis 1).
    /// - DenseNet: the stem conv, every dense layer's conv and both transitions' convs. A dense
    ///   layer's output is concatenated after its input, so it reaches every later layer of its
    ///   block, and the block's transition (or the final BatchNorm and `fc`), at an offset: the
    ///   block's input width plus the widths of the layers before it.
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        match self {
            Self::ResNet(c) => {
                let n = c.block_widths.len() / 3;
                (0..3)
                    .flat_map(|stage| (0..n).map(move |i| (stage, i)))
                    .map(|(stage, i)| {
                        let p = format!("layer{}.{i}", stage + 1);
                        let mut members = vec![GroupMember::new(format!("{p}.conv1.weight"), 0)];
                        members.extend(bn_members(&format!("{p}.bn1"), 0));
                        members.push(GroupMember::new(format!("{p}.conv2.weight"), 1));
                        ChannelGroup {
                            name: format!("{p}.conv1"),
                            channels: c.block_widths[stage * n + i],
                            score_tensor: format!("{p}.conv1.weight"),
                            members,
                        }
                    })
                    .collect()
            }
            Self::Vgg(c) => vgg_groups(c),
            Self::DenseNet(c) => densenet_groups(c),
        }
    }

    /// The conv weights, in forward order: what magnitude weight pruning masks (Liu et al.'s
    /// weight-level code prunes every `nn.Conv2d`, not linear layers or BatchNorm).
    pub fn conv_weight_names(&self) -> Vec<String> {
        self.tensor_specs()
            .into_iter()
            .filter(|s| s.role == TensorRole::ConvWeight)
            .map(|s| s.name)
            .collect()
    }

    /// The same architecture with the groups named in `widths` narrowed to the given widths
    /// (group name -> channels kept), validated.
    pub fn with_group_widths(&self, widths: &BTreeMap<String, usize>) -> Result<Self> {
        let groups = self.channel_groups();
        if let Some(unknown) = widths
            .keys()
            .find(|w| !groups.iter().any(|g| &g.name == *w))
        {
            return Err(prune_core::Error::UnknownGroup(unknown.clone()).into());
        }
        // Group i of `channel_groups` is width slot i of the config, in the same order.
        let slot = |i: usize| widths.get(&groups[i].name).copied();
        let mut out = self.clone();
        match &mut out {
            Self::ResNet(c) => {
                for (i, w) in c.block_widths.iter_mut().enumerate() {
                    *w = slot(i).unwrap_or(*w);
                }
            }
            Self::Vgg(c) => {
                let convs = c.cfg.iter_mut().filter_map(|item| match item {
                    VggItem::Conv(w) => Some(w),
                    VggItem::MaxPool => None,
                });
                for (i, w) in convs.enumerate() {
                    *w = slot(i).unwrap_or(*w);
                }
            }
            Self::DenseNet(c) => {
                // Groups: stem, block 1 layers, trans1, block 2 layers, trans2, block 3 layers.
                let n = c.layer_widths.len() / 3;
                let mut i = 0;
                c.stem_width = slot(i).unwrap_or(c.stem_width);
                for block in 0..3 {
                    for l in 0..n {
                        i += 1;
                        let w = &mut c.layer_widths[block * n + l];
                        *w = slot(i).unwrap_or(*w);
                    }
                    if block < 2 {
                        i += 1;
                        let w = &mut c.transition_widths[block];
                        *w = slot(i).unwrap_or(*w);
                    }
                }
            }
        }
        out.validate()?;
        Ok(out)
    }

    /// The channels each group keeps under the PFEC version of the reference code, as (group,
    /// width) pairs for the pruned groups only: ResNet-56/110 need `Some(A | B)`; VGG-16 has one
    /// version and takes `None`. Other architectures and versions are an error.
    pub fn pfec_targets(&self, version: Option<PfecVersion>) -> Result<Vec<(String, usize)>> {
        let no_version = |hint: &str| {
            Error::from(prune_core::Error::NoVersion {
                arch: self.name(),
                version: version.map(|v| v.to_string()),
                hint: hint.into(),
            })
        };
        let groups = self.channel_groups();
        let counts = match (self, version) {
            (Self::ResNet(c), Some(v)) => {
                prune_core::resnet_keep_counts(c.depth, v, &c.block_widths)?
            }
            (Self::ResNet(c), None) if matches!(c.depth, 56 | 110) => {
                return Err(no_version("choose version A or B"));
            }
            (Self::ResNet(_), None) => {
                return Err(no_version(
                    "PFEC versions A and B exist for resnet56 and resnet110 only",
                ));
            }
            (Self::Vgg(c), None) => {
                let widths: Vec<usize> = c
                    .cfg
                    .iter()
                    .filter_map(|i| match i {
                        VggItem::Conv(w) => Some(*w),
                        VggItem::MaxPool => None,
                    })
                    .collect();
                if c.cfg
                    .iter()
                    .map(|i| matches!(i, VggItem::MaxPool))
                    .collect::<Vec<_>>()
                    != prune_core::pfec::VGG16_WIDTHS
                        .iter()
                        .map(Option::is_none)
                        .collect::<Vec<_>>()
                {
                    return Err(no_version("PFEC is defined for the VGG-16 layout only"));
                }
                prune_core::vgg16_keep_counts(&widths)?
            }
            (Self::Vgg(_), Some(_)) => {
                return Err(no_version("VGG-16 has a single PFEC version, give none"));
            }
            (Self::DenseNet(_), _) => {
                return Err(no_version(
                    "PFEC is defined for resnet56, resnet110 and vgg16 only",
                ));
            }
        };
        // Only the groups that lose filters: a plan then lists exactly what changes.
        Ok(groups
            .iter()
            .zip(counts)
            .filter(|(g, keep)| *keep != g.channels)
            .map(|(g, keep)| (g.name.clone(), keep))
            .collect())
    }
}

fn vgg_groups(c: &VggConfig) -> Vec<ChannelGroup> {
    // (name, width) of every conv with its nn.Sequential index, as layout.rs numbers them.
    let mut convs = Vec::new();
    let mut idx = 0;
    for item in &c.cfg {
        match *item {
            VggItem::Conv(w) => {
                convs.push((idx, w));
                idx += 3;
            }
            VggItem::MaxPool => idx += 1,
        }
    }
    convs
        .iter()
        .enumerate()
        .map(|(k, &(idx, width))| {
            let mut members = vec![GroupMember::new(format!("feature.{idx}.weight"), 0)];
            members.extend(bn_members(&format!("feature.{}", idx + 1), 0));
            // The 2x2 average pool leaves a 1x1 map, so the classifier reads one feature per channel.
            let next = match convs.get(k + 1) {
                Some((next, _)) => format!("feature.{next}.weight"),
                None => "classifier.0.weight".to_string(),
            };
            members.push(GroupMember::new(next, 1));
            ChannelGroup {
                name: format!("feature.{idx}"),
                channels: width,
                score_tensor: format!("feature.{idx}.weight"),
                members,
            }
        })
        .collect()
}

fn densenet_groups(c: &DenseNetConfig) -> Vec<ChannelGroup> {
    let n = c.layer_widths.len() / 3;
    // The modules that read a block's concatenation: its layers, then the transition (or the
    // final BatchNorm and fc). Each reads through a BatchNorm (axis 0) and a conv or linear
    // weight (axis 1). `first` is the first layer of the block that sees the channels.
    let readers = |block: usize, first: usize, offset: usize| -> Vec<GroupMember> {
        let mut m = Vec::new();
        for l in first..n {
            let p = format!("dense{}.{l}", block + 1);
            m.extend(bn_members(&format!("{p}.bn1"), offset));
            m.push(GroupMember::at(format!("{p}.conv1.weight"), 1, offset));
        }
        if block < 2 {
            let p = format!("trans{}", block + 1);
            m.extend(bn_members(&format!("{p}.bn1"), offset));
            m.push(GroupMember::at(format!("{p}.conv1.weight"), 1, offset));
        } else {
            m.extend(bn_members("bn", offset));
            m.push(GroupMember::at("fc.weight", 1, offset));
        }
        m
    };
    let group = |name: String, channels: usize, readers: Vec<GroupMember>| {
        let mut members = vec![GroupMember::new(format!("{name}.weight"), 0)];
        members.extend(readers);
        ChannelGroup {
            score_tensor: format!("{name}.weight"),
            name,
            channels,
            members,
        }
    };
    let mut groups = vec![group("conv1".into(), c.stem_width, readers(0, 0, 0))];
    let mut block_in = c.stem_width;
    for block in 0..3 {
        let mut offset = block_in;
        for l in 0..n {
            let width = c.layer_widths[block * n + l];
            let name = format!("dense{}.{l}.conv1", block + 1);
            groups.push(group(name, width, readers(block, l + 1, offset)));
            offset += width;
        }
        if block < 2 {
            let width = c.transition_widths[block];
            let name = format!("trans{}.conv1", block + 1);
            groups.push(group(name, width, readers(block + 1, 0, 0)));
            block_in = width;
        }
    }
    groups
}

impl Model {
    /// The smaller dense model a structured plan leaves: every group the plan names loses the
    /// channels it does not keep, in every member tensor, and the config shrinks to match.
    pub fn prune(&self, plan: &PruningPlan) -> Result<Self> {
        let groups = self.config().channel_groups();
        let tensors = prune_core::apply(plan, &groups, &self.tensors()?)?;
        let config = self.config().with_group_widths(&plan.kept_widths())?;
        Self::from_tensors(&config, tensors, self.device())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use candle_core::{Device, ModuleT, Tensor};
    use prune_core::{FilterSaliency, GroupDecision, KeepSet, select_filters};

    use super::*;

    fn reduction(config: &ModelConfig, version: Option<PfecVersion>) -> (f64, f64) {
        let widths: BTreeMap<String, usize> =
            config.pfec_targets(version).unwrap().into_iter().collect();
        let pruned = config.with_group_widths(&widths).unwrap();
        let pct = |a: u64, b: u64| 100.0 * (a - b) as f64 / a as f64;
        (
            pct(config.params(), pruned.params()),
            pct(config.flops(), pruned.flops()),
        )
    }

    // Li et al. 2016, Table 1/2 (CIFAR-10), as DESIGN.md section 4 lists them.
    #[test]
    fn pfec_versions_give_the_published_reductions() {
        use PfecVersion::{A, B};
        let r56 = ModelConfig::resnet(56, 10, 3).unwrap();
        let r110 = ModelConfig::resnet(110, 10, 3).unwrap();
        let vgg = ModelConfig::vgg16(10, 3).unwrap();
        for (config, version, params, flops) in [
            (&r56, Some(A), 9.4, 10.4),
            (&r56, Some(B), 13.7, 27.6),
            (&r110, Some(A), 2.3, 15.9),
            (&r110, Some(B), 32.4, 38.6),
            (&vgg, None, 64.0, 34.2),
        ] {
            let (p, f) = reduction(config, version);
            eprintln!(
                "{} {version:?}: params -{p:.2}% flops -{f:.2}%",
                config.name()
            );
            assert!(
                (p - params).abs() <= 0.5,
                "{} {version:?}: params {p}",
                config.name()
            );
            assert!(
                (f - flops).abs() <= 0.5,
                "{} {version:?}: flops {f}",
                config.name()
            );
        }
    }

    #[test]
    fn pfec_versions_exist_only_where_published() {
        let r20 = ModelConfig::resnet(20, 10, 3).unwrap();
        assert!(r20.pfec_targets(Some(PfecVersion::A)).is_err());
        let r56 = ModelConfig::resnet(56, 10, 3).unwrap();
        assert!(r56.pfec_targets(None).is_err());
        let vgg = ModelConfig::vgg16(10, 3).unwrap();
        let err = vgg.pfec_targets(Some(PfecVersion::A)).unwrap_err();
        assert!(err.to_string().contains("single"), "{err}");
        let dense = ModelConfig::densenet(40, 12, 10, 3).unwrap();
        assert!(dense.pfec_targets(None).is_err());
    }

    #[test]
    fn every_group_member_exists_with_the_declared_channels() {
        for config in [
            ModelConfig::resnet(20, 10, 3).unwrap(),
            ModelConfig::vgg16(10, 3).unwrap(),
            ModelConfig::densenet(16, 12, 10, 3).unwrap(),
        ] {
            let shapes: BTreeMap<String, Vec<usize>> = config
                .tensor_specs()
                .into_iter()
                .map(|s| (s.name, s.shape))
                .collect();
            let groups = config.channel_groups();
            let names: HashSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            assert_eq!(names.len(), groups.len(), "group names are unique");
            for g in &groups {
                assert_eq!(shapes[&g.score_tensor][0], g.channels, "{}", g.name);
                for m in &g.members {
                    let shape = &shapes[&m.tensor];
                    assert!(m.offset + g.channels <= shape[m.axis], "{} {m:?}", g.name);
                }
            }
        }
    }

    /// A model with `keep` applied to `groups` vs. the same model with the removed channels'
    /// readers zeroed (every axis-1 member): both must give the same logits.
    fn assert_removal_equals_zeroing(config: &ModelConfig, seed: u64) {
        let dev = Device::Cpu;
        let model = Model::init(config, seed, &dev).unwrap();
        // Give the BatchNorms non-trivial statistics so the comparison means something.
        let tensors: std::collections::HashMap<String, Tensor> = model
            .tensors()
            .unwrap()
            .into_iter()
            .map(|(n, t)| {
                let t = if n.ends_with("running_mean") || n.ends_with("bias") {
                    Tensor::randn(0f32, 0.1, t.dims(), &dev).unwrap()
                } else if n.ends_with("running_var") {
                    Tensor::rand(0.5f32, 1.5, t.dims(), &dev).unwrap()
                } else {
                    t
                };
                (n, t)
            })
            .collect();
        let model = Model::from_tensors(config, tensors.clone(), &dev).unwrap();
        let groups = config.channel_groups();
        // Drop every third channel of every group (never all of them).
        let plan = PruningPlan::structured(
            "test",
            None,
            groups
                .iter()
                .map(|g| GroupDecision {
                    group: g.name.clone(),
                    keep: KeepSet::new(
                        (0..g.channels).filter(|i| i % 3 != 1).collect(),
                        g.channels,
                    )
                    .unwrap(),
                })
                .collect(),
        );
        let pruned = model.prune(&plan).unwrap();
        let mut zeroed = tensors.clone();
        for (g, d) in groups.iter().zip(plan.groups()) {
            for m in g.members.iter().filter(|m| m.axis == 1) {
                let t = &zeroed[&m.tensor];
                let mut keep = vec![1f32; t.dims()[1]];
                for r in d.keep.removed() {
                    keep[m.offset + r] = 0.0;
                }
                let mut shape = vec![1; t.rank()];
                shape[1] = keep.len();
                let mask = Tensor::new(keep, &dev).unwrap().reshape(shape).unwrap();
                let t = t.broadcast_mul(&mask).unwrap();
                zeroed.insert(m.tensor.clone(), t);
            }
        }
        let zeroed = Model::from_tensors(config, zeroed, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, config.in_channels(), 32, 32), &dev).unwrap();
        let a = pruned.forward_t(&x, false).unwrap();
        let b = zeroed.forward_t(&x, false).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        assert!(
            diff < 1e-4,
            "{}: max logit difference {diff}",
            config.name()
        );
        assert!(pruned.config().params() < config.params());
    }

    #[test]
    fn removing_channels_equals_zeroing_their_readers_in_every_family() {
        assert_removal_equals_zeroing(&ModelConfig::resnet(20, 10, 3).unwrap(), 1);
        assert_removal_equals_zeroing(&ModelConfig::densenet(16, 6, 10, 3).unwrap(), 2);
        let mut vgg = ModelConfig::vgg16(10, 3).unwrap();
        if let ModelConfig::Vgg(v) = &mut vgg {
            for item in &mut v.cfg {
                if let VggItem::Conv(w) = item {
                    *w /= 16;
                }
            }
            v.classifier_width = 16;
        }
        assert_removal_equals_zeroing(&vgg, 3);
    }

    /// Issue 6: removing a ResNet block's first-conv filters gives the same logits as keeping
    /// them with the filter, its BatchNorm scale and its BatchNorm shift zeroed (the channel is
    /// then ReLU(0) = 0 and adds nothing to conv2).
    #[test]
    fn removing_resnet_filters_equals_zeroing_filter_and_bn() {
        let dev = Device::Cpu;
        let config = ModelConfig::resnet(20, 10, 3).unwrap();
        let model = Model::init(&config, 7, &dev).unwrap();
        let mut tensors = model.tensors().unwrap();
        for (n, t) in tensors.iter_mut() {
            if n.ends_with("bn1.bias") || n.ends_with("running_mean") {
                *t = Tensor::randn(0f32, 0.2, t.dims(), &dev).unwrap();
            }
        }
        let model = Model::from_tensors(&config, tensors.clone(), &dev).unwrap();
        let groups = config.channel_groups();
        let plan = select_filters(
            "pfec",
            None,
            &groups,
            &[
                ("layer1.0.conv1".into(), 9),
                ("layer2.1.conv1".into(), 20),
                ("layer3.2.conv1".into(), 1),
            ],
            FilterSaliency::L1,
            &tensors,
        )
        .unwrap();
        let pruned = model.prune(&plan).unwrap();
        let ModelConfig::ResNet(r) = pruned.config() else {
            unreachable!()
        };
        assert_eq!(r.block_widths, [9, 16, 16, 32, 20, 32, 64, 64, 1]);
        let mut zeroed = tensors.clone();
        for d in plan.groups() {
            let removed = d.keep.removed();
            let prefix = d.group.trim_end_matches(".conv1");
            for name in [
                format!("{prefix}.conv1.weight"),
                format!("{prefix}.bn1.weight"),
                format!("{prefix}.bn1.bias"),
            ] {
                let t = &zeroed[&name];
                let mut keep = vec![1f32; t.dims()[0]];
                for &r in &removed {
                    keep[r] = 0.0;
                }
                let mut shape = vec![1; t.rank()];
                shape[0] = keep.len();
                let mask = Tensor::new(keep, &dev).unwrap().reshape(shape).unwrap();
                let t = t.broadcast_mul(&mask).unwrap();
                zeroed.insert(name, t);
            }
        }
        let zeroed = Model::from_tensors(&config, zeroed, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &dev).unwrap();
        let a = pruned.forward_t(&x, false).unwrap();
        let b = zeroed.forward_t(&x, false).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }

    #[test]
    fn random_filter_pruning_keeps_the_pfec_counts_with_seeded_choices() {
        let config = ModelConfig::resnet(56, 10, 3).unwrap();
        let model = Model::init(&config, 0, &Device::Cpu).unwrap();
        let tensors = model.tensors().unwrap();
        let groups = config.channel_groups();
        let targets = config.pfec_targets(Some(PfecVersion::B)).unwrap();
        let plan =
            |saliency| select_filters("x", None, &groups, &targets, saliency, &tensors).unwrap();
        let l1 = plan(FilterSaliency::L1);
        let r1 = plan(FilterSaliency::Random { seed: 1 });
        assert_eq!(r1.kept_widths(), l1.kept_widths());
        assert_eq!(r1, plan(FilterSaliency::Random { seed: 1 }));
        assert_ne!(
            r1.groups(),
            plan(FilterSaliency::Random { seed: 2 }).groups()
        );
        assert_ne!(r1.groups(), l1.groups());
    }

    #[test]
    fn group_widths_rebuild_the_config_and_reject_unknown_groups() {
        let dense = ModelConfig::densenet(16, 12, 10, 3).unwrap();
        let widths: BTreeMap<String, usize> = [
            ("conv1".to_string(), 20),
            ("dense2.3.conv1".to_string(), 5),
            ("trans2.conv1".to_string(), 50),
        ]
        .into();
        let ModelConfig::DenseNet(d) = dense.with_group_widths(&widths).unwrap() else {
            unreachable!()
        };
        assert_eq!(d.stem_width, 20);
        assert_eq!(d.layer_widths[4 + 3], 5);
        assert_eq!(d.transition_widths, [72, 50]);
        let bad: BTreeMap<String, usize> = [("nope".to_string(), 1)].into();
        assert!(dense.with_group_widths(&bad).is_err());
    }

    #[test]
    fn masks_for_tensors_the_model_lacks_or_of_the_wrong_shape_are_refused() {
        let config = ModelConfig::resnet(8, 10, 3).unwrap();
        let dev = Device::Cpu;
        let ones = |shape: &[usize]| Tensor::ones(shape, candle_core::DType::F32, &dev).unwrap();
        let good = prune_core::Masks::new([("fc.weight".to_string(), ones(&[10, 64]))]).unwrap();
        config.check_masks(&good).unwrap();
        let unknown =
            prune_core::Masks::new([("layer9.0.conv1.weight".to_string(), ones(&[1]))]).unwrap();
        assert_eq!(
            config.check_masks(&unknown).unwrap_err().to_string(),
            "mask for tensor `layer9.0.conv1.weight`, which the model does not have"
        );
        let shape = prune_core::Masks::new([("fc.weight".to_string(), ones(&[64, 10]))]).unwrap();
        assert_eq!(
            config.check_masks(&shape).unwrap_err().to_string(),
            "mask for `fc.weight` has shape [64, 10], the weight has [10, 64]"
        );
    }
}

//! Parameter and FLOPs counts from a config alone: no tensors are built.

use crate::config::ModelConfig;

impl ModelConfig {
    /// Trainable parameters, as PyTorch's `sum(p.numel() for p in model.parameters())`:
    /// conv and linear weights, linear biases, BatchNorm weights and biases; running statistics
    /// are buffers and do not count.
    ///
    /// Exact for a validated config (see [`ModelConfig::validate`]); saturates at `u64::MAX`
    /// for one whose counts overflow, never wraps around.
    pub fn params(&self) -> u64 {
        self.layers()
            .iter()
            .fold(0u64, |sum, l| sum.saturating_add(l.params()))
    }

    /// Multiply-adds of one forward pass on a 32x32 image, counting convs and linear layers
    /// only, as the PFEC paper's FLOPs column (ResNet-56: 125.49M).
    /// Exact for a validated config, saturating otherwise, as [`ModelConfig::params`].
    pub fn flops(&self) -> u64 {
        self.layers()
            .iter()
            .fold(0u64, |sum, l| sum.saturating_add(l.flops()))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ModelConfig;

    fn counts(config: ModelConfig) -> (u64, u64) {
        (config.params(), config.flops())
    }

    // Published counts (DESIGN.md section 3) pinned to the exact values this code computes; the
    // ResNet-56 parameter count is the PyTorch reference's `parameters()` total.
    #[test]
    fn resnet_counts_match_the_published_ones() {
        assert_eq!(
            counts(ModelConfig::resnet(56, 10, 3).unwrap()),
            (853_018, 125_485_696)
        );
        let (p, f) = counts(ModelConfig::resnet(110, 10, 3).unwrap());
        assert_eq!((p, f), (1_727_962, 252_887_680));
        assert_eq!(counts(ModelConfig::resnet(20, 10, 3).unwrap()).0, 269_722);
    }

    #[test]
    fn vgg_and_densenet_counts_match_the_published_ones() {
        let (p, f) = counts(ModelConfig::vgg16(10, 3).unwrap());
        assert_eq!((p, f), (14_987_722, 313_463_808));
        // DESIGN.md: ~1.06M parameters; HRank lists 282.00M FLOPs for DenseNet-40.
        let (p, f) = counts(ModelConfig::densenet(40, 12, 10, 3).unwrap());
        assert_eq!((p, f), (1_059_298, 282_917_328));
    }

    #[test]
    fn pruning_a_block_width_shrinks_both_counts() {
        let full = ModelConfig::resnet(56, 10, 3).unwrap();
        let mut pruned = full.clone();
        if let ModelConfig::ResNet(r) = &mut pruned {
            r.block_widths[0] = 8;
        }
        // Block 0 of stage 1: conv1 16->8 and conv2 8->16, 3x3 at 32x32, plus 8 BN channels.
        let saved = 2 * 8 * 16 * 9;
        assert_eq!(full.params() - pruned.params(), saved + 2 * 8);
        assert_eq!(full.flops() - pruned.flops(), saved * 32 * 32);
    }
}

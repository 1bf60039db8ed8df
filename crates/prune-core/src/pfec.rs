//! The PFEC versions of Li et al. 2016 ("Pruning Filters for Efficient ConvNets") exactly as Liu
//! et al.'s public code prunes them (`cifar/l1-norm-pruning/res56prune.py`, `res110prune.py`,
//! `vggprune.py`): which layers, and how many filters each keeps.
//!
//! These are the published tables, stated in the reference's own terms (conv `layer_id`s, stage
//! ratios, target widths); turning them into channel groups is the model's job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::keep_count;

/// A PFEC version of a CIFAR ResNet (VGG-16 has a single version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PfecVersion {
    /// The light version: ResNet-56-A, ResNet-110-A.
    A,
    /// The heavier version: ResNet-56-B, ResNet-110-B.
    B,
}

impl fmt::Display for PfecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
        })
    }
}

impl FromStr for PfecVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "A" => Ok(Self::A),
            "B" => Ok(Self::B),
            _ => Err(Error::UnknownVersion(s.to_string())),
        }
    }
}

/// One ResNet PFEC version: the conv `layer_id`s left whole and the fraction of filters removed
/// in each stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResNetPfec {
    /// The reference's `skip[v]`: conv layer ids (1 = the stem conv) that keep every filter.
    pub skip: &'static [usize],
    /// The reference's `prune_prob[v]`, per stage.
    pub ratios: [f64; 3],
}

/// The settings of `res56prune.py` (depth 56) and `res110prune.py` (depth 110).
pub fn resnet_settings(depth: usize, version: PfecVersion) -> Result<ResNetPfec> {
    use PfecVersion::{A, B};
    let (skip, ratios): (&'static [usize], [f64; 3]) = match (depth, version) {
        (56, A) => (&[16, 20, 38, 54], [0.1, 0.1, 0.1]),
        (56, B) => (&[16, 18, 20, 34, 38, 54], [0.6, 0.3, 0.1]),
        (110, A) => (&[36], [0.5, 0.0, 0.0]),
        (110, B) => (&[36, 38, 74], [0.5, 0.4, 0.3]),
        _ => {
            return Err(Error::NoVersion {
                arch: format!("resnet{depth}"),
                version: Some(version.to_string()),
                hint: "PFEC versions A and B exist for resnet56 and resnet110 only".into(),
            });
        }
    };
    Ok(ResNetPfec { skip, ratios })
}

/// How many first-conv filters each block keeps under a ResNet PFEC version, given the current
/// first-conv widths of the blocks (stage by stage, `3n` entries).
///
/// The reference walks `model.modules()` counting convs from `layer_id = 1` (the stem); the
/// shortcuts have no conv, so block `b`'s first conv is `layer_id = 2b + 2` and its second
/// `2b + 3`. Only first convs (even ids) are pruned. The stage of an id is 0 up to `2n`, 1 up to
/// `4n`, else 2 (`layer_id <= 18`/`<= 36` for ResNet-56); each keeps `int(w * (1 - ratio))`.
pub fn resnet_keep_counts(
    depth: usize,
    version: PfecVersion,
    block_widths: &[usize],
) -> Result<Vec<usize>> {
    let settings = resnet_settings(depth, version)?;
    let n = (depth - 2) / 6;
    if block_widths.len() != 3 * n {
        return Err(Error::Widths {
            arch: format!("resnet{depth}"),
            reason: format!(
                "expected {} block widths, got {}",
                3 * n,
                block_widths.len()
            ),
        });
    }
    block_widths
        .iter()
        .enumerate()
        .map(|(b, &width)| {
            let layer_id = 2 * b + 2;
            if settings.skip.contains(&layer_id) {
                return Ok(width);
            }
            let stage = if layer_id <= 2 * n {
                0
            } else if layer_id <= 4 * n {
                1
            } else {
                2
            };
            keep_count(width, settings.ratios[stage])
        })
        .collect()
}

/// The widths `vggprune.py` prunes VGG-16 to (its `cfg`; `None` is a max-pool): the first conv
/// halves and the last six go from 512 to 256.
pub const VGG16_WIDTHS: [Option<usize>; 17] = [
    Some(32),
    Some(64),
    None,
    Some(128),
    Some(128),
    None,
    Some(256),
    Some(256),
    Some(256),
    None,
    Some(256),
    Some(256),
    Some(256),
    None,
    Some(256),
    Some(256),
    Some(256),
];

/// How many filters each of VGG-16's 13 convs keeps, given their current widths. A conv already
/// at its target width is left whole (the reference's `if out_channels == cfg[layer_id]`); one
/// narrower than its target cannot be pruned to it and is an error.
pub fn vgg16_keep_counts(conv_widths: &[usize]) -> Result<Vec<usize>> {
    let targets: Vec<usize> = VGG16_WIDTHS.iter().flatten().copied().collect();
    if conv_widths.len() != targets.len() {
        return Err(Error::Widths {
            arch: "vgg16".into(),
            reason: format!(
                "PFEC is defined for the 13 convs of VGG-16, this model has {}",
                conv_widths.len()
            ),
        });
    }
    conv_widths
        .iter()
        .zip(&targets)
        .enumerate()
        .map(|(i, (&have, &want))| {
            if have < want {
                Err(Error::Widths {
                    arch: "vgg16".into(),
                    reason: format!("conv {i} has {have} filters, fewer than the target {want}"),
                })
            } else {
                Ok(want)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet56_b_keeps_the_reference_counts() {
        let widths: Vec<usize> = [16, 32, 64]
            .iter()
            .flat_map(|&w| std::iter::repeat_n(w, 9))
            .collect();
        let keep = resnet_keep_counts(56, PfecVersion::B, &widths).unwrap();
        // Stage 1: ids 2..18, skip 16 and 18 (blocks 7, 8): int(16 * 0.4) = 6.
        assert_eq!(&keep[..9], [6, 6, 6, 6, 6, 6, 6, 16, 16]);
        // Stage 2: ids 20..36, skip 20 and 34 (blocks 9 and 16): int(32 * 0.7) = 22.
        assert_eq!(keep[9], 32);
        assert_eq!(keep[10], 22);
        assert_eq!(keep[16], 32);
        // Stage 3: ids 38..54, skip 38 and 54 (blocks 18 and 26): int(64 * 0.9) = 57.
        assert_eq!((keep[18], keep[19], keep[26]), (64, 57, 64));
    }

    #[test]
    fn versions_exist_only_where_the_reference_defines_them() {
        assert!(resnet_settings(20, PfecVersion::A).is_err());
        assert!(resnet_settings(110, PfecVersion::B).is_ok());
        assert!("c".parse::<PfecVersion>().is_err());
        assert_eq!("b".parse::<PfecVersion>().unwrap(), PfecVersion::B);
        assert!(resnet_keep_counts(56, PfecVersion::A, &[16; 3]).is_err());
        let vgg = [
            64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
        ];
        assert_eq!(
            vgg16_keep_counts(&vgg).unwrap(),
            [
                32, 64, 128, 128, 256, 256, 256, 256, 256, 256, 256, 256, 256
            ]
        );
        assert!(vgg16_keep_counts(&[8; 13]).is_err());
        assert!(vgg16_keep_counts(&[64; 3]).is_err());
    }
}

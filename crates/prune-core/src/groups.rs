//! Channel groups: which named tensors share one set of channels, and the removal of channels
//! from every member at once.
//!
//! A group is declared data, never discovered by tracing: a model lists, for each prunable set of
//! channels, every `(tensor, axis, offset)` that carries them. The offset matters where channels
//! are concatenated (DenseNet): a dense layer's output occupies channels `[offset, offset + n)` of
//! every later layer's input. Offsets always refer to the unpruned tensors, so all groups of a
//! plan are removed in one pass ([`remove_channels`]) and no offset ever needs shifting.

use std::collections::{BTreeMap, HashMap};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One tensor axis that carries a group's channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The tensor's name, e.g. `layer1.0.bn1.running_var`.
    pub tensor: String,
    /// The axis: 0 for a conv's filters or a BatchNorm vector, 1 for a conv's or linear layer's
    /// input channels.
    pub axis: usize,
    /// Where the group's channels start on that axis (non-zero inside a concatenation).
    pub offset: usize,
}

impl GroupMember {
    /// A member whose axis holds exactly the group's channels.
    pub fn new(tensor: impl Into<String>, axis: usize) -> Self {
        Self::at(tensor, axis, 0)
    }

    /// A member whose group channels start at `offset` on `axis`.
    pub fn at(tensor: impl Into<String>, axis: usize, offset: usize) -> Self {
        Self {
            tensor: tensor.into(),
            axis,
            offset,
        }
    }
}

/// A named set of channels shared by several tensors: the filters of one conv, its BatchNorm's
/// four vectors and the matching input channels of every layer that reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelGroup {
    /// The group's name: the module path of the conv that produces the channels, e.g. `layer1.0.conv1`.
    pub name: String,
    /// How many channels the group has.
    pub channels: usize,
    /// The tensor whose slices along axis 0 are the filters to score (the producing conv's weight).
    pub score_tensor: String,
    /// Every tensor axis that carries the channels, the score tensor included.
    pub members: Vec<GroupMember>,
}

/// The channels of one group that survive pruning: sorted, unique, in range, never empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KeepSetRepr", into = "KeepSetRepr")]
pub struct KeepSet {
    channels: usize,
    kept: Vec<usize>,
}

/// How a [`KeepSet`] appears in JSON: `{"channels": 16, "kept": [0, 2, 3, ...]}`.
#[derive(Serialize, Deserialize)]
struct KeepSetRepr {
    channels: usize,
    kept: Vec<usize>,
}

impl TryFrom<KeepSetRepr> for KeepSet {
    type Error = Error;
    fn try_from(r: KeepSetRepr) -> Result<Self> {
        Self::new(r.kept, r.channels)
    }
}

impl From<KeepSet> for KeepSetRepr {
    fn from(k: KeepSet) -> Self {
        Self {
            channels: k.channels,
            kept: k.kept,
        }
    }
}

impl KeepSet {
    /// Validates `kept` (any order) against a group of `channels` channels: no index twice, none
    /// out of range, at least one.
    pub fn new(mut kept: Vec<usize>, channels: usize) -> Result<Self> {
        let bad = |reason: String| Error::Keep {
            group: String::new(),
            reason,
        };
        if kept.is_empty() {
            return Err(bad(format!("no channel kept of {channels}")));
        }
        kept.sort_unstable();
        if let Some(w) = kept.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("channel {} kept twice", w[0])));
        }
        if let Some(&last) = kept.last().filter(|&&l| l >= channels) {
            return Err(bad(format!(
                "channel {last} out of range (group has {channels})"
            )));
        }
        Ok(Self { channels, kept })
    }

    /// Every channel of a group of `channels` (at least one).
    pub fn all(channels: usize) -> Result<Self> {
        Self::new((0..channels).collect(), channels)
    }

    /// The kept indices, ascending.
    pub fn indices(&self) -> &[usize] {
        &self.kept
    }

    /// How many channels survive.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Always `false`: a keep set holds at least one channel. (Here for clippy's `len` rule.)
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The group's channel count before pruning.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The removed indices, ascending.
    pub fn removed(&self) -> Vec<usize> {
        let mut kept = self.kept.iter().peekable();
        (0..self.channels)
            .filter(|i| {
                if kept.peek() == Some(&i) {
                    kept.next();
                    false
                } else {
                    true
                }
            })
            .collect()
    }
}

/// Removes channels from every member of the given groups at once and returns the new tensors;
/// tensors no group touches are returned unchanged (shared, not copied). Pure: `weights` is not
/// modified.
///
/// Each member keeps, on its axis, the channels outside `[offset, offset + channels)` and those
/// inside it that the group's [`KeepSet`] lists, in their original order. Two groups may share a
/// tensor axis (a DenseNet transition reads every layer of its block) but not a channel of it.
pub fn remove_channels(
    decisions: &[(&ChannelGroup, &KeepSet)],
    weights: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>> {
    // (tensor, axis) -> the ranges claimed on it, with the group and its kept set.
    type Claim<'a> = (usize, &'a ChannelGroup, &'a KeepSet);
    let mut claims: BTreeMap<(&str, usize), Vec<Claim>> = BTreeMap::new();
    for &(group, keep) in decisions {
        if keep.channels() != group.channels {
            return Err(Error::ChannelCount {
                group: group.name.clone(),
                planned: keep.channels(),
                actual: group.channels,
            });
        }
        for m in &group.members {
            claims
                .entry((m.tensor.as_str(), m.axis))
                .or_default()
                .push((m.offset, group, keep));
        }
    }
    let mut out = weights.clone();
    for ((name, axis), mut ranges) in claims {
        let Some(tensor) = out.get(name) else {
            return Err(Error::MissingTensor {
                context: format!("group `{}`", ranges[0].1.name),
                tensor: name.to_string(),
            });
        };
        let dims = tensor.dims().to_vec();
        ranges.sort_by_key(|r| r.0);
        for &(offset, group, _) in &ranges {
            if axis >= dims.len() || offset + group.channels > dims[axis] {
                return Err(Error::MemberRange {
                    group: group.name.clone(),
                    tensor: name.to_string(),
                    shape: dims.clone(),
                    axis,
                    offset,
                    end: offset + group.channels,
                });
            }
        }
        for pair in ranges.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.0 + a.1.channels > b.0 {
                return Err(Error::Overlap {
                    tensor: name.to_string(),
                    axis,
                    first: a.1.name.clone(),
                    second: b.1.name.clone(),
                });
            }
        }
        // One index list over the whole axis: untouched channels pass, claimed ones only if kept.
        let mut index = Vec::with_capacity(dims[axis]);
        let mut next = 0;
        for &(offset, group, keep) in &ranges {
            index.extend((next..offset).map(|i| i as u32));
            index.extend(keep.indices().iter().map(|&k| (offset + k) as u32));
            next = offset + group.channels;
        }
        index.extend((next..dims[axis]).map(|i| i as u32));
        let index = Tensor::new(index.as_slice(), tensor.device())?;
        let sliced = tensor.index_select(&index, axis)?;
        out.insert(name.to_string(), sliced);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn arange(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::arange(0f32, n as f32, &Device::Cpu)
            .unwrap()
            .reshape(shape)
            .unwrap()
    }

    fn group(name: &str, channels: usize, members: Vec<GroupMember>) -> ChannelGroup {
        ChannelGroup {
            name: name.into(),
            channels,
            score_tensor: members[0].tensor.clone(),
            members,
        }
    }

    #[test]
    fn keep_sets_are_validated_and_sorted() {
        let k = KeepSet::new(vec![3, 0, 2], 4).unwrap();
        assert_eq!(k.indices(), [0, 2, 3]);
        assert_eq!(k.removed(), [1]);
        assert!(KeepSet::new(vec![], 4).is_err());
        assert!(KeepSet::new(vec![1, 1], 4).is_err());
        assert!(KeepSet::new(vec![4], 4).is_err());
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, r#"{"channels":4,"kept":[0,2,3]}"#);
        assert!(serde_json::from_str::<KeepSet>(r#"{"channels":2,"kept":[5]}"#).is_err());
    }

    #[test]
    fn a_group_slices_every_member_on_its_axis() {
        let mut w = HashMap::new();
        w.insert("a.weight".to_string(), arange(&[4, 2, 1, 1]));
        w.insert("bn.weight".to_string(), arange(&[4]));
        w.insert("b.weight".to_string(), arange(&[3, 4, 1, 1]));
        w.insert("other".to_string(), arange(&[5]));
        let g = group(
            "a",
            4,
            vec![
                GroupMember::new("a.weight", 0),
                GroupMember::new("bn.weight", 0),
                GroupMember::new("b.weight", 1),
            ],
        );
        let keep = KeepSet::new(vec![1, 3], 4).unwrap();
        let out = remove_channels(&[(&g, &keep)], &w).unwrap();
        assert_eq!(out["a.weight"].dims(), [2, 2, 1, 1]);
        assert_eq!(
            out["a.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            [2., 3., 6., 7.]
        );
        assert_eq!(out["bn.weight"].to_vec1::<f32>().unwrap(), [1., 3.]);
        assert_eq!(
            out["b.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            [1., 3., 5., 7., 9., 11.]
        );
        assert_eq!(out["other"].dims(), [5]);
        // Pure: the input is untouched.
        assert_eq!(w["a.weight"].dims(), [4, 2, 1, 1]);
    }

    #[test]
    fn offsets_address_a_concatenation_and_groups_share_an_axis() {
        // A consumer reading a concatenation [stem(2) | layer0(3) | layer1(2)] = 7 channels.
        let mut w = HashMap::new();
        w.insert("t".to_string(), arange(&[7]));
        let stem = group("stem", 2, vec![GroupMember::at("t", 0, 0)]);
        let l0 = group("l0", 3, vec![GroupMember::at("t", 0, 2)]);
        let l1 = group("l1", 2, vec![GroupMember::at("t", 0, 5)]);
        let k_l0 = KeepSet::new(vec![0, 2], 3).unwrap();
        let k_l1 = KeepSet::new(vec![1], 2).unwrap();
        // Order of the decisions must not matter: offsets refer to the unpruned tensor.
        let out = remove_channels(&[(&l1, &k_l1), (&l0, &k_l0)], &w).unwrap();
        assert_eq!(out["t"].to_vec1::<f32>().unwrap(), [0., 1., 2., 4., 6.]);
        let k_stem = KeepSet::new(vec![1], 2).unwrap();
        let out = remove_channels(&[(&stem, &k_stem), (&l1, &k_l1)], &w).unwrap();
        assert_eq!(out["t"].to_vec1::<f32>().unwrap(), [1., 2., 3., 4., 6.]);
    }

    #[test]
    fn bad_members_overlaps_and_missing_tensors_are_named() {
        let mut w = HashMap::new();
        w.insert("t".to_string(), arange(&[4, 3]));
        let keep = KeepSet::new(vec![0], 2).unwrap();
        let past_end = group("g", 2, vec![GroupMember::at("t", 1, 2)]);
        let err = remove_channels(&[(&past_end, &keep)], &w).unwrap_err();
        assert!(err.to_string().contains("`t`"), "{err}");
        let bad_axis = group("g", 2, vec![GroupMember::new("t", 2)]);
        assert!(remove_channels(&[(&bad_axis, &keep)], &w).is_err());
        let a = group("a", 2, vec![GroupMember::at("t", 0, 0)]);
        let b = group("b", 2, vec![GroupMember::at("t", 0, 1)]);
        let err = remove_channels(&[(&a, &keep), (&b, &keep)], &w).unwrap_err();
        assert!(matches!(err, Error::Overlap { .. }), "{err}");
        let missing = group("m", 2, vec![GroupMember::new("nope", 0)]);
        let err = remove_channels(&[(&missing, &keep)], &w).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let wrong = KeepSet::new(vec![0], 3).unwrap();
        assert!(remove_channels(&[(&a, &wrong)], &w).is_err());
    }
}

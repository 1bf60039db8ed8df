//! Selection and pruning plans: which channels (or how many weights) each group or tensor keeps,
//! decided before anything is removed, so a plan can be saved as JSON and inspected first.

use std::collections::{BTreeMap, HashMap};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::groups::{ChannelGroup, KeepSet, remove_channels};
use crate::saliency::{FilterSaliency, ScoreRng, l1_filter_norms, l2_filter_norms};

/// A pruning decision for a whole model, as `plan.json` stores it: structured (per channel
/// group, the kept indices) or unstructured (per weight tensor, the mask's counts; the masks
/// themselves are tensors and live in `masks.safetensors`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PlanFile", into = "PlanFile")]
pub struct PruningPlan {
    /// How the decision was made: `pfec`, `random-filter`, `mwp`, `random-weight`, ...
    pub method: String,
    /// The method's version where it has several (`A`, `B` for PFEC ResNets).
    pub version: Option<String>,
    /// What the plan decides.
    pub kind: PlanKind,
}

/// The two kinds of plan.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanKind {
    /// Whole channels removed: a smaller dense model.
    Structured {
        /// Per channel group, the channels kept, in the model's group order (only the groups
        /// that change).
        groups: Vec<GroupDecision>,
    },
    /// Individual weights masked under one global threshold.
    Unstructured {
        /// Per weight tensor, how many weights the mask removes.
        tensors: Vec<TensorSparsity>,
        /// The global score threshold: weights scoring `<=` it are removed.
        threshold: f32,
    },
}

/// `plan.json` as written before the plan had two kinds, and still: one object whose `groups`
/// or `tensors` and `threshold` say which kind it is.
#[derive(Serialize, Deserialize)]
struct PlanFile {
    method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<GroupDecision>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tensors: Vec<TensorSparsity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<f32>,
}

impl TryFrom<PlanFile> for PruningPlan {
    type Error = String;

    fn try_from(f: PlanFile) -> std::result::Result<Self, String> {
        let kind = match (f.groups.is_empty(), f.tensors.is_empty(), f.threshold) {
            (_, true, None) => PlanKind::Structured { groups: f.groups },
            (true, false, Some(threshold)) => PlanKind::Unstructured {
                tensors: f.tensors,
                threshold,
            },
            (false, false, _) | (false, true, Some(_)) => {
                return Err("a plan keeps channel groups or masks weights, not both".into());
            }
            (true, false, None) => return Err("an unstructured plan needs its threshold".into()),
            (true, true, Some(_)) => return Err("a threshold without tensors".into()),
        };
        Ok(Self {
            method: f.method,
            version: f.version,
            kind,
        })
    }
}

impl From<PruningPlan> for PlanFile {
    fn from(p: PruningPlan) -> Self {
        let (groups, tensors, threshold) = match p.kind {
            PlanKind::Structured { groups } => (groups, Vec::new(), None),
            PlanKind::Unstructured { tensors, threshold } => (Vec::new(), tensors, Some(threshold)),
        };
        Self {
            method: p.method,
            version: p.version,
            groups,
            tensors,
            threshold,
        }
    }
}

/// The channels one group keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDecision {
    /// The group's name (see [`ChannelGroup::name`]).
    pub group: String,
    /// The kept channels.
    pub keep: KeepSet,
}

/// How much of one weight tensor a mask removes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSparsity {
    /// The weight tensor.
    pub tensor: String,
    /// Its elements.
    pub total: usize,
    /// Elements the mask sets to zero.
    pub pruned: usize,
    /// `pruned / total`.
    pub sparsity: f64,
}

impl PruningPlan {
    /// A structured plan.
    pub fn structured(method: &str, version: Option<&str>, groups: Vec<GroupDecision>) -> Self {
        Self {
            method: method.to_string(),
            version: version.map(str::to_string),
            kind: PlanKind::Structured { groups },
        }
    }

    /// The channel groups a structured plan keeps (none for an unstructured one).
    pub fn groups(&self) -> &[GroupDecision] {
        match &self.kind {
            PlanKind::Structured { groups } => groups,
            PlanKind::Unstructured { .. } => &[],
        }
    }

    /// The per-tensor counts of an unstructured plan (none for a structured one).
    pub fn tensors(&self) -> &[TensorSparsity] {
        match &self.kind {
            PlanKind::Unstructured { tensors, .. } => tensors,
            PlanKind::Structured { .. } => &[],
        }
    }

    /// Whether whole channels go (rather than weights).
    pub fn is_structured(&self) -> bool {
        matches!(self.kind, PlanKind::Structured { .. })
    }

    /// The kept width of every group the plan prunes, by group name.
    pub fn kept_widths(&self) -> BTreeMap<String, usize> {
        self.groups()
            .iter()
            .map(|d| (d.group.clone(), d.keep.len()))
            .collect()
    }

    /// Reads a `plan.json` of at most [`files::SMALL`] bytes (FIFOs and devices refused by
    /// name). Kept sets are validated as they parse (see [`KeepSet::new`]); whether the plan
    /// fits a model is checked when it is applied.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = files::read_to_string(path, files::SMALL).map_err(|source| Error::Read {
            file: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Plan {
            file: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// The fraction of weights removed over every tensor in `tensors` (0 for a structured plan).
    pub fn sparsity(&self) -> f64 {
        // In u128: counts read from a file must not overflow a sum.
        let total: u128 = self.tensors().iter().map(|t| t.total as u128).sum();
        let pruned: u128 = self.tensors().iter().map(|t| t.pruned as u128).sum();
        if total == 0 {
            0.0
        } else {
            pruned as f64 / total as f64
        }
    }
}

/// How many of `channels` filters survive a pruning `ratio`: `int(channels * (1 - ratio))`, the
/// truncation of `res56prune.py` and `res110prune.py`, computed in f64 as Python does
/// (16 filters at ratio 0.6 keep 6, 64 at 0.1 keep 57).
pub fn keep_count(channels: usize, ratio: f64) -> Result<usize> {
    if !(0.0..=1.0).contains(&ratio) {
        return Err(Error::Ratio(ratio));
    }
    Ok((channels as f64 * (1.0 - ratio)) as usize)
}

/// The `count` highest-scoring indices, as a [`KeepSet`] over `scores.len()` channels.
///
/// Ties go to the higher index: the reference takes `np.argsort(scores)[::-1][:count]`, and
/// NumPy's sort is stable on the small arrays of a layer's filters, so reversing it puts the
/// later of two equal scores first. A `count` of zero is an [`Error::EmptyGroup`].
pub fn select_top(group: &str, scores: &[f32], count: usize) -> Result<KeepSet> {
    if count == 0 {
        return Err(Error::EmptyGroup {
            group: group.to_string(),
            channels: scores.len(),
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(b.cmp(&a)));
    order.truncate(count);
    KeepSet::new(order, scores.len()).map_err(|e| with_group(e, group))
}

/// A filter-ranking criterion: one score per channel of a group (larger = keep). The weight
/// criteria ([`FilterSaliency`], through [`FilterSaliency::scorer`]) read the group's score
/// tensor; the data-dependent ones ([`crate::GroupScores`], from [`crate::RankAccumulator`] for
/// HRank or [`crate::TaylorAccumulator`] for Taylor) were accumulated over batches beforehand. A
/// user's own criterion implements this trait. Groups are scored in the model's group order,
/// once each.
pub trait FilterScorer {
    /// The scores of `group`'s channels, `group.channels` of them.
    fn scores(
        &mut self,
        group: &ChannelGroup,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Vec<f32>>;
}

/// [`FilterSaliency`] as a [`FilterScorer`]: random scores come from one generator, drawn group
/// after group, so a seed fixes the whole plan.
#[derive(Clone, Debug)]
pub struct SaliencyScorer {
    saliency: FilterSaliency,
    rng: Option<ScoreRng>,
}

impl FilterSaliency {
    /// This criterion as a [`FilterScorer`].
    pub fn scorer(self) -> SaliencyScorer {
        SaliencyScorer {
            saliency: self,
            rng: match self {
                Self::Random { seed } => Some(ScoreRng::new(seed)),
                _ => None,
            },
        }
    }
}

impl FilterScorer for SaliencyScorer {
    fn scores(
        &mut self,
        group: &ChannelGroup,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Vec<f32>> {
        if let Some(rng) = &mut self.rng {
            return Ok(rng.scores(group.channels));
        }
        let w = weights
            .get(&group.score_tensor)
            .ok_or_else(|| Error::MissingTensor {
                context: format!("group `{}`", group.name),
                tensor: group.score_tensor.clone(),
            })?;
        match self.saliency {
            FilterSaliency::L2 => l2_filter_norms(w),
            _ => l1_filter_norms(w),
        }
    }
}

/// `scorer`'s scores for `group`, checked against its channel count.
fn group_scores(
    scorer: &mut dyn FilterScorer,
    group: &ChannelGroup,
    weights: &HashMap<String, Tensor>,
) -> Result<Vec<f32>> {
    let scores = scorer.scores(group, weights)?;
    if scores.len() != group.channels {
        return Err(Error::ChannelCount {
            group: group.name.clone(),
            planned: group.channels,
            actual: scores.len(),
        });
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::Scores {
            group: group.name.clone(),
            reason: format!("score {} of channel {i} is not finite", scores[i]),
        });
    }
    Ok(scores)
}

/// A structured plan: in every group of `targets` (group name, channels to keep), keep the
/// filters of the group's score tensor that `saliency` ranks highest. Groups not named in
/// `targets` are left whole and not listed. Random scores are drawn from one generator in the
/// order of `groups`, so a seed fixes the whole plan.
pub fn select_filters(
    method: &str,
    version: Option<&str>,
    groups: &[ChannelGroup],
    targets: &[(String, usize)],
    saliency: FilterSaliency,
    weights: &HashMap<String, Tensor>,
) -> Result<PruningPlan> {
    let mut scorer = saliency.scorer();
    select_filters_with(method, version, groups, targets, &mut scorer, weights)
}

/// [`select_filters`] with any criterion: per layer, every group of `targets` keeps the given
/// number of its channels, those `scorer` ranks highest.
pub fn select_filters_with(
    method: &str,
    version: Option<&str>,
    groups: &[ChannelGroup],
    targets: &[(String, usize)],
    scorer: &mut dyn FilterScorer,
    weights: &HashMap<String, Tensor>,
) -> Result<PruningPlan> {
    let targets: BTreeMap<&str, usize> = targets.iter().map(|(g, n)| (g.as_str(), *n)).collect();
    if let Some(unknown) = targets
        .keys()
        .find(|t| !groups.iter().any(|g| g.name == **t))
    {
        return Err(Error::UnknownGroup(unknown.to_string()));
    }
    let mut decisions = Vec::new();
    for group in groups {
        let Some(&count) = targets.get(group.name.as_str()) else {
            continue;
        };
        let scores = group_scores(scorer, group, weights)?;
        if count > group.channels {
            return Err(Error::Keep {
                group: group.name.clone(),
                reason: format!("cannot keep {count} of {} channels", group.channels),
            });
        }
        decisions.push(GroupDecision {
            group: group.name.clone(),
            keep: select_top(&group.name, &scores, count)?,
        });
    }
    Ok(PruningPlan::structured(method, version, decisions))
}

/// A global ranking: the channels of all `ranked` groups compete on one scale, and the
/// `keep_fraction` of them (rounded down, as Python's `int`) that `scorer` ranks highest are
/// kept, each group keeping at least `min_keep` (the highest-scoring ones; at least 1). Ties go
/// to the later group and channel, as in [`select_top`]. Groups that keep everything are not
/// listed. Scores from different layers are compared as they are: normalise them first where
/// their scales differ ([`crate::GroupScores::l2_normalized`]).
pub fn select_global(
    method: &str,
    groups: &[ChannelGroup],
    ranked: &[String],
    keep_fraction: f64,
    min_keep: usize,
    scorer: &mut dyn FilterScorer,
    weights: &HashMap<String, Tensor>,
) -> Result<PruningPlan> {
    if !(keep_fraction > 0.0 && keep_fraction <= 1.0) {
        return Err(Error::Global(format!(
            "keep fraction must be in (0, 1], got {keep_fraction}"
        )));
    }
    if let Some(unknown) = ranked
        .iter()
        .find(|r| !groups.iter().any(|g| &g.name == *r))
    {
        return Err(Error::UnknownGroup(unknown.clone()));
    }
    let chosen: Vec<&ChannelGroup> = groups.iter().filter(|g| ranked.contains(&g.name)).collect();
    if chosen.is_empty() {
        return Err(Error::Global("no groups to rank".into()));
    }
    let min_keep = min_keep.max(1);
    let mut all: Vec<(f32, usize, usize)> = Vec::new();
    let mut kept: Vec<Vec<bool>> = Vec::with_capacity(chosen.len());
    for (gi, group) in chosen.iter().enumerate() {
        let scores = group_scores(scorer, group, weights)?;
        let floor = select_top(&group.name, &scores, min_keep.min(group.channels))?;
        let mut k = vec![false; group.channels];
        for &i in floor.indices() {
            k[i] = true;
        }
        all.extend(scores.iter().enumerate().map(|(c, &s)| (s, gi, c)));
        kept.push(k);
    }
    let total = all.len();
    let target = ((total as f64 * keep_fraction) as usize).max(1);
    let mut count: usize = kept.iter().flatten().filter(|k| **k).count();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    for &(_, gi, c) in &all {
        if count >= target {
            break;
        }
        if !kept[gi][c] {
            kept[gi][c] = true;
            count += 1;
        }
    }
    let mut decisions = Vec::new();
    for (group, k) in chosen.iter().zip(&kept) {
        let indices: Vec<usize> = (0..k.len()).filter(|&i| k[i]).collect();
        if indices.len() == group.channels {
            continue;
        }
        decisions.push(GroupDecision {
            group: group.name.clone(),
            keep: KeepSet::new(indices, group.channels).map_err(|e| with_group(e, &group.name))?,
        });
    }
    Ok(PruningPlan::structured(method, None, decisions))
}

/// Applies a structured plan: every group it names loses the channels it does not keep, in every
/// member tensor. Pure; unnamed groups and untouched tensors pass through.
pub fn apply(
    plan: &PruningPlan,
    groups: &[ChannelGroup],
    weights: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>> {
    if !plan.is_structured() {
        return Err(Error::NotStructured(plan.method.clone()));
    }
    let decisions = plan
        .groups()
        .iter()
        .map(|d| {
            groups
                .iter()
                .find(|g| g.name == d.group)
                .map(|g| (g, &d.keep))
                .ok_or_else(|| Error::UnknownGroup(d.group.clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    remove_channels(&decisions, weights)
}

fn with_group(e: Error, group: &str) -> Error {
    match e {
        Error::Keep { reason, .. } => Error::Keep {
            group: group.to_string(),
            reason,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::groups::GroupMember;

    #[test]
    fn keep_counts_truncate_as_python_int() {
        assert_eq!(keep_count(16, 0.1).unwrap(), 14);
        assert_eq!(keep_count(16, 0.6).unwrap(), 6);
        assert_eq!(keep_count(32, 0.3).unwrap(), 22);
        assert_eq!(keep_count(64, 0.1).unwrap(), 57);
        assert_eq!(keep_count(32, 0.4).unwrap(), 19);
        assert_eq!(keep_count(64, 0.3).unwrap(), 44);
        assert_eq!(keep_count(16, 0.0).unwrap(), 16);
        assert_eq!(keep_count(16, 1.0).unwrap(), 0);
        assert!(keep_count(16, 1.5).is_err());
    }

    #[test]
    fn top_selection_keeps_the_largest_and_breaks_ties_to_the_later_index() {
        let k = select_top("g", &[0.5, 3.0, 1.0, 3.0], 2).unwrap();
        assert_eq!(k.indices(), [1, 3]);
        let k = select_top("g", &[1.0, 1.0, 1.0], 1).unwrap();
        assert_eq!(k.indices(), [2]);
        let err = select_top("g", &[1.0], 0).unwrap_err();
        assert!(err.to_string().contains("`g`"), "{err}");
    }

    fn group(name: &str, channels: usize) -> ChannelGroup {
        ChannelGroup {
            name: name.into(),
            channels,
            score_tensor: format!("{name}.weight"),
            members: vec![GroupMember::new(format!("{name}.weight"), 0)],
        }
    }

    #[test]
    fn precomputed_scores_rank_per_layer_and_are_checked() {
        let groups = [group("a", 4), group("b", 3)];
        let mut scores = crate::GroupScores::new(
            "hrank",
            [
                ("a".to_string(), vec![3.0, 1.0, 2.0, 5.0]),
                ("b".to_string(), vec![0.5, 0.1, 0.2]),
            ],
        );
        let none = HashMap::new();
        let targets = [("a".to_string(), 2), ("b".to_string(), 1)];
        let plan =
            select_filters_with("hrank", None, &groups, &targets, &mut scores, &none).unwrap();
        assert_eq!(plan.groups()[0].keep.indices(), [0, 3]);
        assert_eq!(plan.groups()[1].keep.indices(), [0]);
        // Scores for the wrong channel count, or missing, or not finite, are errors naming the
        // group.
        let mut short = crate::GroupScores::new("hrank", [("a".to_string(), vec![1.0])]);
        let err = select_filters_with("hrank", None, &groups, &targets, &mut short, &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a`") && err.contains("1"), "{err}");
        let mut missing = crate::GroupScores::new("taylor", [("a".to_string(), vec![1.0; 4])]);
        let err = select_filters_with("taylor", None, &groups, &targets, &mut missing, &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`b`") && err.contains("taylor"), "{err}");
        let mut nan =
            crate::GroupScores::new("taylor", [("a".to_string(), vec![1.0, f32::NAN, 0.0, 0.0])]);
        let err = select_filters_with("taylor", None, &groups, &targets[..1], &mut nan, &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not finite"), "{err}");
    }

    #[test]
    fn global_ranking_keeps_the_best_across_layers_with_a_floor() {
        let groups = [group("a", 4), group("b", 4), group("c", 2)];
        let mut scores = crate::GroupScores::new(
            "taylor",
            [
                ("a".to_string(), vec![9.0, 8.0, 1.0, 7.0]),
                ("b".to_string(), vec![0.1, 0.2, 0.3, 0.4]),
                ("c".to_string(), vec![5.0, 6.0]),
            ],
        );
        let none = HashMap::new();
        let ranked = ["a".to_string(), "b".to_string(), "c".to_string()];
        // 10 channels, keep 5: the five best are a0 a1 a3 c1 c0; b keeps its floor of one (b3).
        let plan = select_global("taylor", &groups, &ranked, 0.5, 1, &mut scores, &none).unwrap();
        let kept: Vec<(&str, Vec<usize>)> = plan
            .groups()
            .iter()
            .map(|d| (d.group.as_str(), d.keep.indices().to_vec()))
            .collect();
        assert_eq!(kept, [("a", vec![0, 1, 3]), ("b", vec![3]), ("c", vec![1])]);
        // Only the named groups compete; the others are left whole.
        let plan =
            select_global("taylor", &groups, &ranked[1..], 0.5, 1, &mut scores, &none).unwrap();
        let kept: Vec<(&str, Vec<usize>)> = plan
            .groups()
            .iter()
            .map(|d| (d.group.as_str(), d.keep.indices().to_vec()))
            .collect();
        // 6 channels, keep 3: c1, c0 and b3; c keeps everything and is not listed.
        assert_eq!(kept, [("b", vec![3])]);
        for bad in [0.0, 1.5, f64::NAN] {
            assert!(select_global("taylor", &groups, &ranked, bad, 1, &mut scores, &none).is_err());
        }
        let err = select_global(
            "taylor",
            &groups,
            &["z".to_string()],
            0.5,
            1,
            &mut scores,
            &none,
        )
        .unwrap_err();
        assert!(matches!(err, Error::UnknownGroup(_)), "{err}");
    }

    #[test]
    fn a_plan_round_trips_through_json_and_applies() {
        let w1 = Tensor::new(&[[1f32], [-5.], [2.], [0.]], &Device::Cpu)
            .unwrap()
            .reshape((4, 1, 1, 1))
            .unwrap();
        let w2 = Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .reshape((2, 4, 1, 1))
            .unwrap();
        let weights: HashMap<String, Tensor> =
            [("c1.weight".to_string(), w1), ("c2.weight".to_string(), w2)].into();
        let groups = vec![ChannelGroup {
            name: "c1".into(),
            channels: 4,
            score_tensor: "c1.weight".into(),
            members: vec![
                GroupMember::new("c1.weight", 0),
                GroupMember::new("c2.weight", 1),
            ],
        }];
        let plan = select_filters(
            "pfec",
            None,
            &groups,
            &[("c1".into(), 2)],
            FilterSaliency::L1,
            &weights,
        )
        .unwrap();
        assert_eq!(plan.groups()[0].keep.indices(), [1, 2]);
        let json = serde_json::to_string(&plan).unwrap();
        let back: PruningPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        let out = apply(&back, &groups, &weights).unwrap();
        assert_eq!(
            out["c2.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            [1., 2., 5., 6.]
        );
        assert_eq!(back.kept_widths()["c1"], 2);

        let random = |seed| {
            select_filters(
                "random-filter",
                None,
                &groups,
                &[("c1".into(), 2)],
                FilterSaliency::Random { seed },
                &weights,
            )
            .unwrap()
        };
        assert_eq!(random(1), random(1));
        assert_eq!(random(1).groups()[0].keep.len(), 2);
        let unknown = select_filters(
            "pfec",
            None,
            &groups,
            &[("nope".into(), 1)],
            FilterSaliency::L1,
            &weights,
        );
        assert!(matches!(unknown, Err(Error::UnknownGroup(_))));
        let all_gone = select_filters(
            "pfec",
            None,
            &groups,
            &[("c1".into(), 0)],
            FilterSaliency::L1,
            &weights,
        )
        .unwrap_err();
        assert!(matches!(all_gone, Error::EmptyGroup { .. }), "{all_gone}");
    }

    #[test]
    fn plans_load_with_a_size_cap_and_name_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let plan = PruningPlan::structured(
            "pfec",
            None,
            vec![GroupDecision {
                group: "conv1".into(),
                keep: KeepSet::new(vec![0, 2], 4).unwrap(),
            }],
        );
        std::fs::write(&path, serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(PruningPlan::load(&path).unwrap(), plan);
        std::fs::write(
            &path,
            r#"{"method":"pfec","groups":[{"group":"g","keep":{"channels":2,"kept":[5]}}]}"#,
        )
        .unwrap();
        let err = PruningPlan::load(&path).unwrap_err();
        assert!(
            matches!(&err, Error::Plan { file, .. } if file == &path)
                && err
                    .to_string()
                    .contains("channel 5 out of range (group has 2)"),
            "{err}"
        );
        let err = PruningPlan::load(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        // Counts that would overflow a usize sum.
        let huge = TensorSparsity {
            tensor: "w".into(),
            total: usize::MAX,
            pruned: usize::MAX,
            sparsity: 1.0,
        };
        let plan = PruningPlan {
            kind: PlanKind::Unstructured {
                tensors: vec![huge.clone(), huge],
                threshold: 0.5,
            },
            ..plan
        };
        assert_eq!(plan.sparsity(), 1.0);
    }

    #[test]
    fn the_two_kinds_keep_the_json_format_and_mixtures_are_refused() {
        let structured = r#"{"method":"pfec","version":"B","groups":[{"group":"g","keep":{"channels":4,"kept":[1,3]}}]}"#;
        let plan: PruningPlan = serde_json::from_str(structured).unwrap();
        assert!(plan.is_structured());
        assert_eq!(serde_json::to_string(&plan).unwrap(), structured);
        let unstructured = r#"{"method":"mwp","tensors":[{"tensor":"w","total":4,"pruned":2,"sparsity":0.5}],"threshold":0.25}"#;
        let plan: PruningPlan = serde_json::from_str(unstructured).unwrap();
        assert_eq!(plan.groups(), &[]);
        assert_eq!(plan.sparsity(), 0.5);
        assert_eq!(serde_json::to_string(&plan).unwrap(), unstructured);
        // A plan with neither is a structured plan that keeps everything.
        let empty: PruningPlan = serde_json::from_str(r#"{"method":"pfec"}"#).unwrap();
        assert!(empty.is_structured() && empty.groups().is_empty());
        for bad in [
            r#"{"method":"x","groups":[{"group":"g","keep":{"channels":4,"kept":[1]}}],"tensors":[{"tensor":"w","total":4,"pruned":2,"sparsity":0.5}],"threshold":0.1}"#,
            r#"{"method":"x","tensors":[{"tensor":"w","total":4,"pruned":2,"sparsity":0.5}]}"#,
            r#"{"method":"x","threshold":0.1}"#,
        ] {
            assert!(serde_json::from_str::<PruningPlan>(bad).is_err(), "{bad}");
        }
    }
}

//! Property tests of the plan and mask readers on hostile bytes (issue 14): mangled `plan.json`
//! text, absurd channel counts and indices, truncated and flipped `masks.safetensors` never panic;
//! what loads applies to matching weights or is an error. The libFuzzer targets `plan` and
//! `masks` (`cargo xtask fuzz`) search the same space for longer.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use proptest::prelude::*;
use prune_core::{ChannelGroup, GroupMember, KeepSet, Masks, PruningPlan, apply};

/// One group of 4 channels: a conv's filters, its BatchNorm and the next conv's input.
fn groups() -> Vec<ChannelGroup> {
    vec![ChannelGroup {
        name: "conv1".into(),
        channels: 4,
        score_tensor: "conv1.weight".into(),
        members: vec![
            GroupMember::new("conv1.weight", 0),
            GroupMember::new("bn1.weight", 0),
            GroupMember::new("conv2.weight", 1),
        ],
    }]
}

fn weights() -> HashMap<String, Tensor> {
    let t = |shape: &[usize]| Tensor::ones(shape, candle_core::DType::F32, &Device::Cpu).unwrap();
    HashMap::from([
        ("conv1.weight".to_string(), t(&[4, 1, 3, 3])),
        ("bn1.weight".to_string(), t(&[4])),
        ("conv2.weight".to_string(), t(&[2, 4, 3, 3])),
    ])
}

fn plan_json() -> String {
    let plan = PruningPlan::structured(
        "pfec",
        Some("A"),
        vec![prune_core::GroupDecision {
            group: "conv1".into(),
            keep: KeepSet::new(vec![0, 2], 4).unwrap(),
        }],
    );
    serde_json::to_string_pretty(&plan).unwrap()
}

/// Parses `text` as `prune --plan` does and applies it: a plan that applies leaves every member
/// of the group with as many channels on its axis as the plan keeps.
fn parse_and_apply(text: &str) {
    let Ok(plan) = serde_json::from_str::<PruningPlan>(text) else {
        return;
    };
    let _ = plan.kept_widths();
    let _ = plan.sparsity();
    let groups = groups();
    if let Ok(out) = apply(&plan, &groups, &weights()) {
        for d in plan.groups() {
            let g = groups.iter().find(|g| g.name == d.group).unwrap();
            for m in &g.members {
                assert_eq!(out[&m.tensor].dims()[m.axis], d.keep.len(), "{text}");
            }
        }
    }
}

fn masks_file() -> Vec<u8> {
    let mask = Tensor::new(&[1f32, 0., 1., 0.], &Device::Cpu).unwrap();
    let masks = Masks::new([("bn1.weight".to_string(), mask)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("masks.safetensors");
    masks.save(&path).unwrap();
    std::fs::read(path).unwrap()
}

/// Loads `bytes` as `masks.safetensors`; masks that load and apply keep every weight's shape.
fn load_masks(bytes: &[u8]) -> prune_core::Result<Masks> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("masks.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let masks = Masks::load(&path, &Device::Cpu);
    if let Ok(m) = &masks {
        let _ = m.sparsity();
        let _ = m.per_tensor();
        let w = weights();
        if let Ok(out) = m.apply(&w) {
            for (name, t) in &w {
                assert_eq!(out[name].dims(), t.dims());
            }
        }
    }
    masks
}

fn flip(bytes: &[u8], flips: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (i, x) in flips {
        let at = i.index(out.len());
        out[at] ^= x;
    }
    out
}

fn flips() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..12)
}

#[test]
fn the_unmangled_plan_and_masks_load_and_apply() {
    let plan: PruningPlan = serde_json::from_str(&plan_json()).unwrap();
    let out = apply(&plan, &groups(), &weights()).unwrap();
    assert_eq!(out["conv2.weight"].dims(), [2, 2, 3, 3]);
    let masks = load_masks(&masks_file()).unwrap();
    assert_eq!(masks.sparsity().unwrap(), 0.5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn mangled_plan_text_never_panics(f in flips(), cut in any::<prop::sample::Index>()) {
        let text = plan_json();
        parse_and_apply(&String::from_utf8_lossy(&flip(text.as_bytes(), &f)));
        // Cut before its closing brace, the JSON object is unterminated.
        let cut = cut.index(text.trim_end().len());
        prop_assert!(serde_json::from_str::<PruningPlan>(&text[..cut]).is_err());
    }

    #[test]
    fn absurd_channel_counts_and_indices_never_panic(
        channels in prop_oneof![0usize..8, any::<usize>()],
        kept in prop::collection::vec(prop_oneof![0usize..8, any::<usize>()], 0..6),
    ) {
        let text = format!(
            r#"{{"method":"pfec","groups":[{{"group":"conv1","keep":{{"channels":{channels},"kept":{kept:?}}}}}]}}"#
        );
        parse_and_apply(&text);
        // A kept set read from JSON is exactly what KeepSet::new accepts.
        let parsed = serde_json::from_str::<PruningPlan>(&text).ok();
        let expected = KeepSet::new(kept, channels).ok();
        prop_assert_eq!(parsed.map(|p| p.groups()[0].keep.clone()), expected);
    }

    #[test]
    fn a_truncated_masks_file_is_an_error(len in any::<prop::sample::Index>()) {
        let bytes = masks_file();
        let len = len.index(bytes.len());
        prop_assert!(load_masks(&bytes[..len]).is_err());
    }

    #[test]
    fn flipped_masks_bytes_never_panic(f in flips()) {
        let _ = load_masks(&flip(&masks_file(), &f));
    }

    #[test]
    fn any_other_masks_header_length_is_an_error(n in any::<u64>()) {
        let mut bytes = masks_file();
        prop_assume!(n != u64::from_le_bytes(bytes[..8].try_into().unwrap()));
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        prop_assert!(load_masks(&bytes).is_err());
    }
}

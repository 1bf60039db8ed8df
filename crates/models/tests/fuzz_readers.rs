//! Property tests of the checkpoint loader on hostile bytes (issue 14): truncated files, flipped
//! bytes, absurd header lengths, mangled configs and random bytes never panic, and every input
//! that is not a valid checkpoint is an error. The libFuzzer target `fuzz/fuzz_targets/
//! checkpoint.rs` searches the same space for longer (`cargo xtask fuzz`).

use std::path::Path;
use std::sync::OnceLock;

use candle_core::Device;
use models::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
use models::{Model, ModelConfig, ResNetConfig};
use proptest::prelude::*;

/// A ResNet-8 with 2-channel blocks on one input channel: about 4,000 weights, so each case
/// loads in well under a millisecond.
fn small_config() -> ModelConfig {
    ModelConfig::ResNet(ResNetConfig {
        depth: 8,
        in_channels: 1,
        num_classes: 2,
        block_widths: vec![2, 2, 2],
        detach_shortcut: false,
    })
}

/// The small model saved by `Model::save`: (model.safetensors, config.json), and the weights
/// saved without metadata (so the loader needs config.json).
fn files() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static FILES: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = Model::init(&small_config(), 0, &Device::Cpu).unwrap();
        model.save(dir.path()).unwrap();
        let bare = dir.path().join("bare.safetensors");
        candle_core::safetensors::save(&model.tensors().unwrap(), &bare).unwrap();
        (
            std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap(),
            std::fs::read(dir.path().join(CONFIG_FILE)).unwrap(),
            std::fs::read(bare).unwrap(),
        )
    })
}

/// Loads `weights` (and `config`, when given, as config.json beside it) from a fresh folder.
fn load(weights: &[u8], config: Option<&[u8]>) -> models::Result<Model> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(WEIGHTS_FILE), weights).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.path().join(CONFIG_FILE), c).unwrap();
    }
    let model = Model::load(dir.path(), &Device::Cpu);
    check_loaded(&model, dir.path());
    model
}

/// What a successful load promises: a valid config and a tensor of the config's shape for every
/// tensor it names.
fn check_loaded(model: &models::Result<Model>, dir: &Path) {
    if let Ok(m) = model {
        m.config().validate().unwrap();
        let tensors = m.tensors().unwrap();
        for spec in m.config().tensor_specs() {
            assert_eq!(tensors[&spec.name].dims(), spec.shape, "{}", dir.display());
        }
    }
}

/// Up to 16 bytes xor-ed with non-zero values at positions in the file.
fn flips() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..16)
}

fn flip(bytes: &[u8], flips: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (i, x) in flips {
        let at = i.index(out.len());
        out[at] ^= x;
    }
    out
}

#[test]
fn the_unmangled_files_load() {
    let (weights, config, bare) = files();
    load(weights, None).unwrap();
    load(bare, Some(config)).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_truncated_checkpoint_is_an_error(len in any::<prop::sample::Index>()) {
        let (weights, _, _) = files();
        let len = len.index(weights.len());
        prop_assert!(load(&weights[..len], None).is_err(), "{len} of {} bytes loaded", weights.len());
    }

    #[test]
    fn flipped_bytes_never_panic(f in flips()) {
        let (weights, _, _) = files();
        let _ = load(&flip(weights, &f), None);
    }

    #[test]
    fn any_other_header_length_is_an_error(n in any::<u64>()) {
        // safetensors' first 8 bytes: the JSON header's length, little-endian.
        let (weights, _, _) = files();
        let original = u64::from_le_bytes(weights[..8].try_into().unwrap());
        prop_assume!(n != original);
        let mut bytes = weights.clone();
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        prop_assert!(load(&bytes, None).is_err());
    }

    #[test]
    fn a_mangled_config_json_never_panics(f in flips(), cut in any::<prop::sample::Index>()) {
        let (_, config, bare) = files();
        let mangled = flip(config, &f);
        let _ = load(bare, Some(&mangled));
        // Cut before its closing brace, the JSON object is unterminated.
        let cut = cut.index(config.trim_ascii_end().len());
        prop_assert!(load(bare, Some(&config[..cut])).is_err());
    }

    #[test]
    fn random_bytes_are_an_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(load(&bytes, None).is_err());
    }

    #[test]
    fn huge_widths_in_config_json_are_an_error(
        widths in prop::collection::vec(any::<usize>(), 3),
        classes in any::<usize>(),
        in_channels in any::<usize>(),
    ) {
        // Sizes near usize::MAX must not overflow or allocate: the weights cannot match them.
        let (_, _, bare) = files();
        let config = format!(
            r#"{{"arch":"resnet","depth":8,"in_channels":{in_channels},"num_classes":{classes},"block_widths":{widths:?}}}"#
        );
        prop_assume!(widths != [2, 2, 2] || classes != 2 || in_channels != 1);
        prop_assert!(load(bare, Some(config.as_bytes())).is_err());
    }
}

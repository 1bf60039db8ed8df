//! HRank's and Taylor's filter scores against PyTorch: the values that
//! `tests/fixtures/make_scores_reference.py` computed with the reference code's formulas
//! (`torch.linalg.matrix_rank` per map and HRankPlus' running mean; NVlabs' gate gradient
//! squared and averaged). Needs no Python.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use prune_core::{RankAccumulator, TaylorAccumulator};

fn reference() -> std::collections::HashMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scores_reference.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn hrank_scores_match_pytorch_matrix_rank() {
    let r = reference();
    for set in ["conv8", "conv16", "lowrank16", "lowrank8x12"] {
        let mut acc = RankAccumulator::new();
        let mut images = 0;
        for i in 0.. {
            let Some(maps) = r.get(&format!("hrank.{set}.batch{i}")) else {
                break;
            };
            acc.add(set, maps).unwrap();
            images += maps.dim(0).unwrap();
        }
        assert_eq!(acc.images(set), images);
        let ours = &acc.scores().scores[set];
        let torch = values(&r[&format!("hrank.{set}.mean")]);
        assert_eq!(ours.len(), torch.len(), "{set}");
        for (c, (a, b)) in ours.iter().zip(&torch).enumerate() {
            // The reference divides a running f32 sum; ours divides an exact sum.
            assert!(
                (a - b).abs() < 1e-5,
                "{set} channel {c}: ours {a}, PyTorch {b}"
            );
        }
    }
}

#[test]
fn taylor_scores_match_the_gate_gradient() {
    let r = reference();
    let mut acc = TaylorAccumulator::new();
    for i in 0..3 {
        let t = |n: &str| &r[&format!("taylor.batch{i}.{n}")];
        acc.add("bn", (t("gamma"), t("dgamma")), (t("beta"), t("dbeta")))
            .unwrap();
    }
    let ours = &acc.scores().scores["bn"];
    let torch = values(&r["taylor.mean"]);
    for (c, (a, b)) in ours.iter().zip(&torch).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1e-6),
            "channel {c}: ours {a}, PyTorch {b}"
        );
    }
}

//! The paper's budget and schedule rules for the runs that follow pruning, shared by
//! `prunebench train`/`retrain` and `cargo xtask reproduce` so the two cannot disagree.

use models::ModelConfig;
use schedules::{Schedule, StepRate, StepSchedule};

use crate::{ExperimentSpec, Result};

/// Liu et al. 2019's baselines for a pruned architecture trained from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScratchBudget {
    /// Scratch-E: as many epochs as the base budget.
    E,
    /// Scratch-B: the same computation as the unpruned model's base budget.
    B,
}

/// The epochs and schedule of a scratch baseline for the pruned `config`, as the official code
/// (`main_E.py`, `main_B.py`): B scales the base epochs by
/// `int(epochs * flops_unpruned / flops_pruned)`, and the rate (0.1) drops by 10 at `int(0.5 E)`
/// and `int(0.75 E)`.
pub fn scratch(config: &ModelConfig, budget: ScratchBudget, base: u32) -> Result<(u32, Schedule)> {
    let epochs = match budget {
        ScratchBudget::E => base,
        ScratchBudget::B => {
            let full = config.unpruned()?;
            (f64::from(base) * full.flops() as f64 / config.flops() as f64) as u32
        }
    };
    Ok((epochs, original_schedule(epochs)?))
}

/// The CIFAR training schedule's shape for `epochs`: 0.1, divided by 10 at `int(0.5 E)` and
/// `int(0.75 E)` (80 and 120 of 160 in the paper). Scratch baselines use it, and so do the
/// reproductions' shortened profiles, whose original training must still end at the small rate
/// that FT keeps and LRW replays.
pub fn original_schedule(epochs: u32) -> Result<Schedule> {
    let milestones = [
        (f64::from(epochs) * 0.5) as u32,
        (f64::from(epochs) * 0.75) as u32,
    ];
    // PyTorch's MultiStepLR counts milestones: one that repeats (short budgets: E = 2 gives
    // [1, 1]) divides twice at that epoch, and one at epoch 0 is never reached.
    let mut pieces = vec![StepRate { epoch: 0, lr: 0.1 }];
    for m in milestones.into_iter().filter(|&m| m > 0) {
        let last = pieces.len() - 1;
        let lr = pieces[last].lr * 0.1;
        if pieces[last].epoch == m {
            pieces[last].lr = lr;
        } else {
            pieces.push(StepRate { epoch: m, lr });
        }
    }
    let pieces = StepSchedule::new(pieces)?;
    Ok(Schedule::Step { pieces })
}

/// The retraining schedule that `text` names: `ft` and `lrw` without parameters follow the
/// original training of the pruned model's run (`origin`, DESIGN section 2): FT keeps its last
/// rate, LRW replays its last epochs. Anything else parses as written.
pub fn retraining_schedule(text: &str, origin: Option<&ExperimentSpec>) -> Result<Schedule> {
    let parsed: Schedule = text.parse()?;
    let original = origin.and_then(|o| match &o.schedule {
        Schedule::Step { pieces } => Some((pieces.clone(), o.epochs)),
        _ => None,
    });
    Ok(match (text.trim(), original) {
        ("lrw", Some((pieces, epochs))) => Schedule::Lrw {
            original: pieces,
            original_epochs: epochs,
        },
        ("ft", Some((pieces, _))) => Schedule::Ft {
            lr: pieces.last_lr(),
        },
        _ => parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_b_scales_by_the_flops_ratio() {
        let full = ModelConfig::from_name("resnet56", 10, 3).unwrap();
        let pruned = crate::prune::pfec_config(&full, Some(prune_core::PfecVersion::B)).unwrap();
        let (e, _) = scratch(&pruned, ScratchBudget::E, 200).unwrap();
        let (b, _) = scratch(&pruned, ScratchBudget::B, 200).unwrap();
        assert_eq!(e, 200);
        // ResNet-56-B removes 27.6% of the FLOPs (DESIGN section 4): 200 / 0.724 = 276.
        assert_eq!(
            b,
            (200.0 * full.flops() as f64 / pruned.flops() as f64) as u32
        );
        assert!((270..=280).contains(&b), "{b}");
    }

    #[test]
    fn short_scratch_budgets_count_repeated_milestones_as_pytorch() {
        let full = ModelConfig::from_name("resnet20", 10, 1).unwrap();
        let lrs = |e: u32| -> Vec<f64> {
            let (_, s) = scratch(&full, ScratchBudget::E, e).unwrap();
            let Schedule::Step { pieces } = s else {
                panic!()
            };
            (0..e).map(|k| pieces.lr(k)).collect()
        };
        assert_eq!(lrs(1), [0.1]);
        assert_eq!(lrs(2), [0.1, 0.1 * 0.1 * 0.1]);
        assert_eq!(lrs(4), [0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1]);
    }

    #[test]
    fn ft_keeps_the_last_original_rate() {
        let spec = ExperimentSpec::paper(
            datasets::DatasetKind::Cifar10,
            ModelConfig::from_name("resnet56", 10, 3).unwrap(),
        );
        match retraining_schedule("ft", Some(&spec)).unwrap() {
            Schedule::Ft { lr } => assert!((lr - 0.001).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
    }
}

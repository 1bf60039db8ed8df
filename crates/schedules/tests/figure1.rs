//! The paper's Figure 1 (retraining 72 epochs on CIFAR after the 160-epoch original) and the
//! worked examples of DESIGN.md, pinned value by value.

use schedules::{Budget, LrSchedule, Preset, Schedule};

fn build(text: &str, epochs: u32, steps_per_epoch: u32) -> LrSchedule {
    let s: Schedule = text.parse().unwrap();
    s.build(Budget::new(epochs, steps_per_epoch).unwrap())
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
}

#[test]
fn ft_is_the_last_original_rate_throughout() {
    let ft = build("ft", 72, 1);
    for k in 0..72 {
        assert_eq!(ft.lr(k), 0.001, "epoch {k}");
    }
    assert_eq!(ft.momentum(0), None);
}

#[test]
fn lrw_replays_the_last_72_epochs() {
    let lrw = build("lrw", 72, 1);
    for k in 0..32 {
        assert_eq!(lrw.lr(k), 0.01, "epoch {k}");
    }
    for k in 32..72 {
        assert_eq!(lrw.lr(k), 0.001, "epoch {k}");
    }
}

#[test]
fn lrw_within_40_epochs_equals_ft() {
    for epochs in [1, 20, 40] {
        let lrw = build("lrw", epochs, 3);
        let ft = build("ft", epochs, 3);
        for step in 0..lrw.total_steps() {
            assert_eq!(lrw.lr(step), ft.lr(step));
        }
    }
}

#[test]
fn lrw_per_iteration_changes_only_at_epoch_boundaries() {
    let lrw = build("lrw", 72, 704);
    assert_eq!(lrw.lr(32 * 704 - 1), 0.01);
    assert_eq!(lrw.lr(32 * 704), 0.001);
    assert_eq!(lrw.lr_at_epoch(31.999), 0.01);
    assert_eq!(lrw.lr_at_epoch(32.0), 0.001);
}

#[test]
fn slr_72_epochs_warms_up_then_drops_at_50_and_75_percent_after_warmup() {
    let slr = build("slr", 72, 1);
    // W = floor(0.1 * 72) = 7 warm-up epochs along a cosine from 0.001.
    assert_eq!(slr.lr(0), 0.001);
    for k in 1..7u64 {
        let expected =
            0.001 + (0.1 - 0.001) * (1.0 - (std::f64::consts::PI * k as f64 / 7.0).cos()) / 2.0;
        assert!(close(slr.lr(k), expected), "epoch {k}: {}", slr.lr(k));
        assert!(slr.lr(k) > slr.lr(k - 1));
    }
    // 0.1 from 10% of the budget; drops at 7 + floor(0.45 * 72) = 39 and 7 + floor(0.675 * 72) = 55.
    for k in 7..39 {
        assert_eq!(slr.lr(k), 0.1, "epoch {k}");
    }
    for k in 39..55 {
        assert!(close(slr.lr(k), 0.01), "epoch {k}");
    }
    for k in 55..72 {
        assert!(close(slr.lr(k), 0.001), "epoch {k}");
    }
}

#[test]
fn slr_40_epochs_matches_the_design_example() {
    // DESIGN.md: warm-up epochs 0-3, 0.1 on 4-21, 0.01 on 22-30, 0.001 from 31.
    let slr = build("slr", 40, 1);
    assert_eq!(slr.lr(0), 0.001);
    assert!(slr.lr(3) < 0.1 && slr.lr(3) > slr.lr(2));
    for k in 4..=21 {
        assert_eq!(slr.lr(k), 0.1, "epoch {k}");
    }
    for k in 22..=30 {
        assert!(close(slr.lr(k), 0.01), "epoch {k}");
    }
    for k in 31..40 {
        assert!(close(slr.lr(k), 0.001), "epoch {k}");
    }
}

#[test]
fn clr_72_epochs_rises_to_the_peak_at_10_percent_then_decays_by_cosine_to_lr_min() {
    let spe = 704;
    let clr = build("clr", 72, spe);
    let total = clr.total_steps();
    assert!(close(clr.lr(0), 0.001));
    assert_eq!(clr.lr(total - 1), 1e-5);
    // The peak: the largest rate is 0.1 (to rounding) and falls at 10% of the budget.
    let (argmax, max) = (0..total)
        .map(|s| (s, clr.lr(s)))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    assert!((max - 0.1).abs() < 1e-9, "peak {max}");
    let peak_epoch = argmax as f64 / f64::from(spe);
    assert!(
        (peak_epoch - 7.2).abs() <= 1.0 / f64::from(spe),
        "peak at epoch {peak_epoch}"
    );
    // Rising strictly before the peak, falling strictly after it.
    for s in 1..=argmax {
        assert!(clr.lr(s) > clr.lr(s - 1), "step {s}");
    }
    for s in argmax + 1..total {
        assert!(clr.lr(s) < clr.lr(s - 1), "step {s}");
    }
    // Halfway through the decay, the cosine is at the mean of max and min.
    let u = 0.1 * total as f64 - 1.0;
    let mid = (u + (total as f64 - 1.0)) / 2.0;
    assert!((clr.lr_at_epoch(mid / f64::from(spe)) - (0.1 + 1e-5) / 2.0).abs() < 1e-12);
}

#[test]
fn clr_momentum_cycles_opposite_to_the_rate() {
    let clr = build("clr", 40, 100);
    let total = clr.total_steps();
    assert!((clr.momentum(0).unwrap() - 0.95).abs() < 1e-12);
    assert!((clr.momentum(total - 1).unwrap() - 0.95).abs() < 1e-12);
    let u = (0.1 * total as f64 - 1.0) as u64;
    let at_peak = clr.momentum(u).unwrap();
    assert!((at_peak - 0.85).abs() < 1e-4, "{at_peak}");
}

#[test]
fn presets_build_the_same_schedules_as_the_text_form() {
    assert_eq!(
        "ft".parse::<Schedule>().unwrap(),
        Schedule::ft(Preset::Cifar)
    );
    assert_eq!(
        "lrw".parse::<Schedule>().unwrap(),
        Schedule::lrw(Preset::Cifar)
    );
    assert_eq!(
        "slr".parse::<Schedule>().unwrap(),
        Schedule::slr(Preset::Cifar)
    );
    assert_eq!(
        "clr".parse::<Schedule>().unwrap(),
        Schedule::clr(Preset::Cifar)
    );
    assert_eq!(
        "step".parse::<Schedule>().unwrap(),
        "step:0.1@0,0.01@80,0.001@120".parse().unwrap()
    );
    assert_eq!(
        "clr:preset=imagenet".parse::<Schedule>().unwrap(),
        Schedule::clr(Preset::Imagenet)
    );
}

#[test]
fn original_cifar_training_steps_at_80_and_120() {
    let step = build("step:0.1@0,0.01@80,0.001@120", 160, 391);
    assert_eq!(step.lr_at_epoch(79.99), 0.1);
    assert_eq!(step.lr_at_epoch(80.0), 0.01);
    assert_eq!(step.lr_at_epoch(119.5), 0.01);
    assert_eq!(step.lr_at_epoch(120.0), 0.001);
    assert_eq!(step.lr(160 * 391 - 1), 0.001);
}

#[test]
fn imagenet_lrw_rewinds_into_the_90_epoch_original() {
    // 45 epochs of a 90-epoch original (drops at 30 and 60): 0.01 for 15 epochs, then 0.001.
    let lrw = build("lrw:preset=imagenet", 45, 1);
    assert_eq!(lrw.lr(14), 0.01);
    assert_eq!(lrw.lr(15), 0.001);
}

#[test]
fn the_cli_example_budget_has_28160_iterations() {
    let clr = build("clr", 40, 704);
    assert_eq!(clr.total_steps(), 28_160);
    assert_eq!(clr.points().count(), 28_160);
}

//! Property tests: every valid schedule is finite, positive and within its own bounds at every
//! iteration; the text form and JSON round-trip exactly.

use proptest::prelude::*;
use schedules::{
    Anneal, Budget, Cosine, LrSchedule, MomentumCycle, OneCycle, Schedule, Slr, StepRate,
    StepSchedule,
};

fn rate() -> impl Strategy<Value = f64> {
    // Positive rates over the decades a user types, 1e-6 .. 1.
    (-6.0f64..0.0).prop_map(|e| 10f64.powf(e))
}

fn step_schedule() -> impl Strategy<Value = StepSchedule> {
    prop::collection::vec((1u32..40, rate()), 0..4).prop_flat_map(|gaps| {
        rate().prop_map(move |first| {
            let mut pieces = vec![StepRate {
                epoch: 0,
                lr: first,
            }];
            let mut epoch = 0;
            for &(gap, lr) in &gaps {
                epoch += gap;
                pieces.push(StepRate { epoch, lr });
            }
            StepSchedule::new(pieces).unwrap()
        })
    })
}

fn one_cycle() -> impl Strategy<Value = OneCycle> {
    (
        rate(),
        rate(),
        rate(),
        0.0f64..0.99,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, b, c, warmup, linear, momentum)| {
            let mut r = [a, b, c];
            r.sort_by(f64::total_cmp);
            OneCycle {
                lr_init: r[1],
                lr_max: r[2],
                lr_min: r[0],
                warmup,
                anneal: if linear { Anneal::Linear } else { Anneal::Cos },
                momentum: momentum.then_some(MomentumCycle::default()),
            }
        })
}

fn schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![
        step_schedule().prop_map(|pieces| Schedule::Step { pieces }),
        rate().prop_map(|lr| Schedule::Ft { lr }),
        (step_schedule(), 300u32..400).prop_map(|(original, original_epochs)| Schedule::Lrw {
            original,
            original_epochs
        }),
        (rate(), rate(), 0.0f64..0.99, 0.05f64..1.0, any::<bool>()).prop_map(
            |(a, b, warmup, factor, per_iteration)| {
                Schedule::Slr(Slr {
                    lr_min: a.min(b),
                    lr_max: a.max(b),
                    warmup,
                    drops: vec![0.5, 0.75],
                    factor,
                    per_iteration,
                })
            }
        ),
        one_cycle().prop_map(Schedule::Clr),
        one_cycle().prop_map(Schedule::OneCycle),
        (rate(), rate()).prop_map(|(a, b)| Schedule::Cosine(Cosine {
            lr_max: a.max(b),
            lr_min: a.min(b)
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_rate_is_finite_positive_and_within_bounds(
        s in schedule(), epochs in 1u32..300, spe in 1u32..40,
    ) {
        let budget = Budget::new(epochs, spe).unwrap();
        let built = s.build(budget).unwrap();
        let (lo, hi) = s.bounds(budget).unwrap();
        // Evaluate every iteration of short budgets and a spread of long ones.
        let total = built.total_steps();
        let stride = (total / 2000).max(1);
        for step in (0..total).step_by(stride as usize).chain([total - 1]) {
            let lr = built.lr(step);
            prop_assert!(lr.is_finite() && lr > 0.0, "step {step}: {lr}");
            // Rounding of the cosine may land a few ulps of `hi` outside.
            let tol = 1e-12 * hi;
            prop_assert!(lr >= lo - tol && lr <= hi + tol,
                "step {step}: {lr} outside [{lo}, {hi}]");
            if let Some(m) = built.momentum(step) {
                prop_assert!((0.85 - 1e-12..=0.95 + 1e-12).contains(&m), "momentum {m}");
            }
        }
    }

    #[test]
    fn lr_at_epoch_agrees_with_lr_at_iteration_boundaries(
        s in schedule(), epochs in 1u32..100, spe in 1u32..20, pick in 0.0f64..1.0,
    ) {
        let built = s.build(Budget::new(epochs, spe).unwrap()).unwrap();
        let step = ((built.total_steps() - 1) as f64 * pick) as u64;
        let epoch = step as f64 / f64::from(spe);
        let (a, b) = (built.lr(step), built.lr_at_epoch(epoch));
        prop_assert!((a - b).abs() <= 1e-12 * a, "{a} vs {b}");
    }

    #[test]
    fn text_form_round_trips(s in schedule()) {
        let text = s.to_string();
        let back: Schedule = text.parse().unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn json_round_trips(s in schedule(), epochs in 1u32..300, spe in 1u32..1000) {
        let json = serde_json::to_string(&s).unwrap();
        let back: Schedule = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &s);
        let built = s.build(Budget::new(epochs, spe).unwrap()).unwrap();
        let json = serde_json::to_string(&built).unwrap();
        let back: LrSchedule = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, built);
    }
}

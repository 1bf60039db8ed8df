//! Property tests of the schedule text form on hostile text (issue 14): strings over the form's
//! alphabet, mutations of valid forms and extreme numbers never panic; what parses prints back
//! to the same schedule and evaluates over any budget, the largest included. The libFuzzer
//! target `schedule` (`cargo xtask fuzz`) searches the same space for longer.

use proptest::prelude::*;
use schedules::{Budget, Schedule};

const VALID: [&str; 9] = [
    "step:0.1@0,0.01@80,0.001@120",
    "step:preset=imagenet",
    "ft:preset=cifar,lr=0.001",
    "lrw:original=0.1@0;0.01@80;0.001@120,epochs=160",
    "slr:min=0.001,max=0.1,warmup=0.1,drops=0.5/0.75,factor=0.1",
    "slr:drops=none",
    "clr:preset=imagenet,init=0.01,max=0.1,min=0.0001,warmup=0.3,anneal=linear,momentum=0.85/0.95",
    "onecycle:max=0.4,init=0.01,momentum=off,anneal=cos",
    "cosine:max=0.1,min=0",
];

/// Parses `text`; a schedule that parses must round-trip through its printed form and evaluate
/// at the first, middle and last iteration of small and huge budgets.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(s) = text.parse::<Schedule>() else {
        return Ok(());
    };
    let printed = s.to_string();
    let again: Result<Schedule, _> = printed.parse();
    prop_assert_eq!(
        again.as_ref().ok(),
        Some(&s),
        "{:?} printed as {:?}",
        text,
        printed
    );
    // The largest budget accepted (schedules::MAX_TOTAL_STEPS iterations); u32::MAX epochs of
    // u32::MAX steps is refused by Budget::new before any schedule sees it.
    assert!(Budget::new(u32::MAX, u32::MAX).is_err());
    for (epochs, steps) in [(1, 1), (160, 704), (100_000, 1_000)] {
        let budget = Budget::new(epochs, steps).unwrap();
        let _ = s.bounds(budget);
        if let Ok(lr) = s.build(budget) {
            let last = lr.total_steps() - 1;
            for step in [0, last / 2, last] {
                let _ = lr.lr(step);
                let _ = lr.momentum(step);
            }
            let _ = lr.lr_at_epoch(f64::from(epochs) / 2.0);
        }
    }
    Ok(())
}

/// Text over the form's own alphabet, so kinds, keys and numbers are hit often.
fn form_text() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec![
        "step", "ft", "lrw", "slr", "clr", "onecycle", "1cycle", "cosine", "cos", "",
    ]);
    (kind, "[a-z0-9@:,;=./eE+ -]{0,40}").prop_map(|(k, rest)| format!("{k}:{rest}"))
}

/// Numbers a hostile user may type: extremes, non-finite spellings, negative zero.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-0",
            "1e308",
            "1e309",
            "-1e308",
            "inf",
            "-inf",
            "NaN",
            "1e-320",
            "4294967295",
            "4294967296",
            "18446744073709551616",
            "0.99999999999999999",
            "1",
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|x| x.to_string()),
        any::<u64>().prop_map(|x| x.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn text_over_the_form_alphabet_never_panics(text in form_text()) {
        check(&text)?;
    }

    #[test]
    fn mutated_valid_forms_never_panic(
        which in 0usize..VALID.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..4),
    ) {
        let mut text: Vec<char> = VALID[which].chars().collect();
        for (i, c) in edits {
            let at = i.index(text.len());
            text[at] = c;
        }
        check(&text.into_iter().collect::<String>())?;
    }

    #[test]
    fn extreme_numbers_never_panic(a in number(), b in number(), c in number()) {
        for text in [
            format!("step:{a}@0,{b}@{c}"),
            format!("ft:lr={a}"),
            format!("lrw:original={a}@0;{b}@{c},epochs={c}"),
            format!("slr:min={a},max={b},warmup={c},drops={a}/{b},factor={c}"),
            format!("clr:init={a},max={b},min={c},warmup={a}"),
            format!("onecycle:max={a},init={b},momentum={c}/{a}"),
            format!("cosine:max={a},min={b}"),
        ] {
            check(&text)?;
        }
    }
}

#[test]
fn the_valid_forms_parse() {
    for text in VALID {
        text.parse::<Schedule>().unwrap();
        check(text).unwrap();
    }
}

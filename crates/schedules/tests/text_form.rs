//! The short text form: what parses, to what, and the error for everything malformed.

use schedules::{Anneal, Budget, Error, Schedule, split_list};

fn parse(text: &str) -> Result<Schedule, Error> {
    text.parse()
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn parameters_override_the_preset() {
    let Schedule::Clr(c) = parse("clr:max=0.05,min=1e-6,warmup=0.15,anneal=linear").unwrap() else {
        panic!("not clr");
    };
    assert_eq!(
        (c.lr_init, c.lr_max, c.lr_min, c.warmup),
        (0.001, 0.05, 1e-6, 0.15)
    );
    assert_eq!(c.anneal, Anneal::Linear);
    let Schedule::Clr(c) = parse("CLR : momentum=off").unwrap() else {
        panic!("not clr");
    };
    assert_eq!(c.momentum, None);
    assert_eq!(parse(" ft:lr=0.002 ").unwrap(), Schedule::Ft { lr: 0.002 });
}

#[test]
fn onecycle_derives_its_rates_from_max_as_pytorch() {
    let Schedule::OneCycle(c) = parse("onecycle:max=0.4").unwrap() else {
        panic!("not onecycle");
    };
    assert_eq!(c.lr_init, 0.4 / 25.0);
    assert_eq!(c.lr_min, 0.4 / 25.0 / 1e4);
    assert_eq!(c.warmup, 0.3);
}

#[test]
fn lrw_takes_a_custom_original_schedule() {
    let s = parse("lrw:original=0.05@0;0.005@50,epochs=100").unwrap();
    let b = s.build(Budget::new(60, 1).unwrap()).unwrap();
    // Rewinds to epoch 40 of 100: 0.05 for 10 epochs, then 0.005.
    assert_eq!(b.lr(9), 0.05);
    assert_eq!(b.lr(10), 0.005);
}

#[test]
fn malformed_text_is_a_clear_error() {
    let cases = [
        ("", "empty schedule"),
        ("clx", "unknown schedule kind 'clx'"),
        ("clr:foo=1", "clr: unknown parameter 'foo'"),
        ("clr:max", "clr: malformed item 'max' (expected key=value)"),
        ("clr:max=0.1,max=0.2", "clr: parameter 'max' given twice"),
        ("clr:max=abc", "clr: max='abc' is not a number"),
        (
            "clr:max=-0.1",
            "clr lr_max must be a finite, non-negative learning rate, got -0.1",
        ),
        (
            "clr:max=nan",
            "clr lr_max must be a finite, non-negative learning rate, got NaN",
        ),
        (
            "clr:max=inf",
            "clr lr_max must be a finite, non-negative learning rate, got inf",
        ),
        ("clr:init=0.5", "clr: lr_init 0.5 is above lr_max 0.1"),
        (
            "clr:warmup=1",
            "clr warmup must be a fraction in [0, 1), got 1",
        ),
        (
            "slr:warmup=-0.1",
            "slr warmup must be a fraction in [0, 1), got -0.1",
        ),
        ("clr:anneal=exp", "clr: malformed item 'anneal=exp'"),
        ("clr:momentum=0.9", "clr: malformed item 'momentum=0.9'"),
        (
            "clr:momentum=0.85/1.5",
            "clr max momentum must be in [0, 1), got 1.5",
        ),
        ("slr:factor=2", "slr factor must be in (0, 1], got 2"),
        ("slr:drops=0.75/0.5", "slr: drop fractions must increase"),
        ("ft:lr=0", "ft lr must be above zero, got 0"),
        ("ft:preset=mnist", "ft: malformed item 'preset=mnist'"),
        ("step:0.1@5", "a step schedule must start at epoch 0"),
        (
            "step:0.1@0,0.01@80,0.001@80",
            "step epochs must increase, got 80 after 80",
        ),
        ("step:0.1", "step: malformed item '0.1' (expected lr@epoch"),
        ("step:0.1@0,0.01@8.5", "step: malformed item '0.01@8.5'"),
        (
            "step:-0.1@0",
            "step lr must be a finite, non-negative learning rate, got -0.1",
        ),
        ("lrw:epochs=ten", "lrw: malformed item 'epochs=ten'"),
        (
            "cosine:max=0.1,min=0.2",
            "cosine: lr_min 0.2 is above lr_max 0.1",
        ),
    ];
    for (text, expected) in cases {
        let message = err(text);
        assert!(
            message.contains(expected),
            "{text:?}: got {message:?}, expected {expected:?}"
        );
    }
}

#[test]
fn budgets_must_be_non_zero_and_fit_the_schedule() {
    assert_eq!(Budget::new(0, 10).unwrap_err(), Error::ZeroEpochs);
    assert_eq!(Budget::new(10, 0).unwrap_err(), Error::ZeroStepsPerEpoch);
    let lrw = parse("lrw").unwrap();
    let e = lrw.build(Budget::new(161, 1).unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot rewind 161 epochs of a 160-epoch"),
        "{e}"
    );
    assert!(lrw.build(Budget::new(160, 1).unwrap()).is_ok());
}

#[test]
fn deserializing_an_invalid_bound_schedule_fails() {
    let bad = r#"{"schedule":{"kind":"ft","lr":-1.0},"epochs":10,"steps_per_epoch":1}"#;
    let e = serde_json::from_str::<schedules::LrSchedule>(bad).unwrap_err();
    assert!(e.to_string().contains("ft lr must be"), "{e}");
    let zero = r#"{"schedule":{"kind":"ft","lr":0.1},"epochs":0,"steps_per_epoch":1}"#;
    assert!(serde_json::from_str::<schedules::LrSchedule>(zero).is_err());
}

#[test]
fn json_has_a_kind_tag() {
    let json = serde_json::to_value(parse("ft").unwrap()).unwrap();
    assert_eq!(json, serde_json::json!({"kind": "ft", "lr": 0.001}));
}

#[test]
fn lists_split_between_schedules_not_inside_them() {
    assert_eq!(split_list("ft,lrw,slr,clr"), ["ft", "lrw", "slr", "clr"]);
    assert_eq!(
        split_list("clr:max=0.1,min=1e-5,warmup=0.1,step:0.1@0,0.01@80"),
        ["clr:max=0.1,min=1e-5,warmup=0.1", "step:0.1@0,0.01@80"]
    );
    assert_eq!(split_list(""), Vec::<String>::new());
}

#[test]
fn huge_budgets_are_refused_before_any_iteration_is_listed() {
    // u32::MAX epochs of u32::MAX steps: 1.8e19 iterations, which `points()` would list.
    let e = Budget::new(u32::MAX, u32::MAX).unwrap_err();
    assert_eq!(
        e.to_string(),
        "4294967295 epochs of 4294967295 steps is 18446744065119617025 iterations, more than the 100000000 a budget may have"
    );
    assert!(Budget::new(1_000, 100_000).is_ok());
    assert!(matches!(
        Budget::new(1_000, 100_001),
        Err(schedules::Error::TooManySteps {
            total: 100_001_000,
            ..
        })
    ));
    // A budget read from JSON is checked as one built with `new`.
    let zero = r#"{"epochs":0,"steps_per_epoch":1}"#;
    assert!(serde_json::from_str::<Budget>(zero).is_err());
    let huge = r#"{"epochs":4294967295,"steps_per_epoch":4294967295}"#;
    let e = serde_json::from_str::<Budget>(huge).unwrap_err();
    assert!(e.to_string().contains("more than the 100000000"), "{e}");
    let bound = r#"{"schedule":{"kind":"ft","lr":0.1},"epochs":100000,"steps_per_epoch":100000}"#;
    assert!(serde_json::from_str::<schedules::LrSchedule>(bound).is_err());
    let ok: Budget = serde_json::from_str(r#"{"epochs":72,"steps_per_epoch":391}"#).unwrap();
    assert_eq!(ok.total_steps(), 72 * 391);
}

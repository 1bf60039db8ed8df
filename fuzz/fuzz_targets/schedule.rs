//! The schedule text form (`--schedule step:0.1@0,0.01@80`): parsed; a schedule that parses
//! must print back to text that parses to the same schedule, and evaluate at the first, middle
//! and last iteration of a few budgets, the largest accepted included, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schedules::{Budget, Schedule};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schedule) = text.parse::<Schedule>() else {
        return;
    };
    let printed = schedule.to_string();
    let again: Schedule = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} prints as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, schedule, "{text:?} prints as {printed:?}");
    // The largest budget accepted (schedules::MAX_TOTAL_STEPS iterations); u32::MAX epochs of
    // u32::MAX steps is refused by Budget::new before any schedule sees it.
    assert!(Budget::new(u32::MAX, u32::MAX).is_err());
    for (epochs, steps) in [(1, 1), (160, 704), (100_000, 1_000)] {
        let budget = Budget::new(epochs, steps).expect("non-zero budget");
        let _ = schedule.bounds(budget);
        if let Ok(lr) = schedule.build(budget) {
            let last = lr.total_steps() - 1;
            for step in [0, last / 2, last] {
                let _ = lr.lr(step);
                let _ = lr.momentum(step);
            }
            let _ = lr.lr_at_epoch(f64::from(epochs) / 2.0);
        }
    }
});

//! SLR stepped per iteration (`slr:per=iteration`), for budgets of a few epochs where the
//! reference code's per-epoch rule collapses to FT's constant rate.

use schedules::{Budget, Schedule};

fn lrs(text: &str, epochs: u32, steps: u32) -> Vec<f64> {
    let s: Schedule = text.parse().unwrap();
    let b = s.build(Budget::new(epochs, steps).unwrap()).unwrap();
    (0..u64::from(epochs * steps)).map(|i| b.lr(i)).collect()
}

#[test]
fn one_epoch_per_epoch_slr_is_fts_constant_rate_and_per_iteration_keeps_the_shape() {
    // The reference rule at E = 1: no warm-up (int(0.1) = 0), both drops at epoch 0.
    let epoch = lrs("slr", 1, 100);
    assert!(
        epoch.iter().all(|&x| (x - 0.001).abs() < 1e-12),
        "{epoch:?}"
    );

    let it = lrs("slr:per=iteration", 1, 100);
    // Cosine warm-up over the first 10% of the iterations, from 0.001 ...
    assert!((it[0] - 0.001).abs() < 1e-12);
    assert!(it[1..10].windows(2).all(|w| w[1] > w[0]), "{:?}", &it[..11]);
    // ... to 0.1 until 10% + 45% of the budget, 0.01 until 10% + 67.5%, then 0.001.
    assert!(
        it[10..55].iter().all(|&x| (x - 0.1).abs() < 1e-12),
        "{:?}",
        &it[..56]
    );
    assert!(
        it[55..78].iter().all(|&x| (x - 0.01).abs() < 1e-12),
        "{:?}",
        &it[54..79]
    );
    assert!(
        it[78..].iter().all(|&x| (x - 0.001).abs() < 1e-12),
        "{:?}",
        &it[77..]
    );
}

#[test]
fn per_iteration_slr_matches_the_per_epoch_rule_where_the_fractions_fall_on_whole_epochs() {
    // E = 40: warm-up 4 epochs, drops at 4 + 18 = 22 and 4 + 27 = 31 either way; only the
    // warm-up differs (per iteration it rises within each epoch).
    let (e, s) = (40, 10);
    let a = lrs("slr", e, s);
    let b = lrs("slr:per=iteration", e, s);
    for i in (4 * s as usize)..a.len() {
        assert!(
            (a[i] - b[i]).abs() < 1e-12,
            "step {i}: {} vs {}",
            a[i],
            b[i]
        );
    }
    for k in 0..4 {
        let i = k * s as usize;
        assert!((a[i] - b[i]).abs() < 1e-12, "epoch {k} start");
    }
}

#[test]
fn the_text_form_round_trips_and_refuses_other_granularities() {
    let s: Schedule = "slr:per=iteration".parse().unwrap();
    let text = s.to_string();
    assert!(text.ends_with(",per=iteration"), "{text}");
    assert_eq!(text.parse::<Schedule>().unwrap(), s);
    let plain: Schedule = "slr".parse().unwrap();
    assert!(!plain.to_string().contains("per="));
    assert_eq!("slr:per=epoch".parse::<Schedule>().unwrap(), plain);
    let e = "slr:per=week".parse::<Schedule>().unwrap_err().to_string();
    assert!(e.contains("per=iteration"), "{e}");
}

//! `Sgd` against `torch.optim.SGD` on a small fixed problem, step for step (reference
//! trajectories made by tests/fixtures/make_sgd_reference.py).

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use train::sgd::{Sgd, SgdConfig};

fn reference() -> std::collections::HashMap<String, Tensor> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sgd_reference.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn trajectory(name: &str, config: SgdConfig, cycle_momentum: bool) {
    let r = reference();
    let (x, y) = (&r["x"], &r["y"]);
    let w = Var::from_tensor(&r["w0"]).unwrap();
    let b = Var::from_tensor(&r["b0"]).unwrap();
    let mut sgd = Sgd::new(
        vec![("w".into(), w.clone()), ("b".into(), b.clone())],
        config,
    )
    .unwrap();
    let lrs = r["lr"].to_vec1::<f64>().unwrap();
    let moms = r["momentum"].to_vec1::<f64>().unwrap();
    for i in 0..lrs.len() {
        let pred = x
            .matmul(&w.as_tensor().t().unwrap())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        let loss = (pred - y).unwrap().sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        sgd.step(&grads, lrs[i], cycle_momentum.then_some(moms[i]))
            .unwrap();
        let want_w = r[&format!("{name}.w")].get(i).unwrap();
        let want_b = r[&format!("{name}.b")].get(i).unwrap();
        let dw = max_abs_diff(w.as_tensor(), &want_w);
        let db = max_abs_diff(b.as_tensor(), &want_b);
        assert!(
            dw < 1e-6 && db < 1e-6,
            "{name} step {i}: |dw| {dw:e}, |db| {db:e}"
        );
    }
}

#[test]
fn momentum_and_weight_decay_match_pytorch() {
    trajectory(
        "momentum",
        SgdConfig {
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: false,
        },
        true,
    );
}

#[test]
fn nesterov_matches_pytorch() {
    trajectory(
        "nesterov",
        SgdConfig {
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: true,
        },
        true,
    );
}

#[test]
fn plain_sgd_matches_pytorch() {
    trajectory(
        "plain",
        SgdConfig {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        },
        false,
    );
}

#[test]
fn parameters_without_gradient_are_untouched_and_state_round_trips() {
    let dev = Device::Cpu;
    let used = Var::from_tensor(&Tensor::ones(3, DType::F32, &dev).unwrap()).unwrap();
    let unused = Var::from_tensor(&Tensor::ones(2, DType::F32, &dev).unwrap()).unwrap();
    let mut sgd = Sgd::new(
        vec![("a".into(), used.clone()), ("n".into(), unused.clone())],
        SgdConfig::default(),
    )
    .unwrap();
    let loss = used.as_tensor().sum_all().unwrap();
    sgd.step(&loss.backward().unwrap(), 0.1, None).unwrap();
    assert_eq!(unused.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0, 1.0]);
    let state = sgd.state();
    assert_eq!(state.keys().collect::<Vec<_>>(), vec!["momentum_buffer.a"]);
    let mut other = Sgd::new(vec![("a".into(), used.clone())], SgdConfig::default()).unwrap();
    other.load_state(state).unwrap();
    let mut bad = std::collections::HashMap::new();
    bad.insert(
        "momentum_buffer.zz".to_string(),
        Tensor::ones(3, DType::F32, &dev).unwrap(),
    );
    assert!(
        other
            .load_state(bad)
            .unwrap_err()
            .to_string()
            .contains("unknown parameter 'zz'")
    );
}

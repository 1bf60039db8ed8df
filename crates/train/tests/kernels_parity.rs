//! Training with our CPU kernels follows training with candle's built-in ops: same seed, same
//! batches, the loss curves of the first 20 SGD steps agree within 1e-3, and so do the logits of
//! the trained models in evaluation mode (running statistics included).

use candle_core::{Device, ModuleT, Tensor};
use kernels::{Backend, with_backend};
use models::{Model, ModelConfig};
use train::sgd::{Sgd, SgdConfig};

const STEPS: usize = 20;
const BATCH: usize = 8;

/// Four fixed batches of synthetic 32x32 RGB images whose class shifts one channel's mean, so
/// the loss falls within a few steps.
fn batches() -> Vec<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let mut s = 12345u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    (0..4)
        .map(|b| {
            let labels: Vec<u32> = (0..BATCH as u32).map(|i| (i + b) % 10).collect();
            let mut x = Vec::with_capacity(BATCH * 3 * 32 * 32);
            for &l in &labels {
                for c in 0..3 {
                    let shift = if c == (l % 3) as usize {
                        l as f32 / 5.0
                    } else {
                        0.0
                    };
                    x.extend((0..32 * 32).map(|_| next() + shift));
                }
            }
            (
                Tensor::from_vec(x, (BATCH, 3, 32, 32), &dev).unwrap(),
                Tensor::from_vec(labels, BATCH, &dev).unwrap(),
            )
        })
        .collect()
}

fn train(backend: Backend, config: &ModelConfig) -> (Vec<f32>, Vec<f32>) {
    with_backend(backend, || {
        let model = Model::init(config, 7, &Device::Cpu).unwrap();
        let mut sgd = Sgd::new(model.trainable_vars(), SgdConfig::default()).unwrap();
        let data = batches();
        let mut losses = Vec::with_capacity(STEPS);
        for step in 0..STEPS {
            let (x, y) = &data[step % data.len()];
            let logits = model.forward_t(x, true).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
            losses.push(loss.to_scalar::<f32>().unwrap());
            sgd.step(&loss.backward().unwrap(), 0.05, None).unwrap();
        }
        let eval = model.forward_t(&data[0].0, false).unwrap();
        (
            losses,
            eval.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        )
    })
}

#[test]
fn loss_curves_of_our_kernels_and_candle_agree_for_20_steps() {
    // ResNet-8 keeps candle's slow built-in convolution backward to seconds in a debug build;
    // it has every layer kind of the deeper ResNets (stride-2 stages, option-A shortcuts).
    let config = ModelConfig::resnet(8, 10, 3).unwrap();
    let (loss_candle, eval_candle) = train(Backend::Candle, &config);
    let (loss_ours, eval_ours) = train(Backend::Ours, &config);
    assert!(
        loss_ours[STEPS - 1] < loss_ours[0] - 0.1,
        "the run must learn something for the comparison to mean anything: {loss_ours:?}"
    );
    let max = loss_candle
        .iter()
        .zip(&loss_ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("largest loss difference over {STEPS} steps: {max:e}");
    for (step, (a, b)) in loss_candle.iter().zip(&loss_ours).enumerate() {
        assert!(
            (a - b).abs() < 1e-3,
            "step {step}: candle {a}, ours {b}\ncandle {loss_candle:?}\nours   {loss_ours:?}"
        );
    }
    let worst = eval_candle
        .iter()
        .zip(&eval_ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-2, "eval logits differ by {worst}");
}

#[test]
fn our_kernels_are_deterministic_run_to_run() {
    let config = ModelConfig::resnet(8, 10, 3).unwrap();
    let a = train(Backend::Ours, &config);
    let b = train(Backend::Ours, &config);
    assert_eq!(a, b);
}

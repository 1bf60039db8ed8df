//! Training and inference throughput (images/s) of CIFAR ResNet-20 and ResNet-56 at batch 64
//! and 256 on the CPU: `cargo bench -p train --bench throughput`.
//!
//! A training step is what the loop does per batch: forward in training mode, cross-entropy,
//! backward, and the SGD update. Prints a table and, last, one JSON line a script can read.
//! Set `PRUNEBENCH_BENCH_ITERS` to change the timed iterations (default 3, after 1 warm-up), and
//! `PRUNEBENCH_KERNELS=candle|ours` to choose the conv/BatchNorm implementation (default ours;
//! `cargo xtask bench` compares both and PyTorch in one run).

use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor};
use models::{Model, ModelConfig};
use train::sgd::{Sgd, SgdConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the first statement of main: no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        kernels::configure_process()
    };
    // A mistyped PRUNEBENCH_KERNELS or PRUNEBENCH_ISA would otherwise measure the default
    // silently, as the binaries refuse it.
    kernels::check_env()?;
    // `cargo bench` passes `--bench`; a filter argument selects models by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let iters: usize = std::env::var("PRUNEBENCH_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let device = Device::Cpu;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "CPU, {threads} threads, {iters} timed iterations after 1 warm-up, kernels: {}",
        kernels::backend()
    );
    println!(
        "{:<10} {:>6} {:>14} {:>14}",
        "model", "batch", "train img/s", "infer img/s"
    );
    let mut rows = Vec::new();
    for arch in ["resnet20", "resnet56"] {
        if !filter.is_empty() && !filter.iter().any(|f| arch.contains(f.as_str())) {
            continue;
        }
        let config = ModelConfig::from_name(arch, 10, 3)?;
        for batch in [64usize, 256] {
            let model = Model::init(&config, 1, &device)?;
            let mut sgd = Sgd::new(model.trainable_vars(), SgdConfig::default())?;
            let x = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), &device)?;
            let y = Tensor::from_vec(
                (0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(),
                batch,
                &device,
            )?;
            let train_step = |sgd: &mut Sgd| -> Result<(), Box<dyn std::error::Error>> {
                let logits = model.forward_t(&x, true)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                sgd.step(&loss.backward()?, 0.01, None)?;
                Ok(())
            };
            let infer = || -> Result<(), Box<dyn std::error::Error>> {
                model
                    .forward_t(&x, false)?
                    .to_dtype(DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()?;
                Ok(())
            };
            train_step(&mut sgd)?;
            let t = Instant::now();
            for _ in 0..iters {
                train_step(&mut sgd)?;
            }
            let train_ips = (iters * batch) as f64 / t.elapsed().as_secs_f64();
            infer()?;
            let t = Instant::now();
            for _ in 0..iters {
                infer()?;
            }
            let infer_ips = (iters * batch) as f64 / t.elapsed().as_secs_f64();
            println!("{arch:<10} {batch:>6} {train_ips:>14.1} {infer_ips:>14.1}");
            rows.push(format!(
                "{{\"model\":\"{arch}\",\"batch\":{batch},\"train_images_per_sec\":{train_ips:.2},\"inference_images_per_sec\":{infer_ips:.2}}}"
            ));
        }
    }
    println!("[{}]", rows.join(","));
    Ok(())
}

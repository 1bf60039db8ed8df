//! Times our conv and BatchNorm ops against candle's on the layer shapes of CIFAR ResNet-56 at
//! batch 64: `cargo run --release -p kernels --example conv_shapes`. Prints ms per call and
//! GFLOP/s, to see which part of a training step dominates.

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};
use kernels::{BatchNormConfig, batch_norm_train, conv2d};

fn time(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let t = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3 / iters as f64)
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let batch = 64;
    let iters = 5;
    println!("batch {batch}; ms per call (GFLOP/s)");
    println!(
        "{:<28} {:>16} {:>16} {:>16} {:>16}",
        "shape", "fwd ours", "fwd candle", "bwd ours", "bwd candle"
    );
    for (cin, cout, hw, stride) in [
        (16, 16, 32, 1),
        (16, 32, 32, 2),
        (32, 32, 16, 1),
        (32, 64, 16, 2),
        (64, 64, 8, 1),
    ] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (batch, cin, hw, hw), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, cin, 3, 3), &dev)?)?;
        let ho = hw / stride;
        let flops = 2.0 * (batch * cout * ho * ho * cin * 9) as f64;
        let r = Tensor::randn(0f32, 1.0, (batch, cout, ho, ho), &dev)?;
        let f_ours = time(iters, || {
            conv2d(x.as_tensor(), w.as_tensor(), stride, 1).map(|_| ())
        })?;
        let f_candle = time(iters, || {
            x.as_tensor()
                .conv2d(w.as_tensor(), 1, stride, 1, 1)
                .map(|_| ())
        })?;
        let y_ours = conv2d(x.as_tensor(), w.as_tensor(), stride, 1)?;
        let y_candle = x.as_tensor().conv2d(w.as_tensor(), 1, stride, 1, 1)?;
        let b_ours = time(iters, || (&y_ours * &r)?.sum_all()?.backward().map(|_| ()))?;
        let b_candle = time(iters, || {
            (&y_candle * &r)?.sum_all()?.backward().map(|_| ())
        })?;
        let g = |ms: f64, k: f64| format!("{ms:7.2} ({:5.1})", k * flops / ms / 1e6);
        println!(
            "{:<28} {:>16} {:>16} {:>16} {:>16}",
            format!("{cin}->{cout} {hw}x{hw} s{stride}"),
            g(f_ours, 1.0),
            g(f_candle, 1.0),
            g(b_ours, 2.0),
            g(b_candle, 2.0)
        );
    }
    for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (batch, c, hw, hw), &dev)?)?;
        let gamma = Var::ones(c, DType::F32, &dev)?;
        let beta = Var::zeros(c, DType::F32, &dev)?;
        let (m, v) = (
            Var::zeros(c, DType::F32, &dev)?,
            Var::ones(c, DType::F32, &dev)?,
        );
        let cfg = BatchNormConfig {
            relu: true,
            ..Default::default()
        };
        let fwd = time(iters, || {
            batch_norm_train(
                x.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                &m,
                &v,
                cfg,
            )
            .map(|_| ())
        })?;
        let y = batch_norm_train(
            x.as_tensor(),
            gamma.as_tensor(),
            beta.as_tensor(),
            &m,
            &v,
            cfg,
        )?;
        let r = Tensor::randn(0f32, 1.0, (batch, c, hw, hw), &dev)?;
        let bwd = time(iters, || (&y * &r)?.sum_all()?.backward().map(|_| ()))?;
        let yv = Var::from_tensor(&y.detach())?;
        let b_loss = time(iters, || {
            (yv.as_tensor() * &r)?.sum_all()?.backward().map(|_| ())
        })?;
        let bwd = bwd - b_loss;
        println!("bn+relu {c}x{hw}x{hw}: fwd {fwd:.2} ms, bwd {bwd:.2} ms");
    }
    Ok(())
}

//! Builds ResNet-56 for CIFAR-10, runs one forward pass on a random batch and prints the logits'
//! shape with the parameter and FLOPs counts.
//!
//! `cargo run -p models --example resnet56`

use candle_core::{Device, ModuleT, Tensor};
use models::{Model, ModelConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ModelConfig::from_name("resnet56", 10, 3)?;
    println!(
        "{}: {} parameters, {} multiply-adds per 32x32 image",
        config.name(),
        config.params(),
        config.flops()
    );
    let device = Device::Cpu;
    let model = Model::init(&config, 0, &device)?;
    let batch = Tensor::randn(0f32, 1.0, (8, 3, 32, 32), &device)?;
    let start = std::time::Instant::now();
    let logits = model.forward_t(&batch, false)?;
    println!(
        "logits {:?} in {:.2} s (evaluation mode)",
        logits.dims(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

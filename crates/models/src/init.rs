//! Seeded weight initialisation with the reference code's distributions.
//!
//! candle's CPU random generator cannot be seeded, so the values come from our own generator:
//! the same distributions as PyTorch, not the same numbers.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::layout::{Layer, TensorRole};

/// xoshiro256++ seeded through SplitMix64: small, fast and reproducible across platforms.
#[derive(Clone, Debug)]
pub(crate) struct Rng([u64; 4]);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        let mut s = splitmix::SplitMix64::new(seed);
        Self([s.next_u64(), s.next_u64(), s.next_u64(), s.next_u64()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal by Box-Muller (one value per call; simplicity over speed).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1]: ln stays finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Which reference `_initialize_weights` a family follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    ResNet,
    Vgg,
    DenseNet,
}

/// Fresh tensors for every name of the config's `state_dict`, drawn from `seed`:
/// - convs: normal(0, sqrt(2 / (k * k * out_channels))) (all three reference codes);
/// - BatchNorm: weight 1 and bias 0, except VGG's BatchNorm2d weight 0.5 (its BatchNorm1d is not
///   matched by the reference's `isinstance(m, nn.BatchNorm2d)` and keeps PyTorch's 1);
///   running mean 0, running variance 1;
/// - linear: VGG normal(0, 0.01) with bias 0; ResNet and DenseNet keep PyTorch's default,
///   uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
pub fn init_tensors(
    config: &ModelConfig,
    seed: u64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let family = match config {
        ModelConfig::ResNet(_) => Family::ResNet,
        ModelConfig::Vgg(_) => Family::Vgg,
        ModelConfig::DenseNet(_) => Family::DenseNet,
    };
    let mut rng = Rng::new(seed);
    let mut out = HashMap::new();
    for layer in config.layers() {
        let spatial_bn = matches!(layer, Layer::BatchNorm { spatial: true, .. });
        for spec in layer.tensors() {
            let numel: usize = spec.shape.iter().product();
            let values: Vec<f32> = match spec.role {
                TensorRole::ConvWeight => {
                    let fan_out = spec.shape[0] * spec.shape[2] * spec.shape[3];
                    let std = (2.0 / fan_out as f64).sqrt();
                    (0..numel).map(|_| (rng.normal() * std) as f32).collect()
                }
                TensorRole::BnWeight => {
                    let w = if family == Family::Vgg && spatial_bn {
                        0.5
                    } else {
                        1.0
                    };
                    vec![w; numel]
                }
                TensorRole::BnBias | TensorRole::RunningMean => vec![0.0; numel],
                TensorRole::RunningVar => vec![1.0; numel],
                TensorRole::LinearWeight | TensorRole::LinearBias => {
                    if family == Family::Vgg {
                        if spec.role == TensorRole::LinearWeight {
                            (0..numel).map(|_| (rng.normal() * 0.01) as f32).collect()
                        } else {
                            vec![0.0; numel]
                        }
                    } else {
                        // PyTorch's nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) on
                        // the weight reduces to this bound, and the bias uses the same one.
                        let fan_in = match &layer {
                            Layer::Linear { in_features, .. } => *in_features,
                            _ => 1,
                        };
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        (0..numel)
                            .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                            .collect()
                    }
                }
            };
            let t = Tensor::from_vec(values, spec.shape.as_slice(), device)?;
            out.insert(spec.name, t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut rng = Rng::new(7);
        let xs: Vec<f64> = (0..200_000).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }

    #[test]
    fn init_is_deterministic_and_has_reference_scales() {
        let config = ModelConfig::vgg16(10, 3).unwrap();
        let a = init_tensors(&config, 1, &Device::Cpu).unwrap();
        let b = init_tensors(&config, 1, &Device::Cpu).unwrap();
        let c = init_tensors(&config, 2, &Device::Cpu).unwrap();
        let w = |m: &HashMap<String, Tensor>, n: &str| {
            m[n].flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(w(&a, "feature.0.weight"), w(&b, "feature.0.weight"));
        assert_ne!(w(&a, "feature.0.weight"), w(&c, "feature.0.weight"));
        assert!(w(&a, "feature.1.weight").iter().all(|&x| x == 0.5));
        assert!(w(&a, "classifier.1.weight").iter().all(|&x| x == 1.0));
        // feature.40 is the last conv: 512 -> 512, std sqrt(2 / (9 * 512)).
        let v = w(&a, "feature.40.weight");
        let std = (v.iter().map(|x| (x * x) as f64).sum::<f64>() / v.len() as f64).sqrt();
        assert!(
            (std / (2.0f64 / 4608.0).sqrt() - 1.0).abs() < 0.01,
            "std {std}"
        );
    }
}

//! SGD with momentum, Nesterov and weight decay, with `torch.optim.SGD`'s exact update.
//!
//! For each parameter `p` with gradient `g` (PyTorch, `dampening = 0`):
//!
//! ```text
//! g   = g + weight_decay * p
//! buf = g                          on the first step
//! buf = momentum * buf + g         after it
//! g   = g + momentum * buf         with Nesterov, else g = buf
//! p   = p - lr * g
//! ```
//!
//! Weight decay applies to every parameter it is given (PyTorch's default, BatchNorm included),
//! so give it only trainable ones: candle keeps BatchNorm running statistics among the variables
//! (see `models::Model::trainable_vars`).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// SGD's hyper-parameters other than the learning rate, which the schedule sets every step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Momentum (0.9 in the paper's code); a schedule that cycles it (CLR) overrides it per step.
    pub momentum: f64,
    /// L2 weight decay added to the gradient (1e-4 in the paper).
    pub weight_decay: f64,
    /// Nesterov momentum (the paper's Table 6 says so; its code does not use it).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    /// The official code's: momentum 0.9, weight decay 1e-4, no Nesterov.
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: false,
        }
    }
}

impl SgdConfig {
    /// Refuses a momentum or weight decay that is negative or not finite.
    pub fn check(&self) -> Result<()> {
        for (what, v) in [
            ("momentum", self.momentum),
            ("weight decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Config(format!(
                    "SGD {what} must be finite and >= 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// The optimizer: named parameters and one momentum buffer each, created on the first step.
#[derive(Debug)]
pub struct Sgd {
    params: Vec<(String, Var)>,
    config: SgdConfig,
    buffers: HashMap<String, Tensor>,
}

/// The prefix of momentum buffers in [`Sgd::state`], after PyTorch's `momentum_buffer`.
const BUFFER: &str = "momentum_buffer.";

impl Sgd {
    /// An optimizer over named parameters (names key the saved state).
    pub fn new(params: Vec<(String, Var)>, config: SgdConfig) -> Result<Self> {
        config.check()?;
        Ok(Self {
            params,
            config,
            buffers: HashMap::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> SgdConfig {
        self.config
    }

    /// One step with learning rate `lr` and momentum `momentum` (the config's when `None`).
    /// Parameters without a gradient in `grads` are left alone, as PyTorch does.
    pub fn step(&mut self, grads: &GradStore, lr: f64, momentum: Option<f64>) -> Result<()> {
        let momentum = momentum.unwrap_or(self.config.momentum);
        let wd = self.config.weight_decay;
        for (name, var) in &self.params {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Detached: gradients carry the autograd graph of the step, and a momentum buffer
            // holding it would keep every step's activations alive.
            let grad = &grad.detach();
            let p = &var.as_tensor().detach();
            let mut g = if wd != 0.0 {
                (grad + p.affine(wd, 0.0)?)?
            } else {
                grad.clone()
            };
            if momentum != 0.0 {
                let buf = match self.buffers.get(name) {
                    Some(b) => (b.affine(momentum, 0.0)? + &g)?,
                    None => g.copy()?,
                };
                g = if self.config.nesterov {
                    (&g + buf.affine(momentum, 0.0)?)?
                } else {
                    buf.clone()
                };
                self.buffers.insert(name.clone(), buf);
            }
            var.set(&(p - g.affine(lr, 0.0)?)?)?;
        }
        Ok(())
    }

    /// The momentum buffers by `momentum_buffer.<parameter name>`, for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.buffers
            .iter()
            .map(|(n, t)| (format!("{BUFFER}{n}"), t.clone()))
            .collect()
    }

    /// Restores the buffers saved by [`Sgd::state`]; every one must name a parameter and have its
    /// shape.
    pub fn load_state(&mut self, state: HashMap<String, Tensor>) -> Result<()> {
        let mut buffers = HashMap::new();
        for (key, t) in state {
            let name = key.strip_prefix(BUFFER).ok_or_else(|| {
                Error::Config(format!("optimizer state has an unexpected tensor '{key}'"))
            })?;
            let (_, var) = self.params.iter().find(|(n, _)| n == name).ok_or_else(|| {
                Error::Config(format!("optimizer state for unknown parameter '{name}'"))
            })?;
            if t.dims() != var.dims() {
                return Err(Error::Config(format!(
                    "optimizer state for '{name}' has shape {:?}, the parameter {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            buffers.insert(
                name.to_string(),
                t.to_device(var.device())?.to_dtype(var.dtype())?,
            );
        }
        self.buffers = buffers;
        Ok(())
    }
}

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::{Error, Preset, check_rate, check_warmup};

/// How a 1-cycle phase moves between its two rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    /// `b + (a - b)(1 + cos(pi p)) / 2`: PyTorch's default and the paper's CLR.
    #[default]
    Cos,
    /// `a + (b - a) p`: Smith & Topin's original 1-cycle.
    Linear,
}

impl Anneal {
    /// The value a fraction `p` in [0, 1] of the way from `a` to `b`.
    pub fn apply(self, a: f64, b: f64, p: f64) -> f64 {
        match self {
            // PyTorch's order of operations, so the rates agree bit for bit.
            Anneal::Cos => b + (a - b) / 2.0 * ((PI * p).cos() + 1.0),
            Anneal::Linear => a + (b - a) * p,
        }
    }

    /// The name in the text form (`cos`, `linear`).
    pub fn name(self) -> &'static str {
        match self {
            Anneal::Cos => "cos",
            Anneal::Linear => "linear",
        }
    }
}

/// The momentum a 1-cycle moves opposite to the rate: `max` at the ends, `base` at the peak rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MomentumCycle {
    /// Momentum at the peak learning rate (PyTorch's `base_momentum`, 0.85).
    pub base: f64,
    /// Momentum at the start and the end (PyTorch's `max_momentum`, 0.95).
    pub max: f64,
}

impl Default for MomentumCycle {
    fn default() -> Self {
        Self {
            base: 0.85,
            max: 0.95,
        }
    }
}

/// The 1-cycle schedule as PyTorch's `OneCycleLR` (two phases), stepped every iteration.
///
/// With `S` total iterations and `u = warmup * S - 1`: for `i <= u` the rate is
/// `anneal(lr_init, lr_max, i / u)`, after it `anneal(lr_max, lr_min, (i - u) / (S - 1 - u))`.
/// The momentum, where cycled, goes `max -> base` and back over the same two phases.
///
/// The paper's CLR ([`OneCycle::clr`]) is `OneCycleLR(max_lr=0.1, div_factor=100,
/// final_div_factor=100, pct_start=0.1)`: 0.001 -> 0.1 -> 1e-5.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    /// The starting rate (PyTorch: `max_lr / div_factor`).
    pub lr_init: f64,
    /// The peak rate, reached at the end of the warm-up.
    pub lr_max: f64,
    /// The final rate (PyTorch: `lr_init / final_div_factor`).
    pub lr_min: f64,
    /// Fraction of the iterations spent rising, in [0, 1) (PyTorch: `pct_start`).
    pub warmup: f64,
    /// The shape of both phases.
    pub anneal: Anneal,
    /// The momentum cycle, or `None` to leave momentum to the optimizer.
    pub momentum: Option<MomentumCycle>,
}

impl OneCycle {
    /// The paper's CLR for an original training preset (warm-up 10%, cosine, momentum cycled as
    /// PyTorch's default).
    pub fn clr(preset: Preset) -> Self {
        let (lr_init, lr_max, lr_min) = preset.clr_rates();
        Self {
            lr_init,
            lr_max,
            lr_min,
            warmup: 0.1,
            anneal: Anneal::Cos,
            momentum: Some(MomentumCycle::default()),
        }
    }

    /// PyTorch's `OneCycleLR` defaults for a peak rate: `div_factor = 25`,
    /// `final_div_factor = 1e4`, `pct_start = 0.3`, cosine, momentum 0.95 -> 0.85 -> 0.95.
    pub fn pytorch(lr_max: f64) -> Self {
        let lr_init = lr_max / 25.0;
        Self {
            lr_init,
            lr_max,
            lr_min: lr_init / 1e4,
            warmup: 0.3,
            anneal: Anneal::Cos,
            momentum: Some(MomentumCycle::default()),
        }
    }

    pub(crate) fn validate(&self, kind: &str) -> Result<(), Error> {
        check_rate(&format!("{kind} lr_init"), self.lr_init)?;
        check_rate(&format!("{kind} lr_max"), self.lr_max)?;
        check_rate(&format!("{kind} lr_min"), self.lr_min)?;
        check_warmup(&format!("{kind} warmup"), self.warmup)?;
        if self.lr_max <= 0.0 {
            return Err(Error::OutOfRange {
                what: format!("{kind} lr_max"),
                allowed: "above zero",
                value: self.lr_max,
            });
        }
        for (name, v) in [("lr_init", self.lr_init), ("lr_min", self.lr_min)] {
            if v > self.lr_max {
                return Err(Error::Inconsistent(format!(
                    "{kind}: {name} {v} is above lr_max {}",
                    self.lr_max
                )));
            }
        }
        if let Some(m) = self.momentum {
            for (name, v) in [("base momentum", m.base), ("max momentum", m.max)] {
                if !(0.0..1.0).contains(&v) {
                    return Err(Error::OutOfRange {
                        what: format!("{kind} {name}"),
                        allowed: "in [0, 1)",
                        value: v,
                    });
                }
            }
        }
        Ok(())
    }

    /// `(phase, fraction)`: phase 0 rises, phase 1 falls; `step` is an iteration position.
    fn phase(&self, step: f64, total_steps: u64) -> (usize, f64) {
        let s = total_steps as f64;
        let u = self.warmup * s - 1.0;
        if step <= u {
            // `u` is 0 when the warm-up is exactly one iteration: PyTorch divides 0 by 0
            // there; that single iteration is at the peak.
            let p = if u > 0.0 { step / u } else { 1.0 };
            (0, p)
        } else {
            // S - 1 - u = S (1 - warmup) > 0, since warmup < 1.
            (1, (step - u) / (s - 1.0 - u))
        }
    }

    pub(crate) fn lr(&self, step: f64, total_steps: u64) -> f64 {
        match self.phase(step, total_steps) {
            (0, p) => self.anneal.apply(self.lr_init, self.lr_max, p),
            (_, p) => self.anneal.apply(self.lr_max, self.lr_min, p),
        }
    }

    pub(crate) fn momentum(&self, step: f64, total_steps: u64) -> Option<f64> {
        let m = self.momentum?;
        Some(match self.phase(step, total_steps) {
            (0, p) => self.anneal.apply(m.max, m.base, p),
            (_, p) => self.anneal.apply(m.base, m.max, p),
        })
    }
}

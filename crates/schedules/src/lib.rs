//! Learning-rate schedules for training and retraining pruned networks, exactly as *Network
//! Pruning that Matters: A Case Study on Retraining Variants* (Le & Hua, ICLR 2021) defines them
//! and as its official code runs them.
//!
//! A [`Schedule`] says what to do (it is budget-free, serializes to JSON and parses from a short
//! text form); [`Schedule::build`] validates it against a [`Budget`] (epochs and iterations per
//! epoch) and gives an [`LrSchedule`], a pure function from iteration to learning rate.
//!
//! With `E` retraining epochs, `T` original epochs, `k` the whole epoch and `i` the iteration
//! (`S = E * steps_per_epoch` in all):
//!
//! | kind | granularity | rate |
//! |---|---|---|
//! | `step` | epoch | `lr_j` for the last piece `j` with `epoch_j <= k` (original training) |
//! | `ft` | epoch | constant: the last rate of the original schedule (0.001 on CIFAR) |
//! | `lrw` | epoch | `lr_orig(T - E + k)`: the last `E` epochs of the original replayed |
//! | `slr` | epoch | cosine warm-up `lo + (hi - lo)(1 - cos(pi k / W)) / 2` for `k < W = floor(w E)`; then `hi`, times `factor` at each epoch `W + floor(d (1 - w) E)`, `d` in {0.5, 0.75} |
//! | `clr` | iteration | PyTorch's `OneCycleLR`: `u = w S - 1`; `cos_anneal(init, max, i / u)` for `i <= u`, then `cos_anneal(max, min, (i - u) / (S - 1 - u))` |
//! | `onecycle` | iteration | the same function with PyTorch's defaults (`init = max / 25`, `min = init / 1e4`, `w = 0.3`) |
//! | `cosine` | iteration | `min + (max - min)(1 + cos(pi i / S)) / 2` |
//!
//! where `cos_anneal(a, b, p) = b + (a - b)(1 + cos(pi p)) / 2`. CLR and 1-cycle also cycle the
//! momentum the other way (0.95 -> 0.85 -> 0.95), which [`LrSchedule::momentum`] reports.
//!
//! ```
//! use schedules::{Budget, Schedule};
//!
//! // The paper's Figure 1: retraining for 72 epochs on CIFAR.
//! let budget = Budget::new(72, 1).unwrap();
//! let lrw = "lrw".parse::<Schedule>().unwrap().build(budget).unwrap();
//! assert_eq!(lrw.lr_at_epoch(31.0), 0.01);
//! assert_eq!(lrw.lr_at_epoch(32.0), 0.001);
//!
//! let clr = "clr:max=0.1,min=1e-5,warmup=0.1".parse::<Schedule>().unwrap();
//! let clr = clr.build(Budget::new(40, 704).unwrap()).unwrap();
//! assert!((clr.lr(0) - 0.001).abs() < 1e-15);
//! assert_eq!(clr.total_steps(), 28_160);
//! ```

mod error;
mod one_cycle;
mod parse;
#[cfg(feature = "plot")]
pub mod plot;
mod step;

use serde::{Deserialize, Serialize};

pub use error::Error;
pub use one_cycle::{Anneal, MomentumCycle, OneCycle};
pub use parse::split_list;
pub use step::{Preset, StepRate, StepSchedule};

/// A learning-rate schedule, independent of the training budget.
///
/// Serializes to JSON with a `kind` tag (`{"kind":"ft","lr":0.001}`), and parses from the short
/// text form a user types (see [`std::str::FromStr`]): `ft`, `lrw`, `slr`, `clr`,
/// `clr:max=0.1,min=1e-5,warmup=0.1`, `step:0.1@0,0.01@80,0.001@120`, `onecycle:max=0.4`,
/// `cosine:max=0.1,min=0`. [`std::fmt::Display`] writes the canonical text form, which parses
/// back to an equal schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// A piecewise-constant schedule over epochs: the original training.
    Step {
        /// The pieces.
        pieces: StepSchedule,
    },
    /// Fine-tuning: a constant rate, the last one of the original training.
    Ft {
        /// The constant rate.
        lr: f64,
    },
    /// Learning-rate rewinding (Renda et al. 2020): the last `E` epochs of the original schedule.
    Lrw {
        /// The original training schedule.
        original: StepSchedule,
        /// How many epochs the original training ran (`T`).
        original_epochs: u32,
    },
    /// Scaled learning-rate restarting: a cosine warm-up, then the original's step shape scaled
    /// to the budget.
    Slr(Slr),
    /// Cyclic learning-rate restarting: the 1-cycle schedule with the paper's rates.
    Clr(OneCycle),
    /// The 1-cycle schedule with PyTorch's `OneCycleLR` defaults.
    OneCycle(OneCycle),
    /// Plain cosine annealing from `lr_max` to `lr_min` over the budget, per iteration.
    Cosine(Cosine),
}

/// Scaled learning-rate restarting (SLR), per epoch.
///
/// Over the first `W = floor(warmup * E)` epochs the rate rises from `lr_min` to `lr_max` along a
/// cosine, `lr(k) = lr_min + (lr_max - lr_min)(1 - cos(pi k / W)) / 2`; from epoch `W` it is
/// `lr_max`, multiplied by `factor` at each epoch `W + floor(d * (1 - warmup) * E)` for `d` in
/// `drops` (the reference code's `int(0.5 * 0.9 * epochs)` and `int(0.75 * 0.9 * epochs)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slr {
    /// The rate the warm-up starts from: the original's smallest (0.001 on CIFAR).
    pub lr_min: f64,
    /// The rate the warm-up reaches: the original's largest (0.1 on CIFAR).
    pub lr_max: f64,
    /// Fraction of the budget spent warming up, in [0, 1): 0.1 in the paper.
    pub warmup: f64,
    /// Where the rate drops, as fractions in (0, 1) of the epochs after warm-up: 0.5 and 0.75.
    pub drops: Vec<f64>,
    /// What each drop multiplies the rate by, in (0, 1]: 0.1.
    pub factor: f64,
    /// Step the warm-up and the drops per iteration, at exact fractions of the budget
    /// (`warmup * E` epochs of cosine, drops at `warmup * E + d * (1 - warmup) * E`), instead of
    /// the reference code's whole epochs. For budgets of a few epochs, where the per-epoch rule
    /// collapses: below 10 epochs its warm-up is empty, and at 1 epoch both drops fall on epoch
    /// 0, leaving FT's constant rate. Off in the paper (and by default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_iteration: bool,
}

impl Slr {
    /// The paper's SLR for an original training preset.
    pub fn preset(preset: Preset) -> Self {
        let original = preset.original();
        Self {
            lr_min: original.min_lr(),
            lr_max: original.max_lr(),
            warmup: 0.1,
            drops: vec![0.5, 0.75],
            factor: 0.1,
            per_iteration: false,
        }
    }

    /// The rate at the fractional epoch `t` of an `epochs` budget, per iteration (see
    /// [`Slr::per_iteration`]).
    fn lr_continuous(&self, t: f64, epochs: u32) -> f64 {
        let e = f64::from(epochs);
        let warmup = self.warmup * e;
        if t < warmup {
            let p = t / warmup;
            return self.lr_min
                + (self.lr_max - self.lr_min) * (1.0 - (std::f64::consts::PI * p).cos()) / 2.0;
        }
        let mut lr = self.lr_max;
        for &d in &self.drops {
            if t >= warmup + d * (1.0 - self.warmup) * e {
                lr *= self.factor;
            }
        }
        lr
    }

    fn validate(&self) -> Result<(), Error> {
        check_rate("slr lr_min", self.lr_min)?;
        check_rate("slr lr_max", self.lr_max)?;
        check_positive("slr lr_max", self.lr_max)?;
        check_warmup("slr warmup", self.warmup)?;
        if self.lr_min > self.lr_max {
            return Err(Error::Inconsistent(format!(
                "slr: lr_min {} is above lr_max {}",
                self.lr_min, self.lr_max
            )));
        }
        if !(self.factor > 0.0 && self.factor <= 1.0) {
            return Err(Error::OutOfRange {
                what: "slr factor".into(),
                allowed: "in (0, 1]",
                value: self.factor,
            });
        }
        for &d in &self.drops {
            if !(d > 0.0 && d < 1.0) {
                return Err(Error::OutOfRange {
                    what: "slr drop".into(),
                    allowed: "a fraction in (0, 1)",
                    value: d,
                });
            }
        }
        if self.drops.windows(2).any(|w| w[1] <= w[0]) {
            return Err(Error::Inconsistent(
                "slr: drop fractions must increase".into(),
            ));
        }
        Ok(())
    }

    fn lr(&self, epoch: u32, epochs: u32) -> f64 {
        let e = f64::from(epochs);
        let warmup_epochs = floor_u32(self.warmup * e);
        if epoch < warmup_epochs {
            let p = f64::from(epoch) / f64::from(warmup_epochs);
            return self.lr_min
                + (self.lr_max - self.lr_min) * (1.0 - (std::f64::consts::PI * p).cos()) / 2.0;
        }
        let after = 1.0 - self.warmup;
        let mut lr = self.lr_max;
        for &d in &self.drops {
            // Same order of operations as the reference code's `int(0.5 * 0.9 * epochs)`.
            if epoch >= warmup_epochs + floor_u32(d * after * e) {
                lr *= self.factor;
            }
        }
        lr
    }
}

/// Plain cosine annealing over the whole budget (PyTorch's `CosineAnnealingLR` with
/// `T_max = S`), per iteration: `lr(i) = lr_min + (lr_max - lr_min)(1 + cos(pi i / S)) / 2`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cosine {
    /// The starting rate.
    pub lr_max: f64,
    /// The rate the curve tends to at the end of the budget.
    pub lr_min: f64,
}

impl Cosine {
    fn validate(&self) -> Result<(), Error> {
        check_rate("cosine lr_max", self.lr_max)?;
        check_positive("cosine lr_max", self.lr_max)?;
        check_rate("cosine lr_min", self.lr_min)?;
        if self.lr_min > self.lr_max {
            return Err(Error::Inconsistent(format!(
                "cosine: lr_min {} is above lr_max {}",
                self.lr_min, self.lr_max
            )));
        }
        Ok(())
    }
}

/// The most iterations a [`Budget`] may hold: 10^8, a thousand times the paper's longest run
/// (ImageNet, 90 epochs of 5,005 iterations, is 450,450). Anything that lists every iteration
/// (the `schedule` table, [`LrSchedule::points`]) stays bounded.
pub const MAX_TOTAL_STEPS: u64 = 100_000_000;

/// How long a schedule runs: whole epochs of `steps_per_epoch` iterations each.
///
/// Deserializing one validates it as [`Budget::new`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BudgetRepr", into = "BudgetRepr")]
pub struct Budget {
    epochs: u32,
    steps_per_epoch: u32,
}

#[derive(Serialize, Deserialize)]
struct BudgetRepr {
    epochs: u32,
    steps_per_epoch: u32,
}

impl TryFrom<BudgetRepr> for Budget {
    type Error = Error;
    fn try_from(r: BudgetRepr) -> Result<Self, Error> {
        Budget::new(r.epochs, r.steps_per_epoch)
    }
}

impl From<Budget> for BudgetRepr {
    fn from(b: Budget) -> Self {
        BudgetRepr {
            epochs: b.epochs,
            steps_per_epoch: b.steps_per_epoch,
        }
    }
}

impl Budget {
    /// A budget; both numbers must be at least 1, and their product at most
    /// [`MAX_TOTAL_STEPS`].
    pub fn new(epochs: u32, steps_per_epoch: u32) -> Result<Self, Error> {
        if epochs == 0 {
            return Err(Error::ZeroEpochs);
        }
        if steps_per_epoch == 0 {
            return Err(Error::ZeroStepsPerEpoch);
        }
        // u32 * u32 cannot overflow u64.
        let total = u64::from(epochs) * u64::from(steps_per_epoch);
        if total > MAX_TOTAL_STEPS {
            return Err(Error::TooManySteps {
                epochs,
                steps_per_epoch,
                total,
            });
        }
        Ok(Self {
            epochs,
            steps_per_epoch,
        })
    }

    /// Number of epochs.
    pub fn epochs(self) -> u32 {
        self.epochs
    }

    /// Iterations per epoch.
    pub fn steps_per_epoch(self) -> u32 {
        self.steps_per_epoch
    }

    /// Total iterations, `epochs * steps_per_epoch`.
    pub fn total_steps(self) -> u64 {
        u64::from(self.epochs) * u64::from(self.steps_per_epoch)
    }
}

impl Schedule {
    /// The paper's fine-tuning (FT) for an original training preset: its last rate, constant.
    pub fn ft(preset: Preset) -> Self {
        Schedule::Ft {
            lr: preset.original().last_lr(),
        }
    }

    /// The paper's learning-rate rewinding (LRW) for an original training preset.
    pub fn lrw(preset: Preset) -> Self {
        Schedule::Lrw {
            original: preset.original(),
            original_epochs: preset.original_epochs(),
        }
    }

    /// The paper's scaled learning-rate restarting (SLR) for an original training preset.
    pub fn slr(preset: Preset) -> Self {
        Schedule::Slr(Slr::preset(preset))
    }

    /// The paper's cyclic learning-rate restarting (CLR) for an original training preset.
    pub fn clr(preset: Preset) -> Self {
        Schedule::Clr(OneCycle::clr(preset))
    }

    /// The original training schedule of a preset.
    pub fn original(preset: Preset) -> Self {
        Schedule::Step {
            pieces: preset.original(),
        }
    }

    /// The kind's name in the text form: `step`, `ft`, `lrw`, `slr`, `clr`, `onecycle`, `cosine`.
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::Step { .. } => "step",
            Schedule::Ft { .. } => "ft",
            Schedule::Lrw { .. } => "lrw",
            Schedule::Slr(_) => "slr",
            Schedule::Clr(_) => "clr",
            Schedule::OneCycle(_) => "onecycle",
            Schedule::Cosine(_) => "cosine",
        }
    }

    /// Whether the rate changes every iteration (`true`) or only at epoch boundaries.
    pub fn per_iteration(&self) -> bool {
        matches!(
            self,
            Schedule::Clr(_) | Schedule::OneCycle(_) | Schedule::Cosine(_)
        )
    }

    /// Checks every parameter: rates finite and non-negative with a positive peak, warm-up
    /// fractions in [0, 1), step epochs increasing from 0.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Schedule::Step { pieces } => pieces.validate(),
            Schedule::Ft { lr } => {
                check_rate("ft lr", *lr)?;
                check_positive("ft lr", *lr)
            }
            Schedule::Lrw {
                original,
                original_epochs,
            } => {
                original.validate()?;
                if *original_epochs == 0 {
                    return Err(Error::Inconsistent(
                        "lrw: the original training must have at least 1 epoch".into(),
                    ));
                }
                Ok(())
            }
            Schedule::Slr(s) => s.validate(),
            Schedule::Clr(c) | Schedule::OneCycle(c) => c.validate(self.kind()),
            Schedule::Cosine(c) => c.validate(),
        }
    }

    /// Validates the schedule against a budget and returns its evaluator.
    ///
    /// Fails where the parameters are invalid (see [`Schedule::validate`]) or where the budget
    /// does not fit the schedule: LRW cannot rewind more epochs than the original training ran.
    pub fn build(&self, budget: Budget) -> Result<LrSchedule, Error> {
        self.validate()?;
        if let Schedule::Lrw {
            original_epochs, ..
        } = self
            && budget.epochs > *original_epochs
        {
            return Err(Error::Inconsistent(format!(
                "lrw: cannot rewind {} epochs of a {}-epoch original training",
                budget.epochs, original_epochs
            )));
        }
        Ok(LrSchedule {
            schedule: self.clone(),
            budget,
        })
    }

    /// The smallest and largest rate this schedule can produce over `budget`.
    ///
    /// Exact bounds of the formulas, used for property tests and chart axes. Errors as
    /// [`Schedule::build`].
    pub fn bounds(&self, budget: Budget) -> Result<(f64, f64), Error> {
        self.build(budget)?;
        Ok(match self {
            Schedule::Step { pieces } => (pieces.min_lr(), pieces.max_lr()),
            Schedule::Ft { lr } => (*lr, *lr),
            Schedule::Lrw { original, .. } => (original.min_lr(), original.max_lr()),
            Schedule::Slr(s) => {
                let floor = s.lr_max * s.factor.powi(s.drops.len() as i32);
                (s.lr_min.min(floor), s.lr_max)
            }
            Schedule::Clr(c) | Schedule::OneCycle(c) => {
                (c.lr_init.min(c.lr_min), c.lr_max.max(c.lr_init))
            }
            Schedule::Cosine(c) => (c.lr_min, c.lr_max),
        })
    }
}

/// A schedule bound to a budget: a pure function from iteration to learning rate.
///
/// Built by [`Schedule::build`]; deserializing one validates it the same way. Serializes as
/// `{"schedule": {...}, "epochs": E, "steps_per_epoch": S}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LrScheduleRepr", into = "LrScheduleRepr")]
pub struct LrSchedule {
    schedule: Schedule,
    budget: Budget,
}

#[derive(Serialize, Deserialize)]
struct LrScheduleRepr {
    schedule: Schedule,
    epochs: u32,
    steps_per_epoch: u32,
}

impl TryFrom<LrScheduleRepr> for LrSchedule {
    type Error = Error;
    fn try_from(r: LrScheduleRepr) -> Result<Self, Error> {
        r.schedule.build(Budget::new(r.epochs, r.steps_per_epoch)?)
    }
}

impl From<LrSchedule> for LrScheduleRepr {
    fn from(s: LrSchedule) -> Self {
        LrScheduleRepr {
            schedule: s.schedule,
            epochs: s.budget.epochs,
            steps_per_epoch: s.budget.steps_per_epoch,
        }
    }
}

/// One evaluated iteration: what `prunebench schedule` prints per row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Iteration, 0-based.
    pub step: u64,
    /// Fractional epoch at the start of the iteration, `step / steps_per_epoch`.
    pub epoch: f64,
    /// Learning rate for the iteration.
    pub lr: f64,
    /// Momentum for the iteration, where the schedule cycles it (CLR, 1-cycle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
}

impl LrSchedule {
    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The budget.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Total iterations of the budget.
    pub fn total_steps(&self) -> u64 {
        self.budget.total_steps()
    }

    /// The learning rate for iteration `step` (0-based). Steps past the budget evaluate as its
    /// last iteration.
    pub fn lr(&self, step: u64) -> f64 {
        let step = step.min(self.total_steps() - 1);
        // Integer division by an exact divisor is exact in f64, so whole epochs stay whole.
        let epoch = step as f64 / f64::from(self.budget.steps_per_epoch);
        self.eval(step as f64, epoch)
    }

    /// The learning rate at a fractional epoch, such as 7.5 for the middle of the eighth epoch.
    /// Per-epoch schedules use the whole epoch; per-iteration ones the iteration
    /// `epoch * steps_per_epoch`. Values outside `[0, epochs)` are clamped to it.
    pub fn lr_at_epoch(&self, epoch: f64) -> f64 {
        let max_step = (self.total_steps() - 1) as f64;
        let step = (epoch * f64::from(self.budget.steps_per_epoch)).clamp(0.0, max_step);
        let epoch = epoch.clamp(0.0, f64::from(self.budget.epochs - 1) + 0.5);
        // NaN compares false everywhere: treat it as the start.
        let (step, epoch) = if step.is_nan() || epoch.is_nan() {
            (0.0, 0.0)
        } else {
            (step, epoch)
        };
        self.eval(step, epoch)
    }

    /// The momentum for iteration `step`, where the schedule cycles it (CLR, 1-cycle); `None`
    /// means the optimizer keeps its own (0.9 in the paper).
    pub fn momentum(&self, step: u64) -> Option<f64> {
        match &self.schedule {
            Schedule::Clr(c) | Schedule::OneCycle(c) => {
                let step = step.min(self.total_steps() - 1);
                c.momentum(step as f64, self.total_steps())
            }
            _ => None,
        }
    }

    /// Every iteration of the budget, in order.
    pub fn points(&self) -> impl Iterator<Item = Point> + '_ {
        let spe = f64::from(self.budget.steps_per_epoch);
        (0..self.total_steps()).map(move |step| Point {
            step,
            epoch: step as f64 / spe,
            lr: self.lr(step),
            momentum: self.momentum(step),
        })
    }

    /// Per-epoch schedules read `floor(epoch)`; per-iteration ones read `step`.
    fn eval(&self, step: f64, epoch: f64) -> f64 {
        let k = floor_u32(epoch);
        let epochs = self.budget.epochs;
        match &self.schedule {
            Schedule::Step { pieces } => pieces.lr(k),
            Schedule::Ft { lr } => *lr,
            Schedule::Lrw {
                original,
                original_epochs,
            } => original.lr(original_epochs - epochs + k),
            Schedule::Slr(s) if s.per_iteration => {
                s.lr_continuous(step / f64::from(self.budget.steps_per_epoch), epochs)
            }
            Schedule::Slr(s) => s.lr(k, epochs),
            Schedule::Clr(c) | Schedule::OneCycle(c) => c.lr(step, self.total_steps()),
            Schedule::Cosine(c) => {
                let p = step / self.total_steps() as f64;
                c.lr_min + (c.lr_max - c.lr_min) * (1.0 + (std::f64::consts::PI * p).cos()) / 2.0
            }
        }
    }
}

/// `floor(x)` as an epoch count. The tolerance keeps a product whose decimal value is whole (such
/// as `0.45 * 40`) on that number whatever the binary rounding; for the paper's fractions this
/// equals the reference code's `int(0.5 * 0.9 * epochs)` for every budget up to 2000 epochs.
fn floor_u32(x: f64) -> u32 {
    (x + 1e-9).floor().max(0.0) as u32
}

pub(crate) fn check_rate(what: &str, value: f64) -> Result<(), Error> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            what: what.into(),
            allowed: "a finite, non-negative learning rate",
            value,
        })
    }
}

fn check_positive(what: &str, value: f64) -> Result<(), Error> {
    if value > 0.0 {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            what: what.into(),
            allowed: "above zero",
            value,
        })
    }
}

pub(crate) fn check_warmup(what: &str, value: f64) -> Result<(), Error> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            what: what.into(),
            allowed: "a fraction in [0, 1)",
            value,
        })
    }
}

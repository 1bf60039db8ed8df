use serde::{Deserialize, Serialize};

use crate::{Error, check_rate};

/// One piece of a step schedule: from `epoch` on (until the next piece), the rate is `lr`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRate {
    /// First epoch (0-based) at which `lr` applies.
    pub epoch: u32,
    /// The learning rate from that epoch on.
    pub lr: f64,
}

/// A piecewise-constant schedule over whole epochs, such as the original CIFAR training
/// (0.1 for epochs [0, 80), 0.01 for [80, 120), 0.001 from 120; Appendix B, Table 6).
///
/// `lr(k) = lr_i` for the last piece `i` with `epoch_i <= k`. The first piece starts at epoch 0
/// and the epochs strictly increase; [`StepSchedule::new`] checks both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepSchedule {
    pieces: Vec<StepRate>,
}

impl StepSchedule {
    /// A step schedule from its pieces, validated.
    ///
    /// ```
    /// use schedules::{StepRate, StepSchedule};
    /// let s = StepSchedule::new(vec![
    ///     StepRate { epoch: 0, lr: 0.1 },
    ///     StepRate { epoch: 80, lr: 0.01 },
    /// ]).unwrap();
    /// assert_eq!(s.lr(79), 0.1);
    /// assert_eq!(s.lr(80), 0.01);
    /// ```
    pub fn new(pieces: Vec<StepRate>) -> Result<Self, Error> {
        let s = Self { pieces };
        s.validate()?;
        Ok(s)
    }

    /// PyTorch's `MultiStepLR`: `lr` from epoch 0, multiplied by `factor` at each milestone.
    ///
    /// ```
    /// use schedules::StepSchedule;
    /// let s = StepSchedule::multistep(0.1, &[80, 120], 0.1).unwrap();
    /// assert_eq!(s.lr(100), 0.1 * 0.1);
    /// assert_eq!(s.lr(159), 0.1 * 0.1 * 0.1);
    /// ```
    pub fn multistep(lr: f64, milestones: &[u32], factor: f64) -> Result<Self, Error> {
        check_rate("step factor", factor)?;
        let mut pieces = vec![StepRate { epoch: 0, lr }];
        let mut rate = lr;
        for &epoch in milestones {
            // Repeated multiplication, as PyTorch's chained `lr * gamma`, so the rates equal its
            // bit for bit (0.1 * 0.1 * 0.1 = 0.0010000000000000002, not 0.001).
            rate *= factor;
            pieces.push(StepRate { epoch, lr: rate });
        }
        Self::new(pieces)
    }

    /// The original CIFAR training of the paper (Appendix B): 0.1, then 0.01 at epoch 80 and
    /// 0.001 at epoch 120, over 160 epochs ([`Preset::Cifar`]).
    pub fn cifar() -> Self {
        Self {
            pieces: vec![
                StepRate { epoch: 0, lr: 0.1 },
                StepRate {
                    epoch: 80,
                    lr: 0.01,
                },
                StepRate {
                    epoch: 120,
                    lr: 0.001,
                },
            ],
        }
    }

    /// The original ImageNet training: 0.1, then 0.01 at epoch 30 and 0.001 at epoch 60, over
    /// 90 epochs ([`Preset::Imagenet`]).
    pub fn imagenet() -> Self {
        Self {
            pieces: vec![
                StepRate { epoch: 0, lr: 0.1 },
                StepRate {
                    epoch: 30,
                    lr: 0.01,
                },
                StepRate {
                    epoch: 60,
                    lr: 0.001,
                },
            ],
        }
    }

    /// The pieces, in order of epoch.
    pub fn pieces(&self) -> &[StepRate] {
        &self.pieces
    }

    /// The rate during whole epoch `epoch` (0-based). Epochs past the last piece keep its rate.
    pub fn lr(&self, epoch: u32) -> f64 {
        self.pieces
            .iter()
            .rev()
            .find(|p| p.epoch <= epoch)
            .map_or(self.pieces[0].lr, |p| p.lr)
    }

    /// The rate of the last piece: the rate fine-tuning continues with.
    pub fn last_lr(&self) -> f64 {
        self.pieces[self.pieces.len() - 1].lr
    }

    /// The smallest rate of any piece.
    pub fn min_lr(&self) -> f64 {
        self.pieces
            .iter()
            .map(|p| p.lr)
            .fold(f64::INFINITY, f64::min)
    }

    /// The largest rate of any piece.
    pub fn max_lr(&self) -> f64 {
        self.pieces
            .iter()
            .map(|p| p.lr)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let Some(first) = self.pieces.first() else {
            return Err(Error::Inconsistent(
                "a step schedule needs at least one rate".into(),
            ));
        };
        if first.epoch != 0 {
            return Err(Error::Inconsistent(format!(
                "a step schedule must start at epoch 0, the first rate starts at epoch {}",
                first.epoch
            )));
        }
        for p in &self.pieces {
            check_rate("step lr", p.lr)?;
        }
        for w in self.pieces.windows(2) {
            if w[1].epoch <= w[0].epoch {
                return Err(Error::Inconsistent(format!(
                    "step epochs must increase, got {} after {}",
                    w[1].epoch, w[0].epoch
                )));
            }
        }
        if self.max_lr() <= 0.0 {
            return Err(Error::Inconsistent(
                "a step schedule needs a rate above zero".into(),
            ));
        }
        Ok(())
    }
}

/// The two original trainings the paper retrains after, with the rates each retraining
/// schedule derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// CIFAR-10/100: 160 epochs, 0.1 / 0.01 / 0.001 with drops at 80 and 120. CLR restarts to
    /// 0.1 from 0.001 and ends at 1e-5.
    #[default]
    Cifar,
    /// ImageNet: 90 epochs, 0.1 / 0.01 / 0.001 with drops at 30 and 60. CLR restarts to 0.01
    /// (Section 3, Table 2), from 1e-4 to 1e-6: the reference code's divisors of 100 and 100.
    Imagenet,
}

impl Preset {
    /// The original step schedule.
    pub fn original(self) -> StepSchedule {
        match self {
            Preset::Cifar => StepSchedule::cifar(),
            Preset::Imagenet => StepSchedule::imagenet(),
        }
    }

    /// The number of epochs of the original training.
    pub fn original_epochs(self) -> u32 {
        match self {
            Preset::Cifar => 160,
            Preset::Imagenet => 90,
        }
    }

    /// `(lr_init, lr_max, lr_min)` of the preset's CLR.
    pub fn clr_rates(self) -> (f64, f64, f64) {
        match self {
            Preset::Cifar => (0.001, 0.1, 1e-5),
            Preset::Imagenet => (1e-4, 0.01, 1e-6),
        }
    }

    /// The preset's name in the text form (`cifar`, `imagenet`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Cifar => "cifar",
            Preset::Imagenet => "imagenet",
        }
    }
}

use thiserror::Error;

/// Everything that can be wrong with a schedule, its text form or its budget.
///
/// Each message names the offending value, so a command-line tool can print it as it is.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The text form was empty.
    #[error("empty schedule (expected one of: {KINDS})")]
    Empty,
    /// The text form names no known schedule.
    #[error("unknown schedule kind '{0}' (expected one of: {KINDS})")]
    UnknownKind(String),
    /// A `key=value` parameter that this kind does not take.
    #[error("{kind}: unknown parameter '{key}' (expected one of: {expected})")]
    UnknownParam {
        /// The schedule kind being parsed.
        kind: &'static str,
        /// The key the user typed.
        key: String,
        /// The keys this kind accepts.
        expected: &'static str,
    },
    /// The same parameter given twice.
    #[error("{kind}: parameter '{key}' given twice")]
    DuplicateParam {
        /// The schedule kind being parsed.
        kind: &'static str,
        /// The repeated key.
        key: String,
    },
    /// A parameter item that does not have the expected shape.
    #[error("{kind}: malformed item '{item}' (expected {expected})")]
    Malformed {
        /// The schedule kind being parsed.
        kind: &'static str,
        /// The item as typed.
        item: String,
        /// What the item should look like.
        expected: &'static str,
    },
    /// A value that does not parse as a number.
    #[error("{kind}: {key}='{value}' is not a number")]
    NotANumber {
        /// The schedule kind being parsed.
        kind: &'static str,
        /// The parameter name.
        key: String,
        /// The value as typed.
        value: String,
    },
    /// A value outside the range its parameter allows (a negative or NaN rate, a warm-up
    /// fraction outside [0, 1), ...).
    #[error("{what} must be {allowed}, got {value}")]
    OutOfRange {
        /// Which parameter, e.g. `clr lr_max`.
        what: String,
        /// The allowed range in words.
        allowed: &'static str,
        /// The value given.
        value: f64,
    },
    /// A budget of zero epochs.
    #[error("epochs must be at least 1, got 0")]
    ZeroEpochs,
    /// A budget of zero iterations per epoch.
    #[error("steps per epoch must be at least 1, got 0")]
    ZeroStepsPerEpoch,
    /// A budget of more iterations than [`crate::MAX_TOTAL_STEPS`].
    #[error(
        "{epochs} epochs of {steps_per_epoch} steps is {total} iterations, more than the {} a budget may have",
        crate::MAX_TOTAL_STEPS
    )]
    TooManySteps {
        /// The epochs given.
        epochs: u32,
        /// The iterations per epoch given.
        steps_per_epoch: u32,
        /// Their product.
        total: u64,
    },
    /// Parameters that are each valid but contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

/// The schedule kinds the text form accepts, for error messages.
pub(crate) const KINDS: &str = "step, ft, lrw, slr, clr, onecycle, cosine";

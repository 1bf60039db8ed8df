//! The crate's error type: each variant names the group, tensor or value at fault.

use std::path::PathBuf;

/// What went wrong scoring, selecting, slicing or masking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A set of kept channel indices that is empty, unsorted, repeated or out of range.
    #[error(
        "{}{reason}",
        if group.is_empty() { String::new() } else { format!("group `{group}`: ") }
    )]
    Keep {
        /// The group (empty when the set was built outside any group).
        group: String,
        /// What is wrong with the indices.
        reason: String,
    },
    /// A selection that would remove every channel of a group.
    #[error("group `{group}`: pruning would remove all {channels} channels")]
    EmptyGroup {
        /// The group.
        group: String,
        /// Its channel count.
        channels: usize,
    },
    /// A group or mask refers to a tensor that the weights do not hold.
    #[error("{context}: tensor `{tensor}` is missing")]
    MissingTensor {
        /// Which group or mask needed it.
        context: String,
        /// The tensor's name.
        tensor: String,
    },
    /// A group member whose axis or channel range does not fit the tensor.
    #[error(
        "group `{group}`: tensor `{tensor}` of shape {shape:?} has no channels [{offset}, {end}) on axis {axis}"
    )]
    MemberRange {
        /// The group.
        group: String,
        /// The member tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The member's axis.
        axis: usize,
        /// First channel of the group on that axis.
        offset: usize,
        /// One past its last channel.
        end: usize,
    },
    /// Two groups claim the same channels of one tensor axis.
    #[error("tensor `{tensor}` axis {axis}: groups `{first}` and `{second}` overlap")]
    Overlap {
        /// The tensor.
        tensor: String,
        /// The axis.
        axis: usize,
        /// One group.
        first: String,
        /// The other.
        second: String,
    },
    /// A plan names a group that the model does not declare.
    #[error("plan names group `{0}`, which the model does not declare")]
    UnknownGroup(String),
    /// A plan whose kept set was made for a different channel count than the group has.
    #[error("group `{group}`: plan was made for {planned} channels, the model has {actual}")]
    ChannelCount {
        /// The group.
        group: String,
        /// Channels in the plan.
        planned: usize,
        /// Channels in the model.
        actual: usize,
    },
    /// A mask whose shape differs from its weight tensor's.
    #[error("mask for `{tensor}` has shape {mask:?}, the weight has {weight:?}")]
    MaskShape {
        /// The tensor.
        tensor: String,
        /// Mask shape.
        mask: Vec<usize>,
        /// Weight shape.
        weight: Vec<usize>,
    },
    /// A sparsity (fraction of weights to remove) outside `[0, 1)`.
    #[error("sparsity must be in [0, 1), got {0}")]
    Sparsity(f64),
    /// A pruning ratio (fraction of filters to remove) outside `[0, 1]`.
    #[error("pruning ratio must be in [0, 1], got {0}")]
    Ratio(f64),
    /// Nothing to prune: no tensor (or only empty ones) was given.
    #[error("no weights to prune")]
    NothingToPrune,
    /// An unstructured plan where channels are to be removed: it records counts, and its masks
    /// are applied instead.
    #[error(
        "an unstructured plan ({0}) records counts only: rerun its method, or retrain with its masks"
    )]
    NotStructured(String),
    /// A PFEC version that the reference code does not define for this architecture.
    #[error(
        "{arch} has no PFEC version{}: {hint}",
        .version.as_ref().map(|v| format!(" {v}")).unwrap_or_default()
    )]
    NoVersion {
        /// The architecture, e.g. `resnet20`.
        arch: String,
        /// The version asked for, if any.
        version: Option<String>,
        /// What exists.
        hint: String,
    },
    /// A version name that is neither `A` nor `B`.
    #[error("unknown PFEC version `{0}` (expected A or B)")]
    UnknownVersion(String),
    /// Widths that do not fit a PFEC version (wrong count, narrower than the target).
    #[error("PFEC {arch}: {reason}")]
    Widths {
        /// The architecture.
        arch: String,
        /// What does not fit.
        reason: String,
    },
    /// Writing a file, or decoding the tensors of one, failed (the cause follows in the chain).
    #[error("{}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: candle_core::Error,
    },
    /// Reading a file failed: absent, a FIFO or a device, over its size cap, ... (the cause
    /// follows in the chain).
    #[error("{}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `plan.json` that does not parse as a pruning plan.
    #[error("{}: not a pruning plan: {detail}", file.display())]
    Plan {
        /// The file.
        file: PathBuf,
        /// What the JSON reader found.
        detail: String,
    },
    /// A mask element that is neither 0 nor 1 (0.5, 7, NaN, ...): multiplied into weights and
    /// gradients, it would scale them instead of keeping or removing them.
    #[error(
        "{origin}: mask for `{tensor}` holds {value} at element {index} (a mask holds only 0 and 1)"
    )]
    MaskValue {
        /// The file (or `masks`).
        origin: String,
        /// The masked tensor.
        tensor: String,
        /// The first faulty element, in row-major order.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A mask for a tensor the model does not have.
    #[error("mask for tensor `{tensor}`, which the model does not have")]
    UnknownMaskTensor {
        /// The tensor the mask names.
        tensor: String,
    },
    /// Data-dependent scores (HRank, Taylor, precomputed) that are missing for a group or do not
    /// fit it.
    #[error("group `{group}`: {reason}")]
    Scores {
        /// The group.
        group: String,
        /// What is wrong.
        reason: String,
    },
    /// A global ranking asked to keep a fraction outside `(0, 1]` or over no groups.
    #[error("global ranking: {0}")]
    Global(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

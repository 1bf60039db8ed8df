//! Pruning for prunebench: channel groups, saliency scores (l1/l2 filter norms, weight
//! magnitude, seeded random, HRank's feature-map ranks, first-order Taylor on BatchNorm; any
//! other through [`FilterScorer`]), per-layer or global ranking, pruning plans, unstructured
//! masks and physical channel removal.
//!
//! Model-agnostic by design: a model declares its [`ChannelGroup`]s (which named tensors and
//! axes share a set of channels) and this crate acts on named tensors plus those groups. A
//! selection produces a [`PruningPlan`] that can be saved and inspected; [`apply`] then slices
//! every member of every pruned group, giving smaller dense tensors. Unstructured pruning gives
//! [`Masks`] instead, one 0/1 tensor per weight, kept through training.
//!
//! ```
//! use std::collections::HashMap;
//! use candle_core::{Device, Tensor};
//! use prune_core::{ChannelGroup, FilterSaliency, GroupMember, apply, select_filters};
//!
//! // A conv with 4 filters feeding a conv that reads them on axis 1.
//! let dev = Device::Cpu;
//! let c1 = Tensor::new(&[1f32, -5., 2., 0.], &dev)?.reshape((4, 1, 1, 1))?;
//! let c2 = Tensor::ones((3, 4, 3, 3), candle_core::DType::F32, &dev)?;
//! let weights: HashMap<String, Tensor> =
//!     [("c1.weight".into(), c1), ("c2.weight".into(), c2)].into();
//! let groups = vec![ChannelGroup {
//!     name: "c1".into(),
//!     channels: 4,
//!     score_tensor: "c1.weight".into(),
//!     members: vec![GroupMember::new("c1.weight", 0), GroupMember::new("c2.weight", 1)],
//! }];
//! // Keep the 2 filters with the largest l1 norm (PFEC).
//! let plan = select_filters("pfec", None, &groups, &[("c1".into(), 2)], FilterSaliency::L1, &weights)?;
//! assert_eq!(plan.groups()[0].keep.indices(), [1, 2]);
//! let pruned = apply(&plan, &groups, &weights)?;
//! assert_eq!(pruned["c2.weight"].dims(), [3, 2, 3, 3]);
//! # Ok::<(), prune_core::Error>(())
//! ```

pub mod activation;
pub mod error;
pub mod groups;
pub mod mask;
pub mod mwp;
pub mod pfec;
pub mod plan;
pub mod saliency;

pub use activation::{
    GroupScores, RankAccumulator, TaylorAccumulator, matrix_rank, singular_values,
};
pub use error::{Error, Result};
pub use groups::{ChannelGroup, GroupMember, KeepSet, remove_channels};
pub use mask::{MASKS_FILE, Masks};
pub use mwp::{WeightSaliency, global_threshold};
pub use pfec::{PfecVersion, ResNetPfec, resnet_keep_counts, resnet_settings, vgg16_keep_counts};
pub use plan::{
    FilterScorer, GroupDecision, PlanKind, PruningPlan, SaliencyScorer, TensorSparsity, apply,
    keep_count, select_filters, select_filters_with, select_global, select_top,
};
pub use saliency::{FilterSaliency, ScoreRng, l1_filter_norms, l2_filter_norms, weight_magnitudes};

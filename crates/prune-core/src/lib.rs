//! Pruning for prunebench: channel groups, saliency scores (l1-norm filters, weight magnitude,
//! random), pruning plans, unstructured masks and physical channel removal.
//!
//! Model-agnostic by design: models declare which tensors share channels, and this crate acts on
//! named tensors and those groups (see `DESIGN.md`, section 4). Nothing is implemented yet.

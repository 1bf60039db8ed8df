//! A small counter-based generator: every random decision is a pure function of
//! `(seed, epoch, image index)`, so batches are the same whatever the thread count or batch size.
//! The generator is the workspace's one SplitMix64 (the `splitmix` crate).

pub(crate) use splitmix::SplitMix64;

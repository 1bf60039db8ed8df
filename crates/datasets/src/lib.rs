//! Real image datasets for prunebench: CIFAR-10/100 from their binary format and Fashion-MNIST from
//! its gzipped IDX files, with augmentation and the paper's seeded 90/10 train/val split.
//!
//! See `DESIGN.md`, section 5. Nothing is implemented yet.

//! Real image datasets for prunebench: CIFAR-10/100 from their binary format and Fashion-MNIST
//! from its gzipped IDX files, with the official downloads checked by MD5, training
//! augmentation, normalization, and the paper's seeded 90/10 train/val split.
//!
//! Images are kept as 8-bit pixels ([`ImageSet`]) and turned into normalized `f32` batches
//! ([`transform::assemble`]) on demand, in parallel and deterministically for a seed.
//!
//! ```
//! use datasets::{DatasetKind, ImageSet, cifar};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("test_batch.bin");
//! // A CIFAR-10 file of two records: label byte, then 3,072 pixel bytes each.
//! let mut bytes = vec![3u8];
//! bytes.extend([128u8; 3072]);
//! bytes.push(8);
//! bytes.extend([0u8; 3072]);
//! std::fs::write(&path, &bytes).unwrap();
//! let set: ImageSet = cifar::read_file(&path, cifar::Cifar::Ten).unwrap();
//! assert_eq!(set.labels(), &[3, 8]);
//! assert_eq!(DatasetKind::Cifar10.num_classes(), 10);
//! ```

pub mod cifar;
mod error;
pub mod fashion;
pub mod fetch;
pub mod fixtures;
mod images;
mod rng;
pub mod split;
pub mod transform;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use images::{ImageSet, ImageShape};
use transform::{Augment, Normalize};

/// The datasets prunebench reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10: 50,000 + 10,000 RGB 32x32 images, 10 classes.
    Cifar10,
    /// CIFAR-100: 50,000 + 10,000 RGB 32x32 images, 100 classes.
    Cifar100,
    /// Fashion-MNIST: 60,000 + 10,000 grey images, padded from 28x28 to 32x32, 10 classes.
    FashionMnist,
}

impl DatasetKind {
    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// The shape of every image.
    pub fn shape(self) -> ImageShape {
        match self {
            DatasetKind::FashionMnist => fashion::SHAPE,
            _ => cifar::SHAPE,
        }
    }

    /// The normalization of the reference code (CIFAR: mean (0.4914, 0.4822, 0.4465), std
    /// (0.2023, 0.1994, 0.2010) for both CIFARs; Fashion-MNIST: its usual 0.2860 and 0.3530).
    pub fn normalize(self) -> Normalize {
        match self {
            DatasetKind::FashionMnist => Normalize {
                mean: vec![0.2860],
                std: vec![0.3530],
            },
            _ => Normalize {
                mean: vec![0.4914, 0.4822, 0.4465],
                std: vec![0.2023, 0.1994, 0.2010],
            },
        }
    }

    /// The default training augmentation: pad 4, random crop, horizontal flip for all three.
    pub fn augment(self) -> Augment {
        Augment::CIFAR
    }

    /// Where to look when no folder is given: Debian's Fashion-MNIST package, or `data/` in the
    /// working directory for CIFAR (where `prunebench data fetch` puts it).
    pub fn default_dir(self) -> PathBuf {
        match self {
            DatasetKind::FashionMnist => PathBuf::from(fashion::DEBIAN_DIR),
            _ => PathBuf::from("data"),
        }
    }

    /// The name used on the command line and in specs.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            "cifar100" | "cifar-100" => Ok(DatasetKind::Cifar100),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" | "fmnist" => {
                Ok(DatasetKind::FashionMnist)
            }
            _ => Err(Error::Invalid(format!(
                "unknown dataset '{s}' (expected cifar10, cifar100 or fashion-mnist)"
            ))),
        }
    }
}

/// A dataset's official training and test sets.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Which dataset.
    pub kind: DatasetKind,
    /// The training set (to be split 90/10 into train and val).
    pub train: ImageSet,
    /// The test set.
    pub test: ImageSet,
}

/// Reads a dataset from `dir`, or from [`DatasetKind::default_dir`].
pub fn load(kind: DatasetKind, dir: Option<&Path>) -> Result<Dataset> {
    let dir = dir.map_or_else(|| kind.default_dir(), Path::to_path_buf);
    let (train, test) = match kind {
        DatasetKind::Cifar10 => cifar::read(&dir, cifar::Cifar::Ten)?,
        DatasetKind::Cifar100 => cifar::read(&dir, cifar::Cifar::Hundred)?,
        DatasetKind::FashionMnist => fashion::read(&dir)?,
    };
    tracing::info!(dataset = %kind, dir = %dir.display(), train = train.len(), test = test.len(), "loaded");
    Ok(Dataset { kind, train, test })
}

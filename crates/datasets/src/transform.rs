//! Training augmentation (pad + random crop, horizontal flip), per-channel normalization, the
//! per-epoch shuffle and batch assembly in parallel.
//!
//! Every random choice is keyed by `(seed, epoch, image index)`, so a batch is the same whatever
//! the number of threads, and a run resumed at an epoch sees the same data as one never stopped.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;
use crate::{ImageSet, ImageShape};

/// Training-time augmentation, as torchvision's `Pad(pad)`, `RandomCrop(size)`,
/// `RandomHorizontalFlip()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Zero padding on every side before a random crop back to the original size; 0 turns
    /// cropping off.
    pub pad: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        pad: 0,
        hflip: false,
    };
    /// The reference code's CIFAR augmentation: pad 4, random 32x32 crop, horizontal flip.
    pub const CIFAR: Augment = Augment {
        pad: 4,
        hflip: true,
    };
}

/// Per-channel normalization `(x / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Per-channel mean of the pixel values in [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

/// A batch ready for a model: `len x C x H x W` floats and the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalized pixels, channel-major, image after image.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u32>,
    /// The shape of each image.
    pub shape: ImageShape,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The order in which an epoch visits `n` images: a permutation keyed by `(seed, epoch)`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = SplitMix64::keyed(&[seed, epoch, 0x5348_5546]);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// How to draw random augmentations: keyed by the run's seed and the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AugmentKey {
    /// The run's seed.
    pub seed: u64,
    /// The epoch (0-based).
    pub epoch: u64,
}

/// Assembles the images at `indices` (indices into `set`) into a batch, augmenting them when an
/// augmentation and its key are given, in parallel.
///
/// # Panics
/// If an index is out of range or `normalize` has a different number of channels than `set`:
/// both are programming errors of the caller, which draws indices from the set itself.
pub fn assemble(
    set: &ImageSet,
    indices: &[usize],
    normalize: &Normalize,
    augment: Option<(Augment, AugmentKey)>,
) -> Batch {
    let shape = set.shape();
    assert_eq!(normalize.mean.len(), shape.channels, "normalize channels");
    let per = shape.pixels();
    let mut images = vec![0f32; indices.len() * per];
    images
        .par_chunks_mut(per)
        .zip(indices.par_iter())
        .for_each(|(out, &i)| {
            let (dy, dx, flip) = match augment {
                Some((a, key)) => draw(a, key, i as u64),
                None => (0, 0, false),
            };
            let pad = augment.map_or(0, |(a, _)| a.pad as isize);
            write_image(
                set.image(i),
                shape,
                normalize,
                dy - pad,
                dx - pad,
                flip,
                out,
            );
        });
    Batch {
        images,
        labels: indices
            .iter()
            .map(|&i| u32::from(set.labels()[i]))
            .collect(),
        shape,
    }
}

/// The crop offsets into the padded image and the flip for image `index`.
fn draw(a: Augment, key: AugmentKey, index: u64) -> (isize, isize, bool) {
    let mut rng = SplitMix64::keyed(&[key.seed, key.epoch, index]);
    let span = 2 * a.pad as u64 + 1;
    let dy = rng.below(span) as isize;
    let dx = rng.below(span) as isize;
    let flip = a.hflip && rng.below(2) == 1;
    (dy, dx, flip)
}

/// Output pixel `(r, c)` reads source pixel `(r + oy, c' + ox)` with `c'` mirrored when
/// flipping (torchvision crops first, then flips the crop); outside the source it is a zero
/// (black) pixel, normalized like any other.
fn write_image(
    src: &[u8],
    shape: ImageShape,
    norm: &Normalize,
    oy: isize,
    ox: isize,
    flip: bool,
    out: &mut [f32],
) {
    let (h, w) = (shape.height as isize, shape.width as isize);
    for ch in 0..shape.channels {
        let (mean, std) = (norm.mean[ch], norm.std[ch]);
        let plane = &src[ch * shape.height * shape.width..(ch + 1) * shape.height * shape.width];
        let dst = &mut out[ch * shape.height * shape.width..(ch + 1) * shape.height * shape.width];
        for r in 0..h {
            let y = r + oy;
            for c in 0..w {
                let cc = if flip { w - 1 - c } else { c };
                let x = cc + ox;
                let v = if (0..h).contains(&y) && (0..w).contains(&x) {
                    plane[(y * w + x) as usize]
                } else {
                    0
                };
                dst[(r * w + c) as usize] = (f32::from(v) / 255.0 - mean) / std;
            }
        }
    }
}

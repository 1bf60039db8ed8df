use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Height, width and channels of every image of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels: 3 for CIFAR, 1 for Fashion-MNIST.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Bytes of one image: `channels * height * width`.
    pub fn pixels(self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Labelled 8-bit images, stored channel-major (`N x C x H x W`), as the CIFAR files store them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    shape: ImageShape,
    num_classes: usize,
    pixels: Vec<u8>,
    labels: Vec<u16>,
}

impl ImageSet {
    /// A set from its parts; the pixel count must match the labels and every label must be
    /// below `num_classes`.
    pub fn new(
        shape: ImageShape,
        num_classes: usize,
        pixels: Vec<u8>,
        labels: Vec<u16>,
    ) -> Result<Self> {
        if pixels.len() != labels.len() * shape.pixels() {
            return Err(Error::Invalid(format!(
                "{} pixel bytes for {} images of {} bytes",
                pixels.len(),
                labels.len(),
                shape.pixels()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| usize::from(l) >= num_classes) {
            return Err(Error::Invalid(format!(
                "label {bad} in a set of {num_classes} classes"
            )));
        }
        Ok(Self {
            shape,
            num_classes,
            pixels,
            labels,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of every image.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Number of classes of the dataset (not only those present).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Image `i`, channel-major.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.pixels();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Every image's pixels, channel-major, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Every label, in order.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Invalid(format!(
                "index {bad} out of range for a set of {} images",
                self.len()
            )));
        }
        let mut pixels = Vec::with_capacity(indices.len() * self.shape.pixels());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Ok(Self {
            shape: self.shape,
            num_classes: self.num_classes,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        })
    }

    /// Appends another set of the same shape and classes (several CIFAR batch files).
    pub fn extend(&mut self, other: ImageSet) -> Result<()> {
        if other.shape != self.shape || other.num_classes != self.num_classes {
            return Err(Error::Invalid(format!(
                "cannot join images of {:?} ({} classes) to {:?} ({} classes)",
                other.shape, other.num_classes, self.shape, self.num_classes
            )));
        }
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
        Ok(())
    }
}

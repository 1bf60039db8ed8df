//! Small datasets in the real file formats, for tests and demonstrations that must run in
//! seconds: the files are exactly what the readers read, only the images are synthetic.

use std::path::Path;

use crate::{Result, fashion};

/// Writes a learnable Fashion-MNIST-format dataset into `dir`: `n_train` and `n_test` 28x28
/// images as gzipped IDX files, where class `c` is a bright horizontal bar at row `2c + 4` over
/// deterministic noise. A small network separates the classes within a few epochs.
pub fn write_bars(dir: &Path, n_train: usize, n_test: usize) -> Result<()> {
    let make = |n: usize, salt: usize| {
        let mut images = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = (i * 7 + salt) % 10;
            labels.push(c as u8);
            for p in 0..784 {
                let noise = ((i * 31 + p * 17 + salt) % 40) as u8;
                images.push(if p / 28 == 2 * c + 4 {
                    200 + noise / 2
                } else {
                    noise
                });
            }
        }
        (images, labels)
    };
    let (images, labels) = make(n_train, 0);
    fashion::write_split(dir, "train", &images, &labels)?;
    let (images, labels) = make(n_test, 3);
    fashion::write_split(dir, "t10k", &images, &labels)
}

//! Fashion-MNIST from its gzipped IDX files, zero-padded from 28x28 to 32x32, one channel.
//!
//! IDX is big-endian: a magic number (`0x00000803` for images, `0x00000801` for labels), the
//! dimension sizes, then the bytes. Files may be gzipped (as published) or plain.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::{Error, ImageSet, ImageShape, Result};

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// 32x32 grey: the 28x28 images with 2 zero pixels on every side, so CIFAR models apply as
/// they are.
pub const SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 32,
    width: 32,
};

const SIDE: usize = 28;
const PAD: usize = (32 - SIDE) / 2;
const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The file names of a split (`train` or `t10k`), gzipped.
pub fn files(prefix: &str) -> (String, String) {
    (
        format!("{prefix}-images-idx3-ubyte.gz"),
        format!("{prefix}-labels-idx1-ubyte.gz"),
    )
}

/// Reads the training and test sets from `dir`.
pub fn read(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    Ok((read_split(dir, "train")?, read_split(dir, "t10k")?))
}

/// Reads one split (`train` or `t10k`) from `dir`.
pub fn read_split(dir: &Path, prefix: &str) -> Result<ImageSet> {
    let (images, labels) = files(prefix);
    let images_path = find(dir, &images)?;
    let labels_path = find(dir, &labels)?;
    let (n, rows, cols, raw) = read_images(&images_path)?;
    if (rows, cols) != (SIDE, SIDE) {
        return Err(Error::format(
            &images_path,
            format!("images are {rows}x{cols}, Fashion-MNIST's are 28x28"),
        ));
    }
    let labels = read_labels(&labels_path, 10)?;
    if labels.len() != n {
        return Err(Error::format(
            &labels_path,
            format!(
                "{} labels for {n} images in {}",
                labels.len(),
                images_path.display()
            ),
        ));
    }
    ImageSet::new(SHAPE, 10, pad(&raw, n), labels)
}

/// `dir/name`, or `dir/name` without `.gz` if only the decompressed file is there.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(name);
    if gz.is_file() {
        return Ok(gz);
    }
    let plain = dir.join(name.trim_end_matches(".gz"));
    if plain.is_file() {
        return Ok(plain);
    }
    Err(Error::Missing {
        path: gz,
        hint: format!(
            "install Debian's dataset-fashion-mnist (files in {DEBIAN_DIR}) or pass the folder holding the IDX files"
        ),
    })
}

fn pad(raw: &[u8], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n * SHAPE.pixels()];
    for i in 0..n {
        let src = &raw[i * SIDE * SIDE..(i + 1) * SIDE * SIDE];
        let dst = &mut out[i * SHAPE.pixels()..(i + 1) * SHAPE.pixels()];
        for r in 0..SIDE {
            let at = (r + PAD) * SHAPE.width + PAD;
            dst[at..at + SIDE].copy_from_slice(&src[r * SIDE..(r + 1) * SIDE]);
        }
    }
    out
}

/// The bytes of a file, gunzipped if it starts with gzip's magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(Error::io(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(path: &Path, bytes: &[u8], magic: u32, dims: usize) -> Result<Vec<usize>> {
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    // The magic first: a label file given for an image file says so, not "too short".
    if bytes.len() >= 4 && word(0) != magic {
        return Err(Error::format(
            path,
            format!("IDX magic {:#010x}, expected {magic:#010x}", word(0)),
        ));
    }
    let need = 4 + 4 * dims;
    if bytes.len() < need {
        return Err(Error::format(
            path,
            format!(
                "{} bytes, shorter than an IDX header of {need}",
                bytes.len()
            ),
        ));
    }
    Ok((0..dims).map(|d| word(4 + 4 * d) as usize).collect())
}

/// Reads an IDX image file: `(count, rows, cols, pixels)`.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bytes = read_maybe_gz(path)?;
    let d = header(path, &bytes, IMAGES_MAGIC, 3)?;
    let (n, rows, cols) = (d[0], d[1], d[2]);
    let expected = 16 + n * rows * cols;
    if bytes.len() != expected {
        return Err(Error::format(
            path,
            format!(
                "{} bytes, but the header announces {n} images of {rows}x{cols} ({expected} bytes)",
                bytes.len()
            ),
        ));
    }
    Ok((n, rows, cols, bytes[16..].to_vec()))
}

/// Reads an IDX label file, checking every label is below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u16>> {
    let bytes = read_maybe_gz(path)?;
    let n = header(path, &bytes, LABELS_MAGIC, 1)?[0];
    if bytes.len() != 8 + n {
        return Err(Error::format(
            path,
            format!(
                "{} bytes, but the header announces {n} labels ({} bytes)",
                bytes.len(),
                8 + n
            ),
        ));
    }
    bytes[8..]
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if usize::from(l) < classes {
                Ok(u16::from(l))
            } else {
                Err(Error::Label {
                    path: path.to_path_buf(),
                    record: i,
                    label: u16::from(l),
                    classes,
                })
            }
        })
        .collect()
}

fn write_gz(path: &Path, bytes: &[u8]) -> Result<()> {
    let f = fs::File::create(path).map_err(Error::io(path))?;
    // mtime 0 and no file name: the same bytes in give the same file out.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(f, flate2::Compression::best());
    gz.write_all(bytes).map_err(Error::io(path))?;
    gz.finish().map_err(Error::io(path))?;
    Ok(())
}

/// Writes 28x28 images and their labels as gzipped IDX files named as the published ones
/// (`{prefix}-images-idx3-ubyte.gz`, `{prefix}-labels-idx1-ubyte.gz`) in `dir`.
pub fn write_split(dir: &Path, prefix: &str, images: &[u8], labels: &[u8]) -> Result<()> {
    let n = labels.len();
    if images.len() != n * SIDE * SIDE {
        return Err(Error::Invalid(format!(
            "{} pixel bytes for {n} images of 28x28",
            images.len()
        )));
    }
    let (img_name, lbl_name) = files(prefix);
    let mut img = Vec::with_capacity(16 + images.len());
    for w in [IMAGES_MAGIC, n as u32, SIDE as u32, SIDE as u32] {
        img.extend_from_slice(&w.to_be_bytes());
    }
    img.extend_from_slice(images);
    let mut lbl = Vec::with_capacity(8 + n);
    for w in [LABELS_MAGIC, n as u32] {
        lbl.extend_from_slice(&w.to_be_bytes());
    }
    lbl.extend_from_slice(labels);
    write_gz(&dir.join(img_name), &img)?;
    write_gz(&dir.join(lbl_name), &lbl)
}

//! Fashion-MNIST from its gzipped IDX files, zero-padded from 28x28 to 32x32, one channel.
//!
//! IDX is big-endian: a magic number (`0x00000803` for images, `0x00000801` for labels), the
//! dimension sizes, then the bytes. Files may be gzipped (as published) or plain.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
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
    // `exists`, not `is_file`: a FIFO or a directory under the name is refused by name when read.
    let gz = dir.join(name);
    if gz.exists() {
        return Ok(gz);
    }
    let plain = dir.join(name.trim_end_matches(".gz"));
    if plain.exists() {
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

/// The most bytes an IDX file's data may hold (1 GiB: Fashion-MNIST's training images are 47 MB).
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// The most bytes an IDX file may have on disk, gzipped or not: its data cap plus room for a
/// header and gzip's framing (stored blocks add 5 bytes per 64 KiB).
const MAX_FILE_BYTES: u64 = MAX_IDX_BYTES + (MAX_IDX_BYTES >> 10) + 4096;

/// An IDX file's header dimensions and data, read without trusting the file: the header comes
/// first, the data size it announces is computed with checked arithmetic and capped at
/// [`MAX_IDX_BYTES`], then at most that many bytes (plus one, to see trailing garbage) are read or
/// inflated. A gzip bomb is refused one byte past what its header announces; a plain file whose
/// length differs from its header is refused before its data is read.
fn read_idx(path: &Path, magic: u32, dims: usize, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let (file, len) = files::open(path, MAX_FILE_BYTES).map_err(Error::io(path))?;
    let mut file = BufReader::new(file);
    let gz = file
        .fill_buf()
        .map_err(Error::io(path))?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let read_error = |e: std::io::Error| {
        if gz {
            Error::format(path, format!("corrupt gzip data: {e}"))
        } else {
            Error::io(path)(e)
        }
    };
    let need = 4 + 4 * dims;
    let mut head = vec![0u8; need];
    let mut got = 0;
    while got < need {
        match reader.read(&mut head[got..]).map_err(read_error)? {
            0 => break,
            n => got += n,
        }
    }
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    // The magic first: a label file given for an image file says so, not "too short".
    if got >= 4 && word(0) != magic {
        return Err(Error::format(
            path,
            format!("IDX magic {:#010x}, expected {magic:#010x}", word(0)),
        ));
    }
    if got < need {
        return Err(Error::format(
            path,
            format!("{got} bytes, shorter than an IDX header of {need}"),
        ));
    }
    let d: Vec<usize> = (0..dims).map(|i| word(4 + 4 * i) as usize).collect();
    let announced = || {
        let shape: Vec<String> = d[1..].iter().map(usize::to_string).collect();
        if shape.is_empty() {
            format!("{} {what}", d[0])
        } else {
            format!("{} {what} of {}", d[0], shape.join("x"))
        }
    };
    let data = d
        .iter()
        .try_fold(1u64, |p, &x| p.checked_mul(x as u64))
        .filter(|&b| b <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "the header announces {}, more than the {MAX_IDX_BYTES} bytes an IDX file may hold",
                    announced()
                ),
            )
        })?;
    let expected = need as u64 + data;
    let mismatch = |found: String| {
        Error::format(
            path,
            format!(
                "{found} bytes, but the header announces {} ({expected} bytes)",
                announced()
            ),
        )
    };
    // A plain file's length is known: refused before its data is read.
    if !gz && len != expected {
        return Err(mismatch(len.to_string()));
    }
    // Not reserved up front for gzip: a small file announcing a large size must deliver the
    // bytes before they are allocated.
    let mut out = Vec::with_capacity(if gz { 0 } else { data as usize });
    reader
        .take(data + 1)
        .read_to_end(&mut out)
        .map_err(read_error)?;
    match (out.len() as u64).cmp(&data) {
        std::cmp::Ordering::Equal => Ok((d, out)),
        std::cmp::Ordering::Less => Err(mismatch((need + out.len()).to_string())),
        std::cmp::Ordering::Greater => Err(mismatch(format!("more than {expected}"))),
    }
}

/// Reads an IDX image file: `(count, rows, cols, pixels)`.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (d, pixels) = read_idx(path, IMAGES_MAGIC, 3, "images")?;
    Ok((d[0], d[1], d[2], pixels))
}

/// Reads an IDX label file, checking every label is below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u16>> {
    let (_, bytes) = read_idx(path, LABELS_MAGIC, 1, "labels")?;
    bytes
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

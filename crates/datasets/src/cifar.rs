//! CIFAR-10 and CIFAR-100 in their original binary format.
//!
//! A CIFAR-10 record is one label byte then 3,072 pixel bytes (the red plane, the green plane,
//! the blue plane, each 32x32 row-major); a CIFAR-100 record has a coarse and a fine label byte
//! before the pixels. Files may hold any number of records, but their size must be a whole
//! number of records.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::{Error, ImageSet, ImageShape, Result};

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes; `cifar-10-batches-bin/data_batch_{1..5}.bin` and `test_batch.bin`.
    Ten,
    /// 100 fine classes (20 coarse); `cifar-100-binary/train.bin` and `test.bin`.
    Hundred,
}

/// 32x32 RGB.
pub const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};

impl Cifar {
    /// Label bytes before the pixels of each record.
    pub fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }

    /// Bytes per record.
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + SHAPE.pixels()
    }

    /// Number of classes (fine classes for CIFAR-100).
    pub fn num_classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }

    /// The folder the official tarball extracts to.
    pub fn folder(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar-10-batches-bin",
            Cifar::Hundred => "cifar-100-binary",
        }
    }

    /// The training files, relative to [`Cifar::folder`].
    pub fn train_files(self) -> Vec<String> {
        match self {
            Cifar::Ten => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Cifar::Hundred => vec!["train.bin".into()],
        }
    }

    /// The test file, relative to [`Cifar::folder`].
    pub fn test_file(self) -> &'static str {
        match self {
            Cifar::Ten => "test_batch.bin",
            Cifar::Hundred => "test.bin",
        }
    }

    /// The folder holding the files: `dir` itself if it has them, else `dir/<folder>`.
    pub fn locate(self, dir: &Path) -> PathBuf {
        if dir.join(self.test_file()).is_file() {
            dir.to_path_buf()
        } else {
            dir.join(self.folder())
        }
    }
}

/// The most bytes a CIFAR binary file may have (1 GiB: CIFAR-100's training file is 154 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Reads one CIFAR binary file, checking its size (a whole number of records, at most
/// [`MAX_FILE_BYTES`]) before reading it, then every label. FIFOs and devices are refused by
/// name.
pub fn read_file(path: &Path, cifar: Cifar) -> Result<ImageSet> {
    let (file, len) = files::open(path, MAX_FILE_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing {
            path: path.to_path_buf(),
            hint: format!(
                "run `prunebench data fetch {}` or extract the official binary tarball there",
                match cifar {
                    Cifar::Ten => "cifar10",
                    Cifar::Hundred => "cifar100",
                }
            ),
        },
        _ => Error::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let record = cifar.record_bytes();
    if len == 0 || len % record as u64 != 0 {
        return Err(Error::format(
            path,
            format!(
                "size {len} bytes is not a whole, non-zero number of {record}-byte records ({} label byte(s) + 3072 pixels)",
                cifar.label_bytes()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: a file that grows while it is read gives no more than its size said.
    file.take(len + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(path))?;
    if bytes.len() as u64 != len {
        return Err(Error::format(
            path,
            format!(
                "the file changed while it was read ({len} bytes, then {})",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / record;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * SHAPE.pixels());
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let (label, classes) = match cifar {
            Cifar::Ten => (rec[0], 10),
            Cifar::Hundred => {
                if rec[0] >= 20 {
                    return Err(Error::Label {
                        path: path.to_path_buf(),
                        record: i,
                        label: u16::from(rec[0]),
                        classes: 20,
                    });
                }
                (rec[1], 100)
            }
        };
        if usize::from(label) >= classes {
            return Err(Error::Label {
                path: path.to_path_buf(),
                record: i,
                label: u16::from(label),
                classes,
            });
        }
        labels.push(u16::from(label));
        pixels.extend_from_slice(&rec[cifar.label_bytes()..]);
    }
    ImageSet::new(SHAPE, cifar.num_classes(), pixels, labels)
}

/// Reads the training and test sets from `dir` (the extracted folder or its parent).
pub fn read(dir: &Path, cifar: Cifar) -> Result<(ImageSet, ImageSet)> {
    let folder = cifar.locate(dir);
    let mut train: Option<ImageSet> = None;
    for file in cifar.train_files() {
        let part = read_file(&folder.join(file), cifar)?;
        match &mut train {
            Some(t) => t.extend(part)?,
            None => train = Some(part),
        }
    }
    let test = read_file(&folder.join(cifar.test_file()), cifar)?;
    let train = train.ok_or_else(|| Error::Invalid("no training files".into()))?;
    Ok((train, test))
}

/// Writes a set as one CIFAR binary file (for CIFAR-100, `coarse` gives each record's coarse
/// label; `None` writes 0). Used to make real-format fixtures.
pub fn write_file(path: &Path, set: &ImageSet, cifar: Cifar, coarse: Option<&[u8]>) -> Result<()> {
    if set.shape() != SHAPE {
        return Err(Error::Invalid(format!(
            "CIFAR images are 3x32x32, not {:?}",
            set.shape()
        )));
    }
    let mut out = Vec::with_capacity(set.len() * cifar.record_bytes());
    for i in 0..set.len() {
        if cifar == Cifar::Hundred {
            out.push(coarse.map_or(0, |c| c[i]));
        }
        out.push(set.labels()[i] as u8);
        out.extend_from_slice(set.image(i));
    }
    let mut f = fs::File::create(path).map_err(Error::io(path))?;
    f.write_all(&out).map_err(Error::io(path))
}

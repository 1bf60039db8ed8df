//! Property tests of the dataset readers on hostile bytes (issue 14): IDX files (raw and
//! gzipped) with truncations, flipped bytes and any header counts, and CIFAR batches of any
//! length and labels never panic, and each is read exactly when its format says it is valid. The
//! libFuzzer targets `idx_raw`, `idx_gzip` and `cifar` (`cargo xtask fuzz`) search further.

use std::io::Write;
use std::path::{Path, PathBuf};

use datasets::cifar::{Cifar, read_file};
use datasets::fashion::{read_images, read_labels};
use flate2::{Compression, write::GzEncoder};
use proptest::prelude::*;

const IMAGES_MAGIC: u32 = 0x0803;
const LABELS_MAGIC: u32 = 0x0801;

fn idx(words: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    out.extend_from_slice(body);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Three 28x28 images and their labels, uncompressed.
fn valid_images() -> Vec<u8> {
    let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 251) as u8).collect();
    idx(&[IMAGES_MAGIC, 3, 28, 28], &pixels)
}

fn valid_labels() -> Vec<u8> {
    idx(&[LABELS_MAGIC, 3], &[0, 9, 4])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn flip(bytes: &[u8], flips: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (i, x) in flips {
        let at = i.index(out.len());
        out[at] ^= x;
    }
    out
}

fn flips() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..12)
}

/// Header counts a hostile file may announce: small, near the real ones, and up to u32::MAX.
fn count() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..64, Just(28), Just(60_000), any::<u32>()]
}

#[test]
fn the_unmangled_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (n, rows, cols, pixels) =
        read_images(&write(dir.path(), "i", &gzip(&valid_images()))).unwrap();
    assert_eq!((n, rows, cols, pixels.len()), (3, 28, 28, 3 * 784));
    let labels = read_labels(&write(dir.path(), "l", &valid_labels()), 10).unwrap();
    assert_eq!(labels, [0, 9, 4]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_idx_image_header_is_read_only_when_the_size_matches(
        n in count(),
        rows in count(),
        cols in count(),
        body in prop_oneof![0usize..3000, (1usize..4).prop_map(|k| k * 784)],
        gz in any::<bool>(),
    ) {
        // The reader must compare 16 + n * rows * cols with the size without overflowing.
        let file = idx(&[IMAGES_MAGIC, n, rows, cols], &vec![7; body]);
        let dir = tempfile::tempdir().unwrap();
        let bytes = if gz { gzip(&file) } else { file };
        let read = read_images(&write(dir.path(), "images", &bytes));
        let fits = (n as u128) * (rows as u128) * (cols as u128) == body as u128;
        if !fits {
            prop_assert!(read.is_err(), "{}x{}x{} read from {} bytes", n, rows, cols, body);
        } else if (rows, cols) == (28, 28) && n > 0 {
            prop_assert!(read.is_ok(), "{}x28x28 not read from {} bytes", n, body);
        }
    }

    #[test]
    fn any_idx_label_header_is_read_only_when_the_size_matches(
        n in count(),
        labels in prop::collection::vec(0u8..12, 0..40),
        gz in any::<bool>(),
    ) {
        let file = idx(&[LABELS_MAGIC, n], &labels);
        let dir = tempfile::tempdir().unwrap();
        let bytes = if gz { gzip(&file) } else { file };
        let read = read_labels(&write(dir.path(), "labels", &bytes), 10);
        let valid = n as usize == labels.len() && labels.iter().all(|&l| l < 10);
        if !valid {
            prop_assert!(read.is_err());
        } else if n > 0 {
            prop_assert_eq!(read.unwrap(), labels.iter().map(|&l| u16::from(l)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn truncated_idx_files_are_an_error(len in any::<prop::sample::Index>(), gz in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        for (name, file) in [("images", valid_images()), ("labels", valid_labels())] {
            let file = if gz { gzip(&file) } else { file };
            let cut = &file[..len.index(file.len())];
            let path = write(dir.path(), name, cut);
            prop_assert!(read_images(&path).is_err() && read_labels(&path, 10).is_err());
        }
    }

    #[test]
    fn flipped_idx_bytes_never_panic(f in flips(), gz in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        for file in [valid_images(), valid_labels()] {
            let file = if gz { gzip(&file) } else { file };
            let path = write(dir.path(), "f", &flip(&file, &f));
            let _ = read_images(&path);
            let _ = read_labels(&path, 10);
        }
    }

    #[test]
    fn a_cifar_batch_is_read_only_when_records_and_labels_are_whole(
        labels in prop::collection::vec(any::<u8>(), 0..8),
        tail in 0usize..3,
        hundred in any::<bool>(),
    ) {
        // `labels` holds the label bytes of each record (1 for CIFAR-10, 2 for CIFAR-100);
        // `tail` extra bytes make the size not a whole number of records.
        let (cifar, per) = if hundred { (Cifar::Hundred, 2) } else { (Cifar::Ten, 1) };
        let records: Vec<&[u8]> = labels.chunks_exact(per).collect();
        let mut bytes = Vec::new();
        for r in &records {
            bytes.extend_from_slice(r);
            bytes.extend(std::iter::repeat_n(128u8, 3072));
        }
        bytes.extend(std::iter::repeat_n(0u8, tail));
        let dir = tempfile::tempdir().unwrap();
        let read = read_file(&write(dir.path(), "batch.bin", &bytes), cifar);
        let labels_ok = records.iter().all(|r| match cifar {
            Cifar::Ten => r[0] < 10,
            Cifar::Hundred => r[0] < 20 && r[1] < 100,
        });
        let valid = !records.is_empty() && tail == 0 && labels_ok;
        prop_assert_eq!(read.is_ok(), valid);
        if let Ok(set) = read {
            prop_assert_eq!(set.len(), records.len());
        }
    }
}

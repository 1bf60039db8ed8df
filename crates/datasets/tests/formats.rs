//! CIFAR binary and Fashion-MNIST IDX files, written by the tests in the real formats, read
//! back; and every kind of bad file gives an error naming the file and the problem.

use std::path::Path;

use datasets::{DatasetKind, Error, ImageSet, cifar, cifar::Cifar, fashion};

/// `n` CIFAR-10 records with labels `i % 10` and pixels that encode the record index.
fn cifar_bytes(n: usize, label_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        if label_bytes == 2 {
            out.push((i % 20) as u8);
        }
        out.push((i % 10) as u8);
        out.extend((0..3072).map(|p| ((i * 7 + p) % 256) as u8));
    }
    out
}

fn error_text(e: Error) -> String {
    e.to_string()
}

#[test]
fn cifar10_batch_of_100_records_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    std::fs::write(&path, cifar_bytes(100, 1)).unwrap();
    let set = cifar::read_file(&path, Cifar::Ten).unwrap();
    assert_eq!(set.len(), 100);
    assert_eq!(set.labels()[37], 7);
    assert_eq!(set.image(37)[0], (37 * 7 % 256) as u8);
    assert_eq!(set.image(37)[3071], ((37 * 7 + 3071) % 256) as u8);
    assert_eq!(set.class_counts(), vec![10; 10]);
    // The writer produces the same bytes.
    let again = dir.path().join("again.bin");
    cifar::write_file(&again, &set, Cifar::Ten, None).unwrap();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&path).unwrap()
    );
}

#[test]
fn cifar100_uses_the_fine_label_and_checks_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.bin");
    let mut bytes = cifar_bytes(3, 2);
    bytes[1] = 99; // fine label of record 0
    std::fs::write(&path, &bytes).unwrap();
    let set = cifar::read_file(&path, Cifar::Hundred).unwrap();
    assert_eq!(set.labels(), &[99, 1, 2]);
    assert_eq!(set.num_classes(), 100);

    bytes[3074] = 20; // coarse label of record 1
    std::fs::write(&path, &bytes).unwrap();
    let e = error_text(cifar::read_file(&path, Cifar::Hundred).unwrap_err());
    assert!(
        e.contains("train.bin") && e.contains("record 1 has label 20") && e.contains("20 classes"),
        "{e}"
    );
    bytes[3074] = 0;
    bytes[3074 + 1] = 100; // fine label of record 1
    std::fs::write(&path, &bytes).unwrap();
    let e = error_text(cifar::read_file(&path, Cifar::Hundred).unwrap_err());
    assert!(e.contains("record 1 has label 100"), "{e}");
}

#[test]
fn bad_cifar_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test_batch.bin");
    let mut bytes = cifar_bytes(5, 1);
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&path, &bytes).unwrap();
    let e = error_text(cifar::read_file(&path, Cifar::Ten).unwrap_err());
    assert!(
        e.contains("test_batch.bin")
            && e.contains("size 15355 bytes is not a whole")
            && e.contains("3073-byte"),
        "{e}"
    );

    std::fs::write(&path, b"").unwrap();
    assert!(error_text(cifar::read_file(&path, Cifar::Ten).unwrap_err()).contains("size 0 bytes"));

    let mut bytes = cifar_bytes(5, 1);
    bytes[2 * 3073] = 10;
    std::fs::write(&path, &bytes).unwrap();
    let e = error_text(cifar::read_file(&path, Cifar::Ten).unwrap_err());
    assert!(
        e.contains("record 2 has label 10, but the dataset has 10 classes"),
        "{e}"
    );

    let missing = dir.path().join("nope");
    let e = error_text(cifar::read_file(&missing.join("x.bin"), Cifar::Ten).unwrap_err());
    assert!(
        e.contains("nope/x.bin: not found") && e.contains("prunebench data fetch cifar10"),
        "{e}"
    );
}

#[test]
fn cifar10_folder_reads_five_batches_and_the_test_batch() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&folder).unwrap();
    for i in 1..=5 {
        std::fs::write(
            folder.join(format!("data_batch_{i}.bin")),
            cifar_bytes(20 + i, 1),
        )
        .unwrap();
    }
    std::fs::write(folder.join("test_batch.bin"), cifar_bytes(7, 1)).unwrap();
    for d in [dir.path(), folder.as_path()] {
        let data = datasets::load(DatasetKind::Cifar10, Some(d)).unwrap();
        assert_eq!(
            (data.train.len(), data.test.len()),
            (21 + 22 + 23 + 24 + 25, 7)
        );
    }
}

/// 28x28 images whose pixel (r, c) of image i is `(i + r * 28 + c) % 256`.
fn idx_images(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (0..784).map(move |p| ((i + p) % 256) as u8))
        .collect()
}

fn write_fashion(dir: &Path, n_train: usize, n_test: usize) {
    let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    fashion::write_split(dir, "train", &idx_images(n_train), &labels(n_train)).unwrap();
    fashion::write_split(dir, "t10k", &idx_images(n_test), &labels(n_test)).unwrap();
}

#[test]
fn fashion_mnist_idx_reads_back_padded_to_32() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion(dir.path(), 30, 10);
    let data = datasets::load(DatasetKind::FashionMnist, Some(dir.path())).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (30, 10));
    assert_eq!(data.train.shape(), fashion::SHAPE);
    let img: &[u8] = data.train.image(3);
    // Two zero rows and columns on every side; the 28x28 content in the middle.
    assert!(img[..64].iter().all(|&v| v == 0));
    assert_eq!(img[2 * 32 + 1], 0);
    assert_eq!(img[2 * 32 + 2], 3);
    assert_eq!(
        img[(2 + 27) * 32 + 2 + 27],
        ((3 + 27 * 28 + 27) % 256) as u8
    );
    assert_eq!(img[(2 + 27) * 32 + 30], 0);
    assert_eq!(data.train.labels()[13], 3);
}

#[test]
fn fashion_mnist_also_reads_decompressed_files() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion(dir.path(), 4, 2);
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let gz = dir.path().join(format!("{name}.gz"));
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()),
            &mut plain,
        )
        .unwrap();
        std::fs::write(dir.path().join(name), plain).unwrap();
        std::fs::remove_file(gz).unwrap();
    }
    let data = datasets::load(DatasetKind::FashionMnist, Some(dir.path())).unwrap();
    assert_eq!(data.test.len(), 2);
}

#[test]
fn bad_idx_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_fashion(d, 4, 2);
    let images = d.join("train-images-idx3-ubyte.gz");
    let labels = d.join("train-labels-idx1-ubyte.gz");

    // More labels than images.
    fashion::write_split(d, "train", &idx_images(4), &[1, 2, 3, 4, 5]).unwrap_err();
    let lbl5 = tempfile::tempdir().unwrap();
    fashion::write_split(lbl5.path(), "train", &idx_images(5), &[1, 2, 3, 4, 5]).unwrap();
    std::fs::copy(lbl5.path().join("train-labels-idx1-ubyte.gz"), &labels).unwrap();
    let e = error_text(datasets::load(DatasetKind::FashionMnist, Some(d)).unwrap_err());
    assert!(
        e.contains("train-labels-idx1-ubyte.gz: 5 labels for 4 images"),
        "{e}"
    );

    // A label of 10.
    std::fs::copy(lbl5.path().join("train-labels-idx1-ubyte.gz"), &labels).unwrap();
    fashion::write_split(d, "train", &idx_images(4), &[1, 2, 10, 4]).unwrap();
    let e = error_text(datasets::load(DatasetKind::FashionMnist, Some(d)).unwrap_err());
    assert!(e.contains("record 2 has label 10"), "{e}");

    // Wrong magic: a label file where the images should be.
    write_fashion(d, 4, 2);
    std::fs::copy(&labels, &images).unwrap();
    let e = error_text(datasets::load(DatasetKind::FashionMnist, Some(d)).unwrap_err());
    assert!(
        e.contains("train-images-idx3-ubyte.gz: IDX magic 0x00000801, expected 0x00000803"),
        "{e}"
    );

    // Truncated data: header says 4 images, fewer bytes follow.
    let mut raw = vec![0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 28, 0, 0, 0, 28];
    raw.extend(vec![0u8; 784 * 3]);
    std::fs::write(&images, &raw).unwrap();
    let e = error_text(datasets::load(DatasetKind::FashionMnist, Some(d)).unwrap_err());
    assert!(e.contains("header announces 4 images of 28x28"), "{e}");

    // Corrupt gzip.
    std::fs::write(&images, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    let e = error_text(datasets::load(DatasetKind::FashionMnist, Some(d)).unwrap_err());
    assert!(e.contains("corrupt gzip data"), "{e}");

    // Missing file: the hint names Debian's package.
    std::fs::remove_file(&images).unwrap();
    let e = error_text(datasets::load(DatasetKind::FashionMnist, Some(d)).unwrap_err());
    assert!(
        e.contains("train-images-idx3-ubyte.gz: not found") && e.contains("dataset-fashion-mnist"),
        "{e}"
    );
}

#[test]
fn image_set_checks_its_parts() {
    let shape = cifar::SHAPE;
    assert!(ImageSet::new(shape, 10, vec![0; 3072], vec![1, 2]).is_err());
    assert!(ImageSet::new(shape, 10, vec![0; 3072], vec![10]).is_err());
    let set = ImageSet::new(shape, 10, vec![0; 3072 * 2], vec![1, 2]).unwrap();
    assert_eq!(set.subset(&[1, 1, 0]).unwrap().labels(), &[2, 2, 1]);
    assert!(set.subset(&[2]).is_err());
}

/// The real Fashion-MNIST from Debian's package, when it is installed.
#[test]
fn debian_fashion_mnist_when_installed() {
    if !Path::new(fashion::DEBIAN_DIR)
        .join("train-images-idx3-ubyte.gz")
        .exists()
    {
        eprintln!("skipped: {} not installed", fashion::DEBIAN_DIR);
        return;
    }
    let data = datasets::load(DatasetKind::FashionMnist, None).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    assert_eq!(data.train.class_counts(), vec![6000; 10]);
    assert_eq!(data.test.class_counts(), vec![1000; 10]);
}

/// A gzipped IDX image header announcing `n` 28x28 images, followed by `payload` zero bytes.
fn gz_idx(n: u32, payload: u64) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for w in [0x0803u32, n, 28, 28] {
        gz.write_all(&w.to_be_bytes()).unwrap();
    }
    let zeros = vec![0u8; 1 << 20];
    let mut left = payload;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        gz.write_all(&zeros[..k]).unwrap();
        left -= k as u64;
    }
    gz.finish().unwrap()
}

#[test]
fn a_gzip_bomb_is_refused_one_byte_past_what_its_header_announces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    // The header announces 10 images (7,840 bytes); 64 MiB of zeros follow, in about 64 KB.
    let bomb = gz_idx(10, 64 << 20);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    std::fs::write(&path, &bomb).unwrap();
    let e = error_text(fashion::read_images(&path).unwrap_err());
    assert!(
        e.ends_with(
            "train-images-idx3-ubyte.gz: more than 7856 bytes, but the header announces 10 images of 28x28 (7856 bytes)"
        ),
        "{e}"
    );
    // One image short, and exactly right.
    std::fs::write(&path, gz_idx(10, 9 * 784)).unwrap();
    let e = error_text(fashion::read_images(&path).unwrap_err());
    assert!(
        e.contains(": 7072 bytes, but the header announces 10 images"),
        "{e}"
    );
    std::fs::write(&path, gz_idx(10, 10 * 784)).unwrap();
    assert_eq!(fashion::read_images(&path).unwrap().0, 10);
}

#[test]
fn an_idx_header_announcing_too_much_is_refused_before_reading_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train-images-idx3-ubyte");
    // 4e9 images of 65535x65535: the product overflows u64.
    let mut raw = Vec::new();
    for w in [0x0803u32, u32::MAX, 65_535, 65_535] {
        raw.extend(w.to_be_bytes());
    }
    std::fs::write(&path, &raw).unwrap();
    let e = error_text(fashion::read_images(&path).unwrap_err());
    assert!(
        e.contains(
            "the header announces 4294967295 images of 65535x65535, more than the 1073741824 bytes"
        ),
        "{e}"
    );
    // The same through gzip.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let e = error_text(fashion::read_images(&path).unwrap_err());
    assert!(e.contains("more than the 1073741824 bytes"), "{e}");
    // A plain file whose length differs from its header is refused from its length alone.
    let mut raw = Vec::new();
    for w in [0x0801u32, 1_000_000] {
        raw.extend(w.to_be_bytes());
    }
    std::fs::write(&path, &raw).unwrap();
    let e = error_text(fashion::read_labels(&path, 10).unwrap_err());
    assert!(
        e.ends_with(": 8 bytes, but the header announces 1000000 labels (1000008 bytes)"),
        "{e}"
    );
}

#[test]
fn devices_and_fifos_are_refused_by_name() {
    let e = cifar::read_file(Path::new("/dev/zero"), Cifar::Ten).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path == Path::new("/dev/zero")),
        "{e}"
    );
    assert_eq!(
        std::error::Error::source(&e).unwrap().to_string(),
        "is a character device, not a regular file"
    );
    // The cause is printed once: by the chain, not again in the message.
    assert_eq!(e.to_string(), "/dev/zero");

    let dir = tempfile::tempdir().unwrap();
    for name in [
        "test_batch.bin",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        let fifo = dir.path().join(name);
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let e = cifar::read_file(&dir.path().join("test_batch.bin"), Cifar::Ten).unwrap_err();
    assert_eq!(
        std::error::Error::source(&e).unwrap().to_string(),
        "is a FIFO, not a regular file"
    );
    // Found under its name (not skipped as absent), then refused.
    let e = fashion::read_split(dir.path(), "t10k").unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path.ends_with("t10k-images-idx3-ubyte.gz")),
        "{e}"
    );
}

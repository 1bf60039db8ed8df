//! The data bundled in data/sample/ reads with the real readers and is what data/README.md says.

use std::path::PathBuf;

use datasets::{DatasetKind, cifar};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sample")
}

#[test]
fn fashion_mnist_sample_is_class_balanced() {
    let data = datasets::load(
        DatasetKind::FashionMnist,
        Some(&sample().join("fashion-mnist")),
    )
    .unwrap();
    assert_eq!(data.train.class_counts(), vec![500; 10]);
    assert_eq!(data.test.class_counts(), vec![100; 10]);
}

#[test]
fn cifar10_fixture_holds_the_first_20_real_test_images() {
    let set =
        cifar::read_file(&sample().join("cifar10/test_batch.bin"), cifar::Cifar::Ten).unwrap();
    // The labels of CIFAR-10's first 20 test images (cat, ship, ship, airplane, frog, ...).
    assert_eq!(
        set.labels(),
        &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
    // Real photographs: every image uses a wide range of values in each colour plane.
    for i in 0..20 {
        for plane in set.image(i).chunks(1024) {
            let (lo, hi) = (plane.iter().min().unwrap(), plane.iter().max().unwrap());
            assert!(hi - lo > 60, "image {i}: range {lo}..{hi}");
        }
    }
}

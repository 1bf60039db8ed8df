//! Augmentation follows torchvision's Pad + RandomCrop + RandomHorizontalFlip exactly, batches
//! are deterministic for a seed whatever the thread count, and normalization is the formula.

use datasets::transform::{Augment, AugmentKey, Normalize, assemble, epoch_order};
use datasets::{ImageSet, ImageShape};

const SHAPE: ImageShape = ImageShape {
    channels: 2,
    height: 6,
    width: 5,
};

/// Images whose every pixel value is distinct and encodes (image, channel, row, column).
fn set(n: usize) -> ImageSet {
    let pixels = (0..n * SHAPE.pixels())
        .map(|p| (p % 251) as u8 + 1)
        .collect();
    ImageSet::new(SHAPE, 10, pixels, (0..n).map(|i| (i % 10) as u16).collect()).unwrap()
}

fn identity() -> Normalize {
    // x / 255 undone: (x/255 - 0) / (1/255) = x.
    Normalize {
        mean: vec![0.0; 2],
        std: vec![1.0 / 255.0; 2],
    }
}

#[test]
fn normalization_is_the_formula() {
    let s = set(3);
    let norm = Normalize {
        mean: vec![0.5, 0.25],
        std: vec![0.2, 0.1],
    };
    let b = assemble(&s, &[2, 0], &norm, None);
    assert_eq!(b.labels, vec![2, 0]);
    assert_eq!(b.images.len(), 2 * SHAPE.pixels());
    for (k, &i) in [2usize, 0].iter().enumerate() {
        for p in 0..SHAPE.pixels() {
            let ch = p / 30;
            let expected = (f32::from(s.image(i)[p]) / 255.0 - norm.mean[ch]) / norm.std[ch];
            assert_eq!(b.images[k * SHAPE.pixels() + p], expected);
        }
    }
}

#[test]
fn every_augmented_image_is_a_padded_crop_maybe_mirrored() {
    let s = set(40);
    let indices: Vec<usize> = (0..40).collect();
    let aug = Augment {
        pad: 2,
        hflip: true,
    };
    let b = assemble(
        &s,
        &indices,
        &identity(),
        Some((aug, AugmentKey { seed: 9, epoch: 3 })),
    );
    let (h, w) = (6isize, 5isize);
    let mut flips = 0;
    let mut offsets = std::collections::HashSet::new();
    for (k, &i) in indices.iter().enumerate() {
        let out = &b.images[k * 60..(k + 1) * 60];
        let src = s.image(i);
        // Find the (dy, dx, flip) that explains the output; exactly one must.
        let mut found = Vec::new();
        for dy in -2..=2isize {
            for dx in -2..=2isize {
                for flip in [false, true] {
                    let ok = (0..2).all(|ch| {
                        (0..h).all(|r| {
                            (0..w).all(|c| {
                                let cc = if flip { w - 1 - c } else { c };
                                let (y, x) = (r + dy, cc + dx);
                                let v = if (0..h).contains(&y) && (0..w).contains(&x) {
                                    src[(ch * 30 + y * w + x) as usize]
                                } else {
                                    0
                                };
                                (out[(ch * 30 + r * w + c) as usize] - f32::from(v)).abs() < 1e-3
                            })
                        })
                    });
                    if ok {
                        found.push((dy, dx, flip));
                    }
                }
            }
        }
        assert_eq!(found.len(), 1, "image {i}: {found:?}");
        flips += usize::from(found[0].2);
        offsets.insert((found[0].0, found[0].1));
    }
    // Random, not stuck: both flip states and many offsets appear.
    assert!(flips > 5 && flips < 35, "{flips} flips of 40");
    assert!(offsets.len() > 10, "{} distinct offsets", offsets.len());
}

#[test]
fn batches_are_the_same_whatever_the_thread_count() {
    let s = set(257);
    let indices = epoch_order(257, 5, 2);
    let key = AugmentKey { seed: 5, epoch: 2 };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| assemble(&s, &indices, &identity(), Some((Augment::CIFAR, key))))
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(5));
    // And the same image gets the same augmentation in a different batch position.
    let alone = assemble(
        &s,
        &indices[10..11],
        &identity(),
        Some((Augment::CIFAR, key)),
    );
    assert_eq!(alone.images[..], one.images[10 * 60..11 * 60]);
    // Another epoch draws differently.
    let other = assemble(
        &s,
        &indices,
        &identity(),
        Some((Augment::CIFAR, AugmentKey { seed: 5, epoch: 3 })),
    );
    assert_ne!(one, other);
}

#[test]
fn epoch_order_is_a_seeded_permutation() {
    let a = epoch_order(1000, 1, 0);
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_eq!(a, epoch_order(1000, 1, 0));
    assert_ne!(a, epoch_order(1000, 1, 1));
    assert_ne!(a, epoch_order(1000, 2, 0));
    assert_ne!(a, (0..1000).collect::<Vec<_>>());
}

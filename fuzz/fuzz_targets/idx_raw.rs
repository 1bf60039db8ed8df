//! Fashion-MNIST's IDX files, uncompressed: the input as an image file and as a label file, and,
//! when it reads as 28x28 images, as the images of a split with matching labels (`read_split`,
//! which pads them to 32x32).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prunebench_fuzz::{put, scratch};

fuzz_target!(|data: &[u8]| {
    prunebench_fuzz::idx::check(&scratch(), |dir, name| put(dir, name, data));
});

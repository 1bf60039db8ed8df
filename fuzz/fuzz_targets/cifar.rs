//! A CIFAR binary batch (`data_batch_N.bin`, `test.bin`), read as CIFAR-10 and as CIFAR-100.
#![no_main]

use datasets::cifar::{Cifar, read_file};
use libfuzzer_sys::fuzz_target;
use prunebench_fuzz::{put, scratch};

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let path = put(&dir, "test_batch.bin", data);
    for cifar in [Cifar::Ten, Cifar::Hundred] {
        if let Ok(set) = read_file(&path, cifar) {
            let _ = set.class_counts();
        }
    }
});

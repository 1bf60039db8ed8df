//! Fashion-MNIST's IDX files, gzipped. The first byte chooses what the rest is: even, a gzip
//! stream as found on disk (the fuzzer mutates the compressed bytes, so the decoder sees corrupt
//! and oversized streams); odd, IDX bytes that are compressed here first (the fuzzer mutates
//! the IDX content behind a valid gzip stream).
#![no_main]

use std::io::Write;

use flate2::{Compression, write::GzEncoder};
use libfuzzer_sys::fuzz_target;
use prunebench_fuzz::{put, scratch};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        // The reader gunzips only what starts with gzip's magic; keep the input on that path.
        if rest.starts_with(&[0x1f, 0x8b]) {
            rest.to_vec()
        } else {
            [&[0x1f, 0x8b][..], rest].concat()
        }
    } else {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(rest).expect("gzip into memory");
        gz.finish().expect("gzip into memory")
    };
    prunebench_fuzz::idx::check(&scratch(), |dir, name| {
        put(dir, &format!("{name}.gz"), &bytes)
    });
});

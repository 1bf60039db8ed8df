//! The checkpoint loader: `model.safetensors` (config in its metadata, or `config.json` beside
//! it) through `Model::load`, which also builds the network from the tensors.
//!
//! Input: `lib::split` into (config.json, model.safetensors); an empty config part writes no
//! `config.json`.
#![no_main]

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use models::Model;
use prunebench_fuzz::{put, scratch, split};

fuzz_target!(|data: &[u8]| {
    let (config, weights) = split(data);
    let dir = scratch();
    put(&dir, models::checkpoint::WEIGHTS_FILE, weights);
    if !config.is_empty() {
        put(&dir, models::checkpoint::CONFIG_FILE, config);
    }
    if let Ok(model) = Model::load(&dir, &Device::Cpu) {
        // What `model info` and `eval` do next with a loaded checkpoint.
        let _ = model.config().name();
        let _ = model.config().channel_groups();
    }
});

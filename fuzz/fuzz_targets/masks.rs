//! `masks.safetensors` as retraining loads it (`Masks::load`), then used as retraining uses it:
//! its sparsity, and applied to a small ResNet-8's weights and variables.
#![no_main]

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use prune_core::Masks;
use prunebench_fuzz::{put, scratch, small_model};

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let path = put(&dir, prune_core::MASKS_FILE, data);
    let Ok(masks) = Masks::load(&path, &Device::Cpu) else {
        return;
    };
    let _ = masks.sparsity();
    let _ = masks.per_tensor();
    let model = small_model();
    if let Ok(weights) = model.tensors() {
        let _ = masks.apply(&weights);
    }
    // On a copy: the shared model's variables must not change between executions.
    if let Ok(copy) = models::Model::from_tensors(
        model.config(),
        model.tensors().unwrap_or_default(),
        &Device::Cpu,
    ) {
        let _ = masks.mask_vars(&copy.trainable_vars());
    }
});

//! `plan.json`: parsed as `prunebench prune --plan` parses it (the whole file, serde_json), then
//! applied to a small ResNet-8 as `prune --plan` applies it (`Model::prune`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prune_core::PruningPlan;
use prunebench_fuzz::small_model;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(plan) = serde_json::from_str::<PruningPlan>(text) else {
        return;
    };
    let _ = plan.kept_widths();
    let _ = plan.sparsity();
    let _ = small_model().prune(&plan);
});

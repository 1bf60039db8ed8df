//! Step hooks: what a training loop does around SGD besides the update itself. The loop
//! ([`fit`](crate::engine::fit)) calls every hook at the same points, so a new pruning-aware
//! training rule is a hook, not a new loop.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use models::Model;
use prune_core::{MASKS_FILE, Masks};

use crate::Result;

/// Called by the training loop at fixed points of every iteration and epoch. Every method has
/// an empty default.
pub trait StepHook {
    /// After the backward pass, before the optimizer reads the gradients.
    fn after_backward(&mut self, _grads: &mut GradStore) -> Result<()> {
        Ok(())
    }
    /// After the optimizer updated the weights.
    fn after_step(&mut self) -> Result<()> {
        Ok(())
    }
    /// After the last iteration of an epoch, before evaluation.
    fn after_epoch(&mut self, _model: &Model) -> Result<()> {
        Ok(())
    }
    /// Writes what the hook must carry into a checkpoint directory (the masks), beside the
    /// model.
    fn save(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
}

/// Keeps pruned weights at exactly zero (DESIGN section 6): they get no gradient, and are
/// re-masked after the step, since weight decay and momentum would otherwise move them.
pub struct HoldMasks {
    masks: Masks,
    vars: Vec<(String, Var)>,
}

impl HoldMasks {
    /// Holds `masks` over the model's trainable variables `vars`.
    pub fn new(masks: Masks, vars: Vec<(String, Var)>) -> Self {
        Self { masks, vars }
    }
}

impl StepHook for HoldMasks {
    fn after_backward(&mut self, grads: &mut GradStore) -> Result<()> {
        Ok(self.masks.mask_gradients(grads, &self.vars)?)
    }

    fn after_step(&mut self) -> Result<()> {
        Ok(self.masks.mask_vars(&self.vars)?)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        Ok(self.masks.save(&dir.join(MASKS_FILE))?)
    }
}

/// Soft filter pruning (He et al. 2018, `get_filter_codebook`): after every epoch, in every
/// prunable layer (the score tensor of each channel group), the `int(n * rate)` filters with the
/// smallest l2 norm are set to zero. Only the filters: their BatchNorm and readers stay, so the
/// filters can grow back during the next epoch.
pub struct SoftFilterPruning {
    rate: f64,
}

impl SoftFilterPruning {
    /// Zeroes `rate` (in `[0, 1)`) of each group's filters after every epoch.
    pub fn new(rate: f64) -> Self {
        Self { rate }
    }
}

impl StepHook for SoftFilterPruning {
    fn after_epoch(&mut self, model: &Model) -> Result<()> {
        let vars: HashMap<String, Var> = model.trainable_vars().into_iter().collect();
        for group in model.config().channel_groups() {
            let Some(var) = vars.get(&group.score_tensor) else {
                continue;
            };
            let w = var.as_tensor();
            let n = w.dim(0)?;
            let zeroed = (n as f64 * self.rate) as usize;
            if zeroed == 0 {
                continue;
            }
            // The survivors are the `n - zeroed` largest norms by prune-core's selection (ties
            // to the higher index), the same choice every structured method makes.
            let norms = prune_core::l2_filter_norms(w)?;
            let keep = prune_core::select_top(&group.name, &norms, n - zeroed)?;
            let mut mask = vec![0f32; n];
            for &i in keep.indices() {
                mask[i] = 1.0;
            }
            let mut shape = vec![1; w.rank()];
            shape[0] = n;
            let mask = Tensor::from_vec(mask, shape, w.device())?.to_dtype(w.dtype())?;
            var.set(&w.broadcast_mul(&mask)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use models::ModelConfig;

    use super::*;

    fn model() -> Model {
        let config = ModelConfig::from_name("resnet20", 10, 1).unwrap();
        Model::init(&config, 3, &Device::Cpu).unwrap()
    }

    fn filter_norms(model: &Model, name: &str) -> Vec<f32> {
        let vars: HashMap<String, Var> = model.trainable_vars().into_iter().collect();
        prune_core::l2_filter_norms(vars[name].as_tensor()).unwrap()
    }

    #[test]
    fn soft_pruning_zeroes_the_smallest_filters_of_every_group() {
        let model = model();
        let group = &model.config().channel_groups()[0];
        let before = filter_norms(&model, &group.score_tensor);
        SoftFilterPruning::new(0.3).after_epoch(&model).unwrap();
        let after = filter_norms(&model, &group.score_tensor);
        let n = before.len();
        let zeroed = (n as f64 * 0.3) as usize;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| before[a].total_cmp(&before[b]));
        for (rank, &i) in order.iter().enumerate() {
            if rank < zeroed {
                assert_eq!(after[i], 0.0, "filter {i} is among the {zeroed} smallest");
            } else {
                assert_eq!(after[i], before[i], "filter {i} is kept untouched");
            }
        }
        // Every group, not only the first.
        for g in model.config().channel_groups() {
            let norms = filter_norms(&model, &g.score_tensor);
            let zeros = norms.iter().filter(|&&x| x == 0.0).count();
            assert_eq!(zeros, (g.channels as f64 * 0.3) as usize, "{}", g.name);
        }
    }

    #[test]
    fn a_zero_rate_touches_nothing() {
        let model = model();
        let before = model.tensors().unwrap();
        SoftFilterPruning::new(0.0).after_epoch(&model).unwrap();
        let after = model.tensors().unwrap();
        for (name, t) in &before {
            let d = (t - &after[name])
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{name}");
        }
    }

    #[test]
    fn held_masks_keep_pruned_weights_at_zero_through_a_step() {
        let model = model();
        let vars = model.trainable_vars();
        let name = "conv1.weight";
        let var = vars.iter().find(|(n, _)| n == name).unwrap().1.clone();
        let shape = var.as_tensor().dims().to_vec();
        let count: usize = shape.iter().product();
        let bits: Vec<f32> = (0..count).map(|i| (i % 2) as f32).collect();
        let mask = Tensor::from_vec(bits, shape.as_slice(), &Device::Cpu).unwrap();
        let masks = Masks::new([(name.to_string(), mask.clone())]).unwrap();
        let mut hook = HoldMasks::new(masks, vars.clone());
        // A "step" that moves every weight: the hook must put the masked ones back to zero.
        var.set(&(var.as_tensor() + 1.0).unwrap()).unwrap();
        hook.after_step().unwrap();
        let w = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let m = mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (x, keep) in w.iter().zip(&m) {
            if *keep == 0.0 {
                assert_eq!(*x, 0.0);
            } else {
                assert_ne!(*x, 0.0);
            }
        }
        // And their gradients are zero before the optimizer sees them.
        let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        let mut grads = loss.backward().unwrap();
        hook.after_backward(&mut grads).unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (x, keep) in g.iter().zip(&m) {
            if *keep == 0.0 {
                assert_eq!(*x, 0.0);
            }
        }
    }
}

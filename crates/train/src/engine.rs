//! The training loop: shuffled, augmented batches; SGD stepped with the schedule's rate (and
//! momentum) every iteration; evaluation on val and test after every epoch; a checkpoint per
//! epoch and a best-val model; one metrics line per epoch; `result.json` at the end.
//!
//! [`train`] opens (or resumes) the run and builds what the spec asks for; [`fit`] is the loop,
//! with the pruning rules as [`StepHook`]s and the files as a [`Checkpointer`].

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{D, DType, Device, ModuleT, Tensor};
use datasets::transform::{AugmentKey, Normalize, assemble, epoch_order};
use datasets::{Dataset, ImageSet};
use models::Model;
use prune_core::{MASKS_FILE, Masks};
use schedules::{Budget, LrSchedule};
use serde::{Deserialize, Serialize};

pub use crate::checkpoint::OPTIMIZER_FILE;
use crate::checkpoint::{Checkpointer, KeepBest};
use crate::hooks::{HoldMasks, SoftFilterPruning, StepHook};
pub use crate::run::EpochMetrics;
use crate::run::{RunDir, RunState, read_json, resolve_model_dir, write_json};
use crate::sgd::Sgd;
use crate::{Error, ExperimentSpec, Init, Result};

/// `result.json`: the summary of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The spec's hash.
    pub spec_hash: String,
    /// The model's name (e.g. `resnet56`, `resnet56-pruned`).
    pub model: String,
    /// Parameters of the model.
    pub params: u64,
    /// Multiply-adds of one forward pass.
    pub flops: u64,
    /// Epochs trained.
    pub epochs: u32,
    /// The epoch with the best validation accuracy (0-based).
    pub best_epoch: u32,
    /// That best validation accuracy, in [0, 1].
    pub best_val_acc: f64,
    /// Test accuracy of the best-val model: the number the paper reports.
    pub test_acc: f64,
    /// Mean test cross-entropy of the best-val model.
    pub test_loss: f64,
    /// Test accuracy after the last epoch.
    pub final_test_acc: f64,
    /// The best-val model's directory, relative to the run directory.
    pub best_model: String,
    /// Wall-clock seconds of training, summed over the epochs (across resumes).
    pub seconds: f64,
}

/// Accuracy and loss of a model on a set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Fraction classified correctly, in [0, 1].
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Number of images.
    pub images: usize,
}

/// Follows a run as it goes (progress bars, logs). Every method has an empty default.
pub trait Observer {
    /// An epoch starts with `steps` iterations.
    fn epoch_start(&mut self, _epoch: u32, _epochs: u32, _steps: usize) {}
    /// An iteration finished with this batch loss and the epoch's running accuracy.
    fn step(&mut self, _iteration: usize, _loss: f32, _running_acc: f64) {}
    /// An epoch finished and was checkpointed.
    fn epoch_end(&mut self, _metrics: &EpochMetrics) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue a run that was stopped (its spec must be the same).
    pub resume: bool,
    /// Stop (as if killed) after completing this many epochs in this call: for tests and for
    /// splitting long runs into jobs.
    pub stop_after: Option<u32>,
    /// The device (CPU when `None`).
    pub device: Option<Device>,
}

/// The data of a run, split and limited as its spec says.
struct Prepared {
    train: ImageSet,
    val: ImageSet,
    test: ImageSet,
    normalize: Normalize,
}

fn prepare(spec: &ExperimentSpec) -> Result<Prepared> {
    let Dataset { train, test, .. } = datasets::load(spec.dataset, spec.data_dir.as_deref())?;
    let split = datasets::split::train_val(train.len(), spec.val_fraction, spec.split_seed);
    let mut train_idx = split.train;
    if let Some(limit) = spec.limit_train {
        train_idx.truncate(limit);
    }
    if train_idx.is_empty() {
        return Err(Error::Config(
            "no training images left after the split".into(),
        ));
    }
    let mut val_idx = split.val;
    let mut test_idx: Vec<usize> = (0..test.len()).collect();
    if let Some(limit) = spec.limit_eval {
        val_idx.truncate(limit);
        test_idx.truncate(limit);
    }
    // The best-val model is chosen on val and reported on test: an empty one would report 0%
    // as if it were a result.
    for (name, n) in [("validation", val_idx.len()), ("test", test_idx.len())] {
        if n == 0 {
            return Err(Error::Config(format!(
                "the {name} split of {} is empty (check --limit-eval and the validation fraction)",
                spec.dataset
            )));
        }
    }
    let test = if test_idx.len() == test.len() {
        test
    } else {
        test.subset(&test_idx)?
    };
    Ok(Prepared {
        val: train.subset(&val_idx)?,
        train: train.subset(&train_idx)?,
        test,
        normalize: spec.dataset.normalize(),
    })
}

fn check_spec(spec: &ExperimentSpec) -> Result<()> {
    if spec.batch_size == 0 || spec.eval_batch_size == 0 {
        return Err(Error::Config("batch sizes must be at least 1".into()));
    }
    if spec.epochs == 0 {
        return Err(Error::Config("a run needs at least 1 epoch".into()));
    }
    spec.sgd.check()?;
    if let Some(rate) = spec.soft_prune
        && !(0.0..1.0).contains(&rate)
    {
        return Err(Error::Config(format!(
            "the soft-pruning rate must be in [0, 1), got {rate}"
        )));
    }
    if !(0.0..1.0).contains(&spec.val_fraction) {
        return Err(Error::Config(format!(
            "the validation fraction must be in [0, 1), got {}",
            spec.val_fraction
        )));
    }
    check_fits(&spec.model, spec.dataset)
}

/// Whether `model` takes `dataset`'s images and classes: an error saying both where not.
pub fn check_fits(model: &models::ModelConfig, dataset: datasets::DatasetKind) -> Result<()> {
    let shape = dataset.shape();
    if model.in_channels() != shape.channels || model.num_classes() != dataset.num_classes() {
        return Err(Error::Config(format!(
            "the model takes {} channels and {} classes, {} has {} and {}",
            model.in_channels(),
            model.num_classes(),
            dataset,
            shape.channels,
            dataset.num_classes()
        )));
    }
    Ok(())
}

/// Runs (or resumes, or returns the result of) the experiment `spec` in `run_dir`.
pub fn train(
    spec: &ExperimentSpec,
    run_dir: &Path,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<RunResult> {
    check_spec(spec)?;
    let device = opts.device.clone().unwrap_or(Device::Cpu);
    let run = RunDir::new(run_dir);
    let started_before = run.spec().is_file();
    if started_before {
        // By hash, not equality: a spec whose checkpoint is named by content may have been
        // written with another path (the runs directory was moved) and is the same experiment.
        let existing: ExperimentSpec = read_json(&run.spec())?;
        if existing.hash() != spec.hash() {
            return Err(Error::RunDir(format!(
                "{} holds another experiment (spec {} there, {} asked); use another --out",
                run.root().display(),
                existing.hash(),
                spec.hash()
            )));
        }
        if run.result().is_file() {
            tracing::info!(dir = %run.root().display(), "finished already; nothing to do");
            return read_json(&run.result());
        }
        if !opts.resume && run.state().is_file() {
            return Err(Error::RunDir(format!(
                "{} holds a started run of this experiment; pass --resume to continue it",
                run.root().display()
            )));
        }
    }
    // Everything that can refuse the spec (data, schedule, starting model, masks) before the
    // run directory: a refused spec leaves nothing behind to block the next run.
    let data = prepare(spec)?;
    let steps_per_epoch = data.train.len().div_ceil(spec.batch_size);
    let schedule = spec.schedule.build(Budget::new(
        spec.epochs,
        u32::try_from(steps_per_epoch)
            .map_err(|_| Error::Config("too many iterations per epoch".into()))?,
    )?)?;
    let state = if started_before {
        run.read_state()?
    } else {
        None
    };
    if let Some(s) = &state {
        s.check_for(&run.state(), spec.epochs, steps_per_epoch as u64)?;
    }
    let model = match &state {
        Some(s) => {
            let dir = run.join(&s.last_dir);
            let model = Model::load(&dir, &device)?;
            if *model.config() != spec.model {
                return Err(Error::Corrupt {
                    path: dir,
                    problem: format!(
                        "holds a {} model, the run's spec asks for {}",
                        model.config().name(),
                        spec.model.name()
                    ),
                });
            }
            model
        }
        None => initial_model(spec, &device)?,
    };
    let mut hooks: Vec<Box<dyn StepHook>> = Vec::new();
    if let Some(masks) = initial_masks(spec, &device)? {
        hooks.push(Box::new(HoldMasks::new(masks, model.trainable_vars())));
    }
    if let Some(rate) = spec.soft_prune {
        hooks.push(Box::new(SoftFilterPruning::new(rate)));
    }
    let mut sgd = Sgd::new(model.trainable_vars(), spec.sgd)?;
    if !started_before {
        fs::create_dir_all(run.root()).map_err(|source| Error::Io {
            path: run.root().to_path_buf(),
            source,
        })?;
        write_json(&run.spec(), spec)?;
    }
    if let Some(s) = &state {
        let path = run.join(&s.last_dir).join(OPTIMIZER_FILE);
        let tensors =
            candle_core::safetensors::load(&path, &device).map_err(|e| Error::Corrupt {
                path: path.clone(),
                problem: e.to_string(),
            })?;
        sgd.load_state(tensors)?;
    }
    let mut state = state.unwrap_or(RunState {
        epochs_done: 0,
        global_step: 0,
        last_dir: String::new(),
        best: None,
    });
    let mut history = run.read_metrics(state.epochs_done)?;
    if state.epochs_done > 0 {
        tracing::info!(epochs_done = state.epochs_done, "resuming");
    }
    let mut job = Fit {
        spec,
        data: &data,
        model: &model,
        sgd: &mut sgd,
        schedule: &schedule,
        hooks: &mut hooks,
        run: &run,
        checkpointer: Checkpointer::new(&run, KeepBest),
        fast: (kernels::Backward::current() == kernels::Backward::Ours).then(models::FastStep::new),
        announced: false,
    };
    job.fit(&mut state, &mut history, opts.stop_after, observer)?;

    let best = state
        .best
        .clone()
        .ok_or_else(|| Error::Config("no epoch was run".into()))?;
    let last = history
        .last()
        .cloned()
        .ok_or_else(|| Error::Config("no metrics".into()))?;
    let result = RunResult {
        spec_hash: spec.hash(),
        model: spec.model.name(),
        params: spec.model.params(),
        flops: spec.model.flops(),
        epochs: spec.epochs,
        best_epoch: best.epoch,
        best_val_acc: best.val_acc,
        test_acc: best.test_acc,
        test_loss: best.test_loss,
        final_test_acc: last.test_acc,
        best_model: best.dir,
        seconds: history.iter().map(|m| m.seconds).sum(),
    };
    write_json(&run.result(), &result)?;
    Ok(result)
}

/// A step's gradients: computed already (our own backward pass), or still to compute from the loss.
enum Pending {
    Done(candle_core::backprop::GradStore),
    Backward(Tensor),
}

/// One run's loop and what it works on.
struct Fit<'a> {
    spec: &'a ExperimentSpec,
    data: &'a Prepared,
    model: &'a Model,
    sgd: &'a mut Sgd,
    schedule: &'a LrSchedule,
    hooks: &'a mut Vec<Box<dyn StepHook>>,
    run: &'a RunDir,
    checkpointer: Checkpointer<'a>,
    /// Our own backward pass (unless `PRUNEBENCH_BACKWARD=candle`) where the model has one; it gives
    /// the same numbers as candle's autograd, bit for bit (`models/tests/fast_step.rs`).
    fast: Option<models::FastStep>,
    /// Whether the backward pass in use has been logged.
    announced: bool,
}

impl Fit<'_> {
    /// Trains from `state` to the spec's last epoch: per epoch, the iterations, the hooks'
    /// end of epoch, evaluation, the metrics line and the checkpoint that commits the epoch.
    /// `stop_after` ends the call (as if killed) after that many epochs.
    fn fit(
        &mut self,
        state: &mut RunState,
        history: &mut Vec<EpochMetrics>,
        stop_after: Option<u32>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let (spec, data) = (self.spec, self.data);
        let steps = data.train.len().div_ceil(spec.batch_size);
        let mut done_this_call = 0;
        while state.epochs_done < spec.epochs {
            if stop_after.is_some_and(|n| done_this_call >= n) {
                return Err(Error::RunDir(format!(
                    "stopped after {done_this_call} epoch(s) as asked; resume to continue"
                )));
            }
            let epoch = state.epochs_done;
            let started = Instant::now();
            observer.epoch_start(epoch, spec.epochs, steps);
            let (train_loss, train_acc) = self.epoch(state, observer)?;
            for hook in self.hooks.iter_mut() {
                hook.after_epoch(self.model)?;
            }
            let train_secs = started.elapsed().as_secs_f64();
            // A diverged model stops the run before its epoch is written, as a NaN training
            // loss does: the last good checkpoint stays the current one.
            let eval = |set, split| {
                evaluate(self.model, set, &data.normalize, spec.eval_batch_size).map_err(
                    |e| match e {
                        Error::NonFiniteEval { value, .. } => Error::NonFiniteEval {
                            split,
                            value,
                            context: format!(" after epoch {epoch}; {}", kept(state, self.run)),
                        },
                        e => e,
                    },
                )
            };
            let val = eval(&data.val, "validation")?;
            let test = eval(&data.test, "test")?;
            let metrics = EpochMetrics {
                epoch,
                lr: self.schedule.lr(u64::from(epoch) * steps as u64),
                train_loss,
                train_acc,
                val_acc: val.accuracy,
                val_loss: val.loss,
                test_acc: test.accuracy,
                test_loss: test.loss,
                seconds: started.elapsed().as_secs_f64(),
                images_per_sec: data.train.len() as f64 / train_secs,
            };
            // Metrics first, then the checkpoint whose state.json commits the epoch: a kill
            // between the two leaves a line that resuming drops and recomputes.
            history.push(metrics.clone());
            self.run.write_metrics(history)?;
            self.checkpointer
                .commit(self.model, self.sgd, self.hooks, state, &metrics)?;
            tracing::info!(
                epoch,
                train_loss,
                val_acc = val.accuracy,
                test_acc = test.accuracy,
                "epoch done"
            );
            observer.epoch_end(&metrics);
            done_this_call += 1;
        }
        Ok(())
    }

    /// One epoch's iterations; returns the mean training loss and accuracy.
    fn epoch(&mut self, state: &mut RunState, observer: &mut dyn Observer) -> Result<(f64, f64)> {
        let (spec, data, model) = (self.spec, self.data, self.model);
        let epoch = state.epochs_done;
        let order = epoch_order(data.train.len(), spec.seed, u64::from(epoch));
        let key = AugmentKey {
            seed: spec.seed,
            epoch: u64::from(epoch),
        };
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        for (iteration, indices) in order.chunks(spec.batch_size).enumerate() {
            let batch = assemble(
                &data.train,
                indices,
                &data.normalize,
                Some((spec.augment, key)),
            );
            let (x, y) = to_tensors(&batch, model.device())?;
            let fast = match self.fast.as_mut() {
                Some(f) => f.step(model, &x, &y)?,
                None => None,
            };
            if !self.announced {
                let backward = if fast.is_some() {
                    "ours"
                } else {
                    "candle's autograd"
                };
                tracing::info!(backward, "training step");
                self.announced = true;
            }
            // The fast step has run its backward pass already; candle's path runs it below,
            // after the loss is known to be finite.
            let (logits, value, pending) = match fast {
                Some(s) => (s.logits, s.loss, Pending::Done(s.grads)),
                None => {
                    let logits = model.forward_t(&x, true)?;
                    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                    let value = loss.to_scalar::<f32>()?;
                    (logits, value, Pending::Backward(loss))
                }
            };
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    epoch,
                    iteration,
                    step: state.global_step,
                    value,
                    kept: kept(state, self.run),
                });
            }
            let mut grads = match pending {
                Pending::Done(grads) => grads,
                Pending::Backward(loss) => loss.backward()?,
            };
            for hook in self.hooks.iter_mut() {
                hook.after_backward(&mut grads)?;
            }
            let step = state.global_step;
            self.sgd
                .step(&grads, self.schedule.lr(step), self.schedule.momentum(step))?;
            for hook in self.hooks.iter_mut() {
                hook.after_step()?;
            }
            state.global_step += 1;
            loss_sum += f64::from(value) * batch.len() as f64;
            correct += count_correct(&logits, &y)?;
            seen += batch.len();
            observer.step(iteration, value, correct as f64 / seen as f64);
        }
        Ok((loss_sum / seen as f64, correct as f64 / seen as f64))
    }
}

fn initial_model(spec: &ExperimentSpec, device: &Device) -> Result<Model> {
    match &spec.init {
        Init::Fresh { seed } => Ok(Model::init(&spec.model, *seed, device)?),
        Init::Checkpoint { path, .. } => {
            let model = Model::load(&resolve_model_dir(path)?, device)?;
            if *model.config() != spec.model {
                return Err(Error::Config(format!(
                    "{} holds a {} model, the spec asks for {}",
                    path.display(),
                    model.config().name(),
                    spec.model.name()
                )));
            }
            Ok(model)
        }
    }
}

/// The masks of an unstructured-pruned starting checkpoint (`masks.safetensors` beside it):
/// 0/1 only (checked by the loader), for tensors of the spec's model, of their shapes.
fn initial_masks(spec: &ExperimentSpec, device: &Device) -> Result<Option<Masks>> {
    let Init::Checkpoint { path, .. } = &spec.init else {
        return Ok(None);
    };
    let file = resolve_model_dir(path)?.join(MASKS_FILE);
    if !file.is_file() {
        return Ok(None);
    }
    let masks = Masks::load(&file, device)?;
    spec.model.check_masks(&masks).map_err(|e| Error::Corrupt {
        path: file.clone(),
        problem: e.to_string(),
    })?;
    tracing::info!(file = %file.display(), sparsity = masks.sparsity()?, "keeping pruned weights at zero");
    Ok(Some(masks))
}

/// Where the last good checkpoint is, for the message of a run stopped by a non-finite number.
fn kept(state: &RunState, run: &RunDir) -> String {
    if state.last_dir.is_empty() {
        "no checkpoint was written yet".to_string()
    } else {
        format!(
            "the last good checkpoint (epoch {}) stays in {}",
            state.epochs_done - 1,
            run.join(&state.last_dir).display()
        )
    }
}

fn to_tensors(batch: &datasets::transform::Batch, device: &Device) -> Result<(Tensor, Tensor)> {
    let s = batch.shape;
    let x = Tensor::from_slice(
        &batch.images,
        (batch.len(), s.channels, s.height, s.width),
        device,
    )?;
    let y = Tensor::from_slice(&batch.labels, batch.len(), device)?;
    Ok((x, y))
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred
        .eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as usize)
}

/// Accuracy and mean cross-entropy of `model` on `set` in evaluation mode (running statistics).
/// An empty set is refused, and so is a loss that is not finite ([`Error::NonFiniteEval`]): a
/// diverged model has no accuracy worth reporting.
pub fn evaluate(
    model: &Model,
    set: &ImageSet,
    normalize: &Normalize,
    batch_size: usize,
) -> Result<Evaluation> {
    if set.is_empty() {
        return Err(Error::Config("cannot evaluate on an empty set".into()));
    }
    let indices: Vec<usize> = (0..set.len()).collect();
    let (mut loss_sum, mut correct) = (0f64, 0usize);
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = assemble(set, chunk, normalize, None);
        let (x, y) = to_tensors(&batch, model.device())?;
        let logits = model.infer(&x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()?;
        loss_sum += f64::from(loss) * chunk.len() as f64;
        correct += count_correct(&logits, &y)?;
    }
    let n = set.len() as f64;
    let loss = loss_sum / n;
    if !loss.is_finite() {
        return Err(Error::NonFiniteEval {
            split: "evaluation",
            value: loss,
            context: String::new(),
        });
    }
    Ok(Evaluation {
        accuracy: correct as f64 / n,
        loss,
        images: set.len(),
    })
}

/// Batches for a data-dependent pruning criterion (HRank, Taylor): the first `batches` batches of
/// `batch_size` images of `spec`'s training split (after its validation split and
/// `limit_train`), in the order an epoch of seed `seed` shuffles it, augmented as that epoch
/// would be, as images and class indices on `device`. HRank's reference takes its first 5
/// shuffled, augmented training batches of 128 the same way. Fewer batches come back where the
/// split holds fewer images.
pub fn scoring_batches(
    spec: &ExperimentSpec,
    batches: usize,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<(Tensor, Tensor)>> {
    if batches == 0 || batch_size == 0 {
        return Err(Error::Config(
            "scoring needs at least one batch of at least one image".into(),
        ));
    }
    let data = prepare(spec)?;
    let order = epoch_order(data.train.len(), seed, 0);
    let key = AugmentKey { seed, epoch: 0 };
    order
        .chunks(batch_size)
        .take(batches)
        .map(|indices| {
            let batch = assemble(
                &data.train,
                indices,
                &data.normalize,
                Some((spec.augment, key)),
            );
            to_tensors(&batch, device)
        })
        .collect()
}

/// Loads the model a checkpoint path stands for (see [`resolve_model_dir`]).
pub fn load_model(path: &Path, device: &Device) -> Result<(Model, PathBuf)> {
    let dir = resolve_model_dir(path)?;
    Ok((Model::load(&dir, device)?, dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::DatasetKind;
    use models::ModelConfig;

    #[test]
    fn limit_eval_takes_the_first_images_of_val_and_test() {
        let tmp = tempfile::tempdir().unwrap();
        datasets::fixtures::write_bars(tmp.path(), 40, 12).unwrap();
        let mut spec = ExperimentSpec::paper(
            DatasetKind::FashionMnist,
            ModelConfig::from_name("resnet20", 10, 1).unwrap(),
        );
        spec.data_dir = Some(tmp.path().to_path_buf());
        let all = prepare(&spec).unwrap();
        assert_eq!((all.val.len(), all.test.len()), (4, 12));
        spec.limit_eval = Some(3);
        let limited = prepare(&spec).unwrap();
        assert_eq!((limited.val.len(), limited.test.len()), (3, 3));
        assert_eq!(
            limited.train.len(),
            all.train.len(),
            "training is untouched"
        );
        // The first images, in the split's order: the same ones every run evaluates.
        let first = |s: &ImageSet| assemble(s, &[0, 1, 2], &spec.dataset.normalize(), None);
        assert_eq!(first(&limited.test).labels, first(&all.test).labels);
        assert_eq!(first(&limited.val).images, first(&all.val).images);
    }
}

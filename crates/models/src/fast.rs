//! A training step for the CIFAR ResNets whose backward pass is ours end to end.
//!
//! candle's autograd accumulates every node's gradient as `zeros_like + add` (a zeroed
//! allocation and a full pass per node) and runs its own ops single-threaded between ours. This
//! step runs the forward pass layer by layer on `f32` slices with the `kernels` crate's slice
//! ops ([`kernels::raw`]), keeps what the backward pass needs, and runs the backward pass by
//! hand: each activation's gradient is written once, into buffers that [`FastStep`] keeps
//! between batches (a step of a known shape allocates no activation memory).
//!
//! It computes what `forward_t(x, true)`, `cross_entropy` and `backward()` compute (the same
//! kernels, the same BatchNorm running-statistics update), so the gradients agree to float
//! rounding; `crates/models/tests/fast_step.rs` holds the two paths together. It applies to a
//! [`Network::ResNet`] on CPU `f32` tensors with our kernels in force and an 8x8 map before the
//! average pool (32x32 inputs); [`FastStep::step`] returns `None` elsewhere, before touching
//! anything, and the caller takes candle's path.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor, Var};
use kernels::BatchNormConfig;
use kernels::raw::{
    BatchNormSaved, ConvShape, Epilogue, batch_norm_train_add_relu_into, batch_norm_train_into,
};
use rayon::prelude::*;

use crate::error::Result;
use crate::layers::{BatchNorm, Conv2d};
use crate::model::{Model, Network};
use crate::resnet::{BasicBlock, ResNet};
use crate::vgg::{Feature, Vgg};

/// What one training step gives back: the loss, the logits (for accuracy) and every trainable
/// parameter's gradient, keyed as candle's `backward()` keys them (an optimizer or a gradient
/// hook cannot tell the two paths apart).
#[derive(Debug)]
pub struct TrainStep {
    /// The batch's mean cross-entropy.
    pub loss: f32,
    /// `[batch, classes]`.
    pub logits: Tensor,
    /// Gradients of the trainable variables.
    pub grads: GradStore,
    /// Wall-clock seconds of the forward pass with the loss; the rest of the call is the
    /// backward pass.
    pub forward_seconds: f64,
}

/// Runs fast training steps, keeping activation buffers from one batch to the next.
#[derive(Debug, Default)]
pub struct FastStep {
    pool: Pool,
}

/// Buffers by length: a step takes what it needs and gives everything back at its end, so the
/// next step of the same shape reuses them. Every kernel overwrites its whole output, so a
/// reused buffer needs no clearing.
#[derive(Debug, Default)]
struct Pool {
    free: HashMap<usize, Vec<Vec<f32>>>,
}

impl Pool {
    fn take(&mut self, len: usize) -> Vec<f32> {
        self.free
            .get_mut(&len)
            .and_then(Vec::pop)
            .unwrap_or_else(|| vec![0.0; len])
    }

    fn give(&mut self, v: Vec<f32>) {
        self.free.entry(v.len()).or_default().push(v);
    }
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn dims4(t: &Tensor) -> Result<[usize; 4]> {
    let (a, b, c, d) = t.dims4()?;
    Ok([a, b, c, d])
}

fn len(d: [usize; 4]) -> usize {
    d.iter().product()
}

/// A conv's shape and weight values for one step.
struct ConvPlan {
    shape: ConvShape,
    weight: Vec<f32>,
}

impl ConvPlan {
    fn new(conv: &Conv2d, input: [usize; 4]) -> Result<Self> {
        let shape = ConvShape::new(input, dims4(&conv.weight)?, conv.stride, conv.padding)?;
        Ok(Self {
            shape,
            weight: Vec::new(),
        })
    }
}

/// The shapes of a whole step, worked out before anything runs (so an unsupported model is
/// refused before a running statistic moves).
struct Plan {
    stem: ConvPlan,
    blocks: Vec<(ConvPlan, ConvPlan)>,
    /// `[batch, channels, 8, 8]`: the map the average pool reads.
    last: [usize; 4],
}

impl Plan {
    fn new(net: &ResNet, x: [usize; 4]) -> Result<Option<Self>> {
        let stem = ConvPlan::new(&net.conv1, x)?;
        let mut a = stem.shape.output_dims();
        let mut blocks = Vec::with_capacity(net.blocks.len());
        for b in &net.blocks {
            let c1 = ConvPlan::new(&b.conv1, a)?;
            let c2 = ConvPlan::new(&b.conv2, c1.shape.output_dims())?;
            let out = c2.shape.output_dims();
            let shortcut = match b.downsample_to {
                None => a,
                Some(planes) => [a[0], planes.max(a[1]), a[2] / 2, a[3] / 2],
            };
            if shortcut != out {
                return Ok(None);
            }
            blocks.push((c1, c2));
            a = out;
        }
        let (_, features) = net.fc.weight().dims2()?;
        if a[2] != 8 || a[3] != 8 || features != a[1] || net.fc.bias().is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            stem,
            blocks,
            last: a,
        }))
    }
}

/// One block's saved activations (all but its input, which the previous block saved).
struct BlockSaved {
    c1: Vec<f32>,
    bn1: BatchNormSaved,
    r1: Vec<f32>,
    c2: Vec<f32>,
    bn2: BatchNormSaved,
    out: Vec<f32>,
}

fn bn_forward(
    pool: &mut Pool,
    bn: &BatchNorm,
    x: &[f32],
    d: [usize; 4],
    relu: bool,
) -> Result<(BatchNormSaved, Vec<f32>)> {
    let (gamma, beta) = (values(&bn.weight)?, values(&bn.bias)?);
    let mut y = pool.take(x.len());
    let config: BatchNormConfig = bn.config(relu);
    let saved = batch_norm_train_into(x, (d[0], d[1], d[2] * d[3]), &gamma, &beta, config, &mut y)?;
    saved.update_running(config.momentum, &bn.running_mean, &bn.running_var)?;
    Ok((saved, y))
}

/// `out = relu(bn(x) + residual)`, BatchNorm in training mode (its running statistics
/// updated).
fn bn_add_relu(
    bn: &BatchNorm,
    x: &[f32],
    d: [usize; 4],
    residual: &[f32],
    out: &mut [f32],
) -> Result<BatchNormSaved> {
    let (gamma, beta) = (values(&bn.weight)?, values(&bn.bias)?);
    let config: BatchNormConfig = bn.config(false);
    let dims = (d[0], d[1], d[2] * d[3]);
    let saved = batch_norm_train_add_relu_into(x, dims, &gamma, &beta, config, residual, out)?;
    saved.update_running(config.momentum, &bn.running_mean, &bn.running_var)?;
    Ok(saved)
}

/// Option A shortcut: 2x2 average pool of `a` (`[n, cin, h, w]`), zero channels up to `out`'s.
fn shortcut_forward(a: &[f32], ad: [usize; 4], od: [usize; 4], out: &mut [f32]) {
    let (cin, h, w) = (ad[1], ad[2], ad[3]);
    let (c, ho, wo) = (od[1], od[2], od[3]);
    out.par_chunks_mut(c * ho * wo)
        .zip(a.par_chunks(cin * h * w))
        .for_each(|(o, a)| {
            for ch in 0..c {
                let dst = &mut o[ch * ho * wo..(ch + 1) * ho * wo];
                if ch >= cin {
                    dst.fill(0.0);
                    continue;
                }
                let src = &a[ch * h * w..(ch + 1) * h * w];
                for y in 0..ho {
                    for x in 0..wo {
                        let (i, j) = (2 * y * w + 2 * x, (2 * y + 1) * w + 2 * x);
                        // candle's avg_pool2d: the window's sum in row order, then divided.
                        dst[y * wo + x] = (src[i] + src[i + 1] + src[j] + src[j + 1]) / 4.0;
                    }
                }
            }
        });
}

/// Adds the option-A shortcut's gradient (`dz` `[n, c, ho, wo]`) into `da` (`[n, cin, h, w]`).
fn shortcut_backward(dz: &[f32], od: [usize; 4], ad: [usize; 4], da: &mut [f32]) {
    let (cin, h, w) = (ad[1], ad[2], ad[3]);
    let (c, ho, wo) = (od[1], od[2], od[3]);
    da.par_chunks_mut(cin * h * w)
        .zip(dz.par_chunks(c * ho * wo))
        .for_each(|(da, dz)| {
            for ch in 0..cin.min(c) {
                let g = &dz[ch * ho * wo..(ch + 1) * ho * wo];
                let d = &mut da[ch * h * w..(ch + 1) * h * w];
                for y in 0..ho {
                    for x in 0..wo {
                        let v = g[y * wo + x] / 4.0;
                        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            d[(2 * y + dy) * w + 2 * x + dx] += v;
                        }
                    }
                }
            }
        });
}

impl FastStep {
    /// A step runner with no buffers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`FastStep::step`] can run `model` on CPU `f32` inputs of `dims` (`[batch,
    /// channels, height, width]`): a ResNet on the CPU with our kernels, 32x32-like maps.
    pub fn supports(model: &Model, dims: [usize; 4]) -> bool {
        let Network::ResNet(net) = model.network() else {
            return false;
        };
        kernels::use_ours(model.device())
            && dims[0] >= 2
            && matches!(Plan::new(net, dims), Ok(Some(_)))
    }

    /// One training step of `model` on images `x` (`[batch, c, h, w]`, f32) and class indices
    /// `labels` (`[batch]`, u32): the forward pass in training mode (the BatchNorm running
    /// statistics are updated), the mean cross-entropy and every trainable parameter's
    /// gradient. `None`, with nothing changed, where the fast path does not apply (see
    /// [`FastStep::supports`]); the caller then runs candle's path.
    pub fn step(
        &mut self,
        model: &Model,
        x: &Tensor,
        labels: &Tensor,
    ) -> Result<Option<TrainStep>> {
        let Network::ResNet(net) = model.network() else {
            return Ok(None);
        };
        if !kernels::use_ours(x.device()) || x.dtype() != DType::F32 || x.rank() != 4 {
            return Ok(None);
        }
        let xd = dims4(x)?;
        if xd[0] < 2 {
            return Ok(None);
        }
        let Some(mut plan) = Plan::new(net, xd)? else {
            return Ok(None);
        };
        if labels.dims() != [xd[0]] {
            return Err(crate::Error::Config(format!(
                "fast step: labels of shape {:?} for a batch of {}",
                labels.dims(),
                xd[0]
            )));
        }
        let started = std::time::Instant::now();
        let pool = &mut self.pool;
        let x0 = values(x)?;

        // Forward.
        plan.stem.weight = values(&net.conv1.weight)?;
        let sd = plan.stem.shape.output_dims();
        let mut c0 = pool.take(len(sd));
        plan.stem.shape.forward(&x0, &plan.stem.weight, &mut c0)?;
        let (bn0, a0) = bn_forward(pool, &net.bn1, &c0, sd, true)?;
        let mut saved: Vec<BlockSaved> = Vec::with_capacity(net.blocks.len());
        for (b, (p1, p2)) in net.blocks.iter().zip(plan.blocks.iter_mut()) {
            let input: &[f32] = saved.last().map_or(&a0, |s| &s.out);
            let ad = p1.shape.input_dims();
            p1.weight = values(&b.conv1.weight)?;
            p2.weight = values(&b.conv2.weight)?;
            let d1 = p1.shape.output_dims();
            let mut c1 = pool.take(len(d1));
            p1.shape.forward(input, &p1.weight, &mut c1)?;
            let (bn1, r1) = bn_forward(pool, &b.bn1, &c1, d1, true)?;
            let od = p2.shape.output_dims();
            let mut c2 = pool.take(len(od));
            p2.shape.forward(&r1, &p2.weight, &mut c2)?;
            // bn2, the shortcut's add and the closing ReLU in one pass (bn2's own output is
            // never needed).
            let mut out = pool.take(len(od));
            let bn2 = match b.downsample_to {
                None => bn_add_relu(&b.bn2, &c2, od, input, &mut out)?,
                Some(_) => {
                    let mut sc = pool.take(len(od));
                    shortcut_forward(input, ad, od, &mut sc);
                    let saved = bn_add_relu(&b.bn2, &c2, od, &sc, &mut out)?;
                    pool.give(sc);
                    saved
                }
            };
            saved.push(BlockSaved {
                c1,
                bn1,
                r1,
                c2,
                bn2,
                out,
            });
        }

        // Head: 8x8 average pool, linear, mean cross-entropy, with candle's own ops on a leaf
        // holding the last map (a few kilobytes per image), so that the loss and the gradient
        // entering the blocks are the autograd path's, bit for bit.
        let dev = x.device();
        let last: &[f32] = saved.last().map_or(&a0, |s| &s.out);
        let leaf = Var::from_slice(last, plan.last.to_vec(), dev)?;
        let pooled = leaf.as_tensor().avg_pool2d(8)?.flatten_from(1)?;
        let logits = net.fc.forward(&pooled)?;
        let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
        let forward_seconds = started.elapsed().as_secs_f64();
        // The store keeps the head's intermediate tensors too, as the autograd path's does.
        let mut grads = loss.backward()?;
        let loss = loss.to_scalar::<f32>()?;
        let Some(d_last) = grads.remove(leaf.as_tensor()) else {
            return Err(crate::Error::Config(
                "fast step: no gradient for the last map".into(),
            ));
        };
        let mut g = pool.take(len(plan.last));
        g.copy_from_slice(&values(&d_last)?);

        // Backward: the blocks, last first. `g` is the gradient of the block's output.
        for (i, ((b, (p1, p2)), s)) in net
            .blocks
            .iter()
            .zip(&plan.blocks)
            .zip(saved.iter())
            .enumerate()
            .rev()
        {
            let input: &[f32] = if i == 0 { &a0 } else { &saved[i - 1].out };
            let (ad, d1, od) = (
                p1.shape.input_dims(),
                p1.shape.output_dims(),
                p2.shape.output_dims(),
            );
            // The block's closing ReLU and bn2 backward in one pass; dz, the gradient of the
            // sum, is also the shortcut's.
            let mut dz = pool.take(len(od));
            let mut dc2 = pool.take(len(od));
            let (dg2, db2) = s
                .bn2
                .backward_after_relu(&s.c2, &g, &s.out, &mut dz, &mut dc2)?;
            pool.give(g);
            let mut dr1 = pool.take(len(d1));
            p2.shape.input_grad(&dc2, &p2.weight, &mut dr1)?;
            let dw2 = p2.shape.weight_grad(&s.r1, &dc2)?;
            pool.give(dc2);
            let mut dc1 = pool.take(len(d1));
            let (dg1, db1) = s.bn1.backward(&s.c1, &dr1, &mut dc1)?;
            pool.give(dr1);
            let mut da = pool.take(len(ad));
            match b.downsample_to {
                // The identity shortcut's gradient added as the input gradient is written.
                None => p1.shape.input_grad_plus(&dc1, &p1.weight, &dz, &mut da)?,
                Some(_) => {
                    p1.shape.input_grad(&dc1, &p1.weight, &mut da)?;
                    if !b.detach_shortcut {
                        shortcut_backward(&dz, od, ad, &mut da);
                    }
                }
            }
            let dw1 = p1.shape.weight_grad(input, &dc1)?;
            pool.give(dc1);
            pool.give(dz);
            insert_block_grads(&mut grads, b, dev, [dw1, dw2], [(dg1, db1), (dg2, db2)])?;
            g = da;
        }

        // Backward: the stem (the images need no gradient).
        let mut dc0 = pool.take(len(sd));
        let (dg0, db0) = bn0.backward(&c0, &g, &mut dc0)?;
        pool.give(g);
        let dw0 = plan.stem.shape.weight_grad(&x0, &dc0)?;
        pool.give(dc0);
        grads.insert(
            &net.conv1.weight,
            Tensor::from_vec(dw0, plan.stem.shape.weight_dims().to_vec(), dev)?,
        );
        insert_bn_grads(&mut grads, &net.bn1, dev, dg0, db0)?;

        pool.give(c0);
        pool.give(a0);
        for s in saved {
            for v in [s.c1, s.r1, s.c2, s.out] {
                pool.give(v);
            }
        }
        Ok(Some(TrainStep {
            loss,
            logits: logits.detach(),
            grads,
            forward_seconds,
        }))
    }
}

fn insert_bn_grads(
    grads: &mut GradStore,
    bn: &BatchNorm,
    dev: &Device,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
) -> Result<()> {
    let c = dgamma.len();
    grads.insert(&bn.weight, Tensor::from_vec(dgamma, c, dev)?);
    grads.insert(&bn.bias, Tensor::from_vec(dbeta, c, dev)?);
    Ok(())
}

fn insert_block_grads(
    grads: &mut GradStore,
    b: &BasicBlock,
    dev: &Device,
    [dw1, dw2]: [Vec<f32>; 2],
    [(dg1, db1), (dg2, db2)]: [(Vec<f32>, Vec<f32>); 2],
) -> Result<()> {
    grads.insert(
        &b.conv1.weight,
        Tensor::from_vec(dw1, b.conv1.weight.dims(), dev)?,
    );
    grads.insert(
        &b.conv2.weight,
        Tensor::from_vec(dw2, b.conv2.weight.dims(), dev)?,
    );
    insert_bn_grads(grads, &b.bn1, dev, dg1, db1)?;
    insert_bn_grads(grads, &b.bn2, dev, dg2, db2)
}

/// A conv with its BatchNorm folded in (evaluation mode): `bn(conv(x, w))` =
/// `conv(x, w * scale) + shift`, `scale = gamma / sqrt(running_var + eps)` and `shift = beta -
/// running_mean * scale` per output channel, both worked out in f64 as the BatchNorm kernel
/// works them out.
struct Folded {
    shape: ConvShape,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Folded {
    fn new(conv: &Conv2d, bn: &BatchNorm, input: [usize; 4]) -> Result<Self> {
        let shape = ConvShape::new(input, dims4(&conv.weight)?, conv.stride, conv.padding)?;
        let mut weight = values(&conv.weight)?;
        let f64s = |t: &Tensor| -> Result<Vec<f64>> {
            Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
        };
        let (gamma, beta) = (f64s(&bn.weight)?, f64s(&bn.bias)?);
        let (mean, var) = (
            f64s(bn.running_mean.as_tensor())?,
            f64s(bn.running_var.as_tensor())?,
        );
        let eps = bn.config(false).eps;
        let cout = shape.weight_dims()[0];
        if [gamma.len(), beta.len(), mean.len(), var.len()] != [cout; 4] {
            return Err(crate::Error::Config(format!(
                "fused inference: BatchNorm of {} channels after a conv of {cout}",
                gamma.len()
            )));
        }
        let per = weight.len() / cout.max(1);
        let mut bias = Vec::with_capacity(cout);
        for (c, filter) in weight.chunks_exact_mut(per.max(1)).enumerate() {
            let scale = gamma[c] / (var[c] + eps).sqrt();
            for w in filter.iter_mut() {
                *w = (f64::from(*w) * scale) as f32;
            }
            bias.push((beta[c] - mean[c] * scale) as f32);
        }
        Ok(Self {
            shape,
            weight,
            bias,
        })
    }

    fn run(&self, x: &[f32], residual: Option<&[f32]>, relu: bool, out: &mut [f32]) -> Result<()> {
        let epilogue = Epilogue {
            bias: Some(&self.bias),
            residual,
            relu,
        };
        Ok(self.shape.forward_fused(x, &self.weight, epilogue, out)?)
    }
}

/// The dims of `x` where the fused inference runs it (our kernels, f32, `[n, c, h, w]` with
/// `n > 0`); `None` otherwise.
fn fused_input(x: &Tensor) -> Result<Option<[usize; 4]>> {
    if !kernels::use_ours(x.device()) || x.dtype() != DType::F32 || x.rank() != 4 {
        return Ok(None);
    }
    let xd = dims4(x)?;
    Ok((xd[0] > 0).then_some(xd))
}

thread_local! {
    /// Activation buffers of [`infer`], kept between calls on this thread (an evaluation runs
    /// batch after batch of one shape).
    static INFER_POOL: std::cell::RefCell<Pool> = std::cell::RefCell::new(Pool::default());
}

/// Evaluation-mode logits of a CIFAR ResNet with every BatchNorm folded into the conv before
/// it and the bias, the ReLU and the residual add applied as each conv writes its output: one
/// pass over each activation instead of three, into buffers reused between calls. The values
/// are `forward_t(x, false)`'s up to float rounding (the folded filters round differently);
/// `None` where the fast training step would not apply either ([`FastStep::supports`]), and the
/// caller takes the unfused path.
pub(crate) fn infer(net: &ResNet, x: &Tensor) -> Result<Option<Tensor>> {
    let Some(xd) = fused_input(x)? else {
        return Ok(None);
    };
    if Plan::new(net, xd)?.is_none() {
        return Ok(None);
    }
    let stem = Folded::new(&net.conv1, &net.bn1, xd)?;
    let mut blocks = Vec::with_capacity(net.blocks.len());
    let mut a = stem.shape.output_dims();
    for b in &net.blocks {
        let c1 = Folded::new(&b.conv1, &b.bn1, a)?;
        let c2 = Folded::new(&b.conv2, &b.bn2, c1.shape.output_dims())?;
        a = c2.shape.output_dims();
        blocks.push((c1, c2));
    }
    let x0 = values(x)?;
    let last = INFER_POOL.with(|pool| -> Result<Vec<f32>> {
        let pool = &mut pool.borrow_mut();
        let mut cur = pool.take(len(stem.shape.output_dims()));
        stem.run(&x0, None, true, &mut cur)?;
        for (b, (c1, c2)) in net.blocks.iter().zip(&blocks) {
            let (ad, od) = (c1.shape.input_dims(), c2.shape.output_dims());
            let mut mid = pool.take(len(c1.shape.output_dims()));
            c1.run(&cur, None, true, &mut mid)?;
            let mut out = pool.take(len(od));
            match b.downsample_to {
                None => c2.run(&mid, Some(&cur), true, &mut out)?,
                Some(_) => {
                    let mut sc = pool.take(len(od));
                    shortcut_forward(&cur, ad, od, &mut sc);
                    c2.run(&mid, Some(&sc), true, &mut out)?;
                    pool.give(sc);
                }
            }
            pool.give(mid);
            pool.give(std::mem::replace(&mut cur, out));
        }
        Ok(cur)
    })?;
    let dims = blocks
        .last()
        .map_or(stem.shape.output_dims(), |(_, c2)| c2.shape.output_dims());
    let map = Tensor::from_slice(&last, dims.to_vec(), x.device())?;
    INFER_POOL.with(|pool| pool.borrow_mut().give(last));
    let pooled = map.avg_pool2d(8)?.flatten_from(1)?;
    Ok(Some(net.fc.forward(&pooled)?.detach()))
}

/// 2x2 max pool, stride 2 (candle's `max_pool2d(2)`: the window's values compared in row
/// order), of `x` `[n, c, h, w]` into `out` `[n, c, h / 2, w / 2]`.
fn max_pool2(x: &[f32], d: [usize; 4], out: &mut [f32]) {
    let (h, w) = (d[2], d[3]);
    let (ho, wo) = (h / 2, w / 2);
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, p)| {
            for y in 0..ho {
                for xo in 0..wo {
                    let (i, j) = (2 * y * w + 2 * xo, (2 * y + 1) * w + 2 * xo);
                    let m = [p[i + 1], p[j], p[j + 1]]
                        .into_iter()
                        .fold(p[i], |m, v| if v > m { v } else { m });
                    o[y * wo + xo] = m;
                }
            }
        });
}

/// The feature maps of a VGG in evaluation mode (the input of its final 2x2 average pool),
/// every BatchNorm folded into its conv and the ReLU applied in the conv's epilogue, into
/// buffers reused between calls; `None` where our kernels do not run this input (the caller
/// takes the unfused path).
pub(crate) fn vgg_features(net: &Vgg, x: &Tensor) -> Result<Option<Tensor>> {
    let Some(xd) = fused_input(x)? else {
        return Ok(None);
    };
    // The shapes first, so that a misfit is refused before anything runs.
    let mut steps = Vec::with_capacity(net.features.len());
    let mut d = xd;
    for f in &net.features {
        match f {
            Feature::ConvBnRelu(conv, bn) => {
                let folded = Folded::new(conv, bn, d)?;
                d = folded.shape.output_dims();
                steps.push(Some(folded));
            }
            Feature::MaxPool => {
                if d[2] % 2 != 0 || d[3] % 2 != 0 {
                    return Ok(None);
                }
                d = [d[0], d[1], d[2] / 2, d[3] / 2];
                steps.push(None);
            }
        }
    }
    let x0 = values(x)?;
    let last = INFER_POOL.with(|pool| -> Result<Vec<f32>> {
        let pool = &mut pool.borrow_mut();
        let mut cur: Option<Vec<f32>> = None;
        let mut d = xd;
        for step in &steps {
            let input: &[f32] = cur.as_deref().unwrap_or(&x0);
            let next = match step {
                Some(conv) => {
                    let od = conv.shape.output_dims();
                    let mut out = pool.take(len(od));
                    conv.run(input, None, true, &mut out)?;
                    d = od;
                    out
                }
                None => {
                    let od = [d[0], d[1], d[2] / 2, d[3] / 2];
                    let mut out = pool.take(len(od));
                    max_pool2(input, d, &mut out);
                    d = od;
                    out
                }
            };
            if let Some(old) = cur.replace(next) {
                pool.give(old);
            }
        }
        // A VGG without layers gives its input back.
        Ok(cur.unwrap_or_else(|| x0.clone()))
    })?;
    let map = Tensor::from_slice(&last, d.to_vec(), x.device())?;
    INFER_POOL.with(|pool| pool.borrow_mut().give(last));
    Ok(Some(map))
}

//! BatchNorm over dim 1 of `[B, C, ...]` (BatchNorm2d and BatchNorm1d), fused with an optional
//! ReLU, as one forward pass and one backward pass.
//!
//! Per-channel sums run in f64 over eight independent lanes in a fixed order (one channel per
//! rayon task), so they are accurate and independent of the thread count. The elementwise parts
//! run as `x * scale + shift` per channel, in parallel over `(image, channel)` planes.

use std::sync::{Arc, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, Var, bail,
};
use rayon::prelude::*;

use crate::isa::{Isa, isa};
use crate::matmul::Float;
use crate::simd::{Wide, wide};
use crate::storage::{contiguous_slice, into_storage};

/// BatchNorm's constants (PyTorch's defaults: eps 1e-5, momentum 0.1) and whether a ReLU follows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Running statistics become `(1 - momentum) * running + momentum * batch` (training only).
    pub momentum: f64,
    /// Apply `max(0, .)` to the output, fused (the gradient is masked where the output is 0).
    pub relu: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
            relu: false,
        }
    }
}

/// The dims BatchNorm sees: images, channels, elements per channel per image.
fn split_dims(dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        [b, c, rest @ ..] if *c > 0 => Ok((*b, *c, rest.iter().product())),
        _ => bail!("batch_norm: expected [B, C, ...] with C > 0, got {dims:?}"),
    }
}

const LANES: usize = 8;

/// Mean and (biased) variance of channel `ch` of `x` `[b, c, hw]`.
struct ChannelStats<'a, T> {
    isa: Isa,
    x: &'a [T],
    b: usize,
    c: usize,
    hw: usize,
    ch: usize,
}

impl<T: Float> Wide for ChannelStats<'_, T> {
    type Out = (f64, f64);

    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let (mut s, mut ss) = (0.0, 0.0);
        for img in 0..self.b {
            let plane = &self.x[(img * self.c + self.ch) * self.hw..][..self.hw];
            let (a, q) = lane_sums2(self.isa, plane, plane);
            s += a;
            ss += q;
        }
        let count = (self.b * self.hw) as f64;
        let mean = s / count;
        (mean, (ss / count - mean * mean).max(0.0))
    }
}

/// `y = x * a + b`, then the ReLU if `relu`.
struct ScaleShift<'a, T> {
    y: &'a mut [T],
    x: &'a [T],
    a: T,
    b: T,
    relu: bool,
    /// `relu(x * a + b + residual)` instead (a residual block's end, as `add_relu`).
    residual: Option<&'a [T]>,
}

impl<T: Float> Wide for ScaleShift<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run(self) {
        let (a, b) = (self.a, self.b);
        if let Some(r) = self.residual {
            for ((y, &x), &r) in self.y.iter_mut().zip(self.x).zip(r) {
                let s = (x * a + b) + r;
                *y = if s <= T::zero() { T::zero() } else { s };
            }
        } else if self.relu {
            for (y, &x) in self.y.iter_mut().zip(self.x) {
                let v = x * a + b;
                *y = if v <= T::zero() { T::zero() } else { v };
            }
        } else {
            for (y, &x) in self.y.iter_mut().zip(self.x) {
                *y = x * a + b;
            }
        }
    }
}

/// `(sum g, sum g * x)` in f64 lanes, a fixed order.
#[inline(always)]
fn lane_sums2<T: Float>(isa: Isa, g: &[T], x: &[T]) -> (f64, f64) {
    let full = g.len() / LANES * LANES;
    let (mut a, mut b) = T::lane_products(isa, &g[..full], &x[..full]).unwrap_or_else(|| {
        let mut a = [0f64; LANES];
        let mut b = [0f64; LANES];
        for (gc, xc) in g[..full]
            .chunks_exact(LANES)
            .zip(x[..full].chunks_exact(LANES))
        {
            for l in 0..LANES {
                let gv = gc[l].to_f64();
                a[l] += gv;
                b[l] += gv * xc[l].to_f64();
            }
        }
        (a, b)
    });
    for (gv, xv) in g[full..].iter().zip(&x[full..]) {
        a[0] += gv.to_f64();
        b[0] += gv.to_f64() * xv.to_f64();
    }
    (a.iter().sum(), b.iter().sum())
}

/// What the forward pass keeps for the backward pass and the running-statistics update.
#[derive(Debug)]
struct Saved {
    /// Batch mean (training) or running mean (evaluation), per channel.
    mean: Vec<f64>,
    /// Biased batch variance (training; the running variance in evaluation).
    var: Vec<f64>,
    invstd: Vec<f64>,
    gamma: Vec<f64>,
    /// `gamma * invstd` and `beta - mean * gamma * invstd`: the forward's exact coefficients,
    /// reused to recompute the ReLU mask bit for bit.
    scale: Vec<f64>,
    shift: Vec<f64>,
    /// Elements per channel: images times spatial size.
    count: usize,
}

#[derive(Debug)]
enum Stats {
    /// Training: normalise with the batch's statistics.
    Batch { eps: f64 },
    /// Evaluation: normalise with given (running) statistics.
    Given {
        mean: Vec<f64>,
        var: Vec<f64>,
        eps: f64,
    },
}

/// `(x, gamma, beta) -> y`.
#[derive(Debug)]
struct BnOp {
    stats: Stats,
    relu: bool,
    saved: Arc<OnceLock<Arc<Saved>>>,
    /// The path chosen when the op was recorded; its backward pass takes it too.
    isa: Isa,
}

fn to_f64<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

impl BnOp {
    fn run<T: Float>(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<T>(s1, l1, "batch_norm")?;
        let gamma = to_f64(contiguous_slice::<T>(s2, l2, "batch_norm")?);
        let beta = to_f64(contiguous_slice::<T>(s3, l3, "batch_norm")?);
        let (b, c, hw) = split_dims(l1.dims())?;
        if gamma.len() != c || beta.len() != c {
            bail!(
                "batch_norm: {c} channels but weight {:?} and bias {:?}",
                l2.dims(),
                l3.dims()
            );
        }
        let mut y = vec![T::zero(); x.len()];
        let saved = forward_then_add(
            self.isa,
            &self.stats,
            self.relu,
            x,
            (b, c, hw),
            gamma,
            &beta,
            None,
            &mut y,
        )?;
        let _ = self.saved.set(Arc::new(saved));
        Ok((into_storage(y), l1.shape().clone()))
    }
}

/// BatchNorm's forward pass into `y` (every element overwritten): the statistics (the batch's,
/// or the given ones), then `y = x * scale + shift` per channel, with the ReLU if asked; with
/// `residual` (`x`'s shape) `y = relu(y + residual)` in the same pass instead (`relu` is then
/// unused).
#[allow(clippy::too_many_arguments)]
fn forward_then_add<T: Float>(
    isa: Isa,
    stats: &Stats,
    relu: bool,
    x: &[T],
    (b, c, hw): (usize, usize, usize),
    gamma: Vec<f64>,
    beta: &[f64],
    residual: Option<&[T]>,
    y: &mut [T],
) -> Result<Saved> {
    if y.len() != x.len() || residual.is_some_and(|r| r.len() != x.len()) {
        bail!(
            "batch_norm: output of {} values (residual {:?}) for an input of {}",
            y.len(),
            residual.map(<[T]>::len),
            x.len()
        );
    }
    let count = b * hw;
    let (mean, var, eps) = match stats {
        Stats::Batch { eps } => {
            if count < 2 {
                // PyTorch refuses too: the unbiased running variance would divide by zero.
                bail!(
                    "batch_norm: training needs more than one value per channel, got {b} image(s) of {hw} value(s) per channel"
                );
            }
            let (mean, var): (Vec<f64>, Vec<f64>) = (0..c)
                .into_par_iter()
                .map(|ch| {
                    wide(
                        isa,
                        ChannelStats {
                            isa,
                            x,
                            b,
                            c,
                            hw,
                            ch,
                        },
                    )
                })
                .unzip();
            (mean, var, *eps)
        }
        Stats::Given { mean, var, eps } => {
            if mean.len() != c || var.len() != c {
                bail!(
                    "batch_norm: {c} channels but {} running statistics",
                    mean.len()
                );
            }
            (mean.clone(), var.clone(), *eps)
        }
    };
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let scale: Vec<f64> = gamma.iter().zip(&invstd).map(|(g, i)| g * i).collect();
    let shift: Vec<f64> = (0..c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
    if hw > 0 {
        let (st, sh): (Vec<T>, Vec<T>) = scale
            .iter()
            .zip(&shift)
            .map(|(&a, &b)| (T::from_f64(a), T::from_f64(b)))
            .unzip();
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(p, (y, x))| {
                let (a, b) = (st[p % c], sh[p % c]);
                let residual = residual.map(|r| &r[p * hw..(p + 1) * hw]);
                wide(
                    isa,
                    ScaleShift {
                        y,
                        x,
                        a,
                        b,
                        relu,
                        residual,
                    },
                );
            });
    }
    Ok(Saved {
        mean,
        var,
        invstd,
        gamma,
        scale,
        shift,
        count,
    })
}

impl CustomOp3 for BnOp {
    fn name(&self) -> &'static str {
        "prunebench-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match s1.dtype() {
            DType::F32 => self.run::<f32>(s1, l1, s2, l2, s3, l3),
            DType::F64 => self.run::<f64>(s1, l1, s2, l2, s3, l3),
            d => bail!("batch_norm: unsupported dtype {d:?}"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        _gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.get() else {
            bail!("batch_norm backward before forward");
        };
        let op = BnBackward {
            saved: saved.clone(),
            relu: self.relu,
            train: matches!(self.stats, Stats::Batch { .. }),
            isa: self.isa,
        };
        let packed = x.apply_op2_no_bwd(&dy.contiguous()?, &op)?;
        let (n, c) = (x.elem_count(), saved.mean.len());
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, n, c)?;
        let dbeta = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// `(x, dy) -> [dx (flattened), dgamma, dbeta]` in one tensor (custom ops return one).
#[derive(Debug)]
struct BnBackward {
    saved: Arc<Saved>,
    relu: bool,
    train: bool,
    isa: Isa,
}

impl BnBackward {
    fn run<T: Float>(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<T>(s1, l1, "batch_norm backward")?;
        let dy = contiguous_slice::<T>(s2, l2, "batch_norm backward")?;
        let (b, c, hw) = split_dims(l1.dims())?;
        let s = &*self.saved;
        if dy.len() != x.len() || s.mean.len() != c {
            bail!(
                "batch_norm backward: gradient {:?} for input {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let mut out = vec![T::zero(); x.len() + 2 * c];
        let (dx, tail) = out.split_at_mut(x.len());
        let per_channel = backward_into(
            self.isa,
            s,
            self.relu,
            self.train,
            x,
            dy,
            None,
            (b, c, hw),
            dx,
        );
        let dgamma: Vec<T> = per_channel.iter().map(|p| T::from_f64(p.0)).collect();
        let dbeta: Vec<T> = per_channel.iter().map(|p| T::from_f64(p.1)).collect();
        tail[..c].copy_from_slice(&dgamma);
        tail[c..].copy_from_slice(&dbeta);
        Ok((into_storage(out), Shape::from(x.len() + 2 * c)))
    }
}

/// BatchNorm's backward pass into `dx` (every element overwritten); returns each channel's
/// `(dgamma, dbeta)`. `train`: the statistics were the batch's (their gradient terms count).
/// With `after` = `(y, dz)`, `dy` is first masked by a ReLU that followed this BatchNorm's
/// output after other ops (a residual add): `y` the ReLU's output, `dz` (overwritten) where the
/// masked gradient `y > 0 ? dy : 0` is kept for the other ops' own backward passes; the same
/// values as a ReLU backward pass into `dz` and then this backward pass on `dz`, in one pass
/// less.
#[allow(clippy::too_many_arguments)]
fn backward_into<T: Float>(
    isa: Isa,
    s: &Saved,
    relu: bool,
    train: bool,
    x: &[T],
    dy: &[T],
    after: Option<(&[T], &mut [T])>,
    (b, c, hw): (usize, usize, usize),
    dx: &mut [T],
) -> Vec<(f64, f64)> {
    let (st, sh): (Vec<T>, Vec<T>) = s
        .scale
        .iter()
        .zip(&s.shift)
        .map(|(&a, &b)| (T::from_f64(a), T::from_f64(b)))
        .unzip();
    let n = s.count as f64;
    // Each channel's planes (one per image), mutable, grouped so one task owns a channel:
    // its sums and its dx are computed together, in a fixed order, while the data is in cache.
    let mut groups: Vec<Vec<Plane<'_, T>>> = (0..c).map(|_| Vec::with_capacity(b)).collect();
    let (mask, mut kept) = match after {
        Some((y, dz)) => (Some(y), Some(dz.chunks_exact_mut(hw.max(1)))),
        None => (None, None),
    };
    if hw > 0 {
        for (p, plane) in dx.chunks_exact_mut(hw).enumerate() {
            let dz = kept.as_mut().and_then(Iterator::next);
            groups[p % c].push((p * hw, plane, dz));
        }
    }
    let per_channel: Vec<(f64, f64)> = groups
        .into_par_iter()
        .enumerate()
        .map(|(ch, mut planes)| {
            let k = ChannelBackward {
                isa,
                hw,
                relu,
                train,
                n,
                scale: st[ch],
                shift: sh[ch],
                mean: s.mean[ch],
                invstd: s.invstd[ch],
                gamma: s.gamma[ch],
            };
            wide(
                isa,
                BackwardTask {
                    k: &k,
                    planes: &mut planes,
                    x,
                    dy,
                    mask,
                },
            )
        })
        .collect();
    per_channel
}

/// One channel of the backward pass, its constants from the forward pass.
struct ChannelBackward<T> {
    isa: Isa,
    hw: usize,
    relu: bool,
    train: bool,
    /// Values per channel over the batch.
    n: f64,
    scale: T,
    shift: T,
    mean: f64,
    invstd: f64,
    gamma: f64,
}

/// One plane of a channel: its offset into `x`, its plane of dx, and with an outer ReLU mask
/// its plane of `dz`.
type Plane<'p, T> = (usize, &'p mut [T], Option<&'p mut [T]>);

/// One channel's backward pass: writes dx into its `planes` and returns `(dgamma, dbeta)`.
struct BackwardTask<'a, 'p, T> {
    k: &'a ChannelBackward<T>,
    planes: &'a mut [Plane<'p, T>],
    x: &'a [T],
    dy: &'a [T],
    /// The outer ReLU's output, masking `dy` ([`backward_into`]'s `after`).
    mask: Option<&'a [T]>,
}

impl<T: Float> Wide for BackwardTask<'_, '_, T> {
    type Out = (f64, f64);

    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let Self {
            k: this,
            planes,
            x,
            dy,
            mask,
        } = self;
        this.backward(planes, x, dy, mask)
    }
}

impl<T: Float> ChannelBackward<T> {
    #[inline(always)]
    fn backward(
        &self,
        planes: &mut [Plane<'_, T>],
        x: &[T],
        dy: &[T],
        mask: Option<&[T]>,
    ) -> (f64, f64) {
        let hw = self.hw;
        // Pass 1: g = dy masked by the fused ReLU (or the outer one), kept in dx (and in dz);
        // sums of g and g * x.
        let (mut sg, mut sgx) = (0.0, 0.0);
        for (off, g, dz) in planes.iter_mut() {
            let (xs, dys) = (&x[*off..*off + hw], &dy[*off..*off + hw]);
            if let Some(y) = mask {
                // As the ReLU's backward pass (`relu_grad`): dy where y > 0.
                for ((g, &yv), &d) in g.iter_mut().zip(&y[*off..*off + hw]).zip(dys) {
                    *g = if yv > T::zero() { d } else { T::zero() };
                }
                if let Some(dz) = dz {
                    dz.copy_from_slice(g);
                }
            } else if self.relu {
                let (sc, sf) = (self.scale, self.shift);
                for ((g, &xv), &d) in g.iter_mut().zip(xs).zip(dys) {
                    // A select, not a branch, so the loop vectorises.
                    *g = if xv * sc + sf <= T::zero() {
                        T::zero()
                    } else {
                        d
                    };
                }
            } else {
                g.copy_from_slice(dys);
            }
            let (a, q) = lane_sums2(self.isa, g, xs);
            sg += a;
            sgx += q;
        }
        // dx = k * g + a * x + d (the batch-statistics terms vanish in evaluation).
        let sg_xhat = self.invstd * (sgx - self.mean * sg);
        let k = self.gamma * self.invstd;
        let (a, d) = if self.train {
            let a = -k * self.invstd * sg_xhat / self.n;
            (a, -k * sg / self.n - a * self.mean)
        } else {
            (0.0, 0.0)
        };
        let (k, a, d) = (T::from_f64(k), T::from_f64(a), T::from_f64(d));
        for (off, g, _) in planes.iter_mut() {
            for (g, &xv) in g.iter_mut().zip(&x[*off..*off + hw]) {
                *g = k * *g + a * xv + d;
            }
        }
        (sg_xhat, sg)
    }
}

impl CustomOp2 for BnBackward {
    fn name(&self) -> &'static str {
        "prunebench-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match (s1.dtype(), s2.dtype()) {
            (DType::F32, DType::F32) => self.run::<f32>(s1, l1, s2, l2),
            (DType::F64, DType::F64) => self.run::<f64>(s1, l1, s2, l2),
            (a, b) => bail!("batch_norm backward: unsupported dtypes {a:?}, {b:?}"),
        }
    }
}

fn read_f64(t: &Tensor) -> Result<Vec<f64>> {
    t.detach()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()
}

/// Training-mode BatchNorm: normalises `x` `[B, C, ...]` with the batch's per-channel mean and
/// biased variance, scales by `weight` and shifts by `bias` (both `[C]`, differentiable), applies
/// the ReLU if `config.relu`, and updates the running statistics in place as PyTorch and
/// `candle_nn::BatchNorm` do: `running = (1 - momentum) * running + momentum * batch`, with the
/// unbiased variance for `running_var`. The running statistics never enter the autograd graph.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Var,
    running_var: &Var,
    config: BatchNormConfig,
) -> Result<Tensor> {
    let saved = Arc::new(OnceLock::new());
    let op = BnOp {
        stats: Stats::Batch { eps: config.eps },
        relu: config.relu,
        saved: saved.clone(),
        isa: isa(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?;
    let Some(s) = saved.get() else {
        bail!("batch_norm: forward kept no statistics");
    };
    update_running(s, config.momentum, running_mean, running_var)?;
    Ok(y)
}

/// `running = (1 - momentum) * running + momentum * batch`, the unbiased batch variance for
/// `running_var`, in place.
fn update_running(s: &Saved, m: f64, running_mean: &Var, running_var: &Var) -> Result<()> {
    let n = s.count as f64;
    let update = |var: &Var, batch: &mut dyn Iterator<Item = f64>| -> Result<()> {
        let old = read_f64(var.as_tensor())?;
        if old.len() != s.mean.len() {
            bail!(
                "batch_norm: running statistics {:?} for {} channels",
                var.dims(),
                s.mean.len()
            );
        }
        let new: Vec<f64> = old
            .iter()
            .zip(batch)
            .map(|(r, b)| (1.0 - m) * r + m * b)
            .collect();
        let t = Tensor::from_vec(new, var.dims(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)
    };
    update(running_mean, &mut s.mean.iter().copied())?;
    update(running_var, &mut s.var.iter().map(|v| v * n / (n - 1.0)))
}

/// What a training-mode BatchNorm forward pass on slices ([`batch_norm_train_into`]) keeps for
/// its backward pass and the running-statistics update.
#[derive(Debug)]
pub struct BatchNormSaved {
    saved: Saved,
    dims: (usize, usize, usize),
    relu: bool,
}

/// Training-mode BatchNorm (with the ReLU if `config.relu`) on slices: `x` holds `dims` =
/// `(images, channels, values per channel per image)` in NCHW order, `gamma` and `beta` one
/// value per channel; `y` (as long as `x`) is overwritten. The same computation as
/// [`batch_norm_train`], bit for bit, except that the running statistics are updated only
/// when [`BatchNormSaved::update_running`] is called.
pub fn batch_norm_train_into(
    x: &[f32],
    dims: (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
    config: BatchNormConfig,
    y: &mut [f32],
) -> Result<BatchNormSaved> {
    train_into(x, dims, gamma, beta, config, None, y)
}

/// [`batch_norm_train_into`], and with `residual` [`batch_norm_train_add_relu_into`].
fn train_into(
    x: &[f32],
    dims: (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
    config: BatchNormConfig,
    residual: Option<&[f32]>,
    y: &mut [f32],
) -> Result<BatchNormSaved> {
    let (b, c, hw) = dims;
    if x.len() != b * c * hw || gamma.len() != c || beta.len() != c {
        bail!(
            "batch_norm: {} values, {} weights and {} biases for {dims:?}",
            x.len(),
            gamma.len(),
            beta.len()
        );
    }
    let stats = Stats::Batch { eps: config.eps };
    let saved = forward_then_add(
        isa(),
        &stats,
        config.relu,
        x,
        dims,
        to_f64(gamma),
        &to_f64(beta),
        residual,
        y,
    )?;
    Ok(BatchNormSaved {
        saved,
        dims,
        relu: config.relu,
    })
}

/// [`batch_norm_train_into`] without its own ReLU, then `y = relu(y + residual)` in the same
/// pass: the end of a residual block, `relu(bn(x) + shortcut)`, whose BatchNorm output is never
/// needed alone. The values of `batch_norm_train_into` followed by
/// [`crate::raw::add_relu_into`], bit for bit; `config.relu` must be false (the ReLU comes
/// after the add). Its backward pass is [`BatchNormSaved::backward_after_relu`].
pub fn batch_norm_train_add_relu_into(
    x: &[f32],
    dims: (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
    config: BatchNormConfig,
    residual: &[f32],
    y: &mut [f32],
) -> Result<BatchNormSaved> {
    if config.relu {
        bail!("batch_norm then add and ReLU: the BatchNorm's own ReLU is set");
    }
    train_into(x, dims, gamma, beta, config, Some(residual), y)
}

/// Each channel's `(dgamma, dbeta)` as the two f32 vectors the slice API returns.
fn dgamma_dbeta(per_channel: &[(f64, f64)]) -> (Vec<f32>, Vec<f32>) {
    per_channel
        .iter()
        .map(|&(g, b)| (g as f32, b as f32))
        .unzip()
}

impl BatchNormSaved {
    /// The backward pass: `dx` (overwritten) from the forward's input `x` and the output's
    /// gradient `dy` (masked by the fused ReLU); returns `(dgamma, dbeta)`.
    pub fn backward(&self, x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let (b, c, hw) = self.dims;
        let n = b * c * hw;
        if x.len() != n || dy.len() != n || dx.len() != n {
            bail!(
                "batch_norm backward: {}, {} and {} values for {:?}",
                x.len(),
                dy.len(),
                dx.len(),
                self.dims
            );
        }
        let per_channel = backward_into(
            isa(),
            &self.saved,
            self.relu,
            true,
            x,
            dy,
            None,
            self.dims,
            dx,
        );
        Ok(dgamma_dbeta(&per_channel))
    }

    /// [`BatchNormSaved::backward`] after a ReLU further on: `dy` is the gradient of that
    /// ReLU's output `y` (a residual block's `relu(bn(x) + shortcut)`), first masked to `dz =
    /// y > 0 ? dy : 0` (overwritten; the shortcut's gradient), then taken back through this
    /// BatchNorm into `dx`. The values of [`crate::raw::relu_grad_into`] followed by
    /// `backward`, in one pass over the data less.
    pub fn backward_after_relu(
        &self,
        x: &[f32],
        dy: &[f32],
        y: &[f32],
        dz: &mut [f32],
        dx: &mut [f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        if self.relu {
            bail!("batch_norm backward after a ReLU: this BatchNorm has its own fused ReLU");
        }
        let (b, c, hw) = self.dims;
        let n = b * c * hw;
        if [x.len(), dy.len(), y.len(), dz.len(), dx.len()] != [n; 5] {
            bail!(
                "batch_norm backward: {}, {}, {}, {} and {} values for {:?}",
                x.len(),
                dy.len(),
                y.len(),
                dz.len(),
                dx.len(),
                self.dims
            );
        }
        let per_channel = backward_into(
            isa(),
            &self.saved,
            self.relu,
            true,
            x,
            dy,
            Some((y, dz)),
            self.dims,
            dx,
        );
        Ok(dgamma_dbeta(&per_channel))
    }

    /// Updates the running statistics as [`batch_norm_train`] does.
    pub fn update_running(
        &self,
        momentum: f64,
        running_mean: &Var,
        running_var: &Var,
    ) -> Result<()> {
        update_running(&self.saved, momentum, running_mean, running_var)
    }
}

/// Evaluation-mode BatchNorm: normalises with the given running statistics (not differentiated,
/// not changed); differentiable in `x`, `weight` and `bias`. `config.momentum` is unused.
pub fn batch_norm_eval(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    config: BatchNormConfig,
) -> Result<Tensor> {
    let op = BnOp {
        stats: Stats::Given {
            mean: read_f64(running_mean)?,
            var: read_f64(running_var)?,
            eps: config.eps,
        },
        relu: config.relu,
        saved: Arc::new(OnceLock::new()),
        isa: isa(),
    };
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
}

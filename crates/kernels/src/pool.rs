//! Max pooling (window = stride) with PyTorch's gradient: each window's output gradient goes to
//! the window's first maximum in row-major order (`val > max || isnan(val)`, as ATen's CPU
//! kernel scans). candle 0.11's `max_pool2d` backward multiplies the gradient by the share of
//! maxima in the window instead of dividing by their count, so a unique maximum gets a quarter
//! of it through a 2x2 pool: every layer below a VGG pool learnt at 4^-k of its gradient.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::storage::{contiguous_slice, into_storage};

/// `x [n, c, h, w] -> [n, c, h / k, w / k]`, the max of each `k x k` window.
struct MaxPool(usize);

/// `(x, dy) -> dx`: [`MaxPool`]'s input gradient.
struct MaxPoolGrad(usize);

trait Value: Copy + PartialOrd + Send + Sync + candle_core::WithDType {
    const NEG_INF: Self;
    const ZERO: Self;
    fn is_nan(self) -> bool;
}

impl Value for f32 {
    const NEG_INF: Self = f32::NEG_INFINITY;
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        self.is_nan()
    }
}

impl Value for f64 {
    const NEG_INF: Self = f64::NEG_INFINITY;
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        self.is_nan()
    }
}

/// `(n * c, h, w)` of a rank-4 layout, or an error naming `op`.
fn planes(l: &Layout, k: usize, op: &str) -> Result<(usize, usize, usize)> {
    let &[n, c, h, w] = l.dims() else {
        bail!("{op}: expected [n, c, h, w], got {:?}", l.dims());
    };
    if k == 0 || h < k || w < k {
        bail!("{op}: a {k}x{k} window over a {h}x{w} map");
    }
    Ok((n * c, h, w))
}

/// Index (in the plane) of the first maximum of window `(oy, ox)`.
#[inline]
fn argmax<T: Value>(plane: &[T], w: usize, k: usize, oy: usize, ox: usize) -> usize {
    let (mut best, mut at) = (T::NEG_INF, oy * k * w + ox * k);
    for dy in 0..k {
        let row = (oy * k + dy) * w + ox * k;
        for (dx, &v) in plane[row..row + k].iter().enumerate() {
            if v > best || v.is_nan() {
                best = v;
                at = row + dx;
            }
        }
    }
    at
}

fn forward<T: Value>(x: &[T], (p, h, w): (usize, usize, usize), k: usize) -> Vec<T> {
    let (ho, wo) = (h / k, w / k);
    let mut out = vec![T::ZERO; p * ho * wo];
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(o, plane)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    o[oy * wo + ox] = plane[argmax(plane, w, k, oy, ox)];
                }
            }
        });
    out
}

fn backward<T: Value>(x: &[T], dy: &[T], (p, h, w): (usize, usize, usize), k: usize) -> Vec<T> {
    let (ho, wo) = (h / k, w / k);
    let mut dx = vec![T::ZERO; p * h * w];
    dx.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w))
        .zip(dy.par_chunks(ho * wo))
        .for_each(|((d, plane), g)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    d[argmax(plane, w, k, oy, ox)] = g[oy * wo + ox];
                }
            }
        });
    dx
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "prunebench-max-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = planes(l, self.0, self.name())?;
        let d = l.dims();
        let shape = Shape::from((d[0], d[1], d[2] / self.0, d[3] / self.0));
        let out = match s.dtype() {
            DType::F32 => into_storage(forward(
                contiguous_slice::<f32>(s, l, self.name())?,
                dims,
                self.0,
            )),
            DType::F64 => into_storage(forward(
                contiguous_slice::<f64>(s, l, self.name())?,
                dims,
                self.0,
            )),
            other => bail!("{}: unsupported dtype {other:?}", self.name()),
        };
        Ok((out, shape))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &MaxPoolGrad(self.0),
        )?))
    }
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "prunebench-max-pool-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = planes(l1, self.0, self.name())?;
        let (p, h, w) = dims;
        if l2.shape().elem_count() != p * (h / self.0) * (w / self.0) {
            bail!(
                "{}: gradient of shape {:?} for input {:?}",
                self.name(),
                l2.dims(),
                l1.dims()
            );
        }
        let out = match (s1.dtype(), s2.dtype()) {
            (DType::F32, DType::F32) => into_storage(backward(
                contiguous_slice::<f32>(s1, l1, self.name())?,
                contiguous_slice::<f32>(s2, l2, self.name())?,
                dims,
                self.0,
            )),
            (DType::F64, DType::F64) => into_storage(backward(
                contiguous_slice::<f64>(s1, l1, self.name())?,
                contiguous_slice::<f64>(s2, l2, self.name())?,
                dims,
                self.0,
            )),
            (a, b) => bail!("{}: unsupported dtypes {a:?}, {b:?}", self.name()),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `k x k` max pooling with stride `k` of a CPU tensor `[n, c, h, w]` (f32 or f64), floor mode,
/// differentiable with PyTorch's gradient (the first maximum of each window takes it all).
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool(k))
}

/// [`max_pool2d`] for tensors on any device, built from candle's ops: the output gradient shared
/// equally by the maxima of each window (a single maximum takes all of it, as in PyTorch; ties,
/// which PyTorch gives to the first, are split). The values are the window maxima (a tie of
/// three is rounded by the sharing).
pub fn max_pool2d_portable(x: &Tensor, k: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    // Floor mode: the rows and columns past the last whole window are not read.
    let x = x.narrow(2, 0, h / k * k)?.narrow(3, 0, w / k * k)?;
    let (h, w) = (h / k * k, w / k * k);
    let y = x.detach().max_pool2d(k)?;
    // Where an input equals its window's maximum, 1 / (the number of maxima in the window).
    let mask = x
        .detach()
        .eq(&y.upsample_nearest2d(h, w)?)?
        .to_dtype(x.dtype())?;
    let count = (mask.avg_pool2d(k)? * (k * k) as f64)?;
    let share = (mask / count.upsample_nearest2d(h, w)?)?;
    // The window sums of x * share are the maxima; the gradient reaching x is dy * share.
    (x * share)?.avg_pool2d(k)? * (k * k) as f64
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn grad_of(x: &Var, y: &Tensor, r: &Tensor) -> Vec<f32> {
        let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        g.get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn values_match_candle_and_the_gradient_goes_to_the_first_maximum() {
        let dev = Device::Cpu;
        // One 4x5 plane (floor mode drops the last column): windows with a unique maximum, a
        // tie of three (PyTorch: the first in row-major order takes it), a tie of four zeros.
        let x = Tensor::new(
            &[
                [1f32, 5., 2., 2., 9.],
                [3., 4., 2., 0., 9.],
                [0., 0., -1., 7., 9.],
                [0., 0., 6., 3., 9.],
            ],
            &dev,
        )
        .unwrap()
        .reshape((1, 1, 4, 5))
        .unwrap();
        let y = max_pool2d(&x, 2).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.max_pool2d(2)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
        let v = Var::from_tensor(&x).unwrap();
        let r = Tensor::new(&[10f32, 20., 30., 40.], &dev)
            .unwrap()
            .reshape((1, 1, 2, 2))
            .unwrap();
        let g = grad_of(&v, &max_pool2d(v.as_tensor(), 2).unwrap(), &r);
        #[rustfmt::skip]
        let want = [
            0f32, 10., 20., 0., 0.,
            0., 0., 0., 0., 0.,
            30., 0., 0., 40., 0.,
            0., 0., 0., 0., 0.,
        ];
        assert_eq!(g, want);
        // The portable form: the same where the maximum is unique, ties shared.
        let p = max_pool2d_portable(v.as_tensor(), 2).unwrap();
        assert_eq!(
            p.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let g = grad_of(&v, &p, &r);
        let third = 20.0 / 3.0;
        #[rustfmt::skip]
        let want = [
            0f32, 10., third, third, 0.,
            0., 0., third, 0., 0.,
            7.5, 7.5, 0., 40., 0.,
            7.5, 7.5, 0., 0., 0.,
        ];
        for (i, (a, b)) in g.iter().zip(want).enumerate() {
            assert!((a - b).abs() < 1e-5, "element {i}: {a} against {b}");
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f64, 1.0, (2, 3, 6, 4), &dev).unwrap();
        let r = Tensor::randn(0f64, 1.0, (2, 3, 3, 2), &dev).unwrap();
        let v = Var::from_tensor(&x).unwrap();
        let f = |t: &Tensor| {
            (max_pool2d(t, 2).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let y = max_pool2d(v.as_tensor(), 2).unwrap();
        let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f64> = g
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..base.len() {
            let mut plus = base.clone();
            plus[i] += 1e-6;
            let mut minus = base.clone();
            minus[i] -= 1e-6;
            let t = |v: Vec<f64>| Tensor::from_vec(v, x.shape(), &dev).unwrap();
            let fd = (f(&t(plus)) - f(&t(minus))) / 2e-6;
            assert!(
                (fd - g[i]).abs() < 1e-6,
                "element {i}: {fd} against {}",
                g[i]
            );
        }
        // Bad shapes are errors.
        let flat = Tensor::zeros((4, 4), DType::F32, &dev).unwrap();
        assert!(max_pool2d(&flat, 2).is_err());
        let small = Tensor::zeros((1, 1, 1, 3), DType::F32, &dev).unwrap();
        assert!(max_pool2d(&small, 2).is_err());
    }
}

//! `relu(a + b)`, the end of every ResNet block, as one pass forward and one backward (candle's
//! built-in path takes an add, a ReLU, and a compare, a cast and a multiply for the gradient).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::isa::{Isa, isa};
use crate::matmul::Float;
use crate::simd::{Wide, wide};
use crate::storage::{contiguous_slice, into_storage};

/// Elements per rayon task: large enough to amortise scheduling, small enough to split a layer.
const CHUNK: usize = 1 << 14;

/// `(a, b) -> relu(a + b)`, differentiable in both; the path chosen when recorded.
struct AddRelu(Isa);

/// `(y, dy) -> dy where y > 0, else 0`: the gradient of both inputs of [`AddRelu`].
struct ReluGrad(Isa);

/// `o[i] = f(a[i], b[i])`.
struct Map2<'a, T, F> {
    o: &'a mut [T],
    a: &'a [T],
    b: &'a [T],
    f: &'a F,
}

impl<T: Float, F: Fn(T, T) -> T> Wide for Map2<'_, T, F> {
    type Out = ();

    #[inline(always)]
    fn run(self) {
        for ((o, &a), &b) in self.o.iter_mut().zip(self.a).zip(self.b) {
            *o = (self.f)(a, b);
        }
    }
}

fn binary<T: Float>(isa: Isa, a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::zero(); a.len()];
    binary_into(isa, a, b, f, &mut out);
    out
}

fn binary_into<T: Float>(isa: Isa, a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync, out: &mut [T]) {
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| wide(isa, Map2 { o, a, b, f: &f }));
}

fn add_relu_fn<T: Float>(a: T, b: T) -> T {
    let s = a + b;
    if s <= T::zero() { T::zero() } else { s }
}

fn relu_grad_fn<T: Float>(y: T, dy: T) -> T {
    if y > T::zero() { dy } else { T::zero() }
}

fn same_lengths(op: &str, a: usize, b: usize, out: usize) -> Result<()> {
    if a != b || a != out {
        bail!("{op}: slices of {a}, {b} and {out} values");
    }
    Ok(())
}

/// `out = relu(a + b)` on slices of one length.
pub fn add_relu_into(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
    same_lengths("add_relu", a.len(), b.len(), out.len())?;
    binary_into(isa(), a, b, add_relu_fn, out);
    Ok(())
}

/// `out = dy where y > 0, else 0`: the gradient through a ReLU whose output was `y`.
pub fn relu_grad_into(y: &[f32], dy: &[f32], out: &mut [f32]) -> Result<()> {
    same_lengths("relu_grad", y.len(), dy.len(), out.len())?;
    binary_into(isa(), y, dy, relu_grad_fn, out);
    Ok(())
}

fn run<T: Float>(
    op: &str,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    grad: bool,
    isa: Isa,
) -> Result<(CpuStorage, Shape)> {
    if l1.dims() != l2.dims() {
        bail!("{op}: shapes differ, {:?} and {:?}", l1.dims(), l2.dims());
    }
    let (a, b) = (
        contiguous_slice::<T>(s1, l1, op)?,
        contiguous_slice::<T>(s2, l2, op)?,
    );
    let out = if grad {
        binary(isa, a, b, relu_grad_fn)
    } else {
        binary(isa, a, b, add_relu_fn)
    };
    Ok((into_storage(out), l1.shape().clone()))
}

fn dispatch(
    op: &str,
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    grad: bool,
    isa: Isa,
) -> Result<(CpuStorage, Shape)> {
    match (s1.dtype(), s2.dtype()) {
        (DType::F32, DType::F32) => run::<f32>(op, s1, l1, s2, l2, grad, isa),
        (DType::F64, DType::F64) => run::<f64>(op, s1, l1, s2, l2, grad, isa),
        (a, b) => bail!("{op}: unsupported dtypes {a:?}, {b:?}"),
    }
}

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "prunebench-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch(self.name(), s1, l1, s2, l2, false, self.0)
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = y.apply_op2_no_bwd(&dy.contiguous()?, &ReluGrad(self.0))?;
        Ok((Some(g.clone()), Some(g)))
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "prunebench-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch(self.name(), s1, l1, s2, l2, true, self.0)
    }
}

/// `relu(a + b)` for two CPU tensors of one shape (f32 or f64), differentiable in both; the
/// gradient passes where the output is positive, as PyTorch's.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu(isa()))
}

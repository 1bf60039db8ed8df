//! Fast CPU kernels for prunebench's CIFAR networks, as candle custom ops (`CustomOp2/3` with
//! a backward pass, so they train): 2-D convolution as im2col + GEMM (the `gemm` crate candle
//! uses), its input gradient (GEMM + col2im) and weight gradient, and BatchNorm with batch or
//! running statistics, optionally fused with the ReLU that follows it, and `relu(a + b)` (the end
//! of a residual block) in one pass.
//!
//! On CPUs with AVX-512, f32 stride-1 convolutions on wide images skip im2col: our own GEMM reads
//! windows of the once-padded image in place, and the weight gradient of long lines is a set of
//! dot products of output-gradient lines with those windows. Elementwise loops (BatchNorm,
//! add+ReLU) run in copies compiled for AVX2 where the CPU has it. Binaries call
//! [`configure_process`] first thing: glibc keeps freed buffers, candle's pool spins briefly.
//!
//! The kernels work on contiguous f32/f64 CPU tensors in candle's NCHW layout and run in
//! parallel over images (rayon); every reduction has a fixed order, so results do not depend on
//! the thread count. [`use_ours`] tells a model which path to take for a tensor: ours on CPU
//! when the [`Backend`] is [`Backend::Ours`] (the default; `PRUNEBENCH_KERNELS=candle` or
//! [`set_backend`]/[`with_backend`] switch back), candle's built-in ops otherwise and always on
//! CUDA.
//!
//! Within ours, the [`Isa`] path is the widest the CPU has unless capped:
//! `PRUNEBENCH_ISA=portable` (or `avx2`), [`set_isa`], or [`with_isa`] for one thread, so the
//! AVX-512 code and the portable code can both run, and be compared, on one machine. Binaries
//! call [`check_env`] at start-up so that a mistyped value of either variable is an error.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use kernels::{BatchNormConfig, batch_norm_train, conv2d};
//!
//! let dev = Device::Cpu;
//! let x = Tensor::randn(0f32, 1.0, (2, 3, 8, 8), &dev)?;
//! let w = Var::randn(0f32, 0.1, (4, 3, 3, 3), &dev)?;
//! let y = conv2d(&x, w.as_tensor(), 1, 1)?; // stride 1, padding 1
//! let same = x.conv2d(w.as_tensor(), 1, 1, 1, 1)?; // candle's built-in op
//! let diff = (&y - &same)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-4);
//!
//! let (gamma, beta) = (Var::ones(4, candle_core::DType::F32, &dev)?, Var::zeros(4, candle_core::DType::F32, &dev)?);
//! let (mean, var) = (Var::zeros(4, candle_core::DType::F32, &dev)?, Var::ones(4, candle_core::DType::F32, &dev)?);
//! let config = BatchNormConfig { relu: true, ..Default::default() };
//! let z = batch_norm_train(&y, gamma.as_tensor(), beta.as_tensor(), &mean, &var, config)?;
//! let grads = z.sum_all()?.backward()?; // gradients for w, gamma and beta
//! assert!(grads.get(w.as_tensor()).is_some());
//! # Ok::<(), candle_core::Error>(())
//! ```

mod alloc;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod backend;
mod batch_norm;
mod conv;
mod elementwise;
mod env;
mod isa;
mod matmul;
mod pool;
mod simd;
mod storage;

/// The kernels on plain `f32` slices in NCHW order, into buffers the caller owns: the pieces of
/// a training step that runs its own backward pass (`models`' fast ResNet step) instead of
/// candle's autograd. Each computes what the candle op of the same name computes, bit for bit.
pub mod raw {
    pub use crate::batch_norm::{
        BatchNormSaved, batch_norm_train_add_relu_into, batch_norm_train_into,
    };
    pub use crate::conv::{ConvShape, Epilogue};
    pub use crate::elementwise::{add_relu_into, relu_grad_into};
}

pub use alloc::{CANDLE_SPIN_DEFAULT, CANDLE_SPIN_VAR, configure_process, keep_freed_memory};
pub use backend::{
    BACKWARD_VAR, Backend, Backward, ENV_VAR, backend, set_backend, use_ours, with_backend,
};
pub use batch_norm::{BatchNormConfig, batch_norm_eval, batch_norm_train};
pub use conv::conv2d;
pub use elementwise::add_relu;
pub use env::{EnvChoice, EnvError, check_env};
pub use isa::{ISA_VAR, Isa, detected_isa, isa, set_isa, with_isa};
pub use pool::{max_pool2d, max_pool2d_portable};

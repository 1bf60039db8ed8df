//! 2-D convolution (NCHW, groups 1, dilation 1) as im2col + GEMM, with its input gradient
//! (GEMM + col2im) and weight gradient (GEMM over the batch, reduced in a fixed order).
//!
//! Every op works image by image, in parallel over the batch (rayon), each image's GEMM on one
//! thread: a CIFAR image's matrices are small, so splitting one GEMM over cores gains less than
//! running whole images side by side. A 1x1 stride-1 unpadded conv (ResNet/DenseNet transitions)
//! skips im2col: the image already is the column matrix.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::isa::{Isa, isa};
use crate::matmul::{Float, Mat, PackedLhs, gemm};
use crate::simd::{Wide, wide};
use crate::storage::{contiguous_slice, into_storage};

/// The sizes of one convolution, checked once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    batch: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], stride: usize, pad: usize) -> Result<Self> {
        let (&[batch, cin, h, w], &[cout, wcin, kh, kw]) = (x, weight) else {
            bail!(
                "conv2d: expected input [B, C, H, W] and weight [O, C, KH, KW], got {x:?} and {weight:?}"
            );
        };
        if wcin != cin {
            bail!("conv2d: input has {cin} channels, the weight {wcin} ({x:?}, {weight:?})");
        }
        if stride == 0 || cin == 0 || cout == 0 || kh == 0 || kw == 0 || h == 0 || w == 0 {
            bail!(
                "conv2d: zero stride or empty input or weight ({x:?}, {weight:?}, stride {stride})"
            );
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            bail!("conv2d: kernel {kh}x{kw} larger than the padded input {h}x{w} + 2*{pad}");
        }
        Ok(Self {
            batch,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride + 1,
            wo: (w + 2 * pad - kw) / stride + 1,
        })
    }

    /// Rows of the column matrix: one per (input channel, kernel row, kernel column).
    fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    /// Columns of the column matrix: one per output pixel.
    fn n(&self) -> usize {
        self.ho * self.wo
    }

    fn image_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    fn out_image_len(&self) -> usize {
        self.cout * self.n()
    }

    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// The output columns `ox` whose input column `ox * stride + kx - pad` lies in `[0, w)`.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let lo = self
            .pad
            .saturating_sub(kx)
            .div_ceil(self.stride)
            .min(self.wo);
        let hi = (self.w + self.pad)
            .saturating_sub(kx)
            .div_ceil(self.stride)
            .clamp(lo, self.wo);
        (lo, hi)
    }

    /// The input row read by output row `oy` at kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&iy| iy < self.h)
    }
}

/// `dst.copy_from_slice(src)` for the short lines of CIFAR maps (8 to 34 values): whole
/// 8-value blocks moved as fixed-size copies (vector moves), the rest value by value, instead
/// of a `memmove` call per line (those calls were 4% of a training step).
#[inline(always)]
fn copy_line<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let block: &[T; 8] = s.try_into().expect("chunks of 8");
        let out: &mut [T; 8] = d.try_into().expect("chunks of 8");
        *out = *block;
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    // A loop of constant length (unrolled into guarded moves): the compiler would turn a loop
    // over the tail's own length back into a memmove call.
    for i in 0..8 {
        if i < d.len() {
            d[i] = s[i];
        }
    }
}

/// `dst.fill(zero)` for the few values of a line's padding, without a `memset` call.
#[inline(always)]
fn zero_line<T: Float>(dst: &mut [T]) {
    let zero = T::zero();
    let mut d = dst.chunks_exact_mut(8);
    for d in &mut d {
        let out: &mut [T; 8] = d.try_into().expect("chunks of 8");
        *out = [zero; 8];
    }
    let d = d.into_remainder();
    // As in `copy_line`: a constant-length loop, not a memset call.
    for i in 0..8 {
        if i < d.len() {
            d[i] = zero;
        }
    }
}

/// Unfolds one image `[cin, h, w]` into `cols` `[k, n]`: row `(c, ky, kx)`, column `(oy, ox)`.
fn im2col<T: Float>(g: &Geometry, x: &[T], cols: &mut [T]) {
    im2col_strided(g, x, cols, g.n());
}

/// [`im2col`] into rows `ld` apart (`ld >= n`): several images side by side in one column
/// matrix, image `i` from column `i * n` on (the caller offsets `cols`).
fn im2col_strided<T: Float>(g: &Geometry, x: &[T], cols: &mut [T], ld: usize) {
    let n = g.n();
    for row in 0..g.k() {
        let dst = &mut cols[row * ld..row * ld + n];
        let (c, kk) = (row / (g.kh * g.kw), row % (g.kh * g.kw));
        let (ky, kx) = (kk / g.kw, kk % g.kw);
        let (lo, hi) = g.valid_cols(kx);
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        if g.stride == 1 && g.wo == g.w {
            same_width_row(g, plane, dst, ky, kx, (lo, hi));
            continue;
        }
        for (oy, out) in dst.chunks_exact_mut(g.wo).enumerate() {
            let Some(iy) = g.input_row(oy, ky) else {
                zero_line(out);
                continue;
            };
            zero_line(&mut out[..lo]);
            zero_line(&mut out[hi..]);
            if lo == hi {
                continue;
            }
            let line = &plane[iy * g.w..(iy + 1) * g.w];
            let start = lo * g.stride + kx - g.pad;
            if g.stride == 1 {
                copy_line(&mut out[lo..hi], &line[start..start + (hi - lo)]);
            } else {
                for (o, i) in out[lo..hi]
                    .iter_mut()
                    .zip(line[start..].iter().step_by(g.stride))
                {
                    *o = *i;
                }
            }
        }
    }
}

/// One im2col row of a stride-1 "same" conv (output as wide as the input): the whole row is
/// the plane shifted by `(ky - pad) * w + kx - pad`, so one copy, then zeros where the shift
/// wrapped across a line or left the image.
fn same_width_row<T: Float>(
    g: &Geometry,
    plane: &[T],
    dst: &mut [T],
    ky: usize,
    kx: usize,
    (lo, hi): (usize, usize),
) {
    let zero = T::zero();
    let wo = g.wo;
    let oy0 = g.pad.saturating_sub(ky).min(g.ho);
    let oy1 = (g.h + g.pad).saturating_sub(ky).clamp(oy0, g.ho);
    dst[..oy0 * wo].fill(zero);
    dst[oy1 * wo..].fill(zero);
    if oy0 == oy1 {
        return;
    }
    let (d0, len) = (oy0 * wo, (oy1 - oy0) * wo);
    // Source index of dst[d0]: line oy0 + ky - pad, column kx - pad (may be -1 or past the end).
    let s0 = ((oy0 + ky - g.pad) * g.w + kx) as isize - g.pad as isize;
    let skip = (-s0).max(0) as usize;
    let end = (plane.len() as isize - s0).clamp(skip as isize, len as isize) as usize;
    let run = &mut dst[d0..d0 + len];
    run[..skip].fill(zero);
    run[end..].fill(zero);
    if skip < end {
        let src = (s0 + skip as isize) as usize;
        run[skip..end].copy_from_slice(&plane[src..src + (end - skip)]);
    }
    if lo > 0 || hi < wo {
        for line in run.chunks_exact_mut(wo) {
            zero_line(&mut line[..lo]);
            zero_line(&mut line[hi..]);
        }
    }
}

/// The adjoint of [`im2col`]: adds every column entry back onto its input pixel (`dx` zeroed first).
fn col2im<T: Float>(g: &Geometry, cols: &[T], dx: &mut [T]) {
    let n = g.n();
    dx.fill(T::zero());
    for (c, plane) in dx.chunks_exact_mut(g.h * g.w).enumerate() {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (c * g.kh + ky) * g.kw + kx;
                let src = &cols[row * n..(row + 1) * n];
                let (lo, hi) = g.valid_cols(kx);
                if lo == hi {
                    continue;
                }
                for (oy, inp) in src.chunks_exact(g.wo).enumerate() {
                    let Some(iy) = g.input_row(oy, ky) else {
                        continue;
                    };
                    let line = &mut plane[iy * g.w..(iy + 1) * g.w];
                    let start = lo * g.stride + kx - g.pad;
                    if g.stride == 1 {
                        for (d, s) in line[start..start + (hi - lo)].iter_mut().zip(&inp[lo..hi]) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in line[start..].iter_mut().step_by(g.stride).zip(&inp[lo..hi]) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

/// Unfolds one image `[cin, h, w]` into `rows` `[n, k]`, the transpose of [`im2col`]: row
/// `(oy, ox)` is that output pixel's receptive field, `(c, ky, kx)` in order. A weight gradient
/// `dy [cout, n] x rows [n, k]` then has a row-major right matrix with `k` columns, which our
/// AVX-512 GEMM multiplies faster than the `gemm` crate multiplies the transposed im2col.
/// Through [`im2col`] into `cols` (`k * n` scratch) and a blocked transpose: gathering the
/// receptive fields directly copies `kw` values at a time, and those short copies cost more
/// than the GEMM they feed (measured: 26% of a ResNet-56 step).
fn im2row<T: Float>(g: &Geometry, x: &[T], cols: &mut [T], rows: &mut [T]) {
    im2col(g, x, cols);
    transpose(&cols[..g.k() * g.n()], g.k(), g.n(), rows);
}

/// `dst [cols, rows] = src [rows, cols]` transposed, in square blocks that stay in L1.
fn transpose<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    const B: usize = 16;
    let dst = &mut dst[..rows * cols];
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            for r in r0..r1 {
                let line = &src[r * cols + c0..r * cols + c1];
                for (j, v) in line.iter().enumerate() {
                    dst[(c0 + j) * rows + r] = *v;
                }
            }
        }
    }
}

/// Most gradient values (one output channel's lines, at the phase-plane width) a chunk of
/// [`Windows::weight_grad`]'s dot products holds per output channel, so that each accumulator
/// sums ~64 vectors or more (a chunk of images) before it is reduced across its lanes. Sized
/// for 4-row tiles in L1; with today's 8-row tiles the chunk size made no measurable
/// difference (`dot_alone`: 1 to 16 images per call within 5%).
const CHUNK_VALUES: usize = 1536;

/// Fewest output channels for which [`Windows::weight_grad`] vectorises over the channels
/// ([`Float::window_grads`]) rather than the pixels: with 16, one vector, each broadcast input
/// value feeds a single FMA and the kernel is bound by its loads (measured: 83 GFLOP/s against
/// 178 with 32 or 64 channels, on one core).
const MIN_VECTOR_CHANNELS: usize = 32;

/// Values per vector of the widest SIMD path (AVX-512, f32): [`Windows::weight_grad`]'s
/// gradient lines are whole multiples of it, so its kernel needs no masked tail.
const LINE_ALIGN: usize = 16;

/// A convolution without im2col. The input is zero-padded once and, for a stride `s > 1`, split
/// into its `s * s` phase planes (plane `(py, px)` holds padded pixel `(i * s + py, j * s +
/// px)` at `(i, j)`), so that row `(c, ky, kx)` of the column matrix is one window of that
/// buffer: plane `(c, ky % s, kx % s)` read from `(ky / s) * wq + kx / s` on, if the output is
/// computed `wq` (the plane width) values per line instead of `wo`, the last `wq - wo` of each
/// line being junk that is dropped afterwards. The kernels read those windows in place
/// ([`Float::gemm_packed`], [`Float::dot_products`]), which saves writing and re-reading
/// `kh * kw` copies of the image.
struct Windows {
    /// The path these windows were made for (one with windowed kernels).
    isa: Isa,
    /// The stride: `s * s` phase planes per channel.
    s: usize,
    /// Height and width of a phase plane (the padded image's, for stride 1).
    hq: usize,
    wq: usize,
    /// Columns of the wide output: `(ho - 1) * wq + wo`.
    n: usize,
    /// Start of each column-matrix row in the prepared image.
    rows: Vec<usize>,
    /// Values of the planes, `cin * s * s * hq * wq`.
    planes: usize,
    /// How far the windows reach: the planes, then zeros.
    extent: usize,
}

impl Windows {
    /// `None` where `isa`, this CPU or `T` has no windowed kernels, or for a pointwise conv
    /// (whose image already is its column matrix).
    fn new<T: Float>(g: &Geometry, isa: Isa) -> Option<Self> {
        if g.pointwise() || !T::has_dot_products(isa) {
            return None;
        }
        let s = g.stride;
        let hq = (g.h + 2 * g.pad).div_ceil(s);
        // At stride 1, a line's right padding can be the next line's left padding (the `pad`
        // zeros it starts with) where the kernel reaches no further right than that: lines of
        // `w + pad`, 3% to 11% less junk to compute than `w + 2 pad` on the CIFAR maps.
        let shares = s == 1 && g.pad < g.kw && g.kw - 1 - g.pad <= g.pad;
        let wq = if shares {
            g.w + g.pad
        } else {
            (g.w + 2 * g.pad).div_ceil(s)
        };
        let n = (g.ho - 1) * wq + g.wo;
        let mut rows = Vec::with_capacity(g.k());
        for c in 0..g.cin {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let plane = c * s * s + (ky % s) * s + kx % s;
                    rows.push(plane * hq * wq + (ky / s) * wq + kx / s);
                }
            }
        }
        let planes = g.cin * s * s * hq * wq;
        // The last window may run past the planes (by the last line's borrowed padding).
        let extent = rows.iter().map(|r| r + n).max().unwrap_or(0).max(planes);
        Some(Self {
            isa,
            s,
            hq,
            wq,
            n,
            rows,
            planes,
            extent,
        })
    }

    /// These windows for the forward pass: `None` where the wide output is too narrow for the
    /// windowed GEMM.
    fn for_forward<T: Float>(g: &Geometry, isa: Isa) -> Option<Self> {
        Self::new::<T>(g, isa).filter(|w| T::has_gemm_rows(isa, w.n))
    }

    /// One image: `x` `[cin, h, w]` to `out` `[cout, ho, wo]`, with the filters packed by
    /// [`Float::pack_lhs`].
    fn run<T: Float>(
        &self,
        g: &Geometry,
        weight: &PackedLhs,
        x: &[T],
        out: &mut [T],
        finish: Finish<'_, T>,
    ) -> Result<()> {
        let prepared_len = self.prepared_len(g);
        T::with_scratch(prepared_len + g.cout * self.n, |buf| {
            let (prepared, wide) = buf.split_at_mut(prepared_len);
            let image = self.prepare(g, x, prepared);
            if !T::gemm_packed(self.isa, wide, self.n, weight, image, &self.rows, self.n) {
                bail!("conv2d: no windowed GEMM for {g:?}");
            }
            let lines = Lines {
                channels: g.cout,
                ho: g.ho,
                wo: g.wo,
                channel_stride: self.n,
                line_stride: self.wq,
                start: 0,
            };
            finish.copy_out(self.isa, lines, wide, out);
            Ok(())
        })
    }

    /// Elements of one prepared image; 0 where the image is used as it is (stride 1, no
    /// padding).
    fn prepared_len(&self, g: &Geometry) -> usize {
        if g.pad == 0 && self.s == 1 {
            0
        } else {
            self.extent
        }
    }

    /// The image the windows read: `x` itself, or `x` padded (and split into phase planes)
    /// into `prepared` ([`Windows::prepared_len`] values).
    fn prepare<'a, T: Float>(&self, g: &Geometry, x: &'a [T], prepared: &'a mut [T]) -> &'a [T] {
        if prepared.is_empty() {
            x
        } else {
            self.prepare_into(g, x, prepared);
            prepared
        }
    }

    /// `x` padded (and split into phase planes) into `prepared`, `[cin, s, s, hq, wq]`, and
    /// zeros after the planes to the end of `prepared`.
    fn prepare_into<T: Float>(&self, g: &Geometry, x: &[T], prepared: &mut [T]) {
        let (planes, rest) = prepared.split_at_mut(self.planes);
        // In the CPU's widest vectors: these copies were 8% of a training step.
        wide(
            self.isa,
            Prepare {
                win: self,
                g,
                x,
                planes,
            },
        );
        rest.fill(T::zero());
    }

    /// The weight gradient over the batch, chunk by chunk of images ([`CHUNK_VALUES`]), each
    /// summed by [`Float::dot_products`]: output gradient lines laid out at the plane width
    /// (zeros in the extra columns), each line padded with zeros to whole vectors and 64 bytes
    /// aligned, against the windows of the prepared images (each followed by zeros that the
    /// windows' last vectors may read). `None` where this CPU and type have no such kernel.
    fn weight_grad<T: Float>(&self, g: &Geometry, x: &[T], dy: &[T]) -> Option<Vec<T>> {
        if g.cout >= MIN_VECTOR_CHANNELS {
            return self.weight_grad_by_channel(g, x, dy);
        }
        let len = g.cout * g.k();
        let line = self.n.next_multiple_of(LINE_ALIGN);
        // Depends on the shapes only (never the thread count), so the summation order does
        // too; at least 8 chunks, for the threads to share.
        let per = (CHUNK_VALUES / line).clamp(1, (g.batch / 8).max(1));
        let b_len = self.extent + (line - self.n);
        let wide_len = g.cout * line;
        self.by_chunks(
            g,
            (x, dy),
            per,
            (b_len, wide_len, len),
            |d, w| {
                for (w, d) in w.chunks_exact_mut(line).zip(d.chunks_exact(g.n())) {
                    self.widen(g, d, &mut w[..self.n]);
                    w[self.n..].fill(T::zero());
                }
            },
            |acc, wide, prepared| {
                T::dot_products(
                    self.isa, acc, wide, g.cout, wide_len, prepared, b_len, &self.rows, line,
                )
            },
        )
    }

    /// A weight-gradient kernel run chunk by chunk of `per` images: each chunk's images
    /// prepared (`b_len` values each, [`Windows::prepare_into`]) and output gradients laid out
    /// by `layout` (`grad_len` values each) in 64-byte-aligned scratch, then `kernel(acc, grads,
    /// prepared)` adding the chunk's sums into a zeroed partial of `len` values; the partials
    /// summed in chunk order. `None` where the kernel is missing (it returned false).
    #[allow(clippy::too_many_arguments)]
    fn by_chunks<T: Float>(
        &self,
        g: &Geometry,
        (x, dy): (&[T], &[T]),
        per: usize,
        (b_len, grad_len, len): (usize, usize, usize),
        layout: impl Fn(&[T], &mut [T]) + Sync,
        kernel: impl Fn(&mut [T], &[T], &[T]) -> bool + Sync,
    ) -> Option<Vec<T>> {
        let partials = x
            .par_chunks(per * g.image_len())
            .zip(dy.par_chunks(per * g.out_image_len()))
            .map(|(xs, dys)| -> Option<Vec<T>> {
                let images = xs.len() / g.image_len();
                let mut acc = vec![T::zero(); len];
                let done = T::with_scratch(images * (b_len + grad_len) + LINE_ALIGN, |buf| {
                    let skip = buf.as_ptr().align_offset(64).min(LINE_ALIGN);
                    let (grads, prepared) = buf[skip..].split_at_mut(images * grad_len);
                    let prepared = &mut prepared[..images * b_len];
                    for (p, x) in prepared
                        .chunks_exact_mut(b_len)
                        .zip(xs.chunks_exact(g.image_len()))
                    {
                        self.prepare_into(g, x, p);
                    }
                    for (w, d) in grads
                        .chunks_exact_mut(grad_len)
                        .zip(dys.chunks_exact(g.out_image_len()))
                    {
                        layout(d, w);
                    }
                    kernel(&mut acc, grads, prepared)
                });
                done.then_some(acc)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(sum_in_order(partials, len))
    }

    /// [`Windows::weight_grad`] vectorised over the output channels
    /// ([`Float::window_grads`]): each chunk's output gradients transposed pixel-major, `ld`
    /// (the channel count rounded up to whole vectors) lanes per pixel of the wide output,
    /// zeros for the junk pixels and the extra lanes.
    fn weight_grad_by_channel<T: Float>(&self, g: &Geometry, x: &[T], dy: &[T]) -> Option<Vec<T>> {
        let (k, ld) = (g.k(), g.cout.next_multiple_of(LINE_ALIGN));
        let len = k * ld;
        // Depends on the shapes only, as in `weight_grad`.
        let per = (g.batch / 8).max(1);
        let b_len = self.extent;
        let dyt_len = self.n * ld;
        let sum = self.by_chunks(
            g,
            (x, dy),
            per,
            (b_len, dyt_len, len),
            |d, t| {
                t.fill(T::zero());
                for (o, plane) in d.chunks_exact(g.n()).enumerate() {
                    for (oy, line) in plane.chunks_exact(g.wo).enumerate() {
                        for (ox, v) in line.iter().enumerate() {
                            t[(oy * self.wq + ox) * ld + o] = *v;
                        }
                    }
                }
            },
            |acc, dyt, prepared| {
                T::window_grads(self.isa, acc, prepared, b_len, &self.rows, dyt, self.n, ld)
            },
        )?;
        // `[k, ld]` to `[cout, k]`.
        let mut dw = vec![T::zero(); g.cout * k];
        for (q, lanes) in sum.chunks_exact(ld).enumerate() {
            for (o, v) in lanes[..g.cout].iter().enumerate() {
                dw[o * k + q] = *v;
            }
        }
        Some(dw)
    }

    /// Lays out one output channel's gradient `[ho, wo]` as one line of `n` values, `ho`
    /// lines of the plane width `wq`, zeros in the `wq - wo` extra columns.
    fn widen<T: Float>(&self, g: &Geometry, dy: &[T], wide: &mut [T]) {
        for (oy, line) in dy.chunks_exact(g.wo).enumerate() {
            let start = oy * self.wq;
            copy_line(&mut wide[start..start + g.wo], line);
            let end = (start + self.wq).min(self.n);
            zero_line(&mut wide[start + g.wo..end]);
        }
    }
}

/// Splits `x` `[cin, h, w]`, zero-padded by `g.pad`, into `prepared` `[cin, s, s, hq, wq]`:
/// plane `(c, py, px)` holds padded pixel `(i * s + py, j * s + px)` at `(i, j)`, zero outside
/// the image.
#[inline(always)]
fn phase_planes<T: Float>(g: &Geometry, hq: usize, wq: usize, x: &[T], prepared: &mut [T]) {
    let (s, zero) = (g.stride, T::zero());
    for (c, src) in x.chunks_exact(g.h * g.w).enumerate() {
        for py in 0..s {
            for px in 0..s {
                let plane = &mut prepared[((c * s + py) * s + px) * hq * wq..][..hq * wq];
                for (i, line) in plane.chunks_exact_mut(wq).enumerate() {
                    let Some(iy) = (i * s + py).checked_sub(g.pad).filter(|&iy| iy < g.h) else {
                        line.fill(zero);
                        continue;
                    };
                    let src_line = &src[iy * g.w..(iy + 1) * g.w];
                    for (j, v) in line.iter_mut().enumerate() {
                        *v = (j * s + px)
                            .checked_sub(g.pad)
                            .and_then(|ix| src_line.get(ix))
                            .copied()
                            .unwrap_or(zero);
                    }
                }
            }
        }
    }
}

/// [`Windows::prepare_into`]'s copy, as a [`Wide`] task.
struct Prepare<'a, T> {
    win: &'a Windows,
    g: &'a Geometry,
    x: &'a [T],
    planes: &'a mut [T],
}

impl<T: Float> Wide for Prepare<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run(self) {
        let Self { win, g, x, planes } = self;
        if win.s == 1 {
            pad_image(g, win.wq, x, planes);
        } else {
            phase_planes(g, win.hq, win.wq, x, planes);
        }
    }
}

/// Copies `x` `[cin, h, w]` into `padded` `[cin, h + 2 pad, wp]` with a zero border.
#[inline(always)]
fn pad_image<T: Float>(g: &Geometry, wp: usize, x: &[T], padded: &mut [T]) {
    let zero = T::zero();
    let hp = g.h + 2 * g.pad;
    for (plane, src) in padded
        .chunks_exact_mut(hp * wp)
        .zip(x.chunks_exact(g.h * g.w))
    {
        plane[..g.pad * wp].fill(zero);
        plane[(g.pad + g.h) * wp..].fill(zero);
        for (line, src_line) in plane[g.pad * wp..(g.pad + g.h) * wp]
            .chunks_exact_mut(wp)
            .zip(src.chunks_exact(g.w))
        {
            zero_line(&mut line[..g.pad]);
            copy_line(&mut line[g.pad..g.pad + g.w], src_line);
            zero_line(&mut line[g.pad + g.w..]);
        }
    }
}

fn forward<T: Float>(g: &Geometry, isa: Isa, x: &[T], w: &[T]) -> Result<Vec<T>> {
    let mut out = vec![T::zero(); g.batch * g.out_image_len()];
    forward_into(g, isa, x, w, &mut out)?;
    Ok(out)
}

/// What a fused forward pass does to each output value after the convolution, while the value
/// is still in cache: `relu(conv + bias[c] + residual)`, each part optional, summed in that
/// order. Per image (`residual` is that image's `[cout, ho, wo]`).
#[derive(Clone, Copy)]
struct Finish<'a, T> {
    bias: Option<&'a [T]>,
    residual: Option<&'a [T]>,
    relu: bool,
}

impl<'a, T: Float> Finish<'a, T> {
    const NONE: Self = Self {
        bias: None,
        residual: None,
        relu: false,
    };

    fn is_none(&self) -> bool {
        self.bias.is_none() && self.residual.is_none() && !self.relu
    }

    /// This finish for image `i` of `g`'s batch (the batch's residual sliced to the image).
    fn image(&self, g: &Geometry, i: usize) -> Self {
        let len = g.out_image_len();
        Self {
            residual: self.residual.map(|r| &r[i * len..(i + 1) * len]),
            ..*self
        }
    }

    /// One image's output `[channels, ho, wo]` = `finish(src)`, line `y` of channel `c` read
    /// from `src[start + c * channel_stride + y * line_stride..][..wo]`, in the CPU's widest
    /// vectors (a GEMM's output copied out of its wider layout).
    fn copy_out(self, isa: Isa, lines: Lines, src: &[T], out: &mut [T]) {
        wide(
            isa,
            CopyOut {
                finish: self,
                lines,
                src,
                out,
            },
        );
    }

    /// `dst = finish(src)` for output channel `c`, `src` and `dst` starting at offset `at` of
    /// the image's output.
    #[inline(always)]
    fn line(&self, c: usize, at: usize, src: &[T], dst: &mut [T]) {
        if self.is_none() {
            copy_line(dst, src);
            return;
        }
        let b = self.bias.map(|b| b[c]);
        // One loop per case, so that each has no test inside (`value` inlined with its
        // options known).
        match self.residual {
            Some(r) => {
                for ((d, s), r) in dst.iter_mut().zip(src).zip(&r[at..at + src.len()]) {
                    *d = self.value(*s, b, Some(*r));
                }
            }
            None => {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = self.value(*s, b, None);
                }
            }
        }
    }

    /// `relu(s + b + r)`, each part where given. Absent parts are not added at all (`+ 0.0`
    /// would turn a -0.0 into +0.0).
    #[inline(always)]
    fn value(&self, s: T, b: Option<T>, r: Option<T>) -> T {
        let mut v = s;
        if let Some(b) = b {
            v += b;
        }
        if let Some(r) = r {
            v += r;
        }
        // As `add_relu`: not above zero gives zero.
        if self.relu && v <= T::zero() {
            T::zero()
        } else {
            v
        }
    }

    /// The finish applied in place to one image's output `[cout, ho, wo]`.
    fn in_place(&self, g: &Geometry, out: &mut [T]) {
        if self.is_none() {
            return;
        }
        let n = g.n();
        for (c, plane) in out.chunks_exact_mut(n).enumerate() {
            let b = self.bias.map(|b| b[c]);
            let r = self.residual.map(|r| &r[c * n..(c + 1) * n]);
            for (j, d) in plane.iter_mut().enumerate() {
                *d = self.value(*d, b, r.map(|r| r[j]));
            }
        }
    }
}

/// Where the lines of one image's output lie in a GEMM's output ([`Finish::copy_out`]).
#[derive(Clone, Copy)]
struct Lines {
    channels: usize,
    ho: usize,
    wo: usize,
    channel_stride: usize,
    line_stride: usize,
    start: usize,
}

struct CopyOut<'a, T> {
    finish: Finish<'a, T>,
    lines: Lines,
    src: &'a [T],
    out: &'a mut [T],
}

impl<T: Float> Wide for CopyOut<'_, T> {
    type Out = ();

    #[inline(always)]
    fn run(self) {
        let Self {
            finish,
            lines: l,
            src,
            out,
        } = self;
        let plane = l.ho * l.wo;
        for (c, dst) in out.chunks_exact_mut(plane).take(l.channels).enumerate() {
            for (y, line) in dst.chunks_exact_mut(l.wo).enumerate() {
                let from = l.start + c * l.channel_stride + y * l.line_stride;
                finish.line(c, c * plane + y * l.wo, &src[from..from + l.wo], line);
            }
        }
    }
}

/// [`forward`] into `out` (`[batch, cout, ho, wo]`, every element overwritten).
fn forward_into<T: Float>(g: &Geometry, isa: Isa, x: &[T], w: &[T], out: &mut [T]) -> Result<()> {
    forward_finished(g, isa, x, w, out, Finish::NONE)
}

/// [`forward_into`] with `finish` applied to every output value.
fn forward_finished<T: Float>(
    g: &Geometry,
    isa: Isa,
    x: &[T],
    w: &[T],
    out: &mut [T],
    finish: Finish<'_, T>,
) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let weight = Mat::rows(w, g.cout, g.k());
    let windows = Windows::for_forward::<T>(g, isa);
    let stacks = windows
        .is_none()
        .then(|| Stacks::new::<T>(g, isa))
        .flatten();
    let groups = (windows.is_none() && stacks.is_none())
        .then(|| image_groups::<T>(g, isa))
        .flatten();
    // Packed once for the whole batch, not once per image.
    let packed = if windows.is_some() || stacks.is_some() || groups.is_some() {
        T::pack_lhs(isa, weight)
    } else {
        None
    };
    if let (Some(stacks), Some(packed)) = (&stacks, &packed) {
        return stacks.forward(g, packed, x, out, finish);
    }
    if let (Some(windows), Some(packed)) = (&windows, &packed) {
        out.par_chunks_mut(g.out_image_len())
            .zip(x.par_chunks(g.image_len()))
            .enumerate()
            .try_for_each(|(i, (out, x))| windows.run(g, packed, x, out, finish.image(g, i)))?;
        return Ok(());
    }
    if let (Some(groups), Some(packed)) = (&groups, &packed) {
        return forward_grouped(g, isa, packed, x, out, groups, finish);
    }
    out.par_chunks_mut(g.out_image_len())
        .zip(x.par_chunks(g.image_len()))
        .enumerate()
        .try_for_each(|(i, (out, x))| {
            if g.pointwise() {
                gemm(isa, out, weight, Mat::rows(x, g.k(), g.n()), false)?;
            } else {
                T::with_scratch(g.k() * g.n(), |cols| {
                    im2col(g, x, cols);
                    gemm(isa, out, weight, Mat::rows(cols, g.k(), g.n()), false)
                })?;
            }
            finish.image(g, i).in_place(g, out);
            Ok(())
        })
}

/// Output pixels a stack of [`Stacks`] aims for.
const STACK_COLUMNS: usize = 256;

/// A stride-1 "same" conv on maps too small for a windowed product of their own (the 8x8 maps
/// of the CIFAR ResNets' last stage: 71 columns at the plane width) run as one windowed product
/// per stack of `per` images: the images side by side, `pad` zero columns between neighbours
/// (one image's right padding is the next one's left padding), so the windows of one wide
/// image cover them all and no im2col copy is made. The output columns between images are junk
/// and dropped, as the extra columns of the plane width are: 1 in 9 on 8x8 maps (side by side
/// rather than one above the other, which would add a junk line per image too).
struct Stacks {
    per: usize,
    /// The stack as one image: `[1, cin, h, per * (w + pad) - pad]`.
    wide: Geometry,
    windows: Windows,
}

impl Stacks {
    fn new<T: Float>(g: &Geometry, isa: Isa) -> Option<Self> {
        let same = g.stride == 1 && g.kh == g.kw && g.pad > 0 && 2 * g.pad + 1 == g.kh;
        if !same || g.batch < 2 || g.ho != g.h || g.wo != g.w {
            return None;
        }
        let per = STACK_COLUMNS.div_ceil(g.n()).clamp(2, g.batch);
        let wide = Geometry::new(
            &[1, g.cin, g.h, per * (g.w + g.pad) - g.pad],
            &[g.cout, g.cin, g.kh, g.kw],
            1,
            g.pad,
        )
        .ok()?;
        let windows = Windows::for_forward::<T>(&wide, isa)?;
        Some(Self { per, wide, windows })
    }

    /// [`forward_finished`] stack by stack; a last stack short of images is filled with zero
    /// images.
    fn forward<T: Float>(
        &self,
        g: &Geometry,
        weight: &PackedLhs,
        x: &[T],
        out: &mut [T],
        finish: Finish<'_, T>,
    ) -> Result<()> {
        let (per, wide_g, win) = (self.per, &self.wide, &self.windows);
        let (h, w, pad) = (g.h, g.w, g.pad);
        let ws = wide_g.w;
        let prepared_len = win.prepared_len(wide_g);
        let stack_len = wide_g.image_len();
        out.par_chunks_mut(per * g.out_image_len())
            .zip(x.par_chunks(per * g.image_len()))
            .enumerate()
            .try_for_each(|(st, (out, xs))| {
                T::with_scratch(stack_len + prepared_len + g.cout * win.n, |buf| {
                    let (stack, rest) = buf.split_at_mut(stack_len);
                    let (prepared, prod) = rest.split_at_mut(prepared_len);
                    let images = xs.len() / g.image_len();
                    for (c, plane) in stack.chunks_exact_mut(h * ws).enumerate() {
                        for (y, line) in plane.chunks_exact_mut(ws).enumerate() {
                            for i in 0..per {
                                let at = i * (w + pad);
                                let dst = &mut line[at..at + w];
                                if i < images {
                                    copy_line(dst, &xs[((i * g.cin + c) * h + y) * w..][..w]);
                                } else {
                                    zero_line(dst);
                                }
                                if i + 1 < per {
                                    zero_line(&mut line[at + w..at + w + pad]);
                                }
                            }
                        }
                    }
                    win.prepare_into(wide_g, stack, prepared);
                    if !T::gemm_packed(win.isa, prod, win.n, weight, prepared, &win.rows, win.n) {
                        bail!("conv2d: no windowed GEMM for the stacked {wide_g:?}");
                    }
                    for (i, img) in out.chunks_exact_mut(g.out_image_len()).enumerate() {
                        let lines = Lines {
                            channels: g.cout,
                            ho: g.ho,
                            wo: g.wo,
                            channel_stride: win.n,
                            line_stride: win.wq,
                            start: i * (w + pad),
                        };
                        finish
                            .image(g, st * per + i)
                            .copy_out(win.isa, lines, prod, img);
                    }
                    Ok(())
                })
            })
    }
}

/// Fewest columns a grouped product aims for: [`forward_grouped`] puts this many output pixels
/// (several small images) side by side.
const GROUP_COLUMNS: usize = 256;

/// For a conv whose per-image product is too narrow for our AVX-512 GEMM (the 8x8 maps of the
/// CIFAR ResNets' last stage: 64 columns) but not the batch: the image ranges
/// `[start, end)` of groups of images whose column matrices go side by side into one product
/// of at least [`GROUP_COLUMNS`] columns (or the whole batch, if wide enough). Every group is
/// at least that wide, so every image takes the same kernel. `None` where the product is wide
/// enough alone, or too narrow even for the whole batch, or no such GEMM runs here.
fn image_groups<T: Float>(g: &Geometry, isa: Isa) -> Option<Vec<(usize, usize)>> {
    let n = g.n();
    if n == 0 || g.batch < 2 || T::has_gemm_rows(isa, n) || !T::has_gemm_rows(isa, g.batch * n) {
        return None;
    }
    let per = GROUP_COLUMNS.div_ceil(n).clamp(2, g.batch);
    let count = (g.batch / per).max(1);
    // `count` groups of `batch / count` or one more image: each at least `per` wide.
    let (size, extra) = (g.batch / count, g.batch % count);
    let mut groups = Vec::with_capacity(count);
    let mut start = 0;
    for i in 0..count {
        let end = start + size + usize::from(i < extra);
        groups.push((start, end));
        start = end;
    }
    Some(groups)
}

/// [`forward_into`] over image groups ([`image_groups`]): the group's images unfolded side by
/// side into one `[k, images * n]` column matrix, one GEMM, then each image's columns copied
/// to its place in `out`. Our GEMM sums over `k` in an order fixed by `k` alone, so every
/// output value is the same whichever group its image falls in.
fn forward_grouped<T: Float>(
    g: &Geometry,
    isa: Isa,
    weight: &PackedLhs,
    x: &[T],
    out: &mut [T],
    groups: &[(usize, usize)],
    finish: Finish<'_, T>,
) -> Result<()> {
    let (n, k) = (g.n(), g.k());
    let mut parts = Vec::with_capacity(groups.len());
    let mut rest = out;
    for &(a, b) in groups {
        let (head, tail) = rest.split_at_mut((b - a) * g.out_image_len());
        parts.push((a, b, head));
        rest = tail;
    }
    parts.into_par_iter().try_for_each(|(a, b, out)| {
        let wide = (b - a) * n;
        let xs = &x[a * g.image_len()..b * g.image_len()];
        T::with_scratch(k * wide + g.cout * wide, |buf| {
            let (cols, prod) = buf.split_at_mut(k * wide);
            for (i, img) in xs.chunks_exact(g.image_len()).enumerate() {
                im2col_strided(g, img, &mut cols[i * n..], wide);
            }
            let rows: Vec<usize> = (0..k).map(|q| q * wide).collect();
            if !T::gemm_packed(isa, prod, wide, weight, cols, &rows, wide) {
                bail!("conv2d: no packed GEMM for {g:?}");
            }
            for (i, img_out) in out.chunks_exact_mut(g.out_image_len()).enumerate() {
                // Each channel's plane as one line of n values.
                let lines = Lines {
                    channels: g.cout,
                    ho: 1,
                    wo: n,
                    channel_stride: wide,
                    line_stride: 0,
                    start: i * n,
                };
                finish.image(g, a + i).copy_out(isa, lines, prod, img_out);
            }
            Ok(())
        })
    })
}

/// The input gradient of a stride-1 conv is itself a stride-1 conv of `dy` with the filters
/// flipped and transposed, padded by `k - 1 - pad`: one im2col + GEMM with the long inner
/// dimension `cout * k * k`, much faster than a GEMM with inner dimension `cout` plus col2im.
fn flipped_geometry(g: &Geometry) -> Option<Geometry> {
    if g.stride != 1 || g.kh != g.kw || g.pad >= g.kh || g.pointwise() {
        return None;
    }
    let t = Geometry::new(
        &[g.batch, g.cout, g.ho, g.wo],
        &[g.cin, g.cout, g.kh, g.kw],
        1,
        g.kh - 1 - g.pad,
    )
    .ok()?;
    (t.ho == g.h && t.wo == g.w).then_some(t)
}

/// `w'[ci, co, ky, kx] = w[co, ci, kh - 1 - ky, kw - 1 - kx]`.
fn flip_transpose<T: Float>(g: &Geometry, w: &[T]) -> Vec<T> {
    let kk = g.kh * g.kw;
    let mut out = vec![T::zero(); w.len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &w[(co * g.cin + ci) * kk..][..kk];
            let dst = &mut out[(ci * g.cout + co) * kk..][..kk];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    out
}

fn input_grad<T: Float>(g: &Geometry, isa: Isa, dy: &[T], w: &[T]) -> Result<Vec<T>> {
    let mut dx = vec![T::zero(); g.batch * g.image_len()];
    input_grad_into(g, isa, dy, w, &mut dx)?;
    Ok(dx)
}

/// [`input_grad`] into `dx` (`[batch, cin, h, w]`, every element overwritten).
fn input_grad_into<T: Float>(
    g: &Geometry,
    isa: Isa,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) -> Result<()> {
    input_grad_plus(g, isa, dy, w, None, dx)
}

/// [`input_grad_into`] plus `add` (`dx`'s shape), value by value, where given: a gradient
/// that also flows into the input another way (a residual block's shortcut).
fn input_grad_plus<T: Float>(
    g: &Geometry,
    isa: Isa,
    dy: &[T],
    w: &[T],
    add: Option<&[T]>,
    dx: &mut [T],
) -> Result<()> {
    if let Some(t) = flipped_geometry(g) {
        let finish = Finish {
            residual: add,
            ..Finish::NONE
        };
        return forward_finished(&t, isa, dy, &flip_transpose(g, w), dx, finish);
    }
    if dx.is_empty() {
        return Ok(());
    }
    input_grad_unfused(g, isa, dy, w, dx)?;
    if let Some(add) = add {
        dx.par_chunks_mut(1 << 14)
            .zip(add.par_chunks(1 << 14))
            .for_each(|(d, a)| {
                for (d, a) in d.iter_mut().zip(a) {
                    *d += *a;
                }
            });
    }
    Ok(())
}

/// [`input_grad_into`] as a GEMM and col2im (no flipped convolution for this shape).
fn input_grad_unfused<T: Float>(
    g: &Geometry,
    isa: Isa,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) -> Result<()> {
    let weight_t = Mat::rows(w, g.cout, g.k()).t();
    dx.par_chunks_mut(g.image_len())
        .zip(dy.par_chunks(g.out_image_len()))
        .try_for_each(|(dx, dy)| {
            let dy = Mat::rows(dy, g.cout, g.n());
            if g.pointwise() {
                gemm(isa, dx, weight_t, dy, false)
            } else {
                T::with_scratch(g.k() * g.n(), |cols| {
                    gemm(isa, cols, weight_t, dy, false)?;
                    col2im(g, cols, dx);
                    Ok(())
                })
            }
        })
}

/// Images per partial weight gradient: depends on the batch size only, never on the thread
/// count, so the summation order (and every bit of the result) is the same on any machine.
fn images_per_chunk(batch: usize) -> usize {
    batch.div_ceil(16).max(1)
}

fn weight_grad<T: Float>(g: &Geometry, isa: Isa, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    let len = g.cout * g.k();
    if g.batch == 0 || len == 0 || g.n() == 0 {
        return Ok(vec![T::zero(); len]);
    }
    if let Some(dw) = Windows::new::<T>(g, isa).and_then(|w| w.weight_grad(g, x, dy)) {
        return Ok(dw);
    }
    if T::has_gemm_rows(isa, g.k()) {
        return weight_grad_im2row(g, isa, x, dy);
    }
    weight_grad_im2col(g, isa, x, dy)
}

/// [`weight_grad`] as one GEMM per chunk of images with a row-major right matrix:
/// `dy [cout, images * n] x rows [images * n, k]`, the chunk's output gradients side by side
/// and their [`im2row`] unfoldings stacked. For the `k >= 96` convs (16+ input channels, 3x3)
/// whose gradient lines are too short for [`Windows::weight_grad`]. The sum runs over the
/// chunk's images and pixels in order, then over chunks in order: fixed by the batch size.
fn weight_grad_im2row<T: Float>(g: &Geometry, isa: Isa, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    let (n, k, len) = (g.n(), g.k(), g.cout * g.k());
    let per = images_per_chunk(g.batch);
    let partials = x
        .par_chunks(per * g.image_len())
        .zip(dy.par_chunks(per * g.out_image_len()))
        .map(|(xs, dys)| -> Result<Vec<T>> {
            let inner = xs.len() / g.image_len() * n;
            let mut acc = vec![T::zero(); len];
            T::with_scratch(inner * k + g.cout * inner + k * n, |buf| {
                let (rows, rest) = buf.split_at_mut(inner * k);
                let (lhs, cols) = rest.split_at_mut(g.cout * inner);
                for (i, (x, dy)) in xs
                    .chunks_exact(g.image_len())
                    .zip(dys.chunks_exact(g.out_image_len()))
                    .enumerate()
                {
                    im2row(g, x, cols, &mut rows[i * n * k..(i + 1) * n * k]);
                    for (line, src) in lhs.chunks_exact_mut(inner).zip(dy.chunks_exact(n)) {
                        copy_line(&mut line[i * n..(i + 1) * n], src);
                    }
                }
                gemm(
                    isa,
                    &mut acc,
                    Mat::rows(lhs, g.cout, inner),
                    Mat::rows(rows, inner, k),
                    false,
                )
            })?;
            Ok(acc)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(sum_in_order(partials, len))
}

/// [`weight_grad`] through im2col and a GEMM with the transposed column matrix.
fn weight_grad_im2col<T: Float>(g: &Geometry, isa: Isa, x: &[T], dy: &[T]) -> Result<Vec<T>> {
    let len = g.cout * g.k();
    let per = images_per_chunk(g.batch);
    let cols_len = if g.pointwise() { 0 } else { g.k() * g.n() };
    let partials = x
        .par_chunks(per * g.image_len())
        .zip(dy.par_chunks(per * g.out_image_len()))
        .map(|(xs, dys)| -> Result<Vec<T>> {
            let mut acc = vec![T::zero(); len];
            T::with_scratch(cols_len, |cols| {
                for (i, (x, dy)) in xs
                    .chunks_exact(g.image_len())
                    .zip(dys.chunks_exact(g.out_image_len()))
                    .enumerate()
                {
                    let cols_t = if g.pointwise() {
                        Mat::rows(x, g.k(), g.n()).t()
                    } else {
                        im2col(g, x, cols);
                        Mat::rows(cols, g.k(), g.n()).t()
                    };
                    gemm(isa, &mut acc, Mat::rows(dy, g.cout, g.n()), cols_t, i > 0)?;
                }
                Ok::<(), candle_core::Error>(())
            })?;
            Ok(acc)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(sum_in_order(partials, len))
}

/// Ordered reduction: chunk 0 + chunk 1 + ... whatever thread computed each.
fn sum_in_order<T: Float>(partials: Vec<Vec<T>>, len: usize) -> Vec<T> {
    let mut parts = partials.into_iter();
    let mut dw = parts.next().unwrap_or_else(|| vec![T::zero(); len]);
    for p in parts {
        for (d, s) in dw.iter_mut().zip(&p) {
            *d += *s;
        }
    }
    dw
}

/// Which of the three computations an op runs; each takes two tensors.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `(x, weight) -> y`.
    Forward,
    /// `(dy, weight) -> dx` for an input of `h x w`.
    InputGrad { h: usize, w: usize },
    /// `(x, dy) -> dweight` for a `kh x kw` kernel.
    WeightGrad { kh: usize, kw: usize },
}

#[derive(Clone, Copy, Debug)]
struct ConvOp {
    kind: Kind,
    stride: usize,
    pad: usize,
    /// The path chosen when the forward op was recorded; its gradients copy it.
    isa: Isa,
}

impl ConvOp {
    fn run<T: Float>(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (
            contiguous_slice::<T>(s1, l1, "conv2d")?,
            contiguous_slice::<T>(s2, l2, "conv2d")?,
        );
        let (d1, d2) = (l1.dims(), l2.dims());
        match self.kind {
            Kind::Forward => {
                let g = Geometry::new(d1, d2, self.stride, self.pad)?;
                let y = forward(&g, self.isa, a, b)?;
                Ok((into_storage(y), Shape::from((g.batch, g.cout, g.ho, g.wo))))
            }
            Kind::InputGrad { h, w } => {
                let (&[batch, _, _, _], &[_, cin, _, _]) = (d1, d2) else {
                    bail!("conv2d input gradient: bad shapes {d1:?} {d2:?}");
                };
                let g = Geometry::new(&[batch, cin, h, w], d2, self.stride, self.pad)?;
                if d1 != [g.batch, g.cout, g.ho, g.wo] {
                    bail!("conv2d input gradient: gradient {d1:?} does not match {g:?}");
                }
                let dx = input_grad(&g, self.isa, a, b)?;
                Ok((into_storage(dx), Shape::from((batch, cin, h, w))))
            }
            Kind::WeightGrad { kh, kw } => {
                let (&[_, cin, _, _], &[_, cout, _, _]) = (d1, d2) else {
                    bail!("conv2d weight gradient: bad shapes {d1:?} {d2:?}");
                };
                let g = Geometry::new(d1, &[cout, cin, kh, kw], self.stride, self.pad)?;
                if d2 != [g.batch, g.cout, g.ho, g.wo] {
                    bail!("conv2d weight gradient: gradient {d2:?} does not match {g:?}");
                }
                let dw = weight_grad(&g, self.isa, a, b)?;
                Ok((into_storage(dw), Shape::from((cout, cin, kh, kw))))
            }
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Forward => "prunebench-conv2d",
            Kind::InputGrad { .. } => "prunebench-conv2d-input-grad",
            Kind::WeightGrad { .. } => "prunebench-conv2d-weight-grad",
        }
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
            (a, b) => bail!("{}: unsupported dtypes {a:?}, {b:?}", self.name()),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Kind::Forward = self.kind else {
            bail!("{}: no second derivative", self.name());
        };
        let dy = dy.contiguous()?;
        let (_, _, h, w) = x.dims4()?;
        let (_, _, kh, kw) = weight.dims4()?;
        let input = ConvOp {
            kind: Kind::InputGrad { h, w },
            ..*self
        };
        let filter = ConvOp {
            kind: Kind::WeightGrad { kh, kw },
            ..*self
        };
        // An input that is neither a variable nor computed from one (the images fed to the
        // first conv) would receive a gradient nobody reads: skip that whole computation.
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(&weight.contiguous()?, &input)?)
        } else {
            None
        };
        let dw = if weight.track_op() {
            Some(x.contiguous()?.apply_op2_no_bwd(&dy, &filter)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `conv2d(x, weight)` with square `stride` and zero `padding` on all sides, groups 1,
/// dilation 1, as candle's `Tensor::conv2d(weight, padding, stride, 1, 1)`; x `[B, C, H, W]`,
/// weight `[O, C, KH, KW]` (PyTorch's layout), f32 or f64 CPU tensors. Differentiable in both.
/// Forward and backward run on the path [`isa()`](crate::isa()) gives when this is called.
pub fn conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let op = ConvOp {
        kind: Kind::Forward,
        stride,
        pad: padding,
        isa: isa(),
    };
    x.contiguous()?.apply_op2(&weight.contiguous()?, op)
}

/// What [`ConvShape::forward_fused`] adds to the convolution: `relu(conv + bias[c] +
/// residual)`, each part optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    /// Added value by value: the output's shape.
    pub residual: Option<&'a [f32]>,
    /// Clamp the sum at zero.
    pub relu: bool,
}

/// The sizes of one convolution, for the slice-level API ([`crate::raw`]): checked once, then
/// its three computations run on plain `f32` slices in candle's NCHW layout, into buffers the
/// caller owns (a training step that keeps its buffers between batches allocates nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape(Geometry);

impl ConvShape {
    /// A conv of input `[batch, cin, h, w]` with weight `[cout, cin, kh, kw]`, square `stride`
    /// and zero `padding` on all sides (groups 1, dilation 1).
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Geometry::new(&input, &weight, stride, padding).map(Self)
    }

    /// `[batch, cin, h, w]`.
    pub fn input_dims(&self) -> [usize; 4] {
        let g = &self.0;
        [g.batch, g.cin, g.h, g.w]
    }

    /// `[cout, cin, kh, kw]`.
    pub fn weight_dims(&self) -> [usize; 4] {
        let g = &self.0;
        [g.cout, g.cin, g.kh, g.kw]
    }

    /// `[batch, cout, ho, wo]`.
    pub fn output_dims(&self) -> [usize; 4] {
        let g = &self.0;
        [g.batch, g.cout, g.ho, g.wo]
    }

    fn check(&self, what: &str, got: usize, dims: [usize; 4]) -> Result<()> {
        let want: usize = dims.iter().product();
        if got != want {
            bail!(
                "conv2d {what}: {got} values for {dims:?} ({want}) in {:?}",
                self.0
            );
        }
        Ok(())
    }

    /// `out = conv(x, weight)`, on the path [`isa()`] gives now.
    pub fn forward(&self, x: &[f32], weight: &[f32], out: &mut [f32]) -> Result<()> {
        self.check("input", x.len(), self.input_dims())?;
        self.check("weight", weight.len(), self.weight_dims())?;
        self.check("output", out.len(), self.output_dims())?;
        forward_into(&self.0, isa(), x, weight, out)
    }

    /// `out = relu(conv(x, weight) + bias[c] + residual)`, each part as given: the
    /// convolution with its epilogue fused, applied while each output line is in cache
    /// (inference with BatchNorm folded into the filters and bias). `bias` has one value per
    /// output channel, `residual` the output's shape; the sum is in that order.
    pub fn forward_fused(
        &self,
        x: &[f32],
        weight: &[f32],
        epilogue: Epilogue<'_>,
        out: &mut [f32],
    ) -> Result<()> {
        self.check("input", x.len(), self.input_dims())?;
        self.check("weight", weight.len(), self.weight_dims())?;
        self.check("output", out.len(), self.output_dims())?;
        if let Some(b) = epilogue.bias
            && b.len() != self.0.cout
        {
            bail!(
                "conv2d bias: {} values for {} output channels",
                b.len(),
                self.0.cout
            );
        }
        if let Some(r) = epilogue.residual {
            self.check("residual", r.len(), self.output_dims())?;
        }
        let finish = Finish {
            bias: epilogue.bias,
            residual: epilogue.residual,
            relu: epilogue.relu,
        };
        forward_finished(&self.0, isa(), x, weight, out, finish)
    }

    /// `dx`, the gradient of the input, from the output's gradient `dy`.
    pub fn input_grad(&self, dy: &[f32], weight: &[f32], dx: &mut [f32]) -> Result<()> {
        self.check("output gradient", dy.len(), self.output_dims())?;
        self.check("weight", weight.len(), self.weight_dims())?;
        self.check("input gradient", dx.len(), self.input_dims())?;
        input_grad_into(&self.0, isa(), dy, weight, dx)
    }

    /// [`ConvShape::input_grad`] plus `add` (the input's shape), value by value: the input
    /// gradient of a residual block's first conv with the shortcut's gradient added as the
    /// kernel writes it out (one pass less over the gradient). The same values as
    /// `input_grad` followed by `dx += add`.
    pub fn input_grad_plus(
        &self,
        dy: &[f32],
        weight: &[f32],
        add: &[f32],
        dx: &mut [f32],
    ) -> Result<()> {
        self.check("output gradient", dy.len(), self.output_dims())?;
        self.check("weight", weight.len(), self.weight_dims())?;
        self.check("input gradient", dx.len(), self.input_dims())?;
        self.check("added gradient", add.len(), self.input_dims())?;
        input_grad_plus(&self.0, isa(), dy, weight, Some(add), dx)
    }

    /// The weight's gradient `[cout, cin, kh, kw]` from the input and the output's gradient,
    /// summed over the batch in a fixed order.
    pub fn weight_grad(&self, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
        self.check("input", x.len(), self.input_dims())?;
        self.check("output gradient", dy.len(), self.output_dims())?;
        weight_grad(&self.0, isa(), x, dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_columns_cover_exactly_the_in_image_reads() {
        for (w, k, stride, pad) in [
            (5, 3, 1, 1),
            (6, 3, 2, 1),
            (7, 1, 2, 0),
            (4, 3, 2, 0),
            (3, 3, 1, 2),
        ] {
            let g = Geometry::new(&[1, 1, w, w], &[1, 1, k, k], stride, pad).unwrap();
            for kx in 0..k {
                let (lo, hi) = g.valid_cols(kx);
                for ox in 0..g.wo {
                    let ix = (ox * stride + kx) as isize - pad as isize;
                    let inside = ix >= 0 && (ix as usize) < w;
                    assert_eq!(inside, (lo..hi).contains(&ox), "{g:?} kx {kx} ox {ox}");
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let x = Tensor::zeros((1, 3, 8, 8), DType::F32, &candle_core::Device::Cpu).unwrap();
        let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &candle_core::Device::Cpu).unwrap();
        assert!(conv2d(&x, &w, 1, 1).is_err());
        let w = Tensor::zeros((4, 3, 11, 11), DType::F32, &candle_core::Device::Cpu).unwrap();
        assert!(conv2d(&x, &w, 1, 1).is_err());
        let w = Tensor::zeros((4, 3, 3, 3), DType::F32, &candle_core::Device::Cpu).unwrap();
        assert!(conv2d(&x, &w, 0, 1).is_err());
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Largest |a - b| over the largest |b|.
    fn rel_diff(a: &[f32], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        let diff = a
            .iter()
            .zip(b)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        diff / scale
    }

    /// Our f32 weight gradient where it takes the windowed kernel (`Windows::weight_grad`,
    /// only for gradient lines of `MIN_DOT_LEN` = 512 values or more, at the padded width),
    /// against candle's conv2d backward in f64, through both paths. The shapes of the other
    /// tests all have shorter lines, so without these the windowed gradient would be checked
    /// only by training.
    #[test]
    fn windowed_weight_grad_matches_candle_on_every_path() {
        use candle_core::{Device, Var};
        // Largest relative error allowed, against the largest weight-gradient value: f32 sums
        // of 2,000-9,000 products of values in [-1, 1] (measured: about 1e-7).
        const TOL: f64 = 1e-5;
        // (batch, cin, h, w, cout, k, pad): lines of 31 * 34 + 32 = 1086 values (CIFAR's first
        // stage), of 21 * 24 + 22 = 526 (no padding: the image is read unpadded), and a 5x5
        // kernel on a non-square image; batch 18 puts two images in each partial sum.
        let shapes = [
            (3, 5, 32, 32, 7, 3, 1),
            (18, 3, 24, 24, 4, 3, 0),
            (2, 2, 30, 33, 3, 5, 2),
        ];
        for (i, &(b, cin, h, w, cout, k, pad)) in shapes.iter().enumerate() {
            let g = Geometry::new(&[b, cin, h, w], &[cout, cin, k, k], 1, pad).unwrap();
            let (xv, wv) = (
                values(g.batch * g.image_len(), i as u64),
                values(cout * g.k(), 10 + i as u64),
            );
            let r = values(g.batch * g.out_image_len(), 20 + i as u64);
            let tensor = |v: &[f32], dims: &[usize], dtype: DType| {
                Tensor::from_slice(v, dims, &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .unwrap()
            };
            let y_dims = [b, cout, g.ho, g.wo];
            // candle's reference, in f64 so its own rounding does not count against ours.
            let (x64, w64) = (
                Var::from_tensor(&tensor(&xv, &[b, cin, h, w], DType::F64)).unwrap(),
                Var::from_tensor(&tensor(&wv, &[cout, cin, k, k], DType::F64)).unwrap(),
            );
            let y = x64
                .as_tensor()
                .conv2d(w64.as_tensor(), pad, 1, 1, 1)
                .unwrap();
            let grads = (y * tensor(&r, &y_dims, DType::F64))
                .and_then(|t| t.sum_all())
                .and_then(|t| t.backward())
                .unwrap();
            let read = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let want_dw = read(grads.get(w64.as_tensor()).unwrap());
            let want_dx = read(grads.get(x64.as_tensor()).unwrap());
            for isa in crate::isa::test_paths("windowed weight gradient") {
                // Each path runs its own code: windows on AVX-512, im2col + `gemm` below it.
                let windowed = Windows::new::<f32>(&g, isa).is_some();
                assert_eq!(windowed, isa == Isa::Avx512, "shape #{i} on {isa}");
                let (x32, w32) = (
                    Var::from_tensor(&tensor(&xv, &[b, cin, h, w], DType::F32)).unwrap(),
                    Var::from_tensor(&tensor(&wv, &[cout, cin, k, k], DType::F32)).unwrap(),
                );
                let grads = crate::with_isa(isa, || {
                    let y = conv2d(x32.as_tensor(), w32.as_tensor(), 1, pad)?;
                    (y * tensor(&r, &y_dims, DType::F32))?.sum_all()?.backward()
                })
                .unwrap();
                let read = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let dw = rel_diff(&read(grads.get(w32.as_tensor()).unwrap()), &want_dw);
                let dx = rel_diff(&read(grads.get(x32.as_tensor()).unwrap()), &want_dx);
                eprintln!(
                    "shape #{i} on {isa}: weight grad rel diff {dw:.1e}, input grad {dx:.1e}"
                );
                assert!(dw < TOL, "shape #{i} on {isa}: weight grad rel diff {dw}");
                assert!(dx < TOL, "shape #{i} on {isa}: input grad rel diff {dx}");
            }
        }
    }

    /// Not a test: ms per forward, input gradient and weight gradient of every distinct
    /// ResNet-20/56 conv at batch 64, 2 threads, with GFLOP/s (`xtask/bench/torch_conv_ops.py`
    /// times PyTorch's on the same shapes):
    /// `cargo test --release -p kernels conv_op_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn conv_op_speed() {
        let isa = isa();
        for (cin, cout, hw, stride) in [
            (3, 16, 32, 1),
            (16, 16, 32, 1),
            (16, 32, 32, 2),
            (32, 32, 16, 1),
            (32, 64, 16, 2),
            (64, 64, 8, 1),
        ] {
            let g = Geometry::new(&[64, cin, hw, hw], &[cout, cin, 3, 3], stride, 1).unwrap();
            let x = values(g.batch * g.image_len(), 1);
            let w = values(g.cout * g.k(), 2);
            let dy = values(g.batch * g.out_image_len(), 3);
            let mut out = vec![0f32; dy.len()];
            let mut dx = vec![0f32; x.len()];
            let time = |f: &mut dyn FnMut()| {
                f();
                let t = std::time::Instant::now();
                for _ in 0..20 {
                    f();
                }
                t.elapsed().as_secs_f64() * 50.0
            };
            let fwd = time(&mut || forward_into(&g, isa, &x, &w, &mut out).unwrap());
            let data = time(&mut || input_grad_into(&g, isa, &dy, &w, &mut dx).unwrap());
            let wgt = time(&mut || {
                weight_grad(&g, isa, &x, &dy).unwrap();
            });
            let gf = 2.0 * (g.batch * g.cout * g.k() * g.n()) as f64 / 1e6;
            println!(
                "{cin}->{cout} {hw}x{hw} s{stride}: fwd {fwd:.2} ms ({:.0} GF/s), data {data:.2} ms ({:.0}), weight {wgt:.2} ms ({:.0})",
                gf / fwd,
                gf / data,
                gf / wgt
            );
        }
    }

    /// Not a test: ms per weight gradient, windows, im2col (`gemm` crate) and im2row (ours), on
    /// the ResNet-56 shapes at batch 64:
    /// `cargo test --release -p kernels weight_grad_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn weight_grad_speed() {
        for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
            let g = Geometry::new(&[64, c, hw, hw], &[c, c, 3, 3], 1, 1).unwrap();
            let x: Vec<f32> = (0..g.batch * g.image_len())
                .map(|i| (i % 7) as f32)
                .collect();
            let dy: Vec<f32> = (0..g.batch * g.out_image_len())
                .map(|i| (i % 5) as f32)
                .collect();
            let time = |f: &dyn Fn() -> Vec<f32>| {
                f();
                let t = std::time::Instant::now();
                for _ in 0..10 {
                    f();
                }
                t.elapsed().as_secs_f64() * 100.0
            };
            let isa = isa();
            let windows = Windows::new::<f32>(&g, isa).is_some();
            let (a, b, r, a2, b2, r2) = (
                time(&|| weight_grad(&g, isa, &x, &dy).unwrap()),
                time(&|| weight_grad_im2col(&g, isa, &x, &dy).unwrap()),
                time(&|| weight_grad_im2row(&g, isa, &x, &dy).unwrap()),
                time(&|| weight_grad(&g, isa, &x, &dy).unwrap()),
                time(&|| weight_grad_im2col(&g, isa, &x, &dy).unwrap()),
                time(&|| weight_grad_im2row(&g, isa, &x, &dy).unwrap()),
            );
            println!(
                "{c}x{hw}x{hw}: dispatched {:.2} ms (windows: {windows}), im2col {:.2} ms, im2row {:.2} ms",
                a.min(a2),
                b.min(b2),
                r.min(r2)
            );
        }
    }
}

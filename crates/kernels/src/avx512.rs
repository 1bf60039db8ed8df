//! An f32 GEMM for x86-64 CPUs with AVX-512, used in place of the `gemm` crate for the products
//! it does faster (the `gemm` crate's AVX-512 kernels sit behind its nightly feature, so on
//! stable Rust it runs AVX2).
//!
//! On Zen 4 a 16-wide FMA retires at half the rate of an 8-wide one and the gain was in the
//! layout; on the Zen 5 and Intel Xeon machines measured since, 16-wide FMAs run at full rate
//! (about 210-260 GFLOP/s per core, measured with a register-only FMA loop), so the arithmetic
//! counts too. The left matrix (the filters) is packed into zero-padded panels of [`MR`] rows,
//! one [`KC`]-deep slice at a time, once per product or once for many ([`Packed`]); the right
//! matrix (the im2col buffer, or windows of an image) is read in place, its last register per
//! row masked where the block is not whole; a register-blocked microkernel multiplies one panel
//! by up to [`NR`] columns with 24 accumulators (about 160 GFLOP/s on one Xeon core with its
//! operands in L1, `micro_alone`). [`suits`] says where that beats the `gemm` crate. Results depend on the shapes
//! only: the summation order over the inner dimension is fixed.

#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, __mmask16, _mm256_loadu_ps, _mm512_add_pd, _mm512_add_ps, _mm512_cvtps_pd,
    _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mul_pd,
    _mm512_reduce_add_ps, _mm512_set1_ps, _mm512_setzero_pd, _mm512_setzero_ps, _mm512_storeu_pd,
    _mm512_storeu_ps,
};
use std::cell::RefCell;
use std::sync::OnceLock;

use crate::isa::Isa;
use crate::matmul::Mat;

/// Rows of a left panel (and of the register tile).
const MR: usize = 8;
/// f32 lanes of one register.
const LANES: usize = 16;
/// Most columns of a right block: three registers, so 8 x 3 = 24 accumulators, the three
/// right-hand vectors and one broadcast fit AVX-512's 32 registers.
const NR: usize = 3 * LANES;
/// Deepest packed slice: a panel slice (8 KB) and the right block it meets (48 KB at most)
/// stay in L1/L2 while the microkernel streams them.
const KC: usize = 256;

/// Whether this CPU has AVX-512F (checked once): what the `unsafe` calls below rely on,
/// whatever path was asked for.
pub(crate) fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// Whether an op on path `isa` uses these kernels: asked for, and this CPU has them.
pub(crate) fn enabled(isa: Isa) -> bool {
    isa >= Isa::Avx512 && available()
}

/// Whether [`sgemm`] beats the `gemm` crate on this product, as measured by the ignored test
/// `gemm_speed` (Zen 4, one core): twice as fast on a forward convolution's 16 x 144 x 1024, a
/// little faster on 32 x 288 x 256, but slower where the right matrix has 64 columns or fewer
/// (stage 3 of the CIFAR ResNets) or is a transposed view (the weight gradients), which the
/// `gemm` crate packs better.
pub(crate) fn suits(isa: Isa, rhs: Mat<'_, f32>) -> bool {
    rhs.cs == 1 && suits_columns(isa, rhs.cols)
}

/// Whether [`sgemm_rows`] is the faster choice, on path `isa`, for a product with `n` columns.
pub(crate) fn suits_columns(isa: Isa, n: usize) -> bool {
    n >= 2 * NR && enabled(isa)
}

/// `dst = lhs * rhs`, or `dst += lhs * rhs` with `accumulate`; `dst` row-major `m x n`. The
/// caller has checked the shapes (`matmul::gemm`) and [`suits`]; the CPU is checked again in
/// [`sgemm_rows`].
pub(crate) fn sgemm(dst: &mut [f32], lhs: Mat<'_, f32>, rhs: Mat<'_, f32>, accumulate: bool) {
    assert!(rhs.cs == 1 && rhs.rows == lhs.cols);
    let rows: Vec<usize> = (0..rhs.rows).map(|q| q * rhs.rs).collect();
    sgemm_rows(dst, rhs.cols, lhs, rhs.data, &rows, rhs.cols, accumulate);
}

/// A left matrix packed for [`sgemm_packed`]: zero-padded panels of [`MR`] rows, one
/// `depth`-deep slice of the inner dimension after another. Packing once and reusing it over
/// many products (a conv's filters over every image of the batch) saves repacking: for the
/// small products of a CIFAR ResNet's last stage, packing took a sixth of the time.
#[derive(Debug)]
pub(crate) struct Packed {
    m: usize,
    k: usize,
    depth: usize,
    data: Vec<f32>,
}

impl Packed {
    pub(crate) fn new(lhs: Mat<'_, f32>) -> Self {
        Self::new_in(lhs, Vec::new())
    }

    /// [`Packed::new`] in `data`'s allocation (its values are all overwritten).
    fn new_in(lhs: Mat<'_, f32>, mut data: Vec<f32>) -> Self {
        let (m, k) = (lhs.rows, lhs.cols);
        let panels = m.div_ceil(MR);
        // Balanced slices of at most KC: 576 goes as 3 x 192, not 256 + 256 + 64.
        let depth = k.div_ceil(k.div_ceil(KC)).max(1);
        data.resize(panels * MR * k, 0.0);
        for k0 in (0..k).step_by(depth) {
            let kc = depth.min(k - k0);
            pack_lhs(
                lhs,
                k0,
                kc,
                &mut data[panels * MR * k0..panels * MR * (k0 + kc)],
            );
        }
        Self { m, k, depth, data }
    }
}

/// `dst (+)= lhs * B` where row `q` of the `k x n` matrix `B` is `b[rows[q]..rows[q] + n]`:
/// any set of windows into `b`, so a convolution can pass the input image itself, one window
/// per (channel, kernel row, kernel column), instead of an im2col copy of it. `dst` holds `m`
/// rows of `n` values, row stride `ldc`. Panics if a window leaves `b` or the shapes disagree.
pub(crate) fn sgemm_rows(
    dst: &mut [f32],
    ldc: usize,
    lhs: Mat<'_, f32>,
    b: &[f32],
    rows: &[usize],
    n: usize,
    accumulate: bool,
) {
    // Packed into this thread's buffer: the callers that pack per product (im2col products,
    // image by image) would otherwise allocate and zero it every time.
    let packed = Packed::new_in(lhs, PACK.with(RefCell::take));
    sgemm_packed(dst, ldc, &packed, b, rows, n, accumulate);
    PACK.with(|p| *p.borrow_mut() = packed.data);
}

thread_local! {
    /// Per-thread buffer for the left panels packed by [`sgemm_rows`].
    static PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// [`sgemm_rows`] with the left matrix packed already.
pub(crate) fn sgemm_packed(
    dst: &mut [f32],
    ldc: usize,
    lhs: &Packed,
    b: &[f32],
    rows: &[usize],
    n: usize,
    accumulate: bool,
) {
    let (m, k) = (lhs.m, lhs.k);
    assert!(available() && rows.len() == k && ldc >= n);
    assert!(m == 0 || dst.len() >= (m - 1) * ldc + n);
    let windows = checked::Windows::new(b, rows, n);
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(ldc).take(m) {
                let len = n.min(row.len());
                row[..len].fill(0.0);
            }
        }
        return;
    }
    let panels = m.div_ceil(MR);
    for k0 in (0..k).step_by(lhs.depth) {
        let kc = lhs.depth.min(k - k0);
        let a_pack = &lhs.data[panels * MR * k0..panels * MR * (k0 + kc)];
        let load_c = accumulate || k0 > 0;
        let mut j0 = 0;
        while j0 < n {
            let vectors = block_vectors(n - j0);
            let cols = (vectors * LANES).min(n - j0);
            // The right matrix is read in place: packing it cost as much as a quarter of
            // the GEMM time, since each of its values is used only m times.
            let block = Block {
                win: windows.slice(k0, kc),
                j0,
            };
            for (p, a) in a_pack.chunks_exact(MR * kc).enumerate() {
                let i0 = p * MR;
                let tile = Tile {
                    rows: MR.min(m - i0),
                    cols,
                    ldc,
                    load_c,
                };
                let c = &mut dst[i0 * ldc + j0..];
                match vectors {
                    1 => tile.run::<1>(a, block, c),
                    2 => tile.run::<2>(a, block, c),
                    _ => tile.run::<3>(a, block, c),
                }
            }
            j0 += cols;
        }
    }
}

/// Registers of the next column block when `left` columns remain: three, but never leave a
/// lone one (4 registers go as 2 + 2, not 3 + 1: the 1-wide kernel is load-bound).
fn block_vectors(left: usize) -> usize {
    match left.div_ceil(LANES) {
        v @ 1..=3 => v,
        4 => 2,
        _ => 3,
    }
}

/// Packs rows `[i0, i0 + MR)` of `lhs`, columns `[k0, k0 + kc)`, panel by panel: panel `p`,
/// depth `q`, row `r` at `p * MR * kc + q * MR + r`; rows past the end are zeros.
fn pack_lhs(lhs: Mat<'_, f32>, k0: usize, kc: usize, out: &mut [f32]) {
    for (p, panel) in out.chunks_exact_mut(MR * kc).enumerate() {
        for r in 0..MR {
            let i = p * MR + r;
            if i >= lhs.rows {
                for q in 0..kc {
                    panel[q * MR + r] = 0.0;
                }
                continue;
            }
            let row = i * lhs.rs + k0 * lhs.cs;
            for q in 0..kc {
                panel[q * MR + r] = lhs.data[row + q * lhs.cs];
            }
        }
    }
}

mod checked {
    /// Windows `b[rows[q]..rows[q] + n]`, every one checked to lie inside `b` when made (once
    /// per product, not once per microkernel call: that check cost ~10% of a small GEMM).
    #[derive(Clone, Copy)]
    pub(super) struct Windows<'a> {
        b: &'a [f32],
        rows: &'a [usize],
        n: usize,
    }

    impl<'a> Windows<'a> {
        /// Panics if a window leaves `b`.
        pub(super) fn new(b: &'a [f32], rows: &'a [usize], n: usize) -> Self {
            assert!(
                rows.iter()
                    .all(|&r| r.checked_add(n).is_some_and(|e| e <= b.len()))
            );
            Self { b, rows, n }
        }

        pub(super) fn b(&self) -> &'a [f32] {
            self.b
        }

        pub(super) fn rows(&self) -> &'a [usize] {
            self.rows
        }

        pub(super) fn n(&self) -> usize {
            self.n
        }

        /// Windows `k0..k0 + kc` (panics past the end).
        pub(super) fn slice(self, k0: usize, kc: usize) -> Self {
            Self {
                rows: &self.rows[k0..k0 + kc],
                ..self
            }
        }
    }
}

/// Columns `[j0, j0 + cols)` of checked windows.
#[derive(Clone, Copy)]
struct Block<'a> {
    win: checked::Windows<'a>,
    j0: usize,
}

/// Where one microkernel call writes: `rows x cols` of `c`, row stride `ldc`.
#[derive(Clone, Copy)]
struct Tile {
    rows: usize,
    cols: usize,
    ldc: usize,
    load_c: bool,
}

impl Tile {
    /// `c[..rows, ..cols] (+)= a_panel * block` for a block of `NV` registers' width.
    fn run<const NV: usize>(self, a: &[f32], block: Block<'_>, c: &mut [f32]) {
        let kc = block.win.rows().len();
        // The bounds the unchecked accesses below rely on (every window `rows[q] .. rows[q] +
        // n` lies in `b`, checked when `block.win` was made, and j0 + cols <= n).
        assert!(
            (1..=3).contains(&NV)
                && (1..=MR).contains(&self.rows)
                && self.cols > (NV - 1) * LANES
                && self.cols <= NV * LANES
                && a.len() >= kc * MR
                && block.j0 + self.cols <= block.win.n()
                && c.len() >= (self.rows - 1) * self.ldc + self.cols
        );
        // SAFETY: `available()` (asserted in `sgemm_rows`, the only caller) says the CPU has
        // AVX-512F; the assert above bounds every access `micro` makes, as its comments show.
        unsafe {
            let args = (
                self,
                kc,
                a.as_ptr(),
                block.win.b().as_ptr().add(block.j0),
                block.win.rows().as_ptr(),
                c.as_mut_ptr(),
            );
            // A full last register needs no mask: a masked load may cost an extra micro-op
            // (measured in `micro_alone`: 156 GFLOP/s masked, 160 unmasked, one Xeon core).
            if self.cols == NV * LANES {
                micro::<NV, false>(args)
            } else {
                micro::<NV, true>(args)
            }
        }
    }
}

/// The register-blocked kernel. Reads `a[..kc * MR]`, `rows[..kc]` and `b[rows[q] + j]` for
/// `q < kc`, `j < cols`; reads (with `load_c`) and writes `c[i * ldc + j]` for `i < rows`,
/// `j < cols` only: the last register of each row of `b` and `c` is accessed under a mask of
/// its `cols - (NV - 1) * 16` valid lanes.
#[target_feature(enable = "avx512f")]
unsafe fn micro<const NV: usize, const MASKED: bool>(
    (t, kc, a, b, rows, c): (Tile, usize, *const f32, *const f32, *const usize, *mut f32),
) {
    let tail = t.cols - (NV - 1) * LANES;
    let last: __mmask16 = if tail == LANES {
        0xffff
    } else {
        (1u16 << tail) - 1
    };
    let mut acc: [[__m512; NV]; MR] = [[_mm512_setzero_ps(); NV]; MR];
    for q in 0..kc {
        // SAFETY: q < kc = rows.len().
        let row = unsafe { b.add(*rows.add(q)) };
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, reg) in bv.iter_mut().enumerate() {
            // SAFETY: the lanes under the mask are b[rows[q] + j0 + v * 16 + l] with
            // v * 16 + l < cols, in bounds by the caller's assert; others are not read
            // (without `MASKED`, cols = NV * 16).
            *reg = unsafe {
                if MASKED && v + 1 == NV {
                    _mm512_maskz_loadu_ps(last, row.add(v * LANES))
                } else {
                    _mm512_loadu_ps(row.add(v * LANES))
                }
            };
        }
        for (r, acc_row) in acc.iter_mut().enumerate() {
            // SAFETY: q * MR + r < kc * MR <= a.len().
            let ar = _mm512_set1_ps(unsafe { *a.add(q * MR + r) });
            for (v, reg) in acc_row.iter_mut().enumerate() {
                *reg = _mm512_fmadd_ps(ar, bv[v], *reg);
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        for (v, reg) in row.iter().enumerate() {
            let mask = if v + 1 == NV { last } else { 0xffff };
            // SAFETY: the lanes under `mask` are columns v * 16 + l < cols of row r < rows,
            // inside `c` by the caller's assert; masked-off lanes are neither read nor written.
            unsafe {
                let ptr = c.add(r * t.ldc + v * LANES);
                let sum = if t.load_c {
                    _mm512_add_ps(*reg, _mm512_maskz_loadu_ps(mask, ptr))
                } else {
                    *reg
                };
                _mm512_mask_storeu_ps(ptr, mask, sum);
            }
        }
    }
}

/// Rows of `a` and windows of `b` per tile of [`dot_products`]: 8 x 3 = 24 accumulators, the
/// three window vectors loaded first and the eight row vectors streamed (28 registers), 11
/// loads per 24 FMAs. The rows are where alignment can be had (a convolution's output-gradient
/// lines, laid out 64 bytes apart by the caller), the windows are not (shifted by a kernel
/// column each): the wider side of the tile is the one whose loads do not split cache lines.
const DA: usize = 8;
const DB: usize = 3;

/// `out[i * nb + j] += sum over images t and p < n of a[t][i][p] * b[t][rows[j] + p]`: the
/// products of every row of each `a` image (`na` rows of `n` values, image stride `a_len`) with
/// every window `rows[j]..rows[j] + n` of the matching `b` image (image stride `b_len`), summed
/// over the images. Both operands run along their contiguous dimension, so neither is copied or
/// transposed; each accumulator is summed across its lanes once, after all the images. This is
/// a convolution's weight gradient with `a` = the output gradient and `b` = the padded input.
/// Panics if a row or window leaves its image or the shapes disagree.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_products(
    out: &mut [f32],
    a: &[f32],
    na: usize,
    a_len: usize,
    b: &[f32],
    b_len: usize,
    rows: &[usize],
    n: usize,
) {
    let nb = rows.len();
    let images = a.len().checked_div(a_len).unwrap_or(0);
    assert!(available() && out.len() == na * nb && na * n <= a_len);
    assert!(a.len() == images * a_len && b.len() >= images * b_len);
    assert!(
        rows.iter()
            .all(|&r| r.checked_add(n).is_some_and(|e| e <= b_len))
    );
    if n == 0 || images == 0 {
        return;
    }
    for i0 in (0..na).step_by(DA) {
        for j0 in (0..nb).step_by(DB) {
            // Tiles at the edges repeat the tile's first row or window in the unused slots
            // (always in bounds) and drop those results.
            let a_rows: [usize; DA] = std::array::from_fn(|r| (i0 + r).min(na - 1) * n);
            let b_rows: [usize; DB] = std::array::from_fn(|c| rows[(j0 + c).min(nb - 1)]);
            // SAFETY: `available()` was asserted; every a-row `a_rows[r] + t * a_len .. + n`
            // lies in image t of `a` (na * n <= a_len) and every window `b_rows[c] + t * b_len
            // .. + n` in image t of `b` (checked above), for t < images.
            let sums = unsafe {
                dot_tile(
                    a.as_ptr(),
                    a_len,
                    &a_rows,
                    b.as_ptr(),
                    b_len,
                    &b_rows,
                    n,
                    images,
                )
            };
            for (r, row) in sums.iter().enumerate().take(na - i0) {
                for (c, v) in row.iter().enumerate().take(nb - j0) {
                    out[(i0 + r) * nb + j0 + c] += *v;
                }
            }
        }
    }
}

/// One 8 x 3 tile of [`dot_products`]: reads `a[t * a_len + a_rows[r] + p]` and
/// `b[t * b_len + b_rows[c] + p]` for `t < images`, `p < n` (the last vector of each row under
/// a mask of its valid lanes).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn dot_tile(
    a: *const f32,
    a_len: usize,
    a_rows: &[usize; DA],
    b: *const f32,
    b_len: usize,
    b_rows: &[usize; DB],
    n: usize,
    images: usize,
) -> [[f32; DB]; DA] {
    let mut acc: [[__m512; DB]; DA] = [[_mm512_setzero_ps(); DB]; DA];
    let full = n / LANES;
    let tail = n % LANES;
    let tail_mask: __mmask16 = (1u16 << tail).wrapping_sub(1);
    // SAFETY (all pointer arithmetic and loads below): a row `a_rows[r]` of image t and a
    // window `b_rows[c]` of image t span `n` values inside their image, as the caller checked;
    // the full vectors read `v * 16 .. v * 16 + 16 <= full * 16 <= n` and the tail only the
    // lanes under its mask.
    let ap: [*const f32; DA] = std::array::from_fn(|r| unsafe { a.add(a_rows[r]) });
    let bp: [*const f32; DB] = std::array::from_fn(|c| unsafe { b.add(b_rows[c]) });
    unsafe {
        acc = dot_run::<false>(acc, ap, bp, (a_len, b_len, images), full, 0xffff);
        if tail > 0 {
            let (ap, bp) = (
                ap.map(|p| p.add(full * LANES)),
                bp.map(|p| p.add(full * LANES)),
            );
            acc = dot_run::<true>(acc, ap, bp, (a_len, b_len, images), 1, tail_mask);
        }
    }
    let mut sums = [[0.0f32; DB]; DA];
    for (out, row) in sums.iter_mut().zip(&acc) {
        for (o, reg) in out.iter_mut().zip(row) {
            *o = _mm512_reduce_add_ps(*reg);
        }
    }
    sums
}

/// The steps of [`dot_tile`] over `images` images (`a` and `b` images `a_len` and `b_len`
/// apart) of `vectors` vectors each, from `ap` and `bp` on: each step loads one vector of every
/// row and window (under `mask` if `MASKED`) and adds their products to `acc`. Its own function
/// (not inlined): inside `dot_tile` the compiler kept only part of `acc` in registers and
/// spilled the rest on every step.
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn dot_run<const MASKED: bool>(
    mut acc: [[__m512; DB]; DA],
    ap: [*const f32; DA],
    bp: [*const f32; DB],
    (a_len, b_len, images): (usize, usize, usize),
    vectors: usize,
    mask: __mmask16,
) -> [[__m512; DB]; DA] {
    let load = |p: *const f32| {
        // SAFETY: the caller's pointers have `vectors` vectors (the lanes under `mask`) to read.
        unsafe {
            if MASKED {
                _mm512_maskz_loadu_ps(mask, p)
            } else {
                _mm512_loadu_ps(p)
            }
        }
    };
    for t in 0..images {
        for v in 0..vectors {
            let (oa, ob) = (t * a_len + v * LANES, t * b_len + v * LANES);
            // SAFETY: as `load`'s: step v of image t.
            let bv: [__m512; DB] = std::array::from_fn(|c| load(unsafe { bp[c].add(ob) }));
            for (p, row) in ap.iter().zip(acc.iter_mut()) {
                let av = load(unsafe { p.add(oa) });
                for (c, reg) in row.iter_mut().enumerate() {
                    *reg = _mm512_fmadd_ps(av, bv[c], *reg);
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, mul: usize, modulo: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * mul) % modulo) as f32 * 0.25 - 1.5)
            .collect()
    }

    #[test]
    fn dot_products_match_a_naive_sum_with_tails() {
        // No portable twin: other paths take im2col for the weight gradient, checked against
        // this one and candle by conv's `windowed_weight_grad_matches_candle_on_every_path`.
        if !available() {
            eprintln!("no AVX-512 on this CPU: dot_products NOT checked");
            return;
        }
        // 5 rows (4 + 1), 7 windows (6 + 1), 37 values per row (2 x 16 + 5), 3 images, windows
        // overlapping and reaching the end of their image.
        let (na, n, images) = (5, 37, 3);
        let (a_len, b_len) = (na * n + 3, 60);
        let rows = [0, 1, 5, 9, 10, 22, 23];
        let a = values(images * a_len, 7, 13);
        let b = values(images * b_len, 5, 11);
        let mut out = values(na * rows.len(), 3, 5);
        let init = out.clone();
        dot_products(&mut out, &a, na, a_len, &b, b_len, &rows, n);
        for i in 0..na {
            for (j, &start) in rows.iter().enumerate() {
                let mut want = init[i * rows.len() + j] as f64;
                for t in 0..images {
                    for p in 0..n {
                        want += a[t * a_len + i * n + p] as f64 * b[t * b_len + start + p] as f64;
                    }
                }
                let got = out[i * rows.len() + j] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{i},{j}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn suits_row_major_right_matrices_of_96_columns_or_more() {
        let b = vec![0.0f32; 96 * 3];
        assert_eq!(suits(Isa::Avx512, Mat::rows(&b, 3, 96)), available());
        assert!(!suits(Isa::Avx512, Mat::rows(&b, 96, 3).t()));
        assert!(!suits(Isa::Avx512, Mat::rows(&b, 4, 72)));
        for below in [Isa::Portable, Isa::Avx2] {
            assert!(
                !suits(below, Mat::rows(&b, 3, 96)),
                "{below} must not use AVX-512"
            );
            assert!(!enabled(below));
        }
    }

    /// Not a test: GFLOP/s of this kernel against the `gemm` crate on the CIFAR ResNets'
    /// forward shapes (filters x im2col buffer):
    /// `cargo test --release -p kernels gemm_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn gemm_speed() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: nothing to time");
            return;
        }
        for &(m, k, n) in &[
            (16, 144, 1024),
            (16, 144, 96),
            (64, 144, 96),
            (64, 64, 96),
            (64, 576, 256),
        ] {
            let (a, b) = (values(m * k, 7, 13), values(k * n, 5, 11));
            let (lhs, rhs) = (Mat::rows(&a, m, k), Mat::rows(&b, k, n));
            let mut dst = vec![0.0f32; m * n];
            let reps = (2e9 / (2.0 * (m * k * n) as f64)) as usize;
            let flops = 2.0 * (m * k * n * reps) as f64;
            let mut time = |ours: bool| {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    if ours {
                        sgemm(&mut dst, lhs, rhs, false);
                    } else {
                        crate::matmul::gemm_crate(&mut dst, lhs, rhs, false).unwrap();
                    }
                }
                flops / t.elapsed().as_secs_f64() / 1e9
            };
            let crate_speed = time(false).max(time(false));
            let ours = if suits(Isa::Avx512, rhs) {
                format!("{:.1}", time(true).max(time(true)))
            } else {
                "not used".into()
            };
            println!("{m}x{k}x{n}: gemm crate {crate_speed:.1} GFLOP/s, ours {ours}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Not a test: GFLOP/s of the microkernel alone on L1-resident operands (one core):
    /// `cargo test --release -p kernels micro_alone -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn micro_alone() {
        if !available() {
            return;
        }
        let kc = 144;
        let a = vec![0.5f32; kc * MR];
        let n = 48;
        let b = vec![0.25f32; kc * n + 64];
        for stride in [48usize, 50] {
            let rows: Vec<usize> = (0..kc).map(|q| q * stride % (kc * n - 48)).collect();
            let mut c = vec![0f32; MR * n];
            let tile = Tile {
                rows: MR,
                cols: n,
                ldc: n,
                load_c: true,
            };
            let reps = 200_000;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                tile.run::<3>(
                    &a,
                    Block {
                        win: checked::Windows::new(&b, &rows, n),
                        j0: 0,
                    },
                    &mut c,
                );
            }
            let gf = 2.0 * (MR * n * kc * reps) as f64 / t.elapsed().as_secs_f64() / 1e9;
            println!("row stride {stride}: {gf:.1} GFLOP/s ({})", c[0]);
        }
    }

    /// Not a test: GFLOP/s of `dot_products` alone (one core) on the CIFAR ResNets' weight
    /// gradient shapes: `cargo test --release -p kernels dot_alone -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn dot_alone() {
        if !available() {
            return;
        }
        // (rows, channels, plane width, line, images)
        for (na, cin, wq, line, images) in [
            (16, 16, 33, 1056, 1),
            (32, 32, 17, 272, 7),
            (32, 32, 17, 272, 3),
            (64, 64, 9, 80, 16),
            (64, 64, 9, 80, 8),
        ] {
            let plane = (wq + 2) * wq;
            let b_len = cin * plane + line;
            let rows: Vec<usize> = (0..cin)
                .flat_map(|c| {
                    (0..3).flat_map(move |ky| (0..3).map(move |kx| c * plane + ky * wq + kx))
                })
                .collect();
            let a_buf = vec![0.5f32; images * na * line + 16];
            let skip = a_buf.as_ptr().align_offset(64);
            let a = &a_buf[skip..skip + images * na * line];
            let b = vec![0.25f32; images * b_len];
            let mut out = vec![0f32; na * rows.len()];
            let reps = (2e9 / (2.0 * (na * rows.len() * line * images) as f64)) as usize + 1;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                dot_products(&mut out, a, na, na * line, &b, b_len, &rows, line);
            }
            let gf = 2.0 * (na * rows.len() * line * images * reps) as f64
                / t.elapsed().as_secs_f64()
                / 1e9;
            println!(
                "{na}x{} line {line} x {images} images: {gf:.1} GFLOP/s",
                rows.len()
            );
        }
    }
}

/// The weight gradient's other kernel, for convs with 32 or more output channels: vectorised
/// over the output channels instead of the pixels. `out[k * ld + o] += sum over images t and
/// pixels p < n of x[t * x_len + rows[k] + p] * dyt[t * n * ld + p * ld + o]`: `dyt` is the
/// output gradient transposed, pixel-major (`ld` lanes per pixel, a multiple of 16, zeros past
/// the channel count), `x` the prepared input read through its windows. Each step broadcasts
/// one input value per window row of the tile and loads whole vectors of `dyt` (aligned, when
/// `dyt` is): no cache-line splits and no sums across lanes, where [`dot_products`] loads 11
/// vectors, most of them splitting two lines, per 24 FMAs. Measured alone on one core
/// (`dot_alone`): 178 GFLOP/s against 110-125 for [`dot_products`] on the 16x16 and 8x8 maps.
/// Each output value sums its images and pixels in order. Panics if a window leaves its image
/// or the shapes disagree.
#[allow(clippy::too_many_arguments)]
pub(crate) fn window_grads(
    out: &mut [f32],
    x: &[f32],
    x_len: usize,
    rows: &[usize],
    dyt: &[f32],
    n: usize,
    ld: usize,
) {
    let k = rows.len();
    let images = x.len().checked_div(x_len).unwrap_or(0);
    assert!(available() && ld.is_multiple_of(LANES) && out.len() == k * ld);
    assert!(dyt.len() == images * n * ld && x.len() == images * x_len);
    assert!(
        rows.iter()
            .all(|&r| r.checked_add(n).is_some_and(|e| e <= x_len))
    );
    if n == 0 || images == 0 || k == 0 {
        return;
    }
    let mut v0 = 0;
    while v0 < ld / LANES {
        let left = ld / LANES - v0;
        // Four vectors at a time, never leaving a lone one (5 as 3 + 2, 6 as 4 + 2).
        let nv = match left {
            1..=4 => left,
            5 => 3,
            _ => 4,
        };
        match nv {
            1 => window_tiles::<24, 1>(out, x, x_len, rows, dyt, n, ld, v0, images),
            2 => window_tiles::<12, 2>(out, x, x_len, rows, dyt, n, ld, v0, images),
            3 => window_tiles::<8, 3>(out, x, x_len, rows, dyt, n, ld, v0, images),
            _ => window_tiles::<6, 4>(out, x, x_len, rows, dyt, n, ld, v0, images),
        }
        v0 += nv;
    }
}

/// [`window_grads`] for output-channel vectors `v0..v0 + NV`, tiles of `MR` windows.
#[allow(clippy::too_many_arguments)]
fn window_tiles<const MR: usize, const NV: usize>(
    out: &mut [f32],
    x: &[f32],
    x_len: usize,
    rows: &[usize],
    dyt: &[f32],
    n: usize,
    ld: usize,
    v0: usize,
    images: usize,
) {
    let k = rows.len();
    for k0 in (0..k).step_by(MR) {
        // The last tile repeats its first window in the unused slots and drops those sums.
        let starts: [usize; MR] = std::array::from_fn(|r| rows[(k0 + r).min(k - 1)]);
        let mut sums = [[0.0f32; LANES]; 24];
        // SAFETY: `available()` was asserted by the caller; every window `starts[r]` spans n
        // values inside each image of `x` (checked by the caller), and `dyt` holds `images`
        // images of n pixels of `ld` lanes, of which vectors v0..v0 + NV (<= ld / 16) are read.
        unsafe {
            window_run::<MR, NV>(
                &mut sums,
                starts.map(|s| x.as_ptr().add(s)),
                dyt.as_ptr().add(v0 * LANES),
                (x_len, n, ld, images),
            )
        };
        for r in 0..MR.min(k - k0) {
            for v in 0..NV {
                let dst = &mut out[(k0 + r) * ld + (v0 + v) * LANES..][..LANES];
                for (d, s) in dst.iter_mut().zip(&sums[r * NV + v]) {
                    *d += *s;
                }
            }
        }
    }
}

/// One tile of [`window_tiles`]: `sums[r * NV + v]` = the products of window `xp[r]` with
/// vector `v` of `dyt`'s pixels, over the images. Its own function so that the `MR x NV`
/// accumulators stay in registers.
///
/// # Safety
///
/// AVX-512F; `xp[r] + t * x_len + p` and `dyt + t * n * ld + p * ld + v * 16 .. + 16` readable
/// for t < images, p < n, v < NV.
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn window_run<const MR: usize, const NV: usize>(
    sums: &mut [[f32; LANES]; 24],
    xp: [*const f32; MR],
    dyt: *const f32,
    (x_len, n, ld, images): (usize, usize, usize, usize),
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for t in 0..images {
        // SAFETY: as the caller guarantees, for image t and pixel p.
        let d_img = unsafe { dyt.add(t * n * ld) };
        for p in 0..n {
            let d: [__m512; NV] =
                std::array::from_fn(|v| unsafe { _mm512_loadu_ps(d_img.add(p * ld + v * LANES)) });
            for (r, row) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(unsafe { *xp[r].add(t * x_len + p) });
                for (reg, dv) in row.iter_mut().zip(&d) {
                    *reg = _mm512_fmadd_ps(b, *dv, *reg);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, reg) in row.iter().enumerate() {
            // SAFETY: r * NV + v < MR * NV <= 24.
            unsafe { _mm512_storeu_ps(sums[r * NV + v].as_mut_ptr(), *reg) };
        }
    }
}

/// BatchNorm's sums, lane by lane: for the whole 8-value blocks of `a` and `b` (one length),
/// `sa[l] = sum a[8 j + l]` and `sb[l] = sum a[8 j + l] * b[8 j + l]` in f64, j in order: the
/// portable loop's lanes, operations and order (a convert, a multiply, two adds; no FMA), so the
/// same bits, 8 lanes per instruction (the compiler leaves that loop scalar).
pub(crate) fn lane_products(a: &[f32], b: &[f32]) -> ([f64; 8], [f64; 8]) {
    assert!(available() && a.len() == b.len());
    // SAFETY: AVX-512F is available (asserted); the kernel reads a[..len / 8 * 8] and
    // b[..len / 8 * 8] only.
    unsafe { lane_products_run(a.as_ptr(), b.as_ptr(), a.len() / 8) }
}

/// # Safety
///
/// AVX-512F; `a[..8 * blocks]` and `b[..8 * blocks]` readable.
#[target_feature(enable = "avx512f")]
unsafe fn lane_products_run(a: *const f32, b: *const f32, blocks: usize) -> ([f64; 8], [f64; 8]) {
    let (mut sa, mut sb) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    for j in 0..blocks {
        // SAFETY: j < blocks, as the caller guarantees.
        let (va, vb) = unsafe {
            (
                _mm512_cvtps_pd(_mm256_loadu_ps(a.add(8 * j))),
                _mm512_cvtps_pd(_mm256_loadu_ps(b.add(8 * j))),
            )
        };
        sa = _mm512_add_pd(sa, va);
        sb = _mm512_add_pd(sb, _mm512_mul_pd(va, vb));
    }
    let (mut ra, mut rb) = ([0f64; 8], [0f64; 8]);
    // SAFETY: both arrays hold 8 f64.
    unsafe {
        _mm512_storeu_pd(ra.as_mut_ptr(), sa);
        _mm512_storeu_pd(rb.as_mut_ptr(), sb);
    }
    (ra, rb)
}

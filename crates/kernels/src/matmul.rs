//! A bounds-checked, safe front for the `gemm` crate (the GEMM candle-core itself uses).

use std::cell::RefCell;

use candle_core::{Result, WithDType, bail};

use crate::isa::Isa;

/// The element types our kernels support: `gemm` has microkernels for both.
pub(crate) trait Float: WithDType + Send + Sync {
    /// Runs `f` on this thread's scratch buffer of `len` elements, whose contents are whatever
    /// the last user left: callers overwrite all of it. Reusing it saves an allocation, its
    /// zeroing and its page faults on every im2col.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;

    /// Computes the product with a faster kernel than the `gemm` crate's where `isa`, this CPU
    /// and type have one, returning whether it did. Shapes are checked by the caller.
    fn fast_gemm(
        isa: Isa,
        dst: &mut [Self],
        lhs: Mat<'_, Self>,
        rhs: Mat<'_, Self>,
        accumulate: bool,
    ) -> bool {
        let _ = (isa, dst, lhs, rhs, accumulate);
        false
    }

    /// Whether [`Float::gemm_rows`] runs on `isa` and this CPU for a product with `n` columns.
    fn has_gemm_rows(isa: Isa, n: usize) -> bool {
        let _ = (isa, n);
        false
    }

    /// `lhs` packed for [`Float::gemm_packed`], where `isa`, this CPU and type have that
    /// kernel.
    fn pack_lhs(isa: Isa, lhs: Mat<'_, Self>) -> Option<PackedLhs> {
        let _ = (isa, lhs);
        None
    }

    /// `dst = lhs * B`, row `q` of `B` being `b[rows[q]..rows[q] + n]` and `dst` of row stride
    /// `ldc`, with the left matrix packed by [`Float::pack_lhs`]; false, doing nothing, where there is no such kernel.
    fn gemm_packed(
        isa: Isa,
        dst: &mut [Self],
        ldc: usize,
        lhs: &PackedLhs,
        b: &[Self],
        rows: &[usize],
        n: usize,
    ) -> bool {
        let _ = (isa, dst, ldc, lhs, b, rows, n);
        false
    }

    /// `out[k * ld + o] +=` the sum over images and pixels of window `rows[k]` of the `x`
    /// image times lane `o` of the pixel-major `dyt` image (see `avx512::window_grads`), when
    /// this CPU and type have the kernel and `isa` allows it; returns false, doing nothing,
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    fn window_grads(
        isa: Isa,
        out: &mut [Self],
        x: &[Self],
        x_len: usize,
        rows: &[usize],
        dyt: &[Self],
        n: usize,
        ld: usize,
    ) -> bool {
        let _ = (isa, out, x, x_len, rows, dyt, n, ld);
        false
    }

    /// Whether [`Float::dot_products`] runs on `isa` and this CPU.
    fn has_dot_products(isa: Isa) -> bool {
        let _ = isa;
        false
    }

    /// BatchNorm's lane sums over the whole 8-value blocks of `a` and `b` (see
    /// `avx512::lane_products`) where `isa`, this CPU and type have a vector kernel for them;
    /// `None` otherwise (the caller runs the same sums in plain code).
    fn lane_products(isa: Isa, a: &[Self], b: &[Self]) -> Option<([f64; 8], [f64; 8])> {
        let _ = (isa, a, b);
        None
    }

    /// `out[i * rows.len() + j] +=` the sum over images of row `i` of the `a` image (`na` rows
    /// of `n`) times window `rows[j]..rows[j] + n` of the `b` image, when this CPU and type have
    /// the kernel and `isa` allows it (see `avx512::dot_products`); returns false, doing
    /// nothing, otherwise.
    #[allow(clippy::too_many_arguments)]
    fn dot_products(
        isa: Isa,
        out: &mut [Self],
        a: &[Self],
        na: usize,
        a_len: usize,
        b: &[Self],
        b_len: usize,
        rows: &[usize],
        n: usize,
    ) -> bool {
        let _ = (isa, out, a, na, a_len, b, b_len, rows, n);
        false
    }
}

/// An f32 left matrix packed for our AVX-512 GEMM ([`Float::pack_lhs`]); on other CPUs
/// nothing makes one.
#[derive(Debug)]
pub(crate) struct PackedLhs {
    #[cfg(target_arch = "x86_64")]
    inner: crate::avx512::Packed,
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

fn scratch<T: Float, R>(
    cell: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    cell.with(|c| match c.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, T::zero());
            }
            f(&mut buf[..len])
        }
        // Already in use further up this thread's stack: a fresh buffer.
        Err(_) => f(&mut vec![T::zero(); len]),
    })
}

impl Float for f32 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        scratch(&SCRATCH_F32, len, f)
    }

    #[cfg(target_arch = "x86_64")]
    fn fast_gemm(
        isa: Isa,
        dst: &mut [Self],
        lhs: Mat<'_, Self>,
        rhs: Mat<'_, Self>,
        accumulate: bool,
    ) -> bool {
        if !crate::avx512::suits(isa, rhs) {
            return false;
        }
        crate::avx512::sgemm(dst, lhs, rhs, accumulate);
        true
    }

    #[cfg(target_arch = "x86_64")]
    fn has_gemm_rows(isa: Isa, n: usize) -> bool {
        crate::avx512::suits_columns(isa, n)
    }

    #[cfg(target_arch = "x86_64")]
    fn pack_lhs(isa: Isa, lhs: Mat<'_, Self>) -> Option<PackedLhs> {
        crate::avx512::enabled(isa).then(|| PackedLhs {
            inner: crate::avx512::Packed::new(lhs),
        })
    }

    #[cfg(target_arch = "x86_64")]
    fn gemm_packed(
        isa: Isa,
        dst: &mut [Self],
        ldc: usize,
        lhs: &PackedLhs,
        b: &[Self],
        rows: &[usize],
        n: usize,
    ) -> bool {
        if !crate::avx512::enabled(isa) {
            return false;
        }
        crate::avx512::sgemm_packed(dst, ldc, &lhs.inner, b, rows, n, false);
        true
    }

    #[cfg(target_arch = "x86_64")]
    fn window_grads(
        isa: Isa,
        out: &mut [Self],
        x: &[Self],
        x_len: usize,
        rows: &[usize],
        dyt: &[Self],
        n: usize,
        ld: usize,
    ) -> bool {
        if !crate::avx512::enabled(isa) {
            return false;
        }
        crate::avx512::window_grads(out, x, x_len, rows, dyt, n, ld);
        true
    }

    #[cfg(target_arch = "x86_64")]
    fn has_dot_products(isa: Isa) -> bool {
        crate::avx512::enabled(isa)
    }

    #[cfg(target_arch = "x86_64")]
    fn lane_products(isa: Isa, a: &[Self], b: &[Self]) -> Option<([f64; 8], [f64; 8])> {
        crate::avx512::enabled(isa).then(|| crate::avx512::lane_products(a, b))
    }

    #[cfg(target_arch = "x86_64")]
    fn dot_products(
        isa: Isa,
        out: &mut [Self],
        a: &[Self],
        na: usize,
        a_len: usize,
        b: &[Self],
        b_len: usize,
        rows: &[usize],
        n: usize,
    ) -> bool {
        if !crate::avx512::enabled(isa) {
            return false;
        }
        crate::avx512::dot_products(out, a, na, a_len, b, b_len, rows, n);
        true
    }
}

impl Float for f64 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        scratch(&SCRATCH_F64, len, f)
    }
}

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows x cols` matrix.
    pub fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .and_then(|a| (self.cols - 1).checked_mul(self.cs).map(|b| (a, b)))
            .and_then(|(a, b)| a.checked_add(b));
        matches!(last, Some(l) if l < self.data.len())
            && isize::try_from(self.rs).is_ok()
            && isize::try_from(self.cs).is_ok()
    }
}

/// Checks that `dst = lhs * rhs` fits: inner dimensions agree, `dst` holds exactly the
/// row-major `m x n` result, and every element of each view lies inside its slice.
fn check_shapes<T>(dst: &[T], lhs: Mat<'_, T>, rhs: Mat<'_, T>) -> Result<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k || m.checked_mul(n) != Some(dst.len()) || !lhs.fits() || !rhs.fits() {
        bail!(
            "gemm: shapes do not fit (lhs {m}x{k} in {} elements, rhs {}x{n} in {}, dst {} elements)",
            lhs.data.len(),
            rhs.rows,
            rhs.data.len(),
            dst.len()
        );
    }
    Ok(())
}

/// Finishes a product with no output (`dst` empty) or no inner dimension (`k` = 0: zeros, or
/// `dst` unchanged when accumulating) and says so; false for every other product.
fn empty_product<T: Float>(dst: &mut [T], k: usize, accumulate: bool) -> bool {
    if dst.is_empty() {
        return true;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::zero());
        }
        return true;
    }
    false
}

/// `dst = lhs * rhs` (or `dst += lhs * rhs` with `accumulate`), `dst` row-major `m x n`,
/// single-threaded: callers parallelise over images, which keeps results independent of the
/// thread count. Our faster kernel where `isa` allows it, else the `gemm` crate's.
pub(crate) fn gemm<T: Float>(
    isa: Isa,
    dst: &mut [T],
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
) -> Result<()> {
    check_shapes(dst, lhs, rhs)?;
    if empty_product(dst, lhs.cols, accumulate) {
        return Ok(());
    }
    if !T::fast_gemm(isa, dst, lhs, rhs, accumulate) {
        gemm_crate(dst, lhs, rhs, accumulate)?;
    }
    Ok(())
}

/// The `gemm` crate's product, after checking the shapes itself: the `unsafe` call below is
/// sound only if they fit, so it relies on no caller.
pub(crate) fn gemm_crate<T: Float>(
    dst: &mut [T],
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
) -> Result<()> {
    check_shapes(dst, lhs, rhs)?;
    if empty_product(dst, lhs.cols, accumulate) {
        return Ok(());
    }
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let one = T::from_f64(1.0);
    // SAFETY: `check_shapes` just checked that every element `(i, j)` with `i < rows`,
    // `j < cols` of `lhs` and `rhs` lies inside its slice (`Mat::fits`), and `dst` is a
    // row-major `m x n` slice of exactly `m * n` elements borrowed mutably, so no read or write
    // leaves its slice and `dst` aliases neither input. `T` is f32 or f64 (the `Float` trait),
    // types `gemm` dispatches on; strides fit in isize (checked); m, n, k > 0. `gemm` exposes
    // no safe entry point, hence the one `unsafe` here.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            one,
            one,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_against_naive(isa: Isa) {
        let (m, k, n) = (3, 5, 7);
        let a: Vec<f64> = (0..m * k).map(|i| i as f64 * 0.5 - 3.0).collect();
        let b: Vec<f64> = (0..n * k).map(|i| (i % 7) as f64 - 2.0).collect();
        // b holds an n x k matrix; use its transpose as the k x n right-hand side.
        let mut dst = vec![1.0; m * n];
        gemm(
            isa,
            &mut dst,
            Mat::rows(&a, m, k),
            Mat::rows(&b, n, k).t(),
            true,
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0 + (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum::<f64>();
                assert_eq!(dst[i * n + j], want, "{isa}");
            }
        }
    }

    #[test]
    fn matches_a_naive_product_with_transposed_views_and_accumulation() {
        // f64 has no AVX-512 kernel: every path is the `gemm` crate, which must ignore `isa`.
        for isa in Isa::ALL {
            check_against_naive(isa);
        }
    }

    fn naive(a: Mat<'_, f32>, b: Mat<'_, f32>, init: &[f32]) -> Vec<f64> {
        let mut out = Vec::with_capacity(a.rows * b.cols);
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = init[i * b.cols + j] as f64;
                for p in 0..a.cols {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
                }
                out.push(s);
            }
        }
        out
    }

    fn values(len: usize, mul: usize, modulo: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * mul) % modulo) as f32 * 0.25 - 1.5)
            .collect()
    }

    /// Whether `gemm` on `isa` takes our AVX-512 kernel for this right-hand side.
    fn takes_avx512(isa: Isa, rhs: Mat<'_, f32>) -> bool {
        #[cfg(target_arch = "x86_64")]
        return crate::avx512::suits(isa, rhs);
        #[cfg(not(target_arch = "x86_64"))]
        return {
            let _ = (isa, rhs);
            false
        };
    }

    #[test]
    fn f32_products_match_a_naive_one_on_odd_shapes_on_every_path() {
        // Row tails (13 = 8 + 5), column tails of every width, depths over KC, a right matrix
        // with a row stride longer than its width, and accumulation: shapes for the AVX-512
        // kernel's edges, run through the `gemm` crate too (the portable path).
        for isa in crate::isa::test_paths("f32 gemm") {
            for &(m, k, n, ldb) in &[
                (1, 1, 96, 96),
                (13, 7, 97, 97),
                (16, 144, 1024, 1024),
                (8, 300, 100, 103),
                (5, 600, 129, 129),
                (24, 9, 113, 120),
            ] {
                let a = values(m * k, 7, 13);
                let b = values(k * ldb, 5, 11);
                let lhs = Mat::rows(&a, m, k);
                let rhs = Mat {
                    data: &b[..(k - 1) * ldb + n],
                    rows: k,
                    cols: n,
                    rs: ldb,
                    cs: 1,
                };
                // Each path must run the code it names, or this would compare one kernel twice.
                assert_eq!(
                    takes_avx512(isa, rhs),
                    isa == Isa::Avx512,
                    "{isa} {m}x{k}x{n}"
                );
                let init = values(m * n, 3, 5);
                for accumulate in [false, true] {
                    let mut dst = if accumulate {
                        init.clone()
                    } else {
                        vec![f32::NAN; m * n]
                    };
                    gemm(isa, &mut dst, lhs, rhs, accumulate).unwrap();
                    let zeros = vec![0.0; m * n];
                    let want = naive(lhs, rhs, if accumulate { &init } else { &zeros });
                    for (got, want) in dst.iter().zip(&want) {
                        assert!(
                            (*got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{isa} {m}x{k}x{n}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn leaves_everything_outside_the_destination_alone_on_every_path() {
        // A 5 x 100 product written into the middle of a larger buffer through a slice.
        let (m, k, n) = (5, 3, 100);
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        for isa in crate::isa::test_paths("gemm bounds") {
            let mut buf = vec![-7.0f32; m * n + 40];
            let (lhs, rhs) = (Mat::rows(&a, m, k), Mat::rows(&b, k, n));
            assert_eq!(takes_avx512(isa, rhs), isa == Isa::Avx512);
            gemm(isa, &mut buf[20..20 + m * n], lhs, rhs, false).unwrap();
            assert!(buf[..20].iter().all(|&v| v == -7.0), "{isa}");
            assert!(buf[20..20 + m * n].iter().all(|&v| v == 3.0), "{isa}");
            assert!(buf[20 + m * n..].iter().all(|&v| v == -7.0), "{isa}");
        }
    }

    #[test]
    fn gemm_crate_refuses_inputs_that_do_not_fit() {
        let a = vec![1.0f32; 15];
        let b = vec![1.0f32; 35];
        let mut dst = vec![0.0f32; 21];
        let (lhs, rhs) = (Mat::rows(&a, 3, 5), Mat::rows(&b, 5, 7));
        gemm_crate(&mut dst, lhs, rhs, false).unwrap();
        assert!(dst.iter().all(|&v| v == 5.0));
        let short = Mat {
            data: &a[..14],
            ..lhs
        };
        let wide_stride = Mat { rs: 8, ..rhs };
        let huge_stride = Mat {
            rs: usize::MAX / 2,
            ..rhs
        };
        let bad: [(&str, Mat<'_, f32>, Mat<'_, f32>, usize); 6] = [
            ("inner dimensions differ", lhs, Mat::rows(&b, 7, 5), 21),
            ("lhs slice too short", short, rhs, 21),
            ("rhs stride past its slice", lhs, wide_stride, 21),
            ("stride overflows", lhs, huge_stride, 21),
            ("dst too short", lhs, rhs, 20),
            ("dst too long", lhs, rhs, 22),
        ];
        for (what, l, r, len) in bad {
            let mut dst = vec![-1.0f32; len];
            let e = gemm_crate(&mut dst, l, r, false).expect_err(what);
            assert!(e.to_string().contains("shapes do not fit"), "{what}: {e}");
            assert!(dst.iter().all(|&v| v == -1.0), "{what}: dst written");
            for isa in Isa::ALL {
                assert!(
                    gemm(isa, &mut dst, l, r, false).is_err(),
                    "{what} via {isa}"
                );
            }
        }
    }

    #[test]
    fn empty_products_are_zeros_or_untouched() {
        let none: [f32; 0] = [];
        for accumulate in [false, true] {
            let mut dst = vec![2.0f32; 6];
            gemm_crate(
                &mut dst,
                Mat::rows(&none, 2, 0),
                Mat::rows(&none, 0, 3),
                accumulate,
            )
            .unwrap();
            let want = if accumulate { 2.0 } else { 0.0 };
            assert!(dst.iter().all(|&v| v == want));
        }
        let mut empty: Vec<f32> = Vec::new();
        gemm_crate(
            &mut empty,
            Mat::rows(&none, 0, 4),
            Mat::rows(&[1.0; 8], 4, 2),
            false,
        )
        .unwrap();
    }
}

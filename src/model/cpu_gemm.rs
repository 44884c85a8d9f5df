//! One safe entry to the `gemm` crate's f32 matrix product for the fused CPU
//! layers: matrices are strided views into slices, and every view is checked
//! to lie inside its slice before the (pointer-based) kernel runs.

use candle_core::{Result, bail};

/// A `rows x cols` matrix inside a slice: element (i, j) at
/// `offset + i·row_stride + j·col_stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View {
    /// A row-major matrix with rows `row_stride` apart, from `offset`.
    pub fn rows(offset: usize, row_stride: usize) -> Self {
        Self {
            offset,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of [`View::rows`]: element (i, j) at `offset + j·stride + i`.
    pub fn columns(offset: usize, stride: usize) -> Self {
        Self {
            offset,
            row_stride: 1,
            col_stride: stride,
        }
    }

    /// Whether a `rows x cols` matrix (both non-zero) fits in `len` values.
    fn fits(self, rows: usize, cols: usize, len: usize) -> bool {
        (rows - 1)
            .checked_mul(self.row_stride)
            .zip((cols - 1).checked_mul(self.col_stride))
            .and_then(|(a, b)| a.checked_add(b)?.checked_add(self.offset))
            .is_some_and(|last| last < len)
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`: `dst` is
/// m x n, `lhs` m x k, `rhs` k x n.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_view: View,
    lhs: &[f32],
    lhs_view: View,
    rhs: &[f32],
    rhs_view: View,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if !dst_view.fits(m, n, dst.len()) {
        bail!("matmul: a {m}x{n} product does not fit its destination")
    }
    if k == 0 {
        // An empty sum: the destination keeps its value, or becomes zero.
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[dst_view.offset + i * dst_view.row_stride + j * dst_view.col_stride] = 0.0;
                }
            }
        }
        return Ok(());
    }
    if !lhs_view.fits(m, k, lhs.len()) || !rhs_view.fits(k, n, rhs.len()) {
        bail!("matmul: a {m}x{k} by {k}x{n} product does not fit its buffers")
    }
    // SAFETY: each view was checked above to stay inside its slice for the
    // product's sizes, so every element gemm reads or writes is in bounds;
    // `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(dst_view.offset),
            dst_view.col_stride as isize,
            dst_view.row_stride as isize,
            accumulate,
            lhs.as_ptr().add(lhs_view.offset),
            lhs_view.col_stride as isize,
            lhs_view.row_stride as isize,
            rhs.as_ptr().add(rhs_view.offset),
            rhs_view.col_stride as isize,
            rhs_view.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_and_bounds() {
        // lhs 2x3 row-major; rhs 3x2 stored as the transpose of a 2x3.
        let lhs = [1., 2., 3., 4., 5., 6.];
        let rhs_t = [1., 0., 1., 0., 1., 0.];
        let product = |dims, lhs_row_stride, dst: &mut [f32], accumulate| {
            let (lhs_view, rhs_view) = (View::rows(0, lhs_row_stride), View::columns(0, 3));
            let p = gemm::Parallelism::None;
            matmul(
                dims,
                dst,
                View::rows(0, 2),
                &lhs,
                lhs_view,
                &rhs_t,
                rhs_view,
                accumulate,
                p,
            )
        };
        let mut dst = [10., 20., 30., 40.];
        product((2, 2, 3), 3, &mut dst, true).unwrap();
        assert_eq!(dst, [14., 22., 40., 45.]);
        product((2, 2, 3), 3, &mut dst, false).unwrap();
        assert_eq!(dst, [4., 2., 10., 5.]);
        // One row too many for the destination is an error, not a write.
        let err = product((3, 2, 3), 1, &mut dst, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not fit"), "{err}");
        assert_eq!(dst, [4., 2., 10., 5.]);
        // An empty sum: zero, unless accumulating.
        product((2, 2, 0), 3, &mut dst, true).unwrap();
        assert_eq!(dst, [4., 2., 10., 5.]);
        product((2, 2, 0), 3, &mut dst, false).unwrap();
        assert_eq!(dst, [0.; 4]);
    }
}

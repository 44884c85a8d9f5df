//! One safe entry to the `gemm` crate's f32 matrix product for the fused CPU
//! layers: matrices are strided views into slices, and every view is checked
//! to lie inside its slice before the (pointer-based) kernel runs.

use candle_core::{Result, bail};
use rayon::prelude::*;

/// A `rows x cols` matrix inside a slice: element (i, j) at
/// `offset + i·row_stride + j·col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct View {
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
/// m x n, `lhs` m x k, `rhs` k x n. With `threads` above one the product is
/// cut into that many blocks of rows or of columns (`split_for`), each one
/// single-threaded `gemm` call on its own rayon task.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_view: View,
    lhs: &[f32],
    lhs_view: View,
    rhs: &[f32],
    rhs_view: View,
    accumulate: bool,
    threads: usize,
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
    let whole = Block {
        dst: dst.as_mut_ptr() as usize,
        lhs: lhs.as_ptr() as usize,
        rhs: rhs.as_ptr() as usize,
        views: (dst_view, lhs_view, rhs_view),
        accumulate,
    };
    // Blocks of the destination are disjoint only when no two of its
    // elements share an address: rows one after the other, each dense.
    let disjoint = dst_view.col_stride == 1 && dst_view.row_stride >= n;
    let split = if disjoint {
        split_for((m, n, k), threads)
    } else {
        None
    };
    let Some((split, block)) = split else {
        // SAFETY: the views were checked above to stay inside their slices
        // for these sizes; `dst` is borrowed mutably, so it aliases neither
        // input.
        unsafe { whole.run((0, m), (0, n), k) };
        return Ok(());
    };
    let len = match split {
        Split::Rows => m,
        Split::Columns => n,
    };
    (0..len.div_ceil(block)).into_par_iter().for_each(|i| {
        let range = (i * block, ((i + 1) * block).min(len));
        // SAFETY: as for the whole product, and each block writes its own
        // rows or columns of a destination whose elements have distinct
        // addresses (checked as `disjoint`), so no two tasks touch the same
        // value.
        unsafe {
            match split {
                Split::Rows => whole.run(range, (0, n), k),
                Split::Columns => whole.run((0, m), range, k),
            }
        }
    });
    Ok(())
}

/// Which way a product is cut between threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Rows,
    Columns,
}

/// Products below this many multiply-adds run on one thread: a task costs
/// more than it saves.
const MIN_PARALLEL_MACS: usize = 1 << 21;

/// How to cut an m x n x k product between `threads`: blocks of rows or of
/// columns, and the block length; `None` for one call.
///
/// Measured with `gemm` 0.19 (AVX-512) on the 2-core Zen 4 development
/// machine, each block single-threaded against one `gemm` call with its own
/// rayon parallelism: cutting columns wins for few rows (batch-1 ViT layers
/// 1.3-2x) and for long sums (ViT-B/32 `fc2`, 1600x768x3072: 185 against
/// 150 GFLOP/s); cutting rows wins for the rest, most of all for the tall
/// ResNet products (6272x1024x256: 170 against 112). `gemm`'s own split
/// is never the faster one there.
fn split_for((m, n, k): (usize, usize, usize), threads: usize) -> Option<(Split, usize)> {
    if threads <= 1 || m.saturating_mul(n).saturating_mul(k) < MIN_PARALLEL_MACS {
        return None;
    }
    // Column blocks in whole AVX-512 vectors, row blocks in whole
    // micro-kernel rows, so no block ends in a ragged tail of its own.
    let columns = n.div_ceil(threads).next_multiple_of(16);
    let rows = m.div_ceil(threads).next_multiple_of(8);
    let prefer_columns = k >= 2048 || m <= 512;
    if prefer_columns && columns < n {
        Some((Split::Columns, columns))
    } else if rows < m {
        Some((Split::Rows, rows))
    } else if columns < n {
        Some((Split::Columns, columns))
    } else {
        None
    }
}

/// A product whose operands were checked to lie inside their slices,
/// addressed by pointer so that blocks of it can run on several threads.
#[derive(Clone, Copy)]
struct Block {
    dst: usize,
    lhs: usize,
    rhs: usize,
    views: (View, View, View),
    accumulate: bool,
}

impl Block {
    /// Rows `r0..r1` and columns `c0..c1` of the product, on this thread.
    ///
    /// # Safety
    /// The ranges lie inside the checked product, and no other thread
    /// writes the same destination elements meanwhile.
    unsafe fn run(self, (r0, r1): (usize, usize), (c0, c1): (usize, usize), k: usize) {
        let (dst_view, lhs_view, rhs_view) = self.views;
        let dst = self.dst as *mut f32;
        let lhs = self.lhs as *const f32;
        let rhs = self.rhs as *const f32;
        unsafe {
            gemm::gemm(
                r1 - r0,
                c1 - c0,
                k,
                dst.add(dst_view.offset + r0 * dst_view.row_stride + c0 * dst_view.col_stride),
                dst_view.col_stride as isize,
                dst_view.row_stride as isize,
                self.accumulate,
                lhs.add(lhs_view.offset + r0 * lhs_view.row_stride),
                lhs_view.col_stride as isize,
                lhs_view.row_stride as isize,
                rhs.add(rhs_view.offset + c0 * rhs_view.col_stride),
                rhs_view.col_stride as isize,
                rhs_view.row_stride as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
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
            matmul(
                dims,
                dst,
                View::rows(0, 2),
                &lhs,
                lhs_view,
                &rhs_t,
                rhs_view,
                accumulate,
                1,
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

    /// A naive m x n x k product of row-major `lhs` and `rhs`.
    fn naive(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| lhs[i * k + p] * rhs[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_cut_between_threads_equal_one_call() {
        // Row blocks (many rows, short sums) and column blocks (few rows),
        // into a destination with a gap after each row and an offset.
        for (m, n, k) in [(700, 48, 72), (100, 200, 130)] {
            let threads = 2;
            let expected_split = if m > 512 { Split::Rows } else { Split::Columns };
            assert_eq!(
                split_for((m, n, k), threads).map(|s| s.0),
                Some(expected_split)
            );
            let lhs: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let rhs: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
            let (offset, row_stride) = (3, n + 5);
            let mut dst = vec![-1f32; offset + m * row_stride];
            let views = (
                View::rows(offset, row_stride),
                View::rows(0, k),
                View::rows(0, n),
            );
            matmul(
                (m, n, k),
                &mut dst,
                views.0,
                &lhs,
                views.1,
                &rhs,
                views.2,
                false,
                threads,
            )
            .unwrap();
            let expected = naive(m, n, k, &lhs, &rhs);
            for i in 0..m {
                let row = &dst[offset + i * row_stride..][..n];
                assert_eq!(row, &expected[i * n..(i + 1) * n], "row {i} of {m}x{n}x{k}");
                // The gap after each row is left alone.
                assert!(
                    dst[offset + i * row_stride + n..]
                        [..5.min(dst.len() - offset - i * row_stride - n)]
                        .iter()
                        .all(|&v| v == -1.0)
                );
            }
            assert_eq!(dst[..offset], [-1.0; 3]);
        }
    }

    #[test]
    fn shapes_pick_their_cut() {
        assert_eq!(split_for((10, 10, 10), 2), None);
        assert_eq!(split_for((4096, 4096, 4096), 1), None);
        assert_eq!(split_for((1600, 768, 3072), 2), Some((Split::Columns, 384)));
        assert_eq!(split_for((6272, 1024, 256), 2), Some((Split::Rows, 3136)));
    }
}

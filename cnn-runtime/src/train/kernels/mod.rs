//! The kernels of a training pass: forward kernels that keep what the
//! backward pass needs, and the backward kernels themselves.
//!
//! Every kernel works on a chunk of `n` images laid out one after the other
//! (`n × C×H×W`, row-major) and takes the shapes as plain values; the
//! training pass (`pass`) calls them layer by layer. The GEMM-shaped work
//! (fully connected layers, convolutions after im2col) runs on
//! `matrixmultiply::sgemm`.
//!
//! Backward kernels *add* parameter gradients into the given buffers (a
//! chunk accumulates over its images) and *overwrite* the input gradient.
//! Batch norm's kernels add a chunk's per-channel sums into a buffer, for
//! the pass to combine over the batch.

mod activation;
mod conv;
mod dense;
mod dropout;
mod norm;
mod pool;

pub use activation::{activate_backward_with, activate_with, softmax_backward_with, softmax_with};
pub use conv::{col2im_with, conv_backward_with, conv_cols_len, conv_forward_with, im2col_with};
pub use dense::{fc_backward_with, fc_forward_with};
pub use dropout::Dropout;
pub use norm::{
    batch_norm_backward_with, batch_norm_forward_with, batch_norm_sums_with, channel_moments_with,
};
pub use pool::{
    avg_pool_backward_with, avg_pool_forward_with, global_avg_pool_backward_with,
    global_avg_pool_forward_with, max_pool_backward_with, max_pool_forward_with,
};

pub use crate::kernels::reference::Window;
pub use crate::kernels::ConvShape;

/// A matrix operand of [`gemm`]: values with a row and a column stride.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// Whether every element of an `m × k` view lies inside the slice.
    fn fits(&self, m: usize, k: usize) -> bool {
        let last = (m - 1)
            .checked_mul(self.rs)
            .and_then(|r| (k - 1).checked_mul(self.cs).and_then(|c| r.checked_add(c)));
        matches!(last, Some(last) if last < self.data.len())
    }
}

/// `C = A·B + beta·C` with A `m × k`, B `k × n` and C `m × n` row-major.
/// With `beta == 0` the old contents of C are ignored.
///
/// # Panics
/// If an operand is shorter than its shape needs: kernels are called with
/// lengths fixed by the generated code, so this is a broken invariant, and
/// the check keeps the raw-pointer GEMM sound.
#[inline]
pub(crate) fn gemm(m: usize, k: usize, n: usize, a: Mat, b: Mat, beta: f32, c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    if k == 0 {
        for v in c.iter_mut() {
            *v *= beta;
        }
        return;
    }
    assert!(a.fits(m, k) && b.fits(k, n), "gemm operand out of bounds");
    // SAFETY: the assert above and the slicing of `c` bound every index the
    // GEMM touches; strides fit in isize because the slices' lengths do.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_a_naive_product_with_transposes() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| 1.0 - i as f32 * 0.25).collect();
        let mut c = vec![1.0; m * n];
        gemm(
            m,
            k,
            n,
            Mat::rows(&a, k),
            Mat::transposed(&bt, k),
            2.0,
            &mut c,
        );
        for i in 0..m {
            for j in 0..n {
                let dot: f32 = (0..k).map(|p| a[i * k + p] * bt[j * k + p]).sum();
                assert!((c[i * n + j] - (dot + 2.0)).abs() < 1e-5);
            }
        }
    }
}

//! Fully connected layers for training, on a whole chunk at once: the
//! forward pass and both gradients are single GEMMs over the chunk.

use super::{gemm, Mat};

/// Fully connected layer on `n` inputs: `x` n×IN, `weight` N×IN, `bias` N →
/// `y` n×N, `y = x·Wᵀ + b`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn fc_forward_with(
    inputs: usize,
    outputs: usize,
    n: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    let y = &mut y[..n * outputs];
    let bias = &bias[..outputs];
    for row in y.chunks_exact_mut(outputs) {
        row.copy_from_slice(bias);
    }
    gemm(
        n,
        inputs,
        outputs,
        Mat::rows(&x[..n * inputs], inputs),
        Mat::transposed(&weight[..outputs * inputs], inputs),
        1.0,
        y,
    );
}

/// The backward pass of [`fc_forward_with`]: adds `dYᵀ·x` into `dweight`
/// and the column sums of `dY` into `dbias`, and writes `dY·W` into `dx`
/// when one is asked for.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn fc_backward_with(
    inputs: usize,
    outputs: usize,
    n: usize,
    x: &[f32],
    dy: &[f32],
    weight: &[f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let dy = &dy[..n * outputs];
    let dbias = &mut dbias[..outputs];
    for row in dy.chunks_exact(outputs) {
        for (g, &d) in dbias.iter_mut().zip(row) {
            *g += d;
        }
    }
    gemm(
        outputs,
        n,
        inputs,
        Mat::transposed(dy, outputs),
        Mat::rows(&x[..n * inputs], inputs),
        1.0,
        dweight,
    );
    if let Some(dx) = dx {
        gemm(
            n,
            outputs,
            inputs,
            Mat::rows(dy, outputs),
            Mat::rows(&weight[..outputs * inputs], inputs),
            0.0,
            dx,
        );
    }
}

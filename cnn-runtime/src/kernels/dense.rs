use super::reference;
use super::Act;

/// Fully connected layer on one input (GEMV): `y = act(W·x + b)`, W N×IN.
#[inline]
pub fn fc<const IN: usize, const N: usize>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    reference::fc(&x[..IN], &weight[..IN * N], &bias[..N], &mut y[..N], act);
}

/// Fully connected layer on a batch (GEMM): `x` batch×IN → `y` batch×N.
#[inline]
pub fn fc_batch<const IN: usize, const N: usize>(
    batch: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    for (xi, yi) in x.chunks_exact(IN).zip(y.chunks_exact_mut(N)).take(batch) {
        fc::<IN, N>(xi, weight, bias, yi, act);
    }
}

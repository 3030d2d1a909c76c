//! Batch normalisation in training mode, PyTorch's `BatchNorm2d` with
//! `training=True`: each channel is normalised by the mean and the biased
//! variance of its values over the whole batch (N·H·W of them), then
//! scaled by γ and shifted by β.
//!
//! The statistics are sums over the batch, which the pass cuts into chunks
//! of images: the kernels that sum add one chunk's per-channel sums (in
//! f64) into a buffer of that chunk, and the pass adds the chunks' sums in
//! chunk order, so that the statistics do not depend on the number of
//! threads.
//! The backward pass, through the statistics, is
//! `dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂))` per channel, the means
//! over the batch, where `x̂ = (x − μ)/σ` and `σ = √(var + eps)`; `Σ dy` is
//! β's gradient and `Σ dy · x̂` γ's.

/// Adds, per channel over `n` images (`x` n×C×HW), the sum of the values
/// into `sums[..C]` and the sum of their squares into `sums[C..2C]`: the
/// batch's mean and biased variance are `Σx/m` and `Σx²/m − mean²` (in
/// f64, where the difference loses nothing that matters unless the mean
/// exceeds the deviation by orders of magnitude beyond 10⁴).
#[inline(always)]
pub fn channel_moments_with(c: usize, hw: usize, n: usize, x: &[f32], sums: &mut [f64]) {
    let (sum, squares) = sums[..2 * c].split_at_mut(c);
    for (i, plane) in x[..n * c * hw].chunks_exact(hw).enumerate() {
        let (mut a, mut b) = (0.0f64, 0.0f64);
        for &v in plane {
            let v = f64::from(v);
            a += v;
            b += v * v;
        }
        sum[i % c] += a;
        squares[i % c] += b;
    }
}

/// Batch norm of `n` images with the batch's statistics: `y = γ · (x − μ) ·
/// inv_std + β` per channel, where `inv_std = 1/√(var + eps)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn batch_norm_forward_with(
    c: usize,
    hw: usize,
    n: usize,
    x: &[f32],
    (mean, inv_std): (&[f32], &[f32]),
    (gamma, beta): (&[f32], &[f32]),
    y: &mut [f32],
) {
    for (i, (xs, ys)) in x[..n * c * hw]
        .chunks_exact(hw)
        .zip(y[..n * c * hw].chunks_exact_mut(hw))
        .enumerate()
    {
        let ch = i % c;
        let (m, scale, shift) = (mean[ch], gamma[ch] * inv_std[ch], beta[ch]);
        for (out, &v) in ys.iter_mut().zip(xs) {
            *out = (v - m) * scale + shift;
        }
    }
}

/// Adds, per channel over `n` images, `Σ dy` into `sums[..C]` and `Σ dy ·
/// x̂` into `sums[C..2C]`, where `x̂ = (x − μ) · inv_std`: the gradients of
/// β and γ, and what the input's gradient needs.
#[inline(always)]
pub fn batch_norm_sums_with(
    c: usize,
    hw: usize,
    n: usize,
    x: &[f32],
    dy: &[f32],
    (mean, inv_std): (&[f32], &[f32]),
    sums: &mut [f64],
) {
    let (sum_dy, sum_dy_xhat) = sums[..2 * c].split_at_mut(c);
    for (i, (xs, ds)) in x[..n * c * hw]
        .chunks_exact(hw)
        .zip(dy[..n * c * hw].chunks_exact(hw))
        .enumerate()
    {
        let ch = i % c;
        let (m, s) = (mean[ch], inv_std[ch]);
        let (mut a, mut b) = (0.0f64, 0.0f64);
        for (&v, &d) in xs.iter().zip(ds) {
            a += f64::from(d);
            b += f64::from(d) * f64::from((v - m) * s);
        }
        sum_dy[ch] += a;
        sum_dy_xhat[ch] += b;
    }
}

/// The input gradient of batch norm over `n` images: `dx = γ · inv_std ·
/// (dy − mean_dy − x̂ · mean_dy_xhat)` per channel, where the means are
/// [`batch_norm_sums_with`]'s sums over the whole batch divided by its
/// N·H·W.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn batch_norm_backward_with(
    c: usize,
    hw: usize,
    n: usize,
    x: &[f32],
    dy: &[f32],
    (mean, inv_std): (&[f32], &[f32]),
    gamma: &[f32],
    (mean_dy, mean_dy_xhat): (&[f32], &[f32]),
    dx: &mut [f32],
) {
    for (i, ((xs, ds), gs)) in x[..n * c * hw]
        .chunks_exact(hw)
        .zip(dy[..n * c * hw].chunks_exact(hw))
        .zip(dx[..n * c * hw].chunks_exact_mut(hw))
        .enumerate()
    {
        let ch = i % c;
        let (m, s, scale) = (mean[ch], inv_std[ch], gamma[ch] * inv_std[ch]);
        let (md, mdx) = (mean_dy[ch], mean_dy_xhat[ch]);
        for ((&v, &d), g) in xs.iter().zip(ds).zip(gs.iter_mut()) {
            *g = scale * (d - md - (v - m) * s * mdx);
        }
    }
}

//! Softmax cross-entropy, fused with its gradient for numerical stability:
//! the loss is `logsumexp(z) − z[label]` and the gradient of the logits is
//! `softmax(z) − onehot(label)`, both computed from `z − max(z)` so that no
//! exponential overflows and no `log(0)` appears.

/// Softmax cross-entropy of `n` images with `classes` logits each: writes
/// `scale · (softmax(z) − onehot(label))` into `dlogits` and returns the sum
/// of the `n` losses (unscaled), accumulated in f64.
///
/// # Panics
/// If a label is not below `classes` (callers check labels first).
#[inline(always)]
pub fn softmax_cross_entropy_with(
    classes: usize,
    n: usize,
    logits: &[f32],
    labels: &[usize],
    scale: f32,
    dlogits: &mut [f32],
) -> f64 {
    let mut total = 0.0f64;
    for ((z, &label), dz) in logits[..n * classes]
        .chunks_exact(classes)
        .zip(&labels[..n])
        .zip(dlogits[..n * classes].chunks_exact_mut(classes))
    {
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (g, &v) in dz.iter_mut().zip(z) {
            *g = (v - max).exp();
            sum += *g;
        }
        total += f64::from(sum.ln() - (z[label] - max));
        let inv = scale / sum;
        for g in dz.iter_mut() {
            *g *= inv;
        }
        dz[label] -= scale;
    }
    total
}

/// The softmax cross-entropy of one vector of logits and its label, in
/// f64: `logsumexp(z) − z[label]`; `None` when the label is out of range.
pub fn cross_entropy(logits: &[f32], label: usize) -> Option<f64> {
    let target = f64::from(*logits.get(label)?);
    let max = logits
        .iter()
        .copied()
        .map(f64::from)
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    Some(sum.ln() + max - target)
}

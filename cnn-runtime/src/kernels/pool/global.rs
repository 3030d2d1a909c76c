//! Global average pooling: the mean of each channel.

use crate::cpu::{Active, Isa, Unsupported};

/// Values summed side by side (two AVX-512 vectors, four AVX2 ones), so
/// that the sum vectorises and its additions do not wait on one another.
const LANES: usize = 32;

/// Global average pooling, PyTorch's `AdaptiveAvgPool2d(1)`: `y[ch]` is
/// the mean of the `hw` values of channel `ch` of `x` (C×HW), summed in
/// f32, [`LANES`] partial sums side by side.
///
/// # Panics
/// If `hw` is 0 and `c` is not, or `x` is shorter than C·HW or `y` than C.
pub fn global_avg_pool(c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    means(Active::get(), c, hw, x, y);
}

/// [`global_avg_pool`] as with `isa` in use (for tests and benchmarks).
///
/// # Errors
/// The CPU lacks `isa`.
///
/// # Panics
/// As [`global_avg_pool`].
#[doc(hidden)]
pub fn global_avg_pool_with(
    isa: Isa,
    c: usize,
    hw: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Unsupported> {
    if !isa.supported() {
        return Err(Unsupported(isa));
    }
    means(Active::of(isa), c, hw, x, y);
    Ok(())
}

/// The channels' means, compiled for the widest of `tokens`.
fn means(tokens: Active, c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if tokens.avx512.is_some() {
        // SAFETY: the token proves AVX-512F.
        return unsafe { means_avx512(c, hw, x, y) };
    }
    #[cfg(target_arch = "x86_64")]
    if tokens.avx2.is_some() {
        // SAFETY: the token proves AVX2.
        return unsafe { means_avx2(c, hw, x, y) };
    }
    let _ = tokens;
    means_core(c, hw, x, y);
}

/// [`means_core`] under AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn means_avx512(c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    means_core(c, hw, x, y);
}

/// [`means_core`] under AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn means_avx2(c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    means_core(c, hw, x, y);
}

#[inline(always)]
fn means_core(c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    if c == 0 {
        return;
    }
    let scale = 1.0 / hw as f32;
    for (xc, out) in x[..c * hw].chunks_exact(hw).zip(&mut y[..c]) {
        *out = sum(xc) * scale;
    }
}

/// The sum of `values`: [`LANES`] partial sums, the last partial chunk
/// added into the first of them, then summed pairwise.
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let (chunks, tail) = values.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    for (a, v) in acc.iter_mut().zip(tail) {
        *a += v;
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

//! Convolution as im2col into scratch, then one GEMM on matrixmultiply.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use super::layout::ConvShape;
use crate::kernels::{activate, Act};

/// Scratch of [`conv`], in f32s: one group's column matrix (see
/// [`cols_len`](crate::kernels::cols_len)), which every group reuses.
pub(crate) const fn scratch_len(shape: &ConvShape) -> usize {
    let channels = match shape.c.checked_div(shape.g) {
        Some(channels) => channels,
        None => shape.c,
    };
    crate::kernels::cols_len(channels, shape.f, shape.o)
}

/// `y = act(W · cols + b)`, a group at a time; returns false if a slice is
/// too short.
pub(crate) fn conv(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) -> bool {
    let ConvShape {
        c,
        h,
        w,
        k,
        f: [fh, fw],
        s: [sh, sw],
        p: [ph, pw],
        d: [dh, dw],
        g,
        o: [oh, ow],
    } = shape;
    let (cg, kg) = (c / g, k / g);
    let (depth, n) = (cg * fh * fw, oh * ow);
    let Some(cols) = scratch.get_mut(..depth * n) else {
        return false;
    };
    for gi in 0..g {
        for (d, col) in cols.chunks_exact_mut(n).enumerate() {
            let (ci, ky, kx) = (gi * cg + d / (fh * fw), d / fw % fh, d % fw);
            for (oy, out) in col.chunks_exact_mut(ow).enumerate() {
                let iy = (oy * sh + ky * dh).wrapping_sub(ph);
                for (ox, v) in out.iter_mut().enumerate() {
                    let ix = (ox * sw + kx * dw).wrapping_sub(pw);
                    *v = if iy < h && ix < w {
                        x[(ci * h + iy) * w + ix]
                    } else {
                        0.0
                    };
                }
            }
        }
        let (Some(weight), Some(bias), Some(y)) = (
            weight.get(gi * kg * depth..),
            bias.get(gi * kg..),
            y.get_mut(gi * kg * n..),
        ) else {
            return false;
        };
        if !gemm(kg, depth, n, weight, cols, bias, y, act) {
            return false;
        }
    }
    true
}

/// `y = act(W · b + bias)` with W K×D, b D×N, y K×N, on matrixmultiply;
/// false if a slice is too short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    k: usize,
    depth: usize,
    n: usize,
    weight: &[f32],
    b: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) -> bool {
    let (Some(weight), Some(b), Some(bias), Some(y)) = (
        weight.get(..k * depth),
        b.get(..depth * n),
        bias.get(..k),
        y.get_mut(..k * n),
    ) else {
        return false;
    };
    for (row, &b) in y.chunks_exact_mut(n).zip(bias) {
        row.fill(b);
    }
    let (Ok(a), Ok(b), Ok(mut out)) = (
        ArrayView2::from_shape((k, depth), weight),
        ArrayView2::from_shape((depth, n), b),
        ArrayViewMut2::from_shape((k, n), &mut *y),
    ) else {
        return false;
    };
    general_mat_mul(1.0, &a, &b, 1.0, &mut out);
    activate(act, y);
    true
}

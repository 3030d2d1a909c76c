//! Convolution for training: im2col + GEMM forward, and the backward pass
//! (weight gradient `dY·colsᵀ`, bias gradient, input gradient `Wᵀ·dY`
//! scattered back by col2im), one group at a time.
//!
//! A layer is a [`ConvShape`]: stride, padding, dilation (the taps of a
//! filter `D` apart) and groups (filter `ko` of group `ko / (K/G)` sees
//! that group's `C/G` channels only; `G = C` is depthwise). Group `gi`'s
//! filters are rows `gi·K/G ..` of the K × (C/G·FH·FW) weight matrix, and
//! its im2col matrix unfolds channels `gi·C/G ..` of the image.

use std::ops::Range;

use super::{gemm, Mat};
use crate::kernels::ConvShape;

/// Sizes of one group: channels C/G, filters K/G, taps (C/G)·FH·FW and
/// output pixels OH·OW.
#[derive(Clone, Copy)]
struct Group {
    channels: usize,
    filters: usize,
    taps: usize,
    pixels: usize,
}

impl Group {
    fn of(shape: &ConvShape) -> Group {
        let channels = shape.c / shape.g;
        Group {
            channels,
            filters: shape.k / shape.g,
            taps: channels * shape.f[0] * shape.f[1],
            pixels: shape.o[0] * shape.o[1],
        }
    }
}

/// Length, in f32s, of the im2col scratch a convolution over `shape`
/// needs: one group of one image, (C/G)·FH·FW × OH·OW (saturating; 0 for
/// zero groups).
pub const fn conv_cols_len(shape: &ConvShape) -> usize {
    let channels = match shape.c.checked_div(shape.g) {
        Some(channels) => channels,
        None => 0,
    };
    crate::kernels::cols_len(channels, shape.f, shape.o)
}

/// Whether the convolution is 1×1 with stride 1 and no padding: then a
/// group's channels of the image are its im2col matrix.
#[inline(always)]
fn pointwise(shape: &ConvShape) -> bool {
    shape.f == [1, 1] && shape.s == [1, 1] && shape.p == [0, 0]
}

/// Group `group`'s column matrix (taps × pixels) of one image `x`: a 1×1
/// layer's input as it is, else unfolded into `cols`.
fn columns<'a>(shape: ConvShape, group: usize, x: &'a [f32], cols: &'a mut [f32]) -> &'a [f32] {
    if pointwise(&shape) {
        let Group { taps, pixels, .. } = Group::of(&shape);
        &x[group * taps * pixels..(group + 1) * taps * pixels]
    } else {
        im2col_with(shape, group, x, cols);
        cols
    }
}

/// The input index along an axis of `len` values read by output `o` at tap
/// `k`, or `None` in the padding: `o·S + k·D − P`.
#[inline(always)]
fn source(shape: &ConvShape, axis: usize, o: usize, k: usize, len: usize) -> Option<usize> {
    (o * shape.s[axis] + k * shape.d[axis])
        .checked_sub(shape.p[axis])
        .filter(|&i| i < len)
}

/// The outputs along an axis (of `outs`) whose tap `k` reads inside an
/// input of `len` values, `o·S + k·D − P ∈ [0, len)`: a range, since the
/// index grows with `o`.
#[inline(always)]
fn inside(shape: &ConvShape, axis: usize, k: usize, len: usize, outs: usize) -> Range<usize> {
    let (s, offset, p) = (shape.s[axis], k * shape.d[axis], shape.p[axis]);
    // o·S + offset ≥ P and o·S + offset < len + P.
    let lo = p.saturating_sub(offset).div_ceil(s);
    let hi = (len + p).saturating_sub(offset).div_ceil(s).min(outs);
    lo.min(hi)..hi
}

/// The input column read by the first of `cols` at tap `kx` (0 when
/// `cols` is empty).
#[inline(always)]
fn first_source(shape: &ConvShape, cols: &Range<usize>, kx: usize) -> usize {
    if cols.is_empty() {
        return 0;
    }
    cols.start * shape.s[1] + kx * shape.d[1] - shape.p[1]
}

/// Unfolds group `group`'s channels of one image `x` (C×H×W) into `cols`,
/// a (C/G·FH·FW) × (OH·OW) row-major matrix: row `(c·FH + ky)·FW + kx`
/// (`c` counted within the group), column `oy·OW + ox` holds the input
/// value under filter tap (ky, kx) at output (oy, ox), zero in the padding.
#[inline(always)]
pub fn im2col_with(shape: ConvShape, group: usize, x: &[f32], cols: &mut [f32]) {
    let Group {
        channels,
        taps,
        pixels,
        ..
    } = Group::of(&shape);
    let ([fh, fw], [_, ow], plane) = (shape.f, shape.o, shape.h * shape.w);
    let x = &x[group * channels * plane..(group + 1) * channels * plane];
    let mut rows = cols[..taps * pixels].chunks_exact_mut(pixels);
    for plane_x in x.chunks_exact(plane) {
        for ky in 0..fh {
            for kx in 0..fw {
                let Some(row) = rows.next() else { return };
                let cols = inside(&shape, 1, kx, shape.w, ow);
                // Input column of output column `cols.start` (when there is
                // one), and the step.
                let (ix0, sw) = (first_source(&shape, &cols, kx), shape.s[1]);
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    let Some(iy) = source(&shape, 0, oy, ky, shape.h) else {
                        out.fill(0.0);
                        continue;
                    };
                    let line = &plane_x[iy * shape.w..(iy + 1) * shape.w];
                    out[..cols.start].fill(0.0);
                    out[cols.end..].fill(0.0);
                    let out = &mut out[cols.clone()];
                    for (v, &x) in out.iter_mut().zip(line[ix0..].iter().step_by(sw)) {
                        *v = x;
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_with`]: adds every entry of `cols` into the
/// input position of group `group`'s channels it was read from (padding
/// entries are dropped). `dx` (the whole image, C×H×W) must be zeroed by
/// the caller if it should hold only this image's gradient.
#[inline(always)]
pub fn col2im_with(shape: ConvShape, group: usize, cols: &[f32], dx: &mut [f32]) {
    let Group {
        channels,
        taps,
        pixels,
        ..
    } = Group::of(&shape);
    let ([fh, fw], [_, ow], plane) = (shape.f, shape.o, shape.h * shape.w);
    let dx = &mut dx[group * channels * plane..(group + 1) * channels * plane];
    let mut rows = cols[..taps * pixels].chunks_exact(pixels);
    for plane_dx in dx.chunks_exact_mut(plane) {
        for ky in 0..fh {
            for kx in 0..fw {
                let Some(row) = rows.next() else { return };
                let cols = inside(&shape, 1, kx, shape.w, ow);
                let (ix0, sw) = (first_source(&shape, &cols, kx), shape.s[1]);
                for (oy, src) in row.chunks_exact(ow).enumerate() {
                    let Some(iy) = source(&shape, 0, oy, ky, shape.h) else {
                        continue;
                    };
                    let line = &mut plane_dx[iy * shape.w..(iy + 1) * shape.w];
                    let line = line[ix0..].iter_mut().step_by(sw);
                    for (g, &v) in line.zip(&src[cols.clone()]) {
                        *g += v;
                    }
                }
            }
        }
    }
}

/// Convolution of `n` images: `x` n×C×H×W, `weight` K×(C/G)×FH×FW, `bias`
/// K (or none) → `y` n×K×OH×OW. `cols` is scratch of [`conv_cols_len`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn conv_forward_with(
    shape: ConvShape,
    n: usize,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    cols: &mut [f32],
) {
    let group = Group::of(&shape);
    let (in_len, out_len) = (shape.c * shape.h * shape.w, shape.k * group.pixels);
    let weight = &weight[..shape.k * group.taps];
    for (xb, yb) in x[..n * in_len]
        .chunks_exact(in_len)
        .zip(y[..n * out_len].chunks_exact_mut(out_len))
    {
        match bias {
            Some(bias) => {
                for (row, &b) in yb.chunks_exact_mut(group.pixels).zip(&bias[..shape.k]) {
                    row.fill(b);
                }
            }
            None => yb.fill(0.0),
        }
        let filters = group.filters * group.taps;
        for (gi, (w, yg)) in weight
            .chunks_exact(filters)
            .zip(yb.chunks_exact_mut(group.filters * group.pixels))
            .enumerate()
        {
            let unfolded = columns(shape, gi, xb, cols);
            // Y_g (K/G × pixels) += W_g (K/G × taps) · cols_g (taps × pixels).
            gemm(
                group.filters,
                group.taps,
                group.pixels,
                Mat::rows(w, group.taps),
                Mat::rows(unfolded, group.pixels),
                1.0,
                yg,
            );
        }
    }
}

/// The backward pass of [`conv_forward_with`] over `n` images: adds the
/// weight gradient into `dweight` and the bias gradient into `dbias` (when
/// the layer has a bias), and writes the input gradient into `dx` when
/// one is asked for.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn conv_backward_with(
    shape: ConvShape,
    n: usize,
    x: &[f32],
    dy: &[f32],
    weight: &[f32],
    dweight: &mut [f32],
    mut dbias: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
    cols: &mut [f32],
) {
    let group = Group::of(&shape);
    let (in_len, out_len) = (shape.c * shape.h * shape.w, shape.k * group.pixels);
    let filters = group.filters * group.taps;
    let weight = &weight[..shape.k * group.taps];
    let dweight = &mut dweight[..shape.k * group.taps];
    let (x, dy) = (&x[..n * in_len], &dy[..n * out_len]);
    for b in 0..n {
        let xb = &x[b * in_len..(b + 1) * in_len];
        let dyb = &dy[b * out_len..(b + 1) * out_len];
        if let Some(dbias) = dbias.as_deref_mut() {
            for (g, row) in dbias[..shape.k]
                .iter_mut()
                .zip(dyb.chunks_exact(group.pixels))
            {
                *g += row.iter().sum::<f32>();
            }
        }
        let mut dxb = dx
            .as_deref_mut()
            .map(|dx| &mut dx[b * in_len..(b + 1) * in_len]);
        if let Some(dxb) = dxb.as_deref_mut() {
            if !pointwise(&shape) {
                dxb.fill(0.0);
            }
        }
        for gi in 0..shape.g {
            let w = &weight[gi * filters..(gi + 1) * filters];
            let dw = &mut dweight[gi * filters..(gi + 1) * filters];
            let dyg = &dyb[gi * group.filters * group.pixels..][..group.filters * group.pixels];
            let group_x = gi * group.taps * group.pixels..(gi + 1) * group.taps * group.pixels;
            // dW_g (K/G × taps) += dY_g (K/G × pixels) · cols_gᵀ (pixels × taps).
            let unfolded = columns(shape, gi, xb, cols);
            gemm(
                group.filters,
                group.pixels,
                group.taps,
                Mat::rows(dyg, group.pixels),
                Mat::transposed(unfolded, group.pixels),
                1.0,
                dw,
            );
            let Some(dxb) = dxb.as_deref_mut() else {
                continue;
            };
            // dcols_g (taps × pixels) = W_gᵀ (taps × K/G) · dY_g (K/G × pixels).
            let (wt, dyg) = (Mat::transposed(w, group.taps), Mat::rows(dyg, group.pixels));
            if pointwise(&shape) {
                let dxg = &mut dxb[group_x];
                gemm(group.taps, group.filters, group.pixels, wt, dyg, 0.0, dxg);
            } else {
                gemm(group.taps, group.filters, group.pixels, wt, dyg, 0.0, cols);
                col2im_with(shape, gi, cols, dxb);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{reference, Act};

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn shape(
        c: usize,
        [h, w]: [usize; 2],
        k: usize,
        f: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        d: [usize; 2],
        g: usize,
    ) -> ConvShape {
        let out = |n: usize, f: usize, s: usize, p: usize, d: usize| {
            (n + 2 * p - d * (f - 1) - 1) / s + 1
        };
        let o = [
            out(h, f[0], s[0], p[0], d[0]),
            out(w, f[1], s[1], p[1], d[1]),
        ];
        ConvShape {
            d,
            g,
            ..ConvShape::plain(c, [h, w], k, f, s, p, o)
        }
    }

    /// Every small shape: the forward pass against the reference, and
    /// col2im the adjoint of im2col (`⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩`).
    #[test]
    fn every_small_window_unfolds_and_folds_back_exactly() {
        let mut shapes = 0;
        for (h, w) in [(1, 1), (1, 4), (3, 2), (4, 5), (6, 6)] {
            for f in [[1, 1], [1, 3], [2, 2], [3, 1], [3, 3]] {
                for (s, p, d) in (1..=3).flat_map(|s| {
                    (0..=2).flat_map(move |p| {
                        (1..=2).map(move |d| ([s, 3 - s + 1], [p, 2 - p], [d, 3 - d]))
                    })
                }) {
                    let out = |n: usize, f: usize, s: usize, p: usize, d: usize| {
                        (n + 2 * p)
                            .checked_sub(d * (f - 1) + 1)
                            .map(|span| span / s + 1)
                    };
                    let (Some(oh), Some(ow)) = (
                        out(h, f[0], s[0], p[0], d[0]),
                        out(w, f[1], s[1], p[1], d[1]),
                    ) else {
                        continue;
                    };
                    let shape = ConvShape {
                        d,
                        g: 1,
                        ..ConvShape::plain(2, [h, w], 3, f, s, p, [oh, ow])
                    };
                    shapes += 1;
                    let x = values(2 * h * w, 7);
                    let mut cols = vec![f32::NAN; conv_cols_len(&shape)];
                    im2col_with(shape, 0, &x, &mut cols);
                    let c = values(cols.len(), 9);
                    let mut folded = vec![0.0; x.len()];
                    col2im_with(shape, 0, &c, &mut folded);
                    let dot = |a: &[f32], b: &[f32]| -> f64 {
                        a.iter()
                            .zip(b)
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum()
                    };
                    let (left, right) = (dot(&cols, &c), dot(&x, &folded));
                    assert!((left - right).abs() < 1e-4, "{shape:?}: {left} vs {right}");
                    let weight = values(3 * 2 * f[0] * f[1], 3);
                    let mut y = vec![f32::NAN; 3 * oh * ow];
                    conv_forward_with(shape, 1, &x, &weight, None, &mut y, &mut cols);
                    let mut want = vec![0.0; y.len()];
                    reference::conv2d(shape, &x, &weight, None, &mut want, Act::Identity);
                    for (g, r) in y.iter().zip(&want) {
                        assert!((g - r).abs() < 1e-5, "{shape:?}: {g} vs {r}");
                    }
                }
            }
        }
        assert!(shapes > 300, "{shapes} shapes");
    }

    #[test]
    fn forward_matches_the_reference_with_stride_padding_dilation_and_groups() {
        for (shape, bias) in [
            (shape(2, [7, 6], 3, [3, 2], [2, 1], [1, 0], [1, 1], 1), true),
            (shape(3, [4, 4], 3, [1, 1], [1, 1], [0, 0], [1, 1], 1), true),
            (
                shape(1, [5, 5], 3, [5, 5], [1, 1], [2, 2], [1, 1], 1),
                false,
            ),
            (shape(4, [7, 8], 6, [3, 3], [1, 2], [2, 1], [2, 3], 2), true),
            (
                shape(3, [6, 5], 6, [3, 3], [2, 1], [1, 1], [1, 1], 3),
                false,
            ),
            (shape(4, [5, 5], 2, [1, 1], [1, 1], [0, 0], [1, 1], 2), true),
        ] {
            let [oh, ow] = shape.o;
            let (k, in_len, out_len) = (shape.k, shape.c * shape.h * shape.w, shape.k * oh * ow);
            let x = values(2 * in_len, 1);
            let w = values(k * shape.c / shape.g * shape.f[0] * shape.f[1], 2);
            let b = values(k, 3);
            let bias = bias.then_some(&b[..]);
            let mut y = vec![f32::NAN; 2 * out_len];
            let mut cols = vec![0.0; conv_cols_len(&shape)];
            conv_forward_with(shape, 2, &x, &w, bias, &mut y, &mut cols);
            for img in 0..2 {
                let mut expected = vec![0.0; out_len];
                let xb = &x[img * in_len..(img + 1) * in_len];
                reference::conv2d(shape, xb, &w, bias, &mut expected, Act::Identity);
                for (got, want) in y[img * out_len..][..out_len].iter().zip(&expected) {
                    assert!((got - want).abs() < 1e-5, "{got} vs {want} for {shape:?}");
                }
            }
        }
    }
}

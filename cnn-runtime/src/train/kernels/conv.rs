//! Convolution for training: im2col + GEMM forward, and the backward pass
//! (weight gradient `dY·colsᵀ`, bias gradient, input gradient `Wᵀ·dY`
//! scattered back by col2im).

use super::{gemm, Mat, Window};

/// Length, in f32s, of the im2col scratch a convolution over `win` needs
/// (one image at a time; see [`cols_len`](crate::kernels::cols_len)).
pub const fn conv_cols_len(win: &Window) -> usize {
    crate::kernels::cols_len(win.c, win.f, win.o)
}

/// Whether the convolution is 1×1 with stride 1 and no padding: then the
/// image itself is its im2col matrix.
#[inline(always)]
fn pointwise(win: Window) -> bool {
    win.f == [1, 1] && win.s == [1, 1] && win.p == [0, 0]
}

/// Unfolds one image `x` (C×H×W) into `cols`, a (C·FH·FW) × (OH·OW)
/// row-major matrix: row `(c·FH + ky)·FW + kx`, column `oy·OW + ox` holds
/// the input value under filter tap (ky, kx) at output (oy, ox), zero in the
/// padding.
#[inline(always)]
pub fn im2col_with(win: Window, x: &[f32], cols: &mut [f32]) {
    let [oh, ow] = win.out();
    let [fh, fw] = win.f;
    let x = &x[..win.c * win.h * win.w];
    let cols = &mut cols[..win.c * fh * fw * oh * ow];
    let mut rows = cols.chunks_exact_mut(oh * ow);
    for c in 0..win.c {
        let plane = &x[c * win.h * win.w..(c + 1) * win.h * win.w];
        for ky in 0..fh {
            for kx in 0..fw {
                let Some(row) = rows.next() else { return };
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    let iy = (oy * win.s[0] + ky).wrapping_sub(win.p[0]);
                    if iy >= win.h {
                        out.fill(0.0);
                        continue;
                    }
                    let line = &plane[iy * win.w..(iy + 1) * win.w];
                    for (ox, v) in out.iter_mut().enumerate() {
                        let ix = (ox * win.s[1] + kx).wrapping_sub(win.p[1]);
                        *v = if ix < win.w { line[ix] } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_with`]: adds every entry of `cols` into the input
/// position it was read from (padding entries are dropped). `dx` must be
/// zeroed by the caller if it should hold only this image's gradient.
#[inline(always)]
pub fn col2im_with(win: Window, cols: &[f32], dx: &mut [f32]) {
    let [oh, ow] = win.out();
    let [fh, fw] = win.f;
    let dx = &mut dx[..win.c * win.h * win.w];
    let cols = &cols[..win.c * fh * fw * oh * ow];
    let mut rows = cols.chunks_exact(oh * ow);
    for c in 0..win.c {
        let plane = &mut dx[c * win.h * win.w..(c + 1) * win.h * win.w];
        for ky in 0..fh {
            for kx in 0..fw {
                let Some(row) = rows.next() else { return };
                for (oy, src) in row.chunks_exact(ow).enumerate() {
                    let iy = (oy * win.s[0] + ky).wrapping_sub(win.p[0]);
                    if iy >= win.h {
                        continue;
                    }
                    let line = &mut plane[iy * win.w..(iy + 1) * win.w];
                    for (ox, &v) in src.iter().enumerate() {
                        let ix = (ox * win.s[1] + kx).wrapping_sub(win.p[1]);
                        if ix < win.w {
                            line[ix] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Convolution of `n` images: `x` n×C×H×W, `weight` K×C×FH×FW, `bias` K →
/// `y` n×K×OH×OW. `cols` is scratch of [`conv_cols_len`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn conv_forward_with(
    win: Window,
    k: usize,
    n: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    cols: &mut [f32],
) {
    let [oh, ow] = win.out();
    let (in_len, taps, pixels) = (win.c * win.h * win.w, win.c * win.f[0] * win.f[1], oh * ow);
    let weight = &weight[..k * taps];
    let bias = &bias[..k];
    for (xb, yb) in x[..n * in_len]
        .chunks_exact(in_len)
        .zip(y[..n * k * pixels].chunks_exact_mut(k * pixels))
    {
        for (row, &b) in yb.chunks_exact_mut(pixels).zip(bias) {
            row.fill(b);
        }
        let cols: &[f32] = if pointwise(win) {
            xb
        } else {
            im2col_with(win, xb, cols);
            cols
        };
        gemm(
            k,
            taps,
            pixels,
            Mat::rows(weight, taps),
            Mat::rows(cols, pixels),
            1.0,
            yb,
        );
    }
}

/// The backward pass of [`conv_forward_with`] over `n` images: adds the
/// weight and bias gradients into `dweight` and `dbias`, and writes the
/// input gradient into `dx` when one is asked for.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn conv_backward_with(
    win: Window,
    k: usize,
    n: usize,
    x: &[f32],
    dy: &[f32],
    weight: &[f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
    mut dx: Option<&mut [f32]>,
    cols: &mut [f32],
) {
    let [oh, ow] = win.out();
    let (in_len, taps, pixels) = (win.c * win.h * win.w, win.c * win.f[0] * win.f[1], oh * ow);
    let weight = &weight[..k * taps];
    let dweight = &mut dweight[..k * taps];
    let dbias = &mut dbias[..k];
    let x = &x[..n * in_len];
    let dy = &dy[..n * k * pixels];
    for b in 0..n {
        let xb = &x[b * in_len..(b + 1) * in_len];
        let dyb = &dy[b * k * pixels..(b + 1) * k * pixels];
        for (g, row) in dbias.iter_mut().zip(dyb.chunks_exact(pixels)) {
            *g += row.iter().sum::<f32>();
        }
        // dW (K × taps) += dY (K × pixels) · colsᵀ (pixels × taps).
        let unfolded: &[f32] = if pointwise(win) {
            xb
        } else {
            im2col_with(win, xb, cols);
            cols
        };
        gemm(
            k,
            pixels,
            taps,
            Mat::rows(dyb, pixels),
            Mat::transposed(unfolded, pixels),
            1.0,
            dweight,
        );
        let Some(dx) = dx.as_deref_mut() else {
            continue;
        };
        let dxb = &mut dx[b * in_len..(b + 1) * in_len];
        // dcols (taps × pixels) = Wᵀ (taps × K) · dY (K × pixels).
        let wt = Mat::transposed(weight, taps);
        if pointwise(win) {
            gemm(taps, k, pixels, wt, Mat::rows(dyb, pixels), 0.0, dxb);
        } else {
            gemm(taps, k, pixels, wt, Mat::rows(dyb, pixels), 0.0, cols);
            dxb.fill(0.0);
            col2im_with(win, cols, dxb);
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

    #[test]
    fn forward_matches_the_reference_with_stride_and_padding() {
        for win in [
            Window {
                c: 2,
                h: 7,
                w: 6,
                f: [3, 2],
                s: [2, 1],
                p: [1, 0],
                o: [4, 5],
            },
            Window {
                c: 3,
                h: 4,
                w: 4,
                f: [1, 1],
                s: [1, 1],
                p: [0, 0],
                o: [4, 4],
            },
            Window {
                c: 1,
                h: 5,
                w: 5,
                f: [5, 5],
                s: [1, 1],
                p: [2, 2],
                o: [5, 5],
            },
        ] {
            let k = 3;
            let [oh, ow] = win.out();
            let x = values(2 * win.c * win.h * win.w, 1);
            let w = values(k * win.c * win.f[0] * win.f[1], 2);
            let b = values(k, 3);
            let mut y = vec![0.0; 2 * k * oh * ow];
            let mut cols = vec![0.0; conv_cols_len(&win)];
            conv_forward_with(win, k, 2, &x, &w, &b, &mut y, &mut cols);
            let in_len = win.c * win.h * win.w;
            for img in 0..2 {
                let mut expected = vec![0.0; k * oh * ow];
                reference::conv2d(
                    win.conv(k),
                    &x[img * in_len..(img + 1) * in_len],
                    &w,
                    Some(&b),
                    &mut expected,
                    Act::Identity,
                );
                for (got, want) in y[img * k * oh * ow..][..k * oh * ow].iter().zip(&expected) {
                    assert!((got - want).abs() < 1e-5, "{got} vs {want} for {win:?}");
                }
            }
        }
    }
}

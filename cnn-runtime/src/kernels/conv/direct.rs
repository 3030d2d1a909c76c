//! Direct convolution without scratch but a row: one output row at a time,
//! the filter's reach clipped to the input so that padding costs nothing.
//! It takes every shape, dilated and grouped ones included: the kernel of
//! last resort, and a second reference for the others.

use super::layout::ConvShape;
use crate::kernels::Act;

/// Computes the layer one output row at a time into `row` (OW values);
/// the slices have been checked against the shape. Without a bias, the
/// sums start at zero.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    act: Act,
    row: &mut [f32],
) {
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
    let taps = cg * fh * fw;
    let row = &mut row[..ow];
    for ki in 0..k {
        let filter = &weight[ki * taps..(ki + 1) * taps];
        let first = ki / kg * cg;
        for oy in 0..oh {
            row.fill(bias.map_or(0.0, |b| b[ki]));
            for cj in 0..cg {
                let ci = first + cj;
                for ky in 0..fh {
                    let iy = (oy * sh + ky * dh).wrapping_sub(ph);
                    if iy >= h {
                        continue;
                    }
                    let xr = &x[(ci * h + iy) * w..(ci * h + iy + 1) * w];
                    for kx in 0..fw {
                        let wv = filter[(cj * fh + ky) * fw + kx];
                        // Output columns whose input column
                        // ox·SW + kx·DW − PW lies inside the row.
                        let at = kx * dw;
                        let lo = pw.saturating_sub(at).div_ceil(sw);
                        let hi = (w + pw).saturating_sub(at).div_ceil(sw).min(ow);
                        for ox in lo..hi {
                            row[ox] += wv * xr[ox * sw + at - pw];
                        }
                    }
                }
            }
            let out = &mut y[(ki * oh + oy) * ow..(ki * oh + oy + 1) * ow];
            for (o, &s) in out.iter_mut().zip(row.iter()) {
                *o = act.apply(s);
            }
        }
    }
}

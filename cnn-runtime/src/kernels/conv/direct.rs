//! Direct convolution without scratch: one output row at a time, the
//! filter's reach clipped to the input so that padding costs nothing.

use super::layout::ConvShape;
use crate::kernels::Act;

/// Computes the layer one output row at a time into `row` (OW values).
#[inline(always)]
pub(crate) fn conv(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
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
        o: [oh, ow],
    } = shape;
    let row = &mut row[..ow];
    for ki in 0..k {
        let filter = &weight[ki * c * fh * fw..(ki + 1) * c * fh * fw];
        for oy in 0..oh {
            row.fill(bias[ki]);
            for ci in 0..c {
                for ky in 0..fh {
                    let iy = (oy * sh + ky).wrapping_sub(ph);
                    if iy >= h {
                        continue;
                    }
                    let xr = &x[(ci * h + iy) * w..(ci * h + iy + 1) * w];
                    for kx in 0..fw {
                        let wv = filter[(ci * fh + ky) * fw + kx];
                        // Output columns whose input column ox·SW + kx − PW
                        // lies inside the row.
                        let lo = pw.saturating_sub(kx).div_ceil(sw);
                        let hi = ((w + pw).saturating_sub(kx)).div_ceil(sw).min(ow);
                        for ox in lo..hi {
                            row[ox] += wv * xr[ox * sw + kx - pw];
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

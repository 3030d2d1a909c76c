use crate::kernels::{Act, ConvShape};

/// Convolution: `x` C×H×W, `weight` K×(C/G)×FH×FW, `bias` K (or none) →
/// `y` K×OH×OW, then the activation. Output channel `ko` of group
/// `ko / (K/G)` sees input channels `(ko / (K/G))·(C/G) ..` of its group;
/// tap `(ky, kx)` reads input `(oy·SH + ky·DH − PH, ox·SW + kx·DW − PW)`,
/// zero outside the input. Summed in f64.
pub fn conv2d(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    act: Act,
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
    for ko in 0..k {
        let group = ko / kg;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = bias.map_or(0.0, |b| f64::from(b[ko]));
                for cj in 0..cg {
                    let ci = group * cg + cj;
                    for ky in 0..fh {
                        for kx in 0..fw {
                            let iy = (oy * sh + ky * dh) as isize - ph as isize;
                            let ix = (ox * sw + kx * dw) as isize - pw as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let xv = x[(ci * h + iy as usize) * w + ix as usize];
                            let wv = weight[((ko * cg + cj) * fh + ky) * fw + kx];
                            sum += f64::from(xv) * f64::from(wv);
                        }
                    }
                }
                y[(ko * oh + oy) * ow + ox] = act.apply(sum as f32);
            }
        }
    }
}

use super::Window;
use crate::kernels::Act;

/// Convolution: `x` C×H×W, `weight` K×C×FH×FW, `bias` K → `y` K×OH×OW, then
/// the activation.
pub fn conv2d(
    win: Window,
    k: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let [oh, ow] = win.out();
    let [fh, fw] = win.f;
    for ko in 0..k {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = f64::from(bias[ko]);
                for c in 0..win.c {
                    for ky in 0..fh {
                        for kx in 0..fw {
                            let iy = (oy * win.s[0] + ky) as isize - win.p[0] as isize;
                            let ix = (ox * win.s[1] + kx) as isize - win.p[1] as isize;
                            if iy < 0 || ix < 0 || iy >= win.h as isize || ix >= win.w as isize {
                                continue;
                            }
                            let xv = x[(c * win.h + iy as usize) * win.w + ix as usize];
                            let wv = weight[((ko * win.c + c) * fh + ky) * fw + kx];
                            sum += f64::from(xv) * f64::from(wv);
                        }
                    }
                }
                y[(ko * oh + oy) * ow + ox] = act.apply(sum as f32);
            }
        }
    }
}

use super::Window;

/// Max pooling, PyTorch's `MaxPool2d`: the padding reads as −∞, so it is
/// never the maximum unless a whole window is padding (which gives −∞;
/// PyTorch forbids padding over half the window). A window containing NaN
/// yields NaN.
pub fn max_pool(win: Window, x: &[f32], y: &mut [f32]) {
    pool(win, x, y, |values| {
        values.fold(f32::NEG_INFINITY, |m, v| {
            if v.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(v)
            }
        })
    });
}

/// Average pooling, summed in f64, PyTorch's `AvgPool2d` with
/// `count_include_pad=True`: the padding reads as zeros, and every window
/// divides by FH·FW.
pub fn avg_pool(win: Window, x: &[f32], y: &mut [f32]) {
    let n = (win.f[0] * win.f[1]) as f64;
    pool(win, x, y, |values| {
        (values.map(f64::from).sum::<f64>() / n) as f32
    });
}

/// Global average pooling, PyTorch's `AdaptiveAvgPool2d(1)`: `y[ch]` is
/// the mean of channel `ch`'s `hw` values of `x`, summed in f64.
pub fn global_avg_pool(c: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    for (xc, out) in x.chunks_exact(hw).zip(&mut y[..c]) {
        *out = (xc.iter().copied().map(f64::from).sum::<f64>() / hw as f64) as f32;
    }
}

/// `reduce` over the input values of each window: those inside the input
/// only, the padding left out.
fn pool(
    win: Window,
    x: &[f32],
    y: &mut [f32],
    reduce: impl Fn(&mut dyn Iterator<Item = f32>) -> f32,
) {
    let [oh, ow] = win.out();
    // The input index along an axis of `n` values, if inside it.
    let inside = |o: usize, k: usize, axis: usize, n: usize| {
        (o * win.s[axis] + k)
            .checked_sub(win.p[axis])
            .filter(|&i| i < n)
    };
    for c in 0..win.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut values = (0..win.f[0]).flat_map(|ky| {
                    (0..win.f[1]).filter_map(move |kx| {
                        let iy = inside(oy, ky, 0, win.h)?;
                        let ix = inside(ox, kx, 1, win.w)?;
                        Some(x[(c * win.h + iy) * win.w + ix])
                    })
                });
                y[(c * oh + oy) * ow + ox] = reduce(&mut values);
            }
        }
    }
}

use super::Window;

/// Max pooling; `win.p` must be `[0, 0]` (pooling has no padding). A window
/// containing NaN yields NaN.
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

/// Average pooling, summed in f64; `win.p` must be `[0, 0]`.
pub fn avg_pool(win: Window, x: &[f32], y: &mut [f32]) {
    let n = (win.f[0] * win.f[1]) as f64;
    pool(win, x, y, |values| {
        (values.map(f64::from).sum::<f64>() / n) as f32
    });
}

fn pool(
    win: Window,
    x: &[f32],
    y: &mut [f32],
    reduce: impl Fn(&mut dyn Iterator<Item = f32>) -> f32,
) {
    assert_eq!(win.p, [0, 0], "pooling has no padding");
    let [oh, ow] = win.out();
    for c in 0..win.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut values = (0..win.f[0]).flat_map(|ky| {
                    (0..win.f[1]).map(move |kx| {
                        x[(c * win.h + oy * win.s[0] + ky) * win.w + ox * win.s[1] + kx]
                    })
                });
                y[(c * oh + oy) * ow + ox] = reduce(&mut values);
            }
        }
    }
}

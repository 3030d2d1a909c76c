//! Pooling for training. Max pooling's backward pass routes each output's
//! gradient to the first maximum of its window, found again in the kept
//! input; average pooling spreads it evenly. Windows may overlap (stride
//! smaller than the window): gradients then add up.

use super::Window;

/// Calls `visit(o, start)` for every output `o` of a pooling over one
/// image, where `start` is the input index of its window's top-left tap.
#[inline(always)]
fn for_each_window(win: Window, mut visit: impl FnMut(usize, usize)) {
    let [oh, ow] = win.out();
    for c in 0..win.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let start = (c * win.h + oy * win.s[0]) * win.w + ox * win.s[1];
                visit((c * oh + oy) * ow + ox, start);
            }
        }
    }
}

/// The input indices under the window starting at `start`, row by row.
#[inline(always)]
fn taps(win: Window, start: usize) -> impl Iterator<Item = usize> {
    let [fh, fw] = win.f;
    (0..fh).flat_map(move |ky| (0..fw).map(move |kx| start + ky * win.w + kx))
}

/// The index of the first maximum among `taps` of `x` (NaN never wins
/// against a number; a window of NaNs routes to its first tap).
#[inline(always)]
fn arg_max(x: &[f32], mut taps: impl Iterator<Item = usize>) -> Option<usize> {
    let first = taps.next()?;
    let mut best = (first, x[first]);
    for t in taps {
        if x[t] > best.1 || best.1.is_nan() && !x[t].is_nan() {
            best = (t, x[t]);
        }
    }
    Some(best.0)
}

/// Lengths of one image's input and output.
#[inline(always)]
fn lens(win: Window) -> (usize, usize) {
    let [oh, ow] = win.out();
    (win.c * win.h * win.w, win.c * oh * ow)
}

/// Max pooling of `n` images (no padding). A window holding NaN yields NaN,
/// as in inference.
#[inline(always)]
pub fn max_pool_forward_with(win: Window, n: usize, x: &[f32], y: &mut [f32]) {
    let (in_len, out_len) = lens(win);
    for (xb, yb) in x[..n * in_len]
        .chunks_exact(in_len)
        .zip(y[..n * out_len].chunks_exact_mut(out_len))
    {
        for_each_window(win, |o, start| {
            yb[o] = taps(win, start).fold(f32::NEG_INFINITY, |m, t| {
                let v = xb[t];
                if v.is_nan() || m.is_nan() {
                    f32::NAN
                } else {
                    m.max(v)
                }
            });
        });
    }
}

/// The backward pass of max pooling: `dx` (overwritten) receives each
/// output's gradient at the first maximum of its window in `x`.
#[inline(always)]
pub fn max_pool_backward_with(win: Window, n: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (in_len, out_len) = lens(win);
    let dx = &mut dx[..n * in_len];
    dx.fill(0.0);
    for ((xb, dyb), dxb) in x[..n * in_len]
        .chunks_exact(in_len)
        .zip(dy[..n * out_len].chunks_exact(out_len))
        .zip(dx.chunks_exact_mut(in_len))
    {
        for_each_window(win, |o, start| {
            if let Some(t) = arg_max(xb, taps(win, start)) {
                dxb[t] += dyb[o];
            }
        });
    }
}

/// Average pooling of `n` images (no padding).
#[inline(always)]
pub fn avg_pool_forward_with(win: Window, n: usize, x: &[f32], y: &mut [f32]) {
    let (in_len, out_len) = lens(win);
    let inv = 1.0 / (win.f[0] * win.f[1]) as f32;
    for (xb, yb) in x[..n * in_len]
        .chunks_exact(in_len)
        .zip(y[..n * out_len].chunks_exact_mut(out_len))
    {
        for_each_window(win, |o, start| {
            yb[o] = taps(win, start).map(|t| xb[t]).sum::<f32>() * inv;
        });
    }
}

/// The backward pass of average pooling: `dx` (overwritten) receives each
/// output's gradient divided evenly over its window.
#[inline(always)]
pub fn avg_pool_backward_with(win: Window, n: usize, dy: &[f32], dx: &mut [f32]) {
    let (in_len, out_len) = lens(win);
    let inv = 1.0 / (win.f[0] * win.f[1]) as f32;
    let dx = &mut dx[..n * in_len];
    dx.fill(0.0);
    for (dyb, dxb) in dy[..n * out_len]
        .chunks_exact(out_len)
        .zip(dx.chunks_exact_mut(in_len))
    {
        for_each_window(win, |o, start| {
            let g = dyb[o] * inv;
            for t in taps(win, start) {
                dxb[t] += g;
            }
        });
    }
}

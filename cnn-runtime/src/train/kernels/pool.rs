//! Pooling for training. Max pooling's backward pass routes each output's
//! gradient to the first maximum of its window, found again in the kept
//! input; average pooling spreads it evenly. Windows may overlap (stride
//! smaller than the window): gradients then add up.
//!
//! Padding is PyTorch's: max pooling pads with −∞ (the padding is never
//! the maximum, and gets no gradient), average pooling with zeros counted
//! in the divisor (`count_include_pad=True`: every window divides by
//! FH·FW), as [`reference::max_pool`](crate::kernels::reference::max_pool)
//! and [`reference::avg_pool`](crate::kernels::reference::avg_pool) do.

use super::Window;

/// The input rows (or columns) under output `o`'s window along an axis of
/// `n` values: `o·s − p ..` for `f` values, clipped to the input.
#[inline(always)]
fn span(o: usize, f: usize, s: usize, p: usize, n: usize) -> std::ops::Range<usize> {
    let start = o * s;
    start.saturating_sub(p)..(start + f).saturating_sub(p).min(n)
}

/// Calls `visit(o, taps)` for every output `o` of a pooling over one
/// image, where `taps` are the input indices under its window that lie
/// inside the input (the padding left out), row by row.
#[inline(always)]
fn for_each_window<F>(win: Window, mut visit: F)
where
    F: FnMut(usize, Taps),
{
    let [oh, ow] = win.out();
    for c in 0..win.c {
        for oy in 0..oh {
            let rows = span(oy, win.f[0], win.s[0], win.p[0], win.h);
            for ox in 0..ow {
                let cols = span(ox, win.f[1], win.s[1], win.p[1], win.w);
                let taps = Taps {
                    plane: c * win.h * win.w,
                    w: win.w,
                    rows: rows.clone(),
                    cols,
                };
                visit((c * oh + oy) * ow + ox, taps);
            }
        }
    }
}

/// The input indices of a window clipped to the input, row by row.
struct Taps {
    plane: usize,
    w: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
}

impl Taps {
    #[inline(always)]
    fn iter(self) -> impl Iterator<Item = usize> {
        let Taps {
            plane,
            w,
            rows,
            cols,
        } = self;
        rows.flat_map(move |iy| cols.clone().map(move |ix| plane + iy * w + ix))
    }
}

/// The index of the first maximum among `taps` of `x` (NaN never wins
/// against a number; a window of NaNs routes to its first tap).
#[inline(always)]
fn arg_max(x: &[f32], taps: Taps) -> Option<usize> {
    let mut taps = taps.iter();
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

/// Max pooling of `n` images, padded with −∞. A window holding NaN yields
/// NaN, as in inference.
#[inline(always)]
pub fn max_pool_forward_with(win: Window, n: usize, x: &[f32], y: &mut [f32]) {
    let (in_len, out_len) = lens(win);
    for (xb, yb) in x[..n * in_len]
        .chunks_exact(in_len)
        .zip(y[..n * out_len].chunks_exact_mut(out_len))
    {
        for_each_window(win, |o, taps| {
            yb[o] = taps.iter().fold(f32::NEG_INFINITY, |m, t| {
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
/// output's gradient at the first maximum of its window in `x` (never in
/// the padding).
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
        for_each_window(win, |o, taps| {
            if let Some(t) = arg_max(xb, taps) {
                dxb[t] += dyb[o];
            }
        });
    }
}

/// Average pooling of `n` images, the zero padding counted in the
/// divisor FH·FW.
#[inline(always)]
pub fn avg_pool_forward_with(win: Window, n: usize, x: &[f32], y: &mut [f32]) {
    let (in_len, out_len) = lens(win);
    let inv = 1.0 / (win.f[0] * win.f[1]) as f32;
    for (xb, yb) in x[..n * in_len]
        .chunks_exact(in_len)
        .zip(y[..n * out_len].chunks_exact_mut(out_len))
    {
        for_each_window(win, |o, taps| {
            yb[o] = taps.iter().map(|t| xb[t]).sum::<f32>() * inv;
        });
    }
}

/// The backward pass of average pooling: `dx` (overwritten) receives each
/// output's gradient divided by FH·FW at every tap of its window inside
/// the input.
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
        for_each_window(win, |o, taps| {
            let g = dyb[o] * inv;
            for t in taps.iter() {
                dxb[t] += g;
            }
        });
    }
}

/// Global average pooling of `n` images of `c` channels of `hw` values:
/// `y[b, ch]` is the mean of channel `ch` of image `b`.
#[inline(always)]
pub fn global_avg_pool_forward_with(c: usize, hw: usize, n: usize, x: &[f32], y: &mut [f32]) {
    if hw == 0 {
        return;
    }
    let inv = 1.0 / hw as f32;
    for (plane, out) in x[..n * c * hw].chunks_exact(hw).zip(&mut y[..n * c]) {
        *out = plane.iter().sum::<f32>() * inv;
    }
}

/// The backward pass of global average pooling: `dx` (overwritten)
/// receives `dy[b, ch] / hw` at every value of channel `ch` of image `b`.
#[inline(always)]
pub fn global_avg_pool_backward_with(c: usize, hw: usize, n: usize, dy: &[f32], dx: &mut [f32]) {
    if hw == 0 {
        return;
    }
    let inv = 1.0 / hw as f32;
    for (plane, &d) in dx[..n * c * hw].chunks_exact_mut(hw).zip(&dy[..n * c]) {
        plane.fill(d * inv);
    }
}

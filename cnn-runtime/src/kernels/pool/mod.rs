//! Max and average pooling over FH×FW windows with stride S and padding P
//! (PyTorch's semantics: max pooling pads with −∞, average pooling with
//! zeros counted in the divisor), and global average pooling.
//!
//! The shapes are run-time values. Each output row folds the input rows its
//! windows cover into one row on the stack (contiguous, so it vectorises),
//! the padding filled in with the reduction's identity, then each window
//! along that row. With AVX-512 or AVX2, windows two or three columns wide
//! at column stride 2 go to [`strided`], a vector of outputs at a time,
//! compiled with the common window sizes constant.

use super::reference::Window;
use crate::cpu::{Active, Isa, Unsupported};

mod global;
#[cfg(target_arch = "x86_64")]
mod strided;

pub use global::{global_avg_pool, global_avg_pool_with};

/// The larger of two values, NaN if either is NaN (IEEE 754 `maximum`),
/// branch-free so that it vectorises: `a > b ? a : b` and `b > a ? b : a`
/// (each one `maxps`) agree unless one is NaN, when one of them is that NaN;
/// OR-ing their bits then gives a NaN (all exponent bits and a mantissa bit
/// set). ±0 give either zero.
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    let ab = if a > b { a } else { b };
    let ba = if b > a { b } else { a };
    f32::from_bits(ab.to_bits() | ba.to_bits())
}

/// The inputs along one axis that the window at padded position `start`
/// covers, as offsets `lo..hi` into the window (`0..f` unless it overlaps
/// the padding; empty if it lies in the padding): the window's `k`-th
/// value is input `start + k − p`, for an axis of `n` values padded by
/// `p`.
#[inline(always)]
fn inside(start: usize, f: usize, p: usize, n: usize) -> (usize, usize) {
    let lo = p.saturating_sub(start).min(f);
    let hi = (n + p).saturating_sub(start).clamp(lo, f);
    (lo, hi)
}

/// Reduces every window into its output value (the sum, then scaled, for
/// the mean): through [`fold_rows`], or [`wide_windows`] for windows wider
/// than the stack row.
#[inline(always)]
fn pool_rows<R: Reduce>(win: Window, x: &[f32], y: &mut [f32]) {
    let [oh, ow] = win.out();
    if oh == 0 || ow == 0 {
        return;
    }
    let (x, y) = (&x[..win.c * win.h * win.w], &mut y[..win.c * oh * ow]);
    if win.f[1] > POOL_ROW_MAX {
        wide_windows::<R>(win, x, y);
    } else {
        fold_rows::<R>(win, x, y);
    }
    if !R::MAX {
        let scale = 1.0 / (win.f[0] * win.f[1]) as f32;
        for v in y {
            *v *= scale;
        }
    }
}

/// [`pool_rows`] for windows wider than the stack row: each window folded
/// where it lies, its taps inside the input from `R::PAD` on.
#[inline(always)]
fn wide_windows<R: Reduce>(win: Window, x: &[f32], y: &mut [f32]) {
    let [oh, ow] = win.out();
    let (h, w) = (win.h, win.w);
    let ([fh, fw], [sh, sw], [ph, pw]) = (win.f, win.s, win.p);
    for (xc, yc) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for (i, out) in yc.iter_mut().enumerate() {
            let (oy, ox) = (i / ow, i % ow);
            let (ky0, ky1) = inside(oy * sh, fh, ph, h);
            let (kx0, kx1) = inside(ox * sw, fw, pw, w);
            // Row ky of the window, its columns inside the input.
            let row = |ky: usize| {
                let at = (oy * sh + ky - ph) * w + ox * sw;
                &xc[at + kx0 - pw..at + kx1 - pw]
            };
            let values = (ky0..ky1).flat_map(row);
            *out = values.fold(R::PAD, |acc, &v| R::fold(acc, v));
        }
    }
}

/// [`pool_rows`] for windows at most [`POOL_ROW_MAX`] wide, one output
/// row at a time: first the FH input rows the row's windows cover are
/// folded into one row on the stack (contiguous, so it vectorises), its
/// padding columns set to `R::PAD`, then each window's FW values of that
/// row. Output rows wider than the stack row go in pieces.
#[inline(always)]
fn fold_rows<R: Reduce>(win: Window, x: &[f32], y: &mut [f32]) {
    let [oh, ow] = win.out();
    let (h, w) = (win.h, win.w);
    let ([fh, fw], [sh, sw], [ph, pw]) = (win.f, win.s, win.p);
    // Output columns per piece: their windows span at most POOL_ROW_MAX
    // input columns. Up to POOL_BLOCK_ROWS output rows are folded, one
    // after another on the stack, before their windows are read: read at
    // once, at other offsets than they were written, each would wait for
    // its stores to leave the store buffer.
    let per_piece = ((POOL_ROW_MAX - fw) / sw + 1).min(ow);
    let block = (POOL_ROW_MAX / ((per_piece - 1) * sw + fw)).clamp(1, POOL_BLOCK_ROWS);
    let mut folded = [0.0f32; POOL_ROW_MAX];
    for (xc, yc) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for oy0 in (0..oh).step_by(block) {
            let rows = block.min(oh - oy0);
            for ox0 in (0..ow).step_by(per_piece) {
                let n = per_piece.min(ow - ox0);
                let span = (n - 1) * sw + fw;
                // The piece's columns inside the input: lo..hi of the
                // span, from input column ox0·SW + lo − PW.
                let (lo, hi) = inside(ox0 * sw, span, pw, w);
                for (r, col) in folded.chunks_exact_mut(span).take(rows).enumerate() {
                    let top = (oy0 + r) * sh;
                    let (ky0, ky1) = inside(top, fh, ph, h);
                    col[..lo].fill(R::PAD);
                    col[hi..].fill(R::PAD);
                    let col = &mut col[lo..hi];
                    if col.is_empty() {
                        continue;
                    }
                    if ky0 == ky1 {
                        // A row of windows in the padding (P > F/2).
                        col.fill(R::PAD);
                        continue;
                    }
                    let src = &xc[(top + ky0 - ph) * w + ox0 * sw + lo - pw..];
                    col.copy_from_slice(&src[..col.len()]);
                    for ky in 1..ky1 - ky0 {
                        for (c, &v) in col.iter_mut().zip(&src[ky * w..]) {
                            *c = R::fold(*c, v);
                        }
                    }
                }
                for (r, col) in folded.chunks_exact(span).take(rows).enumerate() {
                    let ys = &mut yc[(oy0 + r) * ow + ox0..][..n];
                    for (ox, out) in ys.iter_mut().enumerate() {
                        let window = &col[ox * sw..][..fw];
                        *out = window[1..]
                            .iter()
                            .fold(window[0], |acc, &v| R::fold(acc, v));
                    }
                }
            }
        }
    }
}

/// Output rows folded on the stack before their windows are read.
const POOL_BLOCK_ROWS: usize = 8;

/// Input columns one output row's windows are folded into on the stack
/// (4 KiB).
const POOL_ROW_MAX: usize = 1024;

/// Max pooling over the windows of `win`, PyTorch's `MaxPool2d`: `x`
/// C×H×W → `y` C×OH×OW. The padding is −∞: never the maximum unless a
/// window lies wholly in it, which PyTorch's rule P ≤ F/2 rules out (such a
/// window gives −∞). A window containing NaN yields NaN (IEEE 754
/// `maximum`); infinities order as usual.
///
/// # Panics
/// If `x` or `y` is shorter than the volumes (the plan gives slices of the
/// right length).
pub fn max_pool(win: Window, x: &[f32], y: &mut [f32]) {
    pool::<Max>(Active::get(), win, x, y);
}

/// Average pooling over the windows of `win`, PyTorch's `AvgPool2d` with
/// `count_include_pad=True`: `x` C×H×W → `y` C×OH×OW, each window's sum
/// times `1/(FH·FW)`, the padding counted as zeros. NaN and infinities
/// propagate as in any sum.
///
/// # Panics
/// As [`max_pool`].
pub fn avg_pool(win: Window, x: &[f32], y: &mut [f32]) {
    pool::<Avg>(Active::get(), win, x, y);
}

/// Max (`max`) or average pooling as with `isa` in use (for tests and
/// benchmarks, which force each instruction set).
///
/// # Errors
/// The CPU lacks `isa`.
///
/// # Panics
/// As [`max_pool`].
#[doc(hidden)]
pub fn pool_with(
    isa: Isa,
    max: bool,
    win: Window,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Unsupported> {
    if !isa.supported() {
        return Err(Unsupported(isa));
    }
    if max {
        pool::<Max>(Active::of(isa), win, x, y);
    } else {
        pool::<Avg>(Active::of(isa), win, x, y);
    }
    Ok(())
}

/// A pooling reduction, as a type so that [`pool`] monomorphises over it.
trait Reduce {
    /// Max pooling (else average).
    const MAX: bool;
    /// The value of the padding, the fold's identity: −∞ or 0.
    const PAD: f32;
    /// The fold of two values.
    fn fold(a: f32, b: f32) -> f32;
}

struct Max;
struct Avg;

impl Reduce for Max {
    const MAX: bool = true;
    const PAD: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    fn fold(a: f32, b: f32) -> f32 {
        max_nan(a, b)
    }
}

impl Reduce for Avg {
    const MAX: bool = false;
    const PAD: f32 = 0.0;
    #[inline(always)]
    fn fold(a: f32, b: f32) -> f32 {
        a + b
    }
}

/// Runs `R` through [`strided`] on the widest vectors `tokens` have,
/// AVX-512 or AVX2, when the windows suit it; else [`pool_rows`],
/// compiled for AVX2 when they have that: for the x86-64 baseline the
/// strided window reads stay scalar, with AVX2's wider vectors and
/// permutes they vectorise.
fn pool<R: Reduce>(tokens: Active, win: Window, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if strided::takes(&win) {
        if let Some(token) = tokens.avx512 {
            return strided::pool_avx512::<R>(token, win, x, y);
        }
        if let Some(token) = tokens.avx2 {
            return strided::pool_avx2::<R>(token, win, x, y);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if tokens.avx2.is_some() {
        // SAFETY: the token proves AVX2.
        return unsafe { pool_avx2::<R>(win, x, y) };
    }
    let _ = tokens;
    pool_rows::<R>(win, x, y);
}

/// [`pool`] under AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pool_avx2<R: Reduce>(win: Window, x: &[f32], y: &mut [f32]) {
    pool_rows::<R>(win, x, y);
}

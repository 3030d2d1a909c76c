//! Max and average pooling over F×F windows with stride S, no padding.
//!
//! The shapes are run-time values. Each output row folds the input rows its
//! windows cover into one row on the stack (contiguous, so it vectorises),
//! then each window along that row. On AVX-512, windows two or three
//! columns wide at column stride 2 go to [`avx512`], compiled with the
//! common window sizes constant.

use super::reference::Window;
use crate::cpu::{Active, Isa, Unsupported};

#[cfg(target_arch = "x86_64")]
mod avx512;

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

/// Reduces every window into its output value, one output row at a time:
/// first the FH input rows the row's windows cover are folded into one row
/// on the stack (contiguous, so it vectorises), then each window's FW
/// values of that row (with FW and SW constants an interleaved group of
/// stride SW). Output rows wider than the stack row go in pieces.
#[inline(always)]
fn pool_rows(win: Window, x: &[f32], y: &mut [f32], fold: impl Fn(f32, f32) -> f32) {
    debug_assert_eq!(win.p, [0, 0], "pooling has no padding");
    let [oh, ow] = win.out();
    let (h, w) = (win.h, win.w);
    let ([fh, fw], [sh, sw]) = (win.f, win.s);
    if oh == 0 || ow == 0 {
        return;
    }
    if fw > POOL_ROW_MAX {
        // Windows wider than the stack row: each folded in place.
        for (xc, yc) in x[..win.c * h * w]
            .chunks_exact(h * w)
            .zip(y[..win.c * oh * ow].chunks_exact_mut(oh * ow))
        {
            for (i, out) in yc.iter_mut().enumerate() {
                let (oy, ox) = (i / ow, i % ow);
                let at = oy * sh * w + ox * sw;
                let mut values = (0..fh).flat_map(|ky| xc[at + ky * w..][..fw].iter().copied());
                let first = values.next().unwrap_or(0.0);
                *out = values.fold(first, &fold);
            }
        }
        return;
    }
    // Output columns per piece: their windows span at most POOL_ROW_MAX
    // input columns. Up to POOL_BLOCK_ROWS output rows are folded, one
    // after another on the stack, before their windows are read: read at
    // once, at other offsets than they were written, each would wait for
    // its stores to leave the store buffer.
    let per_piece = ((POOL_ROW_MAX - fw) / sw + 1).min(ow);
    let block = (POOL_ROW_MAX / ((per_piece - 1) * sw + fw)).clamp(1, POOL_BLOCK_ROWS);
    let mut folded = [0.0f32; POOL_ROW_MAX];
    for (xc, yc) in x[..win.c * h * w]
        .chunks_exact(h * w)
        .zip(y[..win.c * oh * ow].chunks_exact_mut(oh * ow))
    {
        for oy0 in (0..oh).step_by(block) {
            let rows = block.min(oh - oy0);
            for ox0 in (0..ow).step_by(per_piece) {
                let n = per_piece.min(ow - ox0);
                let span = (n - 1) * sw + fw;
                for (r, col) in folded.chunks_exact_mut(span).take(rows).enumerate() {
                    let src = &xc[(oy0 + r) * sh * w + ox0 * sw..];
                    col.copy_from_slice(&src[..span]);
                    for ky in 1..fh {
                        for (c, &v) in col.iter_mut().zip(&src[ky * w..][..span]) {
                            *c = fold(*c, v);
                        }
                    }
                }
                for (r, col) in folded.chunks_exact(span).take(rows).enumerate() {
                    let ys = &mut yc[(oy0 + r) * ow + ox0..][..n];
                    for (ox, out) in ys.iter_mut().enumerate() {
                        let window = &col[ox * sw..][..fw];
                        *out = window[1..].iter().fold(window[0], |acc, &v| fold(acc, v));
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

/// Max pooling with the shapes as values: `x` C×H×W → `y` C×OH×OW.
///
/// A window that contains a NaN yields NaN (IEEE 754 `maximum`, as PyTorch's
/// `MaxPool2d` and the reference kernel do); infinities order as usual.
///
/// # Panics
/// If `x` or `y` is shorter than the volumes (the generated code passes
/// slices of exactly the right length).
#[inline(always)]
fn max_pool_core(win: Window, x: &[f32], y: &mut [f32]) {
    pool_rows(win, x, y, max_nan);
}

/// Average pooling with the shapes as values: `x` C×H×W → `y` C×OH×OW.
///
/// The window's sum times `1/(FH·FW)`; NaN and infinities propagate as in
/// any sum.
///
/// # Panics
/// If `x` or `y` is shorter than the volumes.
#[inline(always)]
fn avg_pool_core(win: Window, x: &[f32], y: &mut [f32]) {
    pool_rows(win, x, y, |acc, v| acc + v);
    let [oh, ow] = win.out();
    let scale = 1.0 / (win.f[0] * win.f[1]) as f32;
    for v in &mut y[..win.c * oh * ow] {
        *v *= scale;
    }
}

/// Max pooling over the windows of `win` (no padding): `x` C×H×W → `y`
/// C×OH×OW. A window containing NaN yields NaN.
///
/// # Panics
/// If `x` or `y` is shorter than the volumes (the plan gives slices of the
/// right length).
pub fn max_pool(win: Window, x: &[f32], y: &mut [f32]) {
    pool::<Max>(Active::get(), win, x, y);
}

/// Average pooling over the windows of `win` (no padding): `x` C×H×W → `y`
/// C×OH×OW.
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
    fn core(win: Window, x: &[f32], y: &mut [f32]);
}

struct Max;
struct Avg;

impl Reduce for Max {
    const MAX: bool = true;
    #[inline(always)]
    fn core(win: Window, x: &[f32], y: &mut [f32]) {
        max_pool_core(win, x, y);
    }
}

impl Reduce for Avg {
    const MAX: bool = false;
    #[inline(always)]
    fn core(win: Window, x: &[f32], y: &mut [f32]) {
        avg_pool_core(win, x, y);
    }
}

/// Runs `R` through [`avx512`] when `tokens` have AVX-512 and the windows
/// suit it, else compiled for AVX2 when they have that: for the x86-64
/// baseline the strided window reads stay scalar, with AVX2's wider
/// vectors and permutes they vectorise.
fn pool<R: Reduce>(tokens: Active, win: Window, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(token) = tokens.avx512.filter(|_| avx512::takes(&win)) {
        return avx512::pool::<R>(token, win, x, y);
    }
    #[cfg(target_arch = "x86_64")]
    if tokens.avx2.is_some() {
        // SAFETY: the token proves AVX2.
        return unsafe { pool_avx2::<R>(win, x, y) };
    }
    let _ = tokens;
    R::core(win, x, y);
}

/// [`pool`] under AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pool_avx2<R: Reduce>(win: Window, x: &[f32], y: &mut [f32]) {
    R::core(win, x, y);
}

//! Pooling with AVX-512 for windows two or three columns wide at column
//! stride 2 (`pool(2, 2)`, `pool(3, 2)`, whatever their height and row
//! stride), 16 outputs of a row at a time: the window's rows are folded
//! into vectors covering the 33 input columns those outputs read, a permute
//! each then parts their even and odd columns, and a one-lane shift of the
//! even ones gives the third column.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_alignr_epi32, _mm512_castps_si512,
    _mm512_castsi512_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_max_ps,
    _mm512_mul_ps, _mm512_or_si512, _mm512_permutex2var_ps, _mm512_set1_ps, _mm512_setr_epi32,
    _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::{Reduce, Window};
use crate::cpu::Avx512;

/// Output columns per vector.
const LANES: usize = 16;

/// Whether this kernel takes the windows: column stride 2, two or three
/// columns wide, no padding.
pub(super) fn takes(win: &Window) -> bool {
    win.s[1] == 2 && matches!(win.f[1], 2 | 3) && win.p == [0, 0]
}

/// [`core`], compiled with AVX-512F, which the token proves.
pub(super) fn pool<R: Reduce>(token: Avx512, win: Window, x: &[f32], y: &mut [f32]) {
    let _ = token;
    // SAFETY: the token proves AVX-512F.
    unsafe { pool_avx512::<R>(win, x, y) }
}

/// [`core`] with the window's size constant for the common windows (2 × 2
/// and 3 × 3: the rows a vector folds, and whether a third column is
/// read, fold away), and its height a value otherwise.
#[target_feature(enable = "avx512f")]
fn pool_avx512<R: Reduce>(win: Window, x: &[f32], y: &mut [f32]) {
    match win.f {
        [2, 2] => core::<R, 2, 2>(win, x, y),
        [3, 3] => core::<R, 3, 3>(win, x, y),
        [_, 2] => core::<R, 0, 2>(win, x, y),
        _ => core::<R, 0, 3>(win, x, y),
    }
}

/// Lanes `0..n` of a vector.
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= LANES {
        u16::MAX
    } else {
        (1 << n) - 1
    }
}

/// `R`'s fold of two vectors: the sum, or IEEE 754 `maximum`, NaN if either
/// lane is: `maxps` gives its second operand when one is NaN, so of
/// max(a, b) and max(b, a) one is that NaN, and OR-ing their bits keeps a
/// NaN (as the portable [`max_nan`](super::max_nan) does).
#[inline(always)]
fn fold<R: Reduce>(a: __m512, b: __m512) -> __m512 {
    // SAFETY: only reached from the `target_feature` functions above.
    unsafe {
        if R::MAX {
            let ab = _mm512_castps_si512(_mm512_max_ps(a, b));
            let ba = _mm512_castps_si512(_mm512_max_ps(b, a));
            _mm512_castsi512_ps(_mm512_or_si512(ab, ba))
        } else {
            _mm512_add_ps(a, b)
        }
    }
}

/// `R` over every window of `x` (C×H×W) into `y` (C×OH×OW), for windows
/// [`takes`] takes; the mean's scale applied.
///
/// # Panics
/// If the windows are not ones [`takes`] takes or do not fit the input,
/// or `x` or `y` is shorter than its volume.
/// `FH` is the window's height, or 0 for one known at run time; `FW` its
/// width.
#[inline(always)]
fn core<R: Reduce, const FH: usize, const FW: usize>(win: Window, x: &[f32], y: &mut [f32]) {
    assert!(takes(&win) && win.fits() && win.f[1] == FW && (FH == 0 || win.f[0] == FH));
    let [oh, ow] = win.out();
    let (h, w) = (win.h, win.w);
    let (fh, fw, sh) = (if FH == 0 { win.f[0] } else { FH }, FW, win.s[0]);
    let (x, y) = (&x[..win.c * h * w], &mut y[..win.c * oh * ow]);
    if oh == 0 || ow == 0 {
        return;
    }
    // SAFETY: reached only from the `target_feature` functions above. The
    // windows fit the input: (OH − 1)·SH + FH ≤ H and 2·(OW − 1) + FW ≤ W.
    // The loads read row oy·SH + ky < H of a channel, from column 2·ox0,
    // only the lanes before the row's end (the masks); the pointers past
    // it are formed with `wrapping_add` and never read. The stores write
    // the lanes of output row oy from ox0 up to OW.
    unsafe {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let scale = _mm512_set1_ps(1.0 / (fh * fw) as f32);
        for (xc, yc) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
            // A channel's columns a vector at a time, then its rows: the
            // masks are the same down a column of vectors, and the
            // channel's input stays in cache from one column to the next.
            for ox0 in (0..ow).step_by(LANES) {
                // The input columns from 2·ox0 to the row's end, in three
                // vectors: the third only for its first lane, the last
                // window's third column.
                let left = w - 2 * ox0;
                let m0 = lanes(left);
                let m1 = lanes(left.saturating_sub(LANES));
                let m2 = lanes(left.saturating_sub(2 * LANES)) & 1;
                let store = lanes(ow - ox0);
                for oy in 0..oh {
                    let p = xc.as_ptr().add(oy * sh * w + 2 * ox0);
                    // Vectors with no lane to read are not read (a masked
                    // load of nothing still costs a load).
                    let (wide, third) = (m1 != 0, fw == 3 && m2 != 0);
                    let zero = _mm512_setzero_ps();
                    let mut v0 = _mm512_maskz_loadu_ps(m0, p);
                    let mut v1 = if wide {
                        _mm512_maskz_loadu_ps(m1, p.wrapping_add(LANES))
                    } else {
                        zero
                    };
                    let mut v2 = if third {
                        _mm512_maskz_loadu_ps(m2, p.wrapping_add(2 * LANES))
                    } else {
                        zero
                    };
                    for ky in 1..fh {
                        let q = p.add(ky * w);
                        v0 = fold::<R>(v0, _mm512_maskz_loadu_ps(m0, q));
                        if wide {
                            v1 = fold::<R>(v1, _mm512_maskz_loadu_ps(m1, q.wrapping_add(LANES)));
                        }
                        if third {
                            let x = _mm512_maskz_loadu_ps(m2, q.wrapping_add(2 * LANES));
                            v2 = fold::<R>(v2, x);
                        }
                    }
                    // Output lane j: columns 2j, 2j + 1 (and 2j + 2).
                    let first = _mm512_permutex2var_ps(v0, even, v1);
                    let second = _mm512_permutex2var_ps(v0, odd, v1);
                    let mut r = fold::<R>(first, second);
                    if fw == 3 {
                        let third = _mm512_alignr_epi32::<1>(
                            _mm512_castps_si512(v2),
                            _mm512_castps_si512(first),
                        );
                        r = fold::<R>(r, _mm512_castsi512_ps(third));
                    }
                    if !R::MAX {
                        r = _mm512_mul_ps(r, scale);
                    }
                    let out = yc.as_mut_ptr().add(oy * ow + ox0);
                    // A masked store is slower than a plain one (AMD Zen 4).
                    if store == u16::MAX {
                        _mm512_storeu_ps(out, r);
                    } else {
                        _mm512_mask_storeu_ps(out, store, r);
                    }
                }
            }
        }
    }
}

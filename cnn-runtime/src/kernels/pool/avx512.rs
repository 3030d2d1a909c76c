//! Pooling with AVX-512 for windows two or three columns wide at column
//! stride 2 (`pool(2, 2)`, `pool(3, 2)`, whatever their height, row stride
//! and padding), 16 outputs of a row at a time: the window's rows are
//! folded into vectors covering the 33 input columns those outputs read
//! (masked loads leave the padding's lanes at the reduction's identity), a
//! permute each then parts their even and odd columns, and a one-lane shift
//! of the even ones gives the third column.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_alignr_epi32, _mm512_castps_si512,
    _mm512_castsi512_ps, _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_max_ps, _mm512_mul_ps,
    _mm512_or_si512, _mm512_permutex2var_ps, _mm512_set1_ps, _mm512_setr_epi32, _mm512_storeu_ps,
};

use super::{inside, Reduce, Window};
use crate::cpu::Avx512;

/// Output columns per vector.
const LANES: usize = 16;

/// Whether this kernel takes the windows: column stride 2, two or three
/// columns wide.
pub(super) fn takes(win: &Window) -> bool {
    win.s[1] == 2 && matches!(win.f[1], 2 | 3)
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

/// The lanes of a vector of input columns `from..from + 16` (`from` may be
/// negative, in the padding) that lie inside a row of `w` columns.
#[inline(always)]
fn columns(from: isize, w: usize) -> __mmask16 {
    let before = usize::try_from(-from).unwrap_or(0);
    let until = usize::try_from(w as isize - from).unwrap_or(0);
    lanes(until) & !lanes(before)
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

/// The input columns 16 outputs of a row read, from input column `from`
/// (2·ox0 − PW, negative in the padding) in three vectors, the third only
/// for its first lane (the last window's third column): the lanes of each
/// inside the row, and whether the second and third have any (a masked
/// load of nothing still costs a load).
struct Columns {
    from: isize,
    masks: [__mmask16; 3],
    wide: bool,
    third: bool,
}

impl Columns {
    fn new(ox0: usize, pw: usize, w: usize, fw: usize) -> Self {
        let from = (2 * ox0) as isize - pw as isize;
        let masks = [
            columns(from, w),
            columns(from + LANES as isize, w),
            columns(from + 2 * LANES as isize, w) & 1,
        ];
        Columns {
            from,
            masks,
            wide: masks[1] != 0,
            third: fw == 3 && masks[2] != 0,
        }
    }
}

/// `R`'s fold of `rows` input rows from `row` down (a row every `w`
/// values), in the vectors of `cols`: lanes outside the input, and vectors
/// not read, hold `pad`.
///
/// # Safety
/// AVX-512F, and every lane of `cols`' masks of those rows lies in `x`.
#[inline(always)]
unsafe fn fold_rows<R: Reduce>(
    x: &[f32],
    row: usize,
    w: usize,
    rows: usize,
    cols: &Columns,
    pad: __m512,
) -> [__m512; 3] {
    let p = x.as_ptr().wrapping_add(row).wrapping_offset(cols.from);
    // SAFETY: AVX-512F as the caller promises; the loads read only the
    // lanes of the masks, inside `x` as the caller promises (the pointers
    // to the others are formed with wrapping arithmetic and never read).
    let load = |at: usize, vector: usize| unsafe {
        _mm512_mask_loadu_ps(pad, cols.masks[vector], p.wrapping_add(at + vector * LANES))
    };
    let mut v = [pad; 3];
    if rows == 0 {
        return v;
    }
    v[0] = load(0, 0);
    if cols.wide {
        v[1] = load(0, 1);
    }
    if cols.third {
        v[2] = load(0, 2);
    }
    for ky in 1..rows {
        v[0] = fold::<R>(v[0], load(ky * w, 0));
        if cols.wide {
            v[1] = fold::<R>(v[1], load(ky * w, 1));
        }
        if cols.third {
            v[2] = fold::<R>(v[2], load(ky * w, 2));
        }
    }
    v
}

/// `R` over every window of `x` (C×H×W) into `y` (C×OH×OW), for windows
/// [`takes`] takes; the mean's scale applied.
///
/// `FH` is the window's height, or 0 for one known at run time; `FW` its
/// width.
///
/// # Panics
/// If the windows are not ones [`takes`] takes or do not fit the input,
/// or `x` or `y` is shorter than its volume.
#[inline(always)]
fn core<R: Reduce, const FH: usize, const FW: usize>(win: Window, x: &[f32], y: &mut [f32]) {
    assert!(takes(&win) && win.fits() && win.f[1] == FW && (FH == 0 || win.f[0] == FH));
    let [oh, ow] = win.out();
    let (h, w) = (win.h, win.w);
    let (fh, fw, sh, [ph, pw]) = (if FH == 0 { win.f[0] } else { FH }, FW, win.s[0], win.p);
    let (x, y) = (&x[..win.c * h * w], &mut y[..win.c * oh * ow]);
    // SAFETY: reached only from the `target_feature` functions above. The
    // windows fit the padded input, (OH − 1)·SH + FH ≤ H + 2·PH and (OW −
    // 1)·2 + FW ≤ W + 2·PW: of the rows a window covers, those `inside`
    // the channel are read, and of a row the columns `Columns` masks
    // inside it. The stores write the lanes of output row oy from ox0 up
    // to OW.
    unsafe {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let scale = _mm512_set1_ps(1.0 / (fh * fw) as f32);
        let pad = _mm512_set1_ps(R::PAD);
        for (xc, yc) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
            // A channel's columns a vector at a time, then its rows: the
            // masks are the same down a column of vectors, and the
            // channel's input stays in cache from one column to the next.
            for ox0 in (0..ow).step_by(LANES) {
                let cols = Columns::new(ox0, pw, w, fw);
                let store = lanes(ow - ox0);
                for oy in 0..oh {
                    // The window's rows inside the input: ky0..ky1. Away
                    // from the padding, with FH constant, they fold in a
                    // loop the compiler unrolls.
                    let (ky0, ky1) = inside(oy * sh, fh, ph, h);
                    let row = (oy * sh + ky0).saturating_sub(ph) * w;
                    let [v0, v1, v2] = if FH != 0 && ky1 - ky0 == FH {
                        fold_rows::<R>(xc, row, w, FH, &cols, pad)
                    } else {
                        fold_rows::<R>(xc, row, w, ky1 - ky0, &cols, pad)
                    };
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

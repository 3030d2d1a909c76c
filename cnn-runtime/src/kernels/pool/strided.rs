//! Pooling for windows two or three columns wide at column stride 2
//! (`pool(2, 2)`, `pool(3, 2)`, whatever their height, row stride and
//! padding), a vector of outputs of a row at a time: 16 with AVX-512, 8
//! with AVX2. The window's rows are folded into vectors covering the
//! 2·LANES + 1 input columns those outputs read (the lanes outside the
//! input, masked off, hold the reduction's identity), a permute or shuffle
//! then parts their even and odd columns, and a one-lane shift of the even
//! ones gives the third column. One [`core()`] for both, generic over the
//! [`Vector`] it runs on.

use super::{inside, Reduce, Window};
use crate::cpu;

/// Whether these kernels take the windows: column stride 2, two or three
/// columns wide.
pub(super) fn takes(win: &Window) -> bool {
    win.s[1] == 2 && matches!(win.f[1], 2 | 3)
}

/// [`core()`] on AVX-512 vectors, which the token proves.
pub(super) fn pool_avx512<R: Reduce>(token: cpu::Avx512, win: Window, x: &[f32], y: &mut [f32]) {
    avx512::Avx512(token).pool::<R>(win, x, y);
}

/// [`core()`] on AVX2 vectors, which the token proves.
pub(super) fn pool_avx2<R: Reduce>(token: cpu::Avx2, win: Window, x: &[f32], y: &mut [f32]) {
    avx2::Avx2(token).pool::<R>(win, x, y);
}

/// The vectors of an instruction set, and [`sizes`] compiled for it.
trait Vector: Copy {
    /// Output columns per vector.
    const LANES: usize;
    /// The lane of the third vector [`fold_rows`] loads that holds input
    /// column 2·LANES (the last window's third column), for
    /// [`Vector::third`].
    const THIRD: usize;
    /// The lanes of the third vector read, those inside the row: lane
    /// [`Vector::THIRD`]'s, or all of them, so that away from the row's
    /// ends the load is a plain one.
    const THIRD_READ: u32;
    /// A vector.
    type V: Copy;

    /// [`sizes`], compiled with the instruction set.
    fn pool<R: Reduce>(self, win: Window, x: &[f32], y: &mut [f32]);

    /// A vector of `v` in every lane.
    fn splat(self, v: f32) -> Self::V;

    /// The `LANES` values from `p` whose bits are set in `bits` (bit j for
    /// lane j), `pad` in the other lanes, which are not read. With `PLAIN`
    /// ([`Columns::plain`]) `bits` is every lane, or
    /// [`Vector::THIRD_READ`], and the load may be a plain one.
    ///
    /// # Safety
    /// The values whose bits are set are readable.
    unsafe fn load<const PLAIN: bool>(self, pad: Self::V, bits: u32, p: *const f32) -> Self::V;

    /// `R`'s fold of two vectors: the sum, or IEEE 754 `maximum`, NaN if
    /// either lane is: `maxps` gives its second operand when one is NaN,
    /// so of max(a, b) and max(b, a) one is that NaN, and OR-ing their
    /// bits keeps a NaN (as the portable [`max_nan`](super::max_nan)
    /// does).
    fn fold<R: Reduce>(self, a: Self::V, b: Self::V) -> Self::V;

    /// The even and odd values of `a` then `b` (input columns 0..2·LANES),
    /// output j's first and second column, in an order of the lanes of
    /// the instruction set's choosing that [`Vector::untangle`] undoes.
    fn split(self, a: Self::V, b: Self::V) -> [Self::V; 2];

    /// Output j's third column, 2j + 2, in [`Vector::split`]'s order:
    /// the next output's first one from `even`, and for the last output
    /// lane [`Vector::THIRD`] of `c`.
    fn third(self, even: Self::V, c: Self::V) -> Self::V;

    /// The lanes of `v`, in [`Vector::split`]'s order, in output order.
    fn untangle(self, v: Self::V) -> Self::V;

    /// `a·b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;

    /// Stores the first `n` lanes of `v` (all of them if `n ≥ LANES`) from
    /// `p`.
    ///
    /// # Safety
    /// The `n.min(LANES)` values from `p` are writable.
    unsafe fn store(self, p: *mut f32, v: Self::V, n: usize);
}

/// [`core()`] with the window's size constant for the common windows (2 × 2
/// and 3 × 3: the rows a vector folds, and whether a third column is
/// read, fold away), and its height a value otherwise.
#[inline(always)]
fn sizes<U: Vector, R: Reduce>(u: U, win: Window, x: &[f32], y: &mut [f32]) {
    match win.f {
        [2, 2] => core::<U, R, 2, 2>(u, win, x, y),
        [3, 3] => core::<U, R, 3, 3>(u, win, x, y),
        [_, 2] => core::<U, R, 0, 2>(u, win, x, y),
        _ => core::<U, R, 0, 3>(u, win, x, y),
    }
}

/// Bits `0..n` of a vector of `U`, all of them from `n` = `LANES` on.
#[inline(always)]
fn lanes<U: Vector>(n: usize) -> u32 {
    (1 << n.min(U::LANES)) - 1
}

/// The lanes of a vector of `U` of input columns `from..from + LANES`
/// (`from` may be negative, in the padding) that lie inside a row of `w`
/// columns.
#[inline(always)]
fn columns<U: Vector>(from: isize, w: usize) -> u32 {
    let before = usize::try_from(-from).unwrap_or(0);
    let until = usize::try_from(w as isize - from).unwrap_or(0);
    lanes::<U>(until) & !lanes::<U>(before)
}

/// The input columns the vector of outputs from output column `ox0` reads,
/// from input column `from` (2·ox0 − PW, negative in the padding), in
/// three vectors from `from + at[i]`, the third for its lane `THIRD` (the
/// last window's third column): the lanes of each inside the row that are
/// read, and whether the second and third are read at all (a masked load
/// of nothing still costs a load). `plain` away from the row's ends: the
/// second vector read, and the third for windows three wide, each load
/// reading all the lanes it may (every lane, or `THIRD_READ`), and the
/// row holding all `LANES` outputs.
struct Columns {
    ox0: usize,
    from: isize,
    at: [usize; 3],
    masks: [u32; 3],
    wide: bool,
    third: bool,
    plain: bool,
}

impl Columns {
    /// The columns of the vector from output column `ox0` of `ow`, in rows
    /// of `w` columns padded by `pw`, for windows `fw` wide.
    fn new<U: Vector>(ox0: usize, ow: usize, pw: usize, w: usize, fw: usize) -> Self {
        let from = (2 * ox0) as isize - pw as isize;
        let at = [0, U::LANES, 2 * U::LANES - U::THIRD];
        let all = [lanes::<U>(U::LANES), lanes::<U>(U::LANES), U::THIRD_READ];
        let masks = [
            columns::<U>(from, w),
            columns::<U>(from + at[1] as isize, w),
            columns::<U>(from + at[2] as isize, w) & U::THIRD_READ,
        ];
        let third = fw == 3 && masks[2] & (1 << U::THIRD) != 0;
        let full = masks[..2] == all[..2] && (fw == 2 || third && masks[2] == all[2]);
        Columns {
            ox0,
            from,
            at,
            masks,
            wide: masks[1] != 0,
            third,
            plain: full && ox0 + U::LANES <= ow,
        }
    }

    /// Vector `i` of the columns of the row from `p` (its column 0),
    /// `pad` in the lanes outside it; `PLAIN` is [`Columns::plain`].
    ///
    /// # Safety
    /// The lanes of mask `i` of that row are readable.
    #[inline(always)]
    unsafe fn load<U: Vector, const PLAIN: bool>(
        &self,
        u: U,
        p: *const f32,
        i: usize,
        pad: U::V,
    ) -> U::V {
        let at = p.wrapping_offset(self.from).wrapping_add(self.at[i]);
        // SAFETY: the caller's contract covers the lanes of the mask, the
        // only ones read (the pointer is formed with wrapping arithmetic);
        // with `PLAIN`, as `plain` says, the mask has all the lanes it may.
        unsafe { u.load::<PLAIN>(pad, self.masks[i], at) }
    }
}

/// `R`'s fold of `rows` input rows from `row` down (a row every `w`
/// values), in the vectors of `cols`: lanes outside the input, and vectors
/// not read, hold `pad`. `FW` is the windows' width, `PLAIN`
/// [`Columns::plain`].
///
/// # Safety
/// Every lane of `cols`' masks of those rows lies in `x`.
#[inline(always)]
unsafe fn fold_rows<U: Vector, R: Reduce, const FW: usize, const PLAIN: bool>(
    u: U,
    x: &[f32],
    row: usize,
    w: usize,
    rows: usize,
    cols: &Columns,
    pad: U::V,
) -> [U::V; 3] {
    let mut v = [pad; 3];
    if rows == 0 {
        return v;
    }
    let (wide, third) = if PLAIN {
        (true, FW == 3)
    } else {
        (cols.wide, cols.third)
    };
    let p = x.as_ptr().wrapping_add(row);
    // SAFETY: the loads read the lanes of the masks of those rows, inside
    // `x` as the caller promises.
    unsafe {
        v[0] = cols.load::<U, PLAIN>(u, p, 0, pad);
        if wide {
            v[1] = cols.load::<U, PLAIN>(u, p, 1, pad);
        }
        if third {
            v[2] = cols.load::<U, PLAIN>(u, p, 2, pad);
        }
        for ky in 1..rows {
            let p = p.wrapping_add(ky * w);
            v[0] = u.fold::<R>(v[0], cols.load::<U, PLAIN>(u, p, 0, pad));
            if wide {
                v[1] = u.fold::<R>(v[1], cols.load::<U, PLAIN>(u, p, 1, pad));
            }
            if third {
                v[2] = u.fold::<R>(v[2], cols.load::<U, PLAIN>(u, p, 2, pad));
            }
        }
    }
    v
}

/// The windows' values of a vector of outputs from the fold of their rows
/// (output j: columns 2j, 2j + 1, and 2j + 2 if `FW` is 3), the mean's
/// scale applied, in output order.
#[inline(always)]
fn windows<U: Vector, R: Reduce, const FW: usize>(
    u: U,
    [v0, v1, v2]: [U::V; 3],
    scale: U::V,
) -> U::V {
    let [even, odd] = u.split(v0, v1);
    let mut r = u.fold::<R>(even, odd);
    if FW == 3 {
        r = u.fold::<R>(r, u.third(even, v2));
    }
    if !R::MAX {
        r = u.mul(r, scale);
    }
    u.untangle(r)
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
fn core<U: Vector, R: Reduce, const FH: usize, const FW: usize>(
    u: U,
    win: Window,
    x: &[f32],
    y: &mut [f32],
) {
    assert!(takes(&win) && win.fits() && win.f[1] == FW && (FH == 0 || win.f[0] == FH));
    let [oh, ow] = win.out();
    let (h, w, pw) = (win.h, win.w, win.p[1]);
    let (x, y) = (&x[..win.c * h * w], &mut y[..win.c * oh * ow]);
    let scale = u.splat(1.0 / (win.f[0] * FW) as f32);
    let pad = u.splat(R::PAD);
    for (xc, yc) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        // A channel's columns a vector at a time, then its rows: the masks
        // are the same down a column of vectors, and the channel's input
        // stays in cache from one column to the next.
        for ox0 in (0..ow).step_by(U::LANES) {
            let cols = Columns::new::<U>(ox0, ow, pw, w, FW);
            if cols.plain {
                column::<U, R, FH, FW, true>(u, &win, xc, yc, &cols, pad, scale);
            } else {
                column::<U, R, FH, FW, false>(u, &win, xc, yc, &cols, pad, scale);
            }
        }
    }
}

/// [`core()`]'s vectors of outputs of `cols` down output channel `yc`, from
/// input channel `xc`; `PLAIN` is [`Columns::plain`].
#[inline(always)]
fn column<U: Vector, R: Reduce, const FH: usize, const FW: usize, const PLAIN: bool>(
    u: U,
    win: &Window,
    xc: &[f32],
    yc: &mut [f32],
    cols: &Columns,
    pad: U::V,
    scale: U::V,
) {
    let [oh, ow] = win.out();
    let (h, w, sh, ph) = (win.h, win.w, win.s[0], win.p[0]);
    let fh = if FH == 0 { win.f[0] } else { FH };
    let ox0 = cols.ox0;
    // The lanes stored: those up to OW, all of them with `PLAIN`.
    let n = if PLAIN {
        U::LANES
    } else {
        (ow - ox0).min(U::LANES)
    };
    // Output rows top..bottom have windows wholly inside the input's rows,
    // oy·SH − PH ≥ 0 on; those above and below reach into the padding.
    let top = ph.div_ceil(sh).min(oh);
    let bottom = match (h + ph).checked_sub(fh) {
        Some(last) => (last / sh + 1).clamp(top, oh),
        None => top,
    };
    for oy in (0..top).chain(bottom..oh) {
        // The window's rows inside the input: ky0..ky1.
        let (ky0, ky1) = inside(oy * sh, fh, ph, h);
        let row = (oy * sh + ky0).saturating_sub(ph) * w;
        // SAFETY: those rows lie inside the channel, and of each row the
        // loads read the columns `cols` masks inside it.
        let v = unsafe { fold_rows::<U, R, FW, PLAIN>(u, xc, row, w, ky1 - ky0, cols, pad) };
        let out = &mut yc[oy * ow + ox0..][..n];
        // SAFETY: `out` holds the `n` lanes stored.
        unsafe { u.store(out.as_mut_ptr(), windows::<U, R, FW>(u, v, scale), n) };
    }
    // Away from the padding, with FH constant, the rows fold in a loop the
    // compiler unrolls.
    for oy in top..bottom {
        let row = (oy * sh - ph) * w;
        // SAFETY: rows oy·SH − PH + (0..FH) lie inside the channel, and of
        // each row the loads read the columns `cols` masks inside it.
        let v = unsafe { fold_rows::<U, R, FW, PLAIN>(u, xc, row, w, fh, cols, pad) };
        let out = &mut yc[oy * ow + ox0..][..n];
        // SAFETY: `out` holds the `n` lanes stored.
        unsafe { u.store(out.as_mut_ptr(), windows::<U, R, FW>(u, v, scale), n) };
    }
}

/// [`Vector`] for AVX-512: 16 lanes, a two-register permute for each of
/// the even and odd columns, masked loads and stores.
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_alignr_epi32, _mm512_castps_si512, _mm512_castsi512_ps,
        _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_or_si512,
        _mm512_permutex2var_ps, _mm512_set1_ps, _mm512_setr_epi32, _mm512_storeu_ps,
    };

    use super::{Reduce, Vector, Window};
    use crate::cpu;

    /// The AVX-512 vectors, with the token that proves the CPU has them.
    #[derive(Clone, Copy)]
    pub(super) struct Avx512(pub cpu::Avx512);

    impl Avx512 {
        /// [`super::sizes`] compiled with AVX-512F.
        #[target_feature(enable = "avx512f")]
        fn sizes_at<R: Reduce>(self, win: Window, x: &[f32], y: &mut [f32]) {
            super::sizes::<Self, R>(self, win, x, y);
        }
    }

    impl Vector for Avx512 {
        const LANES: usize = 16;
        const THIRD: usize = 0;
        const THIRD_READ: u32 = 1;
        type V = __m512;

        #[inline(always)]
        fn pool<R: Reduce>(self, win: Window, x: &[f32], y: &mut [f32]) {
            // SAFETY: the token proves AVX-512F.
            unsafe { self.sizes_at::<R>(win, x, y) }
        }

        #[inline(always)]
        fn splat(self, v: f32) -> __m512 {
            // SAFETY: the token proves AVX-512F.
            unsafe { _mm512_set1_ps(v) }
        }

        #[inline(always)]
        unsafe fn load<const PLAIN: bool>(self, pad: __m512, bits: u32, p: *const f32) -> __m512 {
            // Masked with `PLAIN` too: the third vector's mask is still
            // lane 0's alone.
            // SAFETY: the token proves AVX-512F; the caller's contract
            // covers the lanes of the mask, the only ones read.
            unsafe { _mm512_mask_loadu_ps(pad, bits as u16, p) }
        }

        #[inline(always)]
        fn fold<R: Reduce>(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: the token proves AVX-512F.
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

        #[inline(always)]
        fn split(self, a: __m512, b: __m512) -> [__m512; 2] {
            // SAFETY: the token proves AVX-512F.
            unsafe {
                let even =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let odd =
                    _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
                [
                    _mm512_permutex2var_ps(a, even, b),
                    _mm512_permutex2var_ps(a, odd, b),
                ]
            }
        }

        #[inline(always)]
        fn third(self, even: __m512, c: __m512) -> __m512 {
            // SAFETY: the token proves AVX-512F. Lanes 1..16 of `even`,
            // then lane 0 of `c`.
            unsafe {
                let third =
                    _mm512_alignr_epi32::<1>(_mm512_castps_si512(c), _mm512_castps_si512(even));
                _mm512_castsi512_ps(third)
            }
        }

        #[inline(always)]
        fn untangle(self, v: __m512) -> __m512 {
            v
        }

        #[inline(always)]
        fn mul(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: the token proves AVX-512F.
            unsafe { _mm512_mul_ps(a, b) }
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m512, n: usize) {
            // SAFETY: the token proves AVX-512F; the caller's contract
            // covers the lanes written.
            unsafe {
                // A masked store is slower than a plain one (AMD Zen 4).
                if n >= Self::LANES {
                    _mm512_storeu_ps(p, v);
                } else {
                    _mm512_mask_storeu_ps(p, super::lanes::<Self>(n) as u16, v);
                }
            }
        }
    }
}

/// [`Vector`] for AVX2: 8 lanes, the even and odd columns shuffled out of
/// each 128-bit half and their 64-bit pairs put in order once, after the
/// fold; plain loads inside the row, masked ones at its ends, and the last
/// vector of a row stored through the stack.
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_and_si256, _mm256_blend_ps, _mm256_blendv_ps,
        _mm256_castpd_ps, _mm256_castps_pd, _mm256_castsi256_ps, _mm256_cmpeq_epi32,
        _mm256_loadu_ps, _mm256_maskload_ps, _mm256_max_ps, _mm256_mul_ps, _mm256_or_ps,
        _mm256_permute4x64_pd, _mm256_permutevar8x32_ps, _mm256_set1_epi32, _mm256_set1_ps,
        _mm256_setr_epi32, _mm256_shuffle_ps, _mm256_storeu_ps,
    };

    use super::{Reduce, Vector, Window};
    use crate::cpu;

    /// The AVX2 vectors, with the token that proves the CPU has them.
    #[derive(Clone, Copy)]
    pub(super) struct Avx2(pub cpu::Avx2);

    impl Avx2 {
        /// [`super::sizes`] compiled with AVX2.
        #[target_feature(enable = "avx2")]
        fn sizes_at<R: Reduce>(self, win: Window, x: &[f32], y: &mut [f32]) {
            super::sizes::<Self, R>(self, win, x, y);
        }
    }

    impl Vector for Avx2 {
        const LANES: usize = 8;
        const THIRD: usize = 7;
        const THIRD_READ: u32 = 0xff;
        type V = __m256;

        #[inline(always)]
        fn pool<R: Reduce>(self, win: Window, x: &[f32], y: &mut [f32]) {
            // SAFETY: the token proves AVX2.
            unsafe { self.sizes_at::<R>(win, x, y) }
        }

        #[inline(always)]
        fn splat(self, v: f32) -> __m256 {
            // SAFETY: the token proves AVX.
            unsafe { _mm256_set1_ps(v) }
        }

        #[inline(always)]
        unsafe fn load<const PLAIN: bool>(self, pad: __m256, bits: u32, p: *const f32) -> __m256 {
            // SAFETY: the token proves AVX2; the caller's contract covers
            // the lanes of the mask, the only ones read: all of them for a
            // plain load (with `PLAIN`, `bits` is every lane, as
            // `THIRD_READ` is).
            unsafe {
                // A masked load costs more than a plain one on AMD cores.
                if PLAIN || bits == 0xff {
                    return _mm256_loadu_ps(p);
                }
                // The lanes whose bits are set, as a mask of 32-bit lanes:
                // the masked load reads them, zeros elsewhere, and the
                // blend puts `pad` there.
                let lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
                let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lane);
                let mask = _mm256_cmpeq_epi32(set, lane);
                let v = _mm256_maskload_ps(p, mask);
                _mm256_blendv_ps(pad, v, _mm256_castsi256_ps(mask))
            }
        }

        #[inline(always)]
        fn fold<R: Reduce>(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: the token proves AVX.
            unsafe {
                if R::MAX {
                    _mm256_or_ps(_mm256_max_ps(a, b), _mm256_max_ps(b, a))
                } else {
                    _mm256_add_ps(a, b)
                }
            }
        }

        #[inline(always)]
        fn split(self, a: __m256, b: __m256) -> [__m256; 2] {
            // SAFETY: the token proves AVX. Columns 0 2 8 10 | 4 6 12 14,
            // and 1 3 9 11 | 5 7 13 15: outputs 0 1 4 5 2 3 6 7.
            unsafe {
                [
                    _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
                    _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
                ]
            }
        }

        #[inline(always)]
        fn third(self, even: __m256, c: __m256) -> __m256 {
            // SAFETY: the token proves AVX2. Each lane takes the first
            // column of the output after its own: outputs 1 2 5 6 3 4 7,
            // at lanes 1 4 3 6 5 2 7 of `even`, and output 8's, lane 7 of
            // `c`.
            unsafe {
                let next = _mm256_setr_epi32(1, 4, 3, 6, 5, 2, 7, 7);
                _mm256_blend_ps::<0x80>(_mm256_permutevar8x32_ps(even, next), c)
            }
        }

        #[inline(always)]
        fn untangle(self, v: __m256) -> __m256 {
            // SAFETY: the token proves AVX2. The 64-bit pairs of outputs
            // 0 1, 4 5, 2 3, 6 7 in the order 0 2 1 3.
            unsafe { _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v))) }
        }

        #[inline(always)]
        fn mul(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: the token proves AVX.
            unsafe { _mm256_mul_ps(a, b) }
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m256, n: usize) {
            // SAFETY: the token proves AVX; the caller's contract covers
            // the lanes written.
            unsafe {
                if n >= Self::LANES {
                    _mm256_storeu_ps(p, v);
                } else {
                    // Through the stack: a masked store costs tens of
                    // cycles on AMD cores.
                    let mut lanes = [0.0f32; 8];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
                    std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n);
                }
            }
        }
    }
}

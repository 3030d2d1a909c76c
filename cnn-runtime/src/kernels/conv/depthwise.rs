//! The depthwise convolution (G = C > 1): output channel `ko` is input
//! channel `ko / M` (M = K/C, the channel multiplier) convolved with one
//! FH × FW filter of its own. A plane of input in and a plane of output
//! out for a few multiply-adds per value, so the kernel is bound by
//! memory, not by its FMAs: it reads the input where it lies, with no
//! padded copy and no scratch, and writes each output value once, the
//! activation applied.
//!
//! Vectors hold output pixels: 16 consecutive pixels of an output row with
//! AVX-512, 8 with AVX2. A *strip* is a run of V such vectors on R rows
//! at once (R·V ≤ 4 accumulators, enough to hide the FMA's latency), and a
//! plane is computed strip by strip, each strip down all its rows. Tap
//! (ky, kx) adds its filter value times input row oy·SH + ky·DH − PH,
//! skipped outside the input (the zero padding adds nothing), from column
//! ox·SW + kx·DW − PW: at stride 1 one load, at stride 2 two loads whose
//! even values one permute gathers. The padding's columns are handled in
//! place: each load's mask keeps the lanes whose column lies inside the
//! row, the others read as zeros and are not read at all; the masks are
//! worked out once per filter column for R rows of FH taps. The last
//! vector of a row stores through a mask. Column strides other than 1 and
//! 2 take the portable loops.
//!
//! The bias is the accumulators' start; ReLU and ReLU6 clamp them on the
//! way out, and other activations run over each plane right after it is
//! written, while it is in cache.

use super::layout::ConvShape;
use crate::cpu::Active;
use crate::kernels::{activate, Act};

/// The depthwise layer `s` of `x` into `y`, the filters `filters` as
/// given (K×FH×FW) and `bias` K values, on the widest instruction set of
/// `tokens`; output channels shared with another thread of the current
/// rayon pool when `split`. The caller has checked that the layer is
/// depthwise and fits, and the slices' lengths.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    tokens: Active,
    s: &ConvShape,
    split: bool,
    x: &[f32],
    filters: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let plane = s.o[0] * s.o[1];
    let y = &mut y[..s.k * plane];
    if split && s.k > 1 {
        let half = s.k.div_ceil(2);
        let (first, second) = y.split_at_mut(half * plane);
        crate::par::join(
            || channels(tokens, s, 0..half, x, filters, bias, first, act),
            || channels(tokens, s, half..s.k, x, filters, bias, second, act),
        );
    } else {
        channels(tokens, s, 0..s.k, x, filters, bias, y, act);
    }
}

/// Output channels `ks` into `y`, which starts at the first one's plane.
#[allow(clippy::too_many_arguments)]
fn channels(
    tokens: Active,
    s: &ConvShape,
    ks: std::ops::Range<usize>,
    x: &[f32],
    filters: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let (plane_in, plane_out) = (s.h * s.w, s.o[0] * s.o[1]);
    let (taps, multiplier) = (s.f[0] * s.f[1], s.k / s.c);
    let clamp = match act {
        Act::Relu => Some((0.0, f32::INFINITY)),
        Act::Relu6 => Some((0.0, 6.0)),
        _ => None,
    };
    for (ko, out) in ks.zip(y.chunks_exact_mut(plane_out)) {
        let input = &x[ko / multiplier * plane_in..][..plane_in];
        let filter = &filters[ko * taps..][..taps];
        plane(tokens, s, input, filter, bias[ko], out, clamp);
        if clamp.is_none() {
            activate(act, out);
        }
    }
}

/// One output plane: `x` the input channel's plane (H×W), `filter` its
/// FH×FW values, `y` the output plane (OH×OW), clamped to `clamp` if any.
fn plane(
    tokens: Active,
    s: &ConvShape,
    x: &[f32],
    filter: &[f32],
    bias: f32,
    y: &mut [f32],
    clamp: Option<(f32, f32)>,
) {
    let one = (x, filter, bias, y);
    #[cfg(target_arch = "x86_64")]
    {
        // 3 × 3 filters without dilation, the same stride along both axes.
        let three = s.f == [3, 3] && s.d == [1, 1] && s.s[0] == s.s[1];
        let (a, b) = (
            tokens.avx512.map(avx512::Avx512),
            tokens.avx2.map(avx2::Avx2),
        );
        match (a, b, s.s[1], three) {
            (Some(u), _, 1, true) => return strips3::<_, 1>(u, s, one, clamp),
            (Some(u), _, 2, true) => return strips3::<_, 2>(u, s, one, clamp),
            (Some(u), _, 1, false) => return strips::<_, 1>(u, s, one, clamp),
            (Some(u), _, 2, false) => return strips::<_, 2>(u, s, one, clamp),
            (None, Some(u), 1, true) => return strips3::<_, 1>(u, s, one, clamp),
            (None, Some(u), 2, true) => return strips3::<_, 2>(u, s, one, clamp),
            (None, Some(u), 1, false) => return strips::<_, 1>(u, s, one, clamp),
            (None, Some(u), 2, false) => return strips::<_, 2>(u, s, one, clamp),
            _ => {}
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = tokens;
    portable(s, one, clamp);
}

/// One plane's slices: the input channel, the filter, its bias and the
/// output plane.
type Plane<'a> = (&'a [f32], &'a [f32], f32, &'a mut [f32]);

/// The vectors of an instruction set and the strips compiled for it.
trait Simd: Copy {
    /// Output pixels per vector.
    const LANES: usize;
    /// Output rows [`strip3`] computes at a time, where the plane has as
    /// many: 4, or 2 where the registers do not hold the accumulators of
    /// 4 beside the filter.
    const ROWS3: usize;
    /// A vector.
    type V: Copy;
    /// Which of the up to 2·LANES values of a load are read.
    type M: Copy;

    /// The strip of `V` vectors from output column `c0` on `R` rows at a
    /// time, at column stride `S` (see [`strip`]): a function of its own
    /// for each size, compiled with the instruction set.
    fn strip<const R: usize, const V: usize, const S: usize>(
        self,
        s: &ConvShape,
        one: Plane<'_>,
        c0: usize,
        clamp: Option<(f32, f32)>,
    );

    /// The strip of one vector from output column `c0` on `R` rows at a
    /// time of a 3 × 3 layer of stride `S` (see [`strip3`]), as
    /// [`Simd::strip`].
    fn strip3<const R: usize, const S: usize>(
        self,
        s: &ConvShape,
        one: Plane<'_>,
        c0: usize,
        clamp: Option<(f32, f32)>,
    );

    /// A vector of `v` in every lane.
    fn splat(self, v: f32) -> Self::V;

    /// `a·b + c`.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;

    /// The values of a load of `S·LANES` whose bits are set in `bits`
    /// (bit j for value j).
    fn mask<const S: usize>(self, bits: u64) -> Self::M;

    /// At `S` = 1 the `LANES` values from `p`, at `S` = 2 the even ones of
    /// the 2·LANES from `p`; the values outside `m` are zeros, and are not
    /// read. With `FULL`, `m` holds every value, and the load is a plain
    /// one.
    ///
    /// # Safety
    /// The values in `m` are readable.
    unsafe fn load<const S: usize, const FULL: bool>(self, p: *const f32, m: Self::M) -> Self::V;

    /// `v`, clamped to `lo..=hi` (NaN stays NaN).
    fn clamp(self, v: Self::V, lo: f32, hi: f32) -> Self::V;

    /// Stores the first `n` (1 ≤ n ≤ LANES) lanes of `v` from `p`.
    ///
    /// # Safety
    /// The `n` values from `p` are writable.
    unsafe fn store(self, p: *mut f32, v: Self::V, n: usize);
}

/// Strips of at most 4 vectors across every output row of a plane (see
/// the module docs), each on as many rows at once as keep 4 accumulators
/// busy.
#[inline(always)]
fn strips<U: Simd, const S: usize>(
    u: U,
    s: &ConvShape,
    (x, filter, bias, y): Plane<'_>,
    clamp: Option<(f32, f32)>,
) {
    let [oh, ow] = s.o;
    let lanes = U::LANES;
    let vectors = ow.div_ceil(lanes);
    let mut cv = 0;
    while cv < vectors {
        let v = (vectors - cv).min(4);
        let rows = match v {
            1 if oh >= 4 => 4,
            1 | 2 if oh >= 2 => 2,
            _ => 1,
        };
        let (one, c0) = ((x, filter, bias, &mut *y), cv * lanes);
        match (rows, v) {
            (1, 4) => u.strip::<1, 4, S>(s, one, c0, clamp),
            (1, 3) => u.strip::<1, 3, S>(s, one, c0, clamp),
            (2, 2) => u.strip::<2, 2, S>(s, one, c0, clamp),
            (1, 2) => u.strip::<1, 2, S>(s, one, c0, clamp),
            (4, 1) => u.strip::<4, 1, S>(s, one, c0, clamp),
            (2, 1) => u.strip::<2, 1, S>(s, one, c0, clamp),
            _ => u.strip::<1, 1, S>(s, one, c0, clamp),
        }
        cv += v;
    }
}

/// The strip of `V` vectors of `U::LANES` output columns from column `c0`
/// (its last vector may run past OW: those lanes are computed and not
/// stored), `R` rows at a time down the plane, the last `R` rows shifted
/// back to end at OH; `S` is the layer's column stride (1 or 2).
///
/// # Panics
/// If the stride is not `S`, the strip does not start inside the row, the
/// plane has fewer than `R` rows, or a slice is shorter than the plane's.
#[inline(always)]
fn strip<U: Simd, const R: usize, const V: usize, const S: usize>(
    u: U,
    s: &ConvShape,
    (x, filter, bias, y): Plane<'_>,
    c0: usize,
    clamp: Option<(f32, f32)>,
) {
    let ConvShape {
        h,
        w,
        s: [sh, sw],
        p: [ph, pw],
        f: [fh, fw],
        d: [dh, dw],
        o: [oh, ow],
        ..
    } = *s;
    let lanes = U::LANES;
    assert!(sw == S && (S == 1 || S == 2) && (1..=oh).contains(&R));
    assert!(c0 + lanes * (V - 1) < ow && x.len() >= h * w && y.len() >= oh * ow);
    let filter = &filter[..fh * fw];
    // Each vector's first output column, and how many of its lanes the
    // row has.
    let cols: [usize; V] = std::array::from_fn(|v| c0 + lanes * v);
    let stored = cols.map(|c| (ow - c).min(lanes));
    // Vector v's loads for filter column kx start at input column
    // base[v] + kx·DW (negative in the left padding) and read S·LANES
    // values, those inside the row: bit j of `inside(at)` says whether
    // column at + j is, for j below 64. Shifted by kx·DW, the word of
    // base[v] says it for every filter column that leaves a whole load
    // within the 64 bits; further ones (wide dilated filters) work theirs
    // out.
    let base = cols.map(|c| (c * S) as isize - pw as isize);
    let inside = |at: isize| inside(w, at);
    let words = base.map(inside);
    let reach = 64 - S * lanes;
    let mut next = 0;
    while next < oh {
        let oy = next.min(oh - R);
        next += R;
        let mut acc = [[u.splat(bias); V]; R];
        for kx in 0..fw {
            let shift = kx * dw;
            let masks: [U::M; V] = std::array::from_fn(|v| {
                let bits = if shift <= reach {
                    words[v] >> shift
                } else {
                    inside(base[v] + shift as isize)
                };
                u.mask::<S>(bits)
            });
            for ky in 0..fh {
                let wv = u.splat(filter[ky * fw + kx]);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let iy = ((oy + r) * sh + ky * dh).wrapping_sub(ph);
                    if iy >= h {
                        continue;
                    }
                    let row = x[iy * w..].as_ptr().wrapping_add(shift);
                    for ((acc, &at), &m) in acc.iter_mut().zip(&base).zip(&masks) {
                        // SAFETY: the mask keeps the values at columns
                        // 0..W of row iy < H, inside `x`; the pointer is
                        // formed with `wrapping_offset` and only those
                        // values are read.
                        let xv = unsafe { u.load::<S, false>(row.wrapping_offset(at), m) };
                        *acc = u.fma(wv, xv, *acc);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let row = &mut y[(oy + r) * ow..][..ow];
            for ((&a, &c), &n) in acc.iter().zip(&cols).zip(&stored) {
                let a = match clamp {
                    Some((lo, hi)) => u.clamp(a, lo, hi),
                    None => a,
                };
                // SAFETY: the row holds the n ≥ 1 values from column c.
                unsafe { u.store(row[c..].as_mut_ptr(), a, n) };
            }
        }
    }
}

/// Bit j says whether input column `at + j` lies inside a row of `w`
/// columns, for j below 64.
#[inline(always)]
fn inside(w: usize, at: isize) -> u64 {
    let below = |n: isize| match n {
        ..=0 => 0,
        64.. => u64::MAX,
        n => (1u64 << n) - 1,
    };
    below(w as isize - at) & !below(-at)
}

/// The strips of a 3 × 3 layer of stride `S` (along both axes, without
/// dilation): one vector wide, on 4 rows at a time (fewer if the plane has
/// fewer).
#[inline(always)]
fn strips3<U: Simd, const S: usize>(
    u: U,
    s: &ConvShape,
    (x, filter, bias, y): Plane<'_>,
    clamp: Option<(f32, f32)>,
) {
    let [oh, ow] = s.o;
    for c0 in (0..ow).step_by(U::LANES) {
        let one = (x, filter, bias, &mut *y);
        match oh {
            4.. if U::ROWS3 == 4 => u.strip3::<4, S>(s, one, c0, clamp),
            2.. => u.strip3::<2, S>(s, one, c0, clamp),
            _ => u.strip3::<1, S>(s, one, c0, clamp),
        }
    }
}

/// The strip of one vector of `U::LANES` output columns from column `c0`
/// of a 3 × 3 layer of stride `S` (1 or 2), without dilation, `R` rows at
/// a time down the plane (the last `R` shifted back to end at OH). Output
/// rows oy .. oy + R read input rows oy·S − PH .. + (R − 1)·S + 3, and
/// each is loaded once, a vector per filter column, for every output row
/// that reads it: half the loads of [`strip`] at stride 1, a third fewer
/// at stride 2. The nine filter values stay in registers, and the loads'
/// masks, one per filter column, are the same down the strip.
///
/// # Panics
/// If the layer is not such a layer, the strip does not start inside the
/// row, the plane has fewer than `R` rows, or a slice is shorter than the
/// plane's.
#[inline(always)]
fn strip3<U: Simd, const R: usize, const S: usize>(
    u: U,
    s: &ConvShape,
    (x, filter, bias, y): Plane<'_>,
    c0: usize,
    clamp: Option<(f32, f32)>,
) {
    let ConvShape {
        h,
        w,
        p: [_, pw],
        o: [oh, ow],
        ..
    } = *s;
    assert!(s.f == [3, 3] && s.d == [1, 1] && s.s == [S, S] && (S == 1 || S == 2));
    assert!((1..=oh).contains(&R) && c0 < ow && x.len() >= h * w && y.len() >= oh * ow);
    let taps: [U::V; 9] = std::array::from_fn(|i| u.splat(filter[i]));
    let stored = (ow - c0).min(U::LANES);
    // Filter column kx loads from input column base + kx, the values
    // inside the row: all of them, away from the row's ends.
    let base = (c0 * S) as isize - pw as isize;
    let bits: [u64; 3] = std::array::from_fn(|kx| inside(w, base + kx as isize));
    let all = u64::MAX >> (64 - S * U::LANES);
    let full = bits.iter().all(|&b| b & all == all);
    let masks = bits.map(|b| u.mask::<S>(b));
    let at = (base, c0, stored);
    if full {
        bands3::<U, R, S, true>(u, s, (x, taps, bias, y), at, masks, clamp);
    } else {
        bands3::<U, R, S, false>(u, s, (x, taps, bias, y), at, masks, clamp);
    }
}

/// The rows of [`strip3`]'s strip, `R` at a time: `taps` the filter's
/// values, the loads from input column `base` (plus the filter column),
/// through `masks` unless `FULL`, the `stored` output columns from `c0`.
/// The caller has checked the sizes.
#[inline(always)]
fn bands3<U: Simd, const R: usize, const S: usize, const FULL: bool>(
    u: U,
    s: &ConvShape,
    (x, taps, bias, y): (&[f32], [U::V; 9], f32, &mut [f32]),
    (base, c0, stored): (isize, usize, usize),
    masks: [U::M; 3],
    clamp: Option<(f32, f32)>,
) {
    let ConvShape {
        h,
        w,
        p: [ph, _],
        o: [oh, ow],
        ..
    } = *s;
    let mut next = 0;
    while next < oh {
        let oy = next.min(oh - R);
        next += R;
        let mut acc = [u.splat(bias); R];
        // Input row oy·S − PH + t, for t up to (R − 1)·S + 3 (at most 9),
        // each a constant: which output row reads it with which filter row
        // is then known, and the filter values stay in registers.
        macro_rules! input_rows {
            ($($t:literal)*) => {$(
                let iy = (oy * S + $t).wrapping_sub(ph);
                if $t < (R - 1) * S + 3 && iy < h {
                    let row = x[iy * w..].as_ptr().wrapping_offset(base);
                    for (kx, &m) in masks.iter().enumerate() {
                        // SAFETY: the mask keeps the values at columns
                        // 0..W of row iy < H, inside `x` (`FULL`: all of
                        // them are); the pointer is formed with
                        // `wrapping_offset` and only those values are read.
                        let xv = unsafe { u.load::<S, FULL>(row.wrapping_add(kx), m) };
                        for (r, acc) in acc.iter_mut().enumerate() {
                            // Output row oy + r reads this row as its
                            // filter row t − r·S.
                            if $t >= r * S && $t - r * S < 3 {
                                *acc = u.fma(taps[($t - r * S) * 3 + kx], xv, *acc);
                            }
                        }
                    }
                }
            )*};
        }
        input_rows!(0 1 2 3 4 5 6 7 8);
        for (r, &a) in acc.iter().enumerate() {
            let a = match clamp {
                Some((lo, hi)) => u.clamp(a, lo, hi),
                None => a,
            };
            let row = &mut y[(oy + r) * ow..][..ow];
            // SAFETY: the row holds the `stored` ≥ 1 values from column c0.
            unsafe { u.store(row[c0..].as_mut_ptr(), a, stored) };
        }
    }
}

/// One plane in plain loops, an output row at a time: each tap adds its
/// filter value times the input row's columns that lie inside it to the
/// output columns that read them; any stride and dilation.
fn portable(s: &ConvShape, (x, filter, bias, y): Plane<'_>, clamp: Option<(f32, f32)>) {
    let ConvShape {
        h,
        w,
        f: [fh, fw],
        s: [sh, sw],
        p: [ph, pw],
        d: [dh, dw],
        o: [oh, ow],
        ..
    } = *s;
    for (oy, row) in y[..oh * ow].chunks_exact_mut(ow).enumerate() {
        row.fill(bias);
        for ky in 0..fh {
            let iy = (oy * sh + ky * dh).wrapping_sub(ph);
            if iy >= h {
                continue;
            }
            let input = &x[iy * w..][..w];
            for kx in 0..fw {
                let wv = filter[ky * fw + kx];
                // Output columns whose input column ox·SW + kx·DW − PW
                // lies inside the row.
                let at = kx * dw;
                let lo = pw.saturating_sub(at).div_ceil(sw).min(ow);
                let hi = (w + pw).saturating_sub(at).div_ceil(sw).clamp(lo, ow);
                if lo == hi {
                    continue;
                }
                let from = &input[lo * sw + at - pw..];
                let out = &mut row[lo..hi];
                if sw == 1 {
                    for (o, &v) in out.iter_mut().zip(from) {
                        *o += wv * v;
                    }
                } else {
                    for (o, &v) in out.iter_mut().zip(from.iter().step_by(sw)) {
                        *o += wv * v;
                    }
                }
            }
        }
        if let Some((lo, hi)) = clamp {
            for v in row.iter_mut() {
                // NaN stays NaN, as in Act::apply.
                if *v < lo {
                    *v = lo;
                } else if *v > hi {
                    *v = hi;
                }
            }
        }
    }
}

/// The strips with AVX-512: 16 pixels per vector, masks of lanes.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_max_ps, _mm512_min_ps, _mm512_permutex2var_ps, _mm512_set1_ps, _mm512_setr_epi32,
        _mm512_storeu_ps,
    };

    use super::{ConvShape, Plane, Simd};
    use crate::cpu;

    /// The AVX-512 vectors, with the token that proves the CPU has them.
    #[derive(Clone, Copy)]
    pub(super) struct Avx512(pub cpu::Avx512);

    impl Avx512 {
        /// [`super::strip`] compiled with AVX-512F and FMA.
        #[inline(never)]
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn strip_at<const R: usize, const V: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            super::strip::<Self, R, V, S>(self, s, one, c0, clamp);
        }

        /// [`super::strip3`] compiled with the instruction set.
        #[inline(never)]
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn strip3_at<const R: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            super::strip3::<Self, R, S>(self, s, one, c0, clamp);
        }
    }

    impl Simd for Avx512 {
        const LANES: usize = 16;
        const ROWS3: usize = 4;
        type V = __m512;
        type M = u32;

        #[inline(always)]
        fn strip<const R: usize, const V: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            // SAFETY: the token proves AVX-512F, AVX2 and FMA.
            unsafe { self.strip_at::<R, V, S>(s, one, c0, clamp) }
        }

        #[inline(always)]
        fn strip3<const R: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            // SAFETY: the token proves AVX-512F, AVX2 and FMA.
            unsafe { self.strip3_at::<R, S>(s, one, c0, clamp) }
        }

        #[inline(always)]
        fn splat(self, v: f32) -> __m512 {
            // SAFETY: the token proves AVX-512F.
            unsafe { _mm512_set1_ps(v) }
        }

        #[inline(always)]
        fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: the token proves AVX-512F.
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }

        #[inline(always)]
        fn mask<const S: usize>(self, bits: u64) -> u32 {
            bits as u32
        }

        #[inline(always)]
        unsafe fn load<const S: usize, const FULL: bool>(self, p: *const f32, m: u32) -> __m512 {
            // SAFETY: the token proves AVX-512F; the caller's contract
            // covers the lanes of `m`, the only ones read (the second
            // vector's pointer is formed with `wrapping_add`), or with
            // `FULL` all of them.
            unsafe {
                let half = |p: *const f32, m: u32| {
                    if FULL {
                        _mm512_loadu_ps(p)
                    } else {
                        _mm512_maskz_loadu_ps(m as u16, p)
                    }
                };
                let low = half(p, m);
                if S == 1 {
                    return low;
                }
                let high = half(p.wrapping_add(16), m >> 16);
                let even =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                _mm512_permutex2var_ps(low, even, high)
            }
        }

        #[inline(always)]
        fn clamp(self, v: __m512, lo: f32, hi: f32) -> __m512 {
            // SAFETY: the token proves AVX-512F. `maxps` and `minps` give
            // their second operand where either is NaN.
            unsafe { _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), v)) }
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m512, n: usize) {
            // SAFETY: the token proves AVX-512F; the caller's contract
            // covers the `n` lanes written.
            unsafe {
                if n >= 16 {
                    _mm512_storeu_ps(p, v);
                } else {
                    _mm512_mask_storeu_ps(p, (1 << n) - 1, v);
                }
            }
        }
    }
}

/// The strips with AVX2: 8 pixels per vector, masks of 32-bit lanes.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_and_si256, _mm256_castpd_ps, _mm256_castps_pd, _mm256_cmpeq_epi32,
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_max_ps, _mm256_min_ps,
        _mm256_permute4x64_pd, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32,
        _mm256_shuffle_ps, _mm256_storeu_ps,
    };

    use super::{ConvShape, Plane, Simd};
    use crate::cpu;

    /// The AVX2 vectors, with the token that proves the CPU has them.
    #[derive(Clone, Copy)]
    pub(super) struct Avx2(pub cpu::Avx2);

    impl Avx2 {
        /// [`super::strip`] compiled with AVX2 and FMA.
        #[inline(never)]
        #[target_feature(enable = "avx2,fma")]
        fn strip_at<const R: usize, const V: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            super::strip::<Self, R, V, S>(self, s, one, c0, clamp);
        }

        /// [`super::strip3`] compiled with the instruction set.
        #[inline(never)]
        #[target_feature(enable = "avx2,fma")]
        fn strip3_at<const R: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            super::strip3::<Self, R, S>(self, s, one, c0, clamp);
        }
    }

    /// The lanes whose bits are set in the low 8 bits of `bits`, as a
    /// mask of 32-bit lanes.
    #[inline(always)]
    fn lanes(bits: u64) -> __m256i {
        // SAFETY: only reached from `Avx2::strip_at` and `strip3_at`,
        // which have AVX2.
        unsafe {
            let lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lane);
            _mm256_cmpeq_epi32(set, lane)
        }
    }

    /// The 8 values from `p` whose bits are set in the low 8 bits of
    /// `bits`, zeros elsewhere: a plain load when all are (a masked one
    /// costs more, on AMD cores), else a masked one.
    ///
    /// # Safety
    /// AVX2; the values whose bits are set are readable.
    #[inline(always)]
    unsafe fn load8(p: *const f32, bits: u64) -> __m256 {
        // SAFETY: the caller's contract; masked-off values are not read.
        unsafe {
            if bits & 0xff == 0xff {
                _mm256_loadu_ps(p)
            } else {
                _mm256_maskload_ps(p, lanes(bits))
            }
        }
    }

    impl Simd for Avx2 {
        const LANES: usize = 8;
        const ROWS3: usize = 4;
        type V = __m256;
        type M = u64;

        #[inline(always)]
        fn strip<const R: usize, const V: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            // SAFETY: the token proves AVX2 and FMA.
            unsafe { self.strip_at::<R, V, S>(s, one, c0, clamp) }
        }

        #[inline(always)]
        fn strip3<const R: usize, const S: usize>(
            self,
            s: &ConvShape,
            one: Plane<'_>,
            c0: usize,
            clamp: Option<(f32, f32)>,
        ) {
            // SAFETY: the token proves AVX2 and FMA.
            unsafe { self.strip3_at::<R, S>(s, one, c0, clamp) }
        }

        #[inline(always)]
        fn splat(self, v: f32) -> __m256 {
            // SAFETY: the token proves AVX.
            unsafe { _mm256_set1_ps(v) }
        }

        #[inline(always)]
        fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: the token proves FMA.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }

        #[inline(always)]
        fn mask<const S: usize>(self, bits: u64) -> u64 {
            bits
        }

        #[inline(always)]
        unsafe fn load<const S: usize, const FULL: bool>(self, p: *const f32, m: u64) -> __m256 {
            // SAFETY: the token proves AVX2; the caller's contract covers
            // the values of `m`, the only ones read (the second vector's
            // pointer is formed with `wrapping_add`), or with `FULL` all of
            // them.
            unsafe {
                let half = |p: *const f32, m: u64| {
                    if FULL {
                        _mm256_loadu_ps(p)
                    } else {
                        load8(p, m)
                    }
                };
                let low = half(p, m);
                if S == 1 {
                    return low;
                }
                let high = half(p.wrapping_add(8), m >> 8);
                // a0 a2 b0 b2 | a4 a6 b4 b6, then its 64-bit pairs 0 2 1 3.
                let pairs = _mm256_shuffle_ps::<0b10_00_10_00>(low, high);
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                    pairs,
                )))
            }
        }

        #[inline(always)]
        fn clamp(self, v: __m256, lo: f32, hi: f32) -> __m256 {
            // SAFETY: the token proves AVX. `maxps` and `minps` give their
            // second operand where either is NaN.
            unsafe { _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), v)) }
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m256, n: usize) {
            // SAFETY: the token proves AVX2; the caller's contract covers
            // the `n` lanes written.
            unsafe {
                if n >= 8 {
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

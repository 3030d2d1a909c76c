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
//! even values one shuffle gathers (AVX2's in a lane order of its own,
//! which one permute puts right at the store). The padding's columns are
//! handled in place: each load's mask keeps the lanes whose column lies
//! inside the row, the others read as zeros and are not read at all; the
//! masks are worked out once per filter column for R rows of FH taps, and
//! with AVX2, where a masked load costs more than a plain one, the loads
//! whose values all lie inside the row are plain ones. The last vector of
//! a row stores the row's lanes only. Column strides other than 1 and 2
//! take the portable loops.
//!
//! 3 × 3 layers of stride 1 or 2 (MobileNet's) take a path of their own,
//! all of a call's channels in one function: each plane in bands of 8
//! output rows (4 at stride 2), each band strip by strip across the row
//! (its input rows stay in the L1 cache, and the output is written in row
//! order), a strip one vector wide, the last shifted back to end at OW so
//! that every store is a whole vector. Each input row a band reads is
//! loaded once per filter column for all the band's output rows that read
//! it. AVX-512 adds the three filter columns in one pass, the nine filter
//! values in registers; AVX2, with 16 registers, a filter column at a
//! time, its three values and the 8 accumulators in registers (with all
//! nine, the filter went to the stack and every FMA read it there). Only
//! the first and last strips and bands reach into the padding: the strips'
//! masks are worked out once per call, and the others load without masks
//! or row checks.
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
    #[cfg(target_arch = "x86_64")]
    {
        // 3 × 3 filters without dilation, the same stride along both axes:
        // all the channels in one call.
        let three = s.f == [3, 3] && s.d == [1, 1] && s.s[0] == s.s[1];
        let (a, b) = (
            tokens.avx512.map(avx512::Avx512),
            tokens.avx2.map(avx2::Avx2),
        );
        let layer = (ks.clone(), x, filters, bias, &mut *y);
        match (a, b, s.s[1], three) {
            (Some(u), _, 1, true) => return u.planes3::<1>(s, layer, act, clamp),
            (Some(u), _, 2, true) => return u.planes3::<2>(s, layer, act, clamp),
            (None, Some(u), 1, true) => return u.planes3::<1>(s, layer, act, clamp),
            (None, Some(u), 2, true) => return u.planes3::<2>(s, layer, act, clamp),
            _ => {}
        }
    }
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
        let (a, b) = (
            tokens.avx512.map(avx512::Avx512),
            tokens.avx2.map(avx2::Avx2),
        );
        match (a, b, s.s[1]) {
            (Some(u), _, 1) => return strips::<_, 1>(u, s, one, clamp),
            (Some(u), _, 2) => return strips::<_, 2>(u, s, one, clamp),
            (None, Some(u), 1) => return strips::<_, 1>(u, s, one, clamp),
            (None, Some(u), 2) => return strips::<_, 2>(u, s, one, clamp),
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

/// Output channels of a layer and its slices, as [`channels`] takes them:
/// the channels, the input, the filters, the biases and the output planes
/// from the first channel's.
type Layer<'a> = (
    std::ops::Range<usize>,
    &'a [f32],
    &'a [f32],
    &'a [f32],
    &'a mut [f32],
);

/// The vectors of an instruction set and the strips compiled for it.
trait Simd: Copy {
    /// Output pixels per vector.
    const LANES: usize;
    /// Whether a plain load costs less than a masked one of every value
    /// (see [`Simd::load`]), which [`strip`] then takes where it can.
    const PLAIN: bool;
    /// Filter columns [`strip3`] adds at a time: 3 (all nine filter
    /// values in registers beside the accumulators), or 1.
    const COLUMNS3: usize;
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

    /// The output channels of a 3 × 3 layer of stride `S` (see
    /// [`planes3`]), compiled with the instruction set.
    fn planes3<const S: usize>(
        self,
        s: &ConvShape,
        layer: Layer<'_>,
        act: Act,
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
    /// the 2·LANES from `p`, in the lanes [`Simd::order`] puts in order;
    /// the values outside `m` are zeros, and are not read. With `FULL`, `m`
    /// holds every value, and the load is a plain one.
    ///
    /// # Safety
    /// The values in `m` are readable.
    unsafe fn load<const S: usize, const FULL: bool>(self, p: *const f32, m: Self::M) -> Self::V;

    /// The lanes of `v`, a sum of loads of stride `S` times splats, in the
    /// order of their output columns.
    fn order<const S: usize>(self, v: Self::V) -> Self::V;

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
    let all = u64::MAX >> reach;
    let mut next = 0;
    while next < oh {
        let oy = next.min(oh - R);
        next += R;
        let mut acc = [[u.splat(bias); V]; R];
        for kx in 0..fw {
            let shift = kx * dw;
            let bits: [u64; V] = std::array::from_fn(|v| {
                if shift <= reach {
                    words[v] >> shift
                } else {
                    inside(base[v] + shift as isize)
                }
            });
            // The filter column's taps, every load through `$masks`
            // (`$full`: plain loads).
            macro_rules! column {
                ($full:literal, $masks:expr) => {
                    let masks: [U::M; V] = $masks;
                    for ky in 0..fh {
                        let wv = u.splat(filter[ky * fw + kx]);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let iy = ((oy + r) * sh + ky * dh).wrapping_sub(ph);
                            if iy >= h {
                                continue;
                            }
                            let row = x[iy * w..].as_ptr().wrapping_add(shift);
                            for ((acc, &at), &m) in acc.iter_mut().zip(&base).zip(&masks) {
                                // SAFETY: the mask keeps the values at
                                // columns 0..W of row iy < H, inside `x`
                                // (`$full`: all of them are); the pointer
                                // is formed with `wrapping_offset` and only
                                // those values are read.
                                let xv = unsafe { u.load::<S, $full>(row.wrapping_offset(at), m) };
                                *acc = u.fma(wv, xv, *acc);
                            }
                        }
                    }
                };
            }
            if U::PLAIN && bits.iter().all(|&b| b & all == all) {
                column!(true, [u.mask::<S>(all); V]);
            } else {
                // (A loop, not `map`: its closure is not compiled with
                // the instruction set.)
                let mut masks = [u.mask::<S>(all); V];
                for (m, &b) in masks.iter_mut().zip(&bits) {
                    *m = u.mask::<S>(b);
                }
                column!(false, masks);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let row = &mut y[(oy + r) * ow..][..ow];
            for ((&a, &c), &n) in acc.iter().zip(&cols).zip(&stored) {
                let a = match clamp {
                    Some((lo, hi)) => u.clamp(a, lo, hi),
                    None => a,
                };
                let a = u.order::<S>(a);
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

/// The output channels of a 3 × 3 layer of stride `S` (along both axes,
/// without dilation), activated by `act` (clamped to `clamp` on the way
/// out, if any), in bands of output rows: at stride 1 of 8 rows (7 where
/// that divides the plane's rows and 8 does not: MobileNet's planes of 7,
/// 14 and 28 rows), at stride 2 of 4 (a band reads 2R + 1 input rows; 8
/// measured slower with either instruction set); fewer where the plane has
/// fewer rows.
#[inline(always)]
fn planes3<U: Simd, const S: usize>(
    u: U,
    s: &ConvShape,
    layer: Layer<'_>,
    act: Act,
    clamp: Option<(f32, f32)>,
) {
    let (oh, most) = (s.o[0], if S == 1 { 8 } else { 4 });
    let one = (u, s, layer, act, clamp);
    match oh {
        _ if most == 8 && oh >= 8 && oh % 8 != 0 && oh % 7 == 0 => bands3::<U, 7, S>(one),
        8.. if most == 8 => bands3::<U, 8, S>(one),
        7 if most == 8 => bands3::<U, 7, S>(one),
        4.. => bands3::<U, 4, S>(one),
        2.. => bands3::<U, 2, S>(one),
        _ => bands3::<U, 1, S>(one),
    }
}

/// The output channels `ks` of a 3 × 3 layer of stride `S` (1 or 2),
/// without dilation, as [`planes3`]: each plane in bands of `R` output
/// rows (the last shifted back to end at OH), each band strip by strip: a
/// vector of `U::LANES` output columns from column 0, `U::LANES` on, the
/// last shifted back to end at OW (where the row has a vector's worth:
/// else it is the only one, and stores the row's). The rows a band reads
/// stay in the L1 cache for all its strips, and the output is written row
/// after row. The masks of the first and last strips are worked out once.
///
/// # Panics
/// If the layer is not such a layer, its planes have fewer than `R` rows,
/// or a slice is shorter than the channels'.
#[inline(always)]
fn bands3<U: Simd, const R: usize, const S: usize>(
    (u, s, (ks, xs, filters, biases, ys), act, clamp): (
        U,
        &ConvShape,
        Layer<'_>,
        Act,
        Option<(f32, f32)>,
    ),
) {
    let ConvShape {
        h,
        w,
        p: [ph, pw],
        o: [oh, ow],
        ..
    } = *s;
    assert!(s.f == [3, 3] && s.d == [1, 1] && s.s == [S, S] && (S == 1 || S == 2));
    // A band reads at most the 17 rows `column3` unrolls.
    assert!((1..=oh).contains(&R) && (R - 1) * S + 3 <= 17 && ow >= 1);
    let (plane_in, plane_out, multiplier) = (h * w, oh * ow, s.k / s.c);
    let lanes = U::LANES;
    let last = ow.saturating_sub(lanes);
    // Without a clamp, one to infinities keeps every value but NaN, which
    // stays too.
    let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    // Whether the loads of the strip from output column c0 read only
    // columns inside the row: base .. base + 2 + S·LANES.
    let cols = |c0: usize| {
        let base = (c0 * S) as isize - pw as isize;
        base >= 0 && base as usize + 2 + S * lanes <= w
    };
    // Worked out once for the first and last strips, the ones by the
    // padding (a middle strip reaches into it only if the padding is wider
    // than a vector's loads).
    let first = (columns3::<U, S>(u, s, 0), cols(0));
    let end = (columns3::<U, S>(u, s, last), cols(last));
    for (ko, y) in ks.zip(ys.chunks_exact_mut(plane_out)) {
        let x = &xs[ko / multiplier * plane_in..][..plane_in];
        let (filter, bias) = (&filters[ko * 9..][..9], biases[ko]);
        // The strip from output column c0 on R rows from oy, clamped and
        // stored: its loads read input rows top .. top + (R − 1)·S + 3
        // (`rows`: all inside the plane) and columns base .. base + 2 +
        // S·LANES (`$cols`: all inside the row; else `$edge` says which
        // are).
        macro_rules! strip {
            ($oy:expr, $c0:expr, $edge:expr, $cols:expr) => {{
                let (oy, c0): (usize, usize) = ($oy, $c0);
                let top = (oy * S) as isize - ph as isize;
                let base = (c0 * S) as isize - pw as isize;
                let rows = top >= 0 && top as usize + (R - 1) * S + 3 <= h;
                let one = (u, (x, h, w), filter, bias, (top, base), $edge);
                let acc = match (rows, $cols) {
                    (true, true) => strip3::<U, R, S, true, true>(one),
                    (true, false) => strip3::<U, R, S, true, false>(one),
                    (false, true) => strip3::<U, R, S, false, true>(one),
                    (false, false) => strip3::<U, R, S, false, false>(one),
                };
                let at = oy * ow + c0;
                if ow >= lanes {
                    for (r, &a) in acc.iter().enumerate() {
                        let a = u.order::<S>(u.clamp(a, lo, hi));
                        // SAFETY: row oy + r holds the LANES values from
                        // column c0 ≤ OW − LANES.
                        unsafe { u.store(y.as_mut_ptr().add(at + r * ow), a, lanes) };
                    }
                } else {
                    for (r, &a) in acc.iter().enumerate() {
                        let a = u.order::<S>(u.clamp(a, lo, hi));
                        // A whole vector where the plane holds one from the
                        // row's first pixel: past the row's end it writes the
                        // next rows' first pixels, which are written after it.
                        let at = at + r * ow;
                        let n = if at + lanes <= y.len() { lanes } else { ow };
                        // SAFETY: the plane holds the n values from `at`.
                        unsafe { u.store(y.as_mut_ptr().add(at), a, n) };
                    }
                }
            }};
        }
        if last == 0 {
            let mut next = 0;
            while next < oh {
                strip!(next.min(oh - R), 0, first.0, first.1);
                next += R;
            }
        } else {
            let mut next = 0;
            while next < oh {
                let oy = next.min(oh - R);
                next += R;
                strip!(oy, 0, first.0, first.1);
                let mut c0 = lanes;
                while c0 < last {
                    if cols(c0) {
                        // (No masks: the first strip's stand in.)
                        strip!(oy, c0, first.0, true);
                    } else {
                        strip!(oy, c0, columns3::<U, S>(u, s, c0), false);
                    }
                    c0 += lanes;
                }
                strip!(oy, last, end.0, end.1);
            }
        }
        if clamp.is_none() {
            activate(act, y);
        }
    }
}

/// An input plane as [`strip3`] reads it: its values, H and W.
type Input<'a> = (&'a [f32], usize, usize);

/// A strip's [`columns3`]: for each filter column, which of the values its
/// loads read lie inside the row, and the loads' masks.
type Edge<M> = ([u64; 3], [M; 3]);

/// Which of the values the loads of [`bands3`]'s strip from output column
/// `c0` read lie inside the row, for each filter column (see [`inside`]),
/// and the loads' masks.
#[inline(always)]
fn columns3<U: Simd, const S: usize>(u: U, s: &ConvShape, c0: usize) -> Edge<U::M> {
    let base = (c0 * S) as isize - s.p[1] as isize;
    let bits = [0, 1, 2].map(|kx| inside(s.w, base + kx));
    let masks = [
        u.mask::<S>(bits[0]),
        u.mask::<S>(bits[1]),
        u.mask::<S>(bits[2]),
    ];
    (bits, masks)
}

/// The `R` output rows' vectors (in the order of [`Simd::order`], not
/// clamped) of a band of [`bands3`]: band row t reads input row `top` +
/// t, from column `base` (c0·S − PW for output column c0), in passes of
/// `U::COLUMNS3` filter columns, with only their filter values and the
/// `R` accumulators in registers. `ROWS`: every input row read lies
/// inside the plane (else those outside, the zero padding, are skipped);
/// `COLS`: every input column read does (else the loads of a filter
/// column that reads past the row's are masked as `edge`, the strip's
/// [`columns3`], says).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn strip3<U: Simd, const R: usize, const S: usize, const ROWS: bool, const COLS: bool>(
    (u, (x, h, w), filter, bias, (top, base), edge): (
        U,
        Input<'_>,
        &[f32],
        f32,
        (isize, isize),
        Edge<U::M>,
    ),
) -> [U::V; R] {
    let mut acc = [u.splat(bias); R];
    let one = (u, (x, h, w), filter, (top, base), edge);
    match U::COLUMNS3 {
        3 => pass3::<U, R, S, 3, ROWS, COLS>(one, 0, &mut acc),
        _ => {
            // A loop the compiler does not unroll: unrolled, it moves the
            // next passes' loads into this one, and out of registers.
            for kx in 0..std::hint::black_box(3) {
                pass3::<U, R, S, 1, ROWS, COLS>(one, kx, &mut acc);
            }
        }
    }
    acc
}

/// Adds the taps of `N` filter columns from `kx` to the accumulators of
/// [`strip3`], loaded through the masks of `edge` unless every column
/// they read lies inside the row (`COLS`, or as its bits say).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn pass3<
    U: Simd,
    const R: usize,
    const S: usize,
    const N: usize,
    const ROWS: bool,
    const COLS: bool,
>(
    (u, (x, h, w), filter, (top, base), (bits, masks)): (
        U,
        Input<'_>,
        &[f32],
        (isize, isize),
        Edge<U::M>,
    ),
    kx: usize,
    acc: &mut [U::V; R],
) {
    // (Loops, not `map` or `from_fn`: their closures are not compiled
    // with the instruction set.)
    let mut taps = [[u.splat(0.0); N]; 3];
    for (ky, taps) in taps.iter_mut().enumerate() {
        for (j, tap) in taps.iter_mut().enumerate() {
            *tap = u.splat(filter[ky * 3 + kx + j]);
        }
    }
    let at = base + kx as isize;
    let all = u64::MAX >> (64 - S * U::LANES);
    let mut ms = [masks[kx]; N];
    ms.copy_from_slice(&masks[kx..kx + N]);
    let one = (u, (x, h, w), (top, at), taps);
    if COLS || bits[kx..kx + N].iter().all(|&b| b & all == all) {
        column3::<U, R, S, N, true, ROWS>(one, ms, acc);
    } else {
        column3::<U, R, S, N, false, ROWS>(one, ms, acc);
    }
}

/// Adds `N` filter columns' taps, `taps` their values by filter row, to
/// the accumulators of [`strip3`]: band row t's vector for column j,
/// loaded from input row `top` + t, column `at` + j on, through `masks[j]`
/// unless `FULL`, adds to output row r its product with filter row t −
/// r·S. Each input row is loaded once a filter column.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn column3<
    U: Simd,
    const R: usize,
    const S: usize,
    const N: usize,
    const FULL: bool,
    const ROWS: bool,
>(
    (u, (x, h, w), (top, at), taps): (U, Input<'_>, (isize, isize), [[U::V; N]; 3]),
    masks: [U::M; N],
    acc: &mut [U::V; R],
) {
    // Band row t a constant, which output row reads it with which filter
    // row is known at compile time.
    macro_rules! rows {
        ($($t:literal)*) => {$(
            let iy = top + $t;
            if $t < (R - 1) * S + 3 && (ROWS || (iy as usize) < h) {
                let row = x.as_ptr().wrapping_offset(iy * w as isize + at);
                for (j, &m) in masks.iter().enumerate() {
                    // SAFETY: row iy lies inside the plane (`ROWS`: all
                    // the band's do), and the mask keeps the values at
                    // its columns 0..W, inside `x` (`FULL`: all of them
                    // are); the pointer is formed with `wrapping_offset`
                    // and only those values are read.
                    let xv = unsafe { u.load::<S, FULL>(row.wrapping_add(j), m) };
                    for (ky, taps) in taps.iter().enumerate() {
                        if $t >= ky && ($t - ky) % S == 0 && ($t - ky) / S < R {
                            let r = ($t - ky) / S;
                            acc[r] = u.fma(taps[j], xv, acc[r]);
                        }
                    }
                }
            }
        )*};
    }
    rows!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
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

    use super::{Act, ConvShape, Layer, Plane, Simd};
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

        /// [`super::planes3`] compiled with the instruction set.
        #[inline(never)]
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn planes3_at<const S: usize>(
            self,
            s: &ConvShape,
            layer: Layer<'_>,
            act: Act,
            clamp: Option<(f32, f32)>,
        ) {
            super::planes3::<Self, S>(self, s, layer, act, clamp);
        }
    }

    impl Simd for Avx512 {
        const LANES: usize = 16;
        const PLAIN: bool = false;
        const COLUMNS3: usize = 3;
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
        fn planes3<const S: usize>(
            self,
            s: &ConvShape,
            layer: Layer<'_>,
            act: Act,
            clamp: Option<(f32, f32)>,
        ) {
            // SAFETY: the token proves AVX-512F, AVX2 and FMA.
            unsafe { self.planes3_at::<S>(s, layer, act, clamp) }
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
        fn order<const S: usize>(self, v: __m512) -> __m512 {
            v
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
        __m256, __m256i, _mm256_and_si256, _mm256_castpd_ps, _mm256_castps256_ps128,
        _mm256_castps_pd, _mm256_cmpeq_epi32, _mm256_extractf128_ps, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_maskload_ps, _mm256_max_ps, _mm256_min_ps, _mm256_permute4x64_pd,
        _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_shuffle_ps, _mm256_storeu_ps,
        _mm_castps_si128, _mm_cvtsi128_si64, _mm_movehl_ps, _mm_store_ss, _mm_storeu_ps,
    };

    use super::{Act, ConvShape, Layer, Plane, Simd};
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

        /// [`super::planes3`] compiled with the instruction set.
        #[inline(never)]
        #[target_feature(enable = "avx2,fma")]
        fn planes3_at<const S: usize>(
            self,
            s: &ConvShape,
            layer: Layer<'_>,
            act: Act,
            clamp: Option<(f32, f32)>,
        ) {
            super::planes3::<Self, S>(self, s, layer, act, clamp);
        }
    }

    /// The lanes whose bits are set in the low 8 bits of `bits`, as a
    /// mask of 32-bit lanes.
    #[inline(always)]
    fn lanes(bits: u64) -> __m256i {
        // SAFETY: only reached from `Avx2::strip_at` and `planes3_at`,
        // which have AVX2.
        unsafe {
            let lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lane);
            _mm256_cmpeq_epi32(set, lane)
        }
    }

    impl Simd for Avx2 {
        const LANES: usize = 8;
        const PLAIN: bool = true;
        const COLUMNS3: usize = 1;
        type V = __m256;
        /// The masks of the load's (up to) two vectors of 8 values.
        type M = [__m256i; 2];

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
        fn planes3<const S: usize>(
            self,
            s: &ConvShape,
            layer: Layer<'_>,
            act: Act,
            clamp: Option<(f32, f32)>,
        ) {
            // SAFETY: the token proves AVX2 and FMA.
            unsafe { self.planes3_at::<S>(s, layer, act, clamp) }
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
        fn mask<const S: usize>(self, bits: u64) -> [__m256i; 2] {
            [
                lanes(bits),
                if S == 1 { lanes(0) } else { lanes(bits >> 8) },
            ]
        }

        #[inline(always)]
        unsafe fn load<const S: usize, const FULL: bool>(
            self,
            p: *const f32,
            [low, high]: [__m256i; 2],
        ) -> __m256 {
            // SAFETY: the token proves AVX2; the caller's contract covers
            // the values of the masks, the only ones read (the second
            // vector's pointer is formed with `wrapping_add`), or with
            // `FULL` all of them. A plain load where all are: a masked one
            // costs more, on AMD cores.
            unsafe {
                let half = |p: *const f32, m: __m256i| {
                    if FULL {
                        _mm256_loadu_ps(p)
                    } else {
                        _mm256_maskload_ps(p, m)
                    }
                };
                let a = half(p, low);
                if S == 1 {
                    return a;
                }
                let b = half(p.wrapping_add(8), high);
                // a0 a2 b0 b2 | a4 a6 b4 b6: output columns 0 1 4 5 2 3 6
                // 7, which `order` puts in order.
                _mm256_shuffle_ps::<0b10_00_10_00>(a, b)
            }
        }

        #[inline(always)]
        fn order<const S: usize>(self, v: __m256) -> __m256 {
            if S == 1 {
                return v;
            }
            // SAFETY: the token proves AVX2. The 64-bit pairs 0 2 1 3.
            unsafe { _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v))) }
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
                    return;
                }
                // 4, 2 and 1 lanes at a time, as `n`'s bits say: a masked
                // store costs tens of cycles on AMD cores, and a copy
                // through the stack calls `memcpy`, around which the
                // caller keeps its vectors on the stack.
                let (mut p, mut part) = (p, _mm256_castps256_ps128(v));
                if n & 4 != 0 {
                    _mm_storeu_ps(p, part);
                    part = _mm256_extractf128_ps::<1>(v);
                    p = p.add(4);
                }
                if n & 2 != 0 {
                    let pair = _mm_cvtsi128_si64(_mm_castps_si128(part));
                    p.cast::<i64>().write_unaligned(pair);
                    part = _mm_movehl_ps(part, part);
                    p = p.add(2);
                }
                if n & 1 != 0 {
                    _mm_store_ss(p, part);
                }
            }
        }
    }
}

//! The geometry of the blocked convolution: how the input is re-laid out in
//! scratch, and how output pixels and filter taps map to offsets.
//!
//! A convolution with strides (SH, SW), padding (PH, PW) and dilation
//! (DH, DW) becomes a stride-1, unpadded, undilated one on a transformed
//! input: each channel is zero-padded and split into phase planes of HQ×WQ
//! values, plane (py, px) holding the padded pixels (iy·SH + ry, ix·SW + rx)
//! where ry = py·DH mod SH and rx = px·DW mod SW. Tap (ky, kx) reads padded
//! pixel (oy·SH + ky·DH, ox·SW + kx·DW): the value at
//! `oy·WQ + ox + ⌊ky·DH/SH⌋·WQ + ⌊kx·DW/SW⌋` of plane (ky mod PY, kx mod PX),
//! where PY = SH/gcd(SH, DH) is how many taps apart two taps of one row
//! phase are (and PX likewise). Only phases some tap reads are kept:
//! min(PY, FH) × min(PX, FW) of them (without dilation PY = SH, and the
//! phases are min(SH, FH) × min(SW, FW)). Along a row of output pixels the
//! reads are contiguous, and numbering the pixels q = oy·WQ + ox makes them
//! contiguous across rows too. Tiles of pixels either run across rows,
//! computing and dropping the WQ − OW values of q past the end of each
//! output row, or, where that costs less, start at each row's start and
//! skip them.
//!
//! Layers with output rows of at most [`SHIFT_MAX_OW`] pixels are laid out
//! *shifted* instead: each filter column kx gets planes of its own, OW wide,
//! plane (py, kx) holding the padded pixels (iy·SH + ry, ox·SW + kx·DW). Tap
//! (ky, kx) then reads plane (ky mod PY, kx) at `oy·OW + ox + ⌊ky·DH/SH⌋·OW`:
//! the output's own numbering, contiguous across rows, with no columns to
//! drop and no vector that has to gather two rows. It costs FW copies of
//! the input where rows are short and the copies are small.
//!
//! A layer of stride 1 without padding is read as it is, dilated or not:
//! tap (ky, kx) at `ky·DH·W + kx·DW`. Grouped layers are laid out for one
//! group's shape (C/G channels, K/G filters), which every group shares.

use crate::cpu::{Active, Avx2, Avx512};

/// The dimensions of one convolution layer, as plain values: what the
/// expansion of `network!` writes for each conv layer, and what every
/// convolution kernel takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels (filters).
    pub k: usize,
    /// Filter height and width.
    pub f: [usize; 2],
    /// Stride along height and width.
    pub s: [usize; 2],
    /// Zero padding along height and width.
    pub p: [usize; 2],
    /// Dilation along height and width: the taps of a filter are `d`
    /// apart in the input (1: adjacent).
    pub d: [usize; 2],
    /// Groups: the channels and filters split into `g` groups of C/G and
    /// K/G, each filter seeing its group's channels only (1: every
    /// channel; C: depthwise).
    pub g: usize,
    /// Output height and width, as the layer's shape arithmetic computed
    /// them (`cnn-spec`; the kernels only check that they fit, see
    /// [`ConvShape::fits`]).
    pub o: [usize; 2],
}

/// `Some` of the expression, or `None` from the enclosing `const fn` (where
/// `?` is not available).
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return None,
        }
    };
}
pub(crate) use tri;

/// The smaller of two sizes, in const context.
pub(crate) const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

/// The greatest common divisor of two sizes (`b` if `a` is 0), in const
/// context.
pub(crate) const fn gcd(mut a: usize, mut b: usize) -> usize {
    while a != 0 {
        (a, b) = (b % a, a);
    }
    b
}

impl ConvShape {
    /// A layer without dilation or groups, as most are.
    #[allow(clippy::too_many_arguments)]
    pub const fn plain(
        c: usize,
        [h, w]: [usize; 2],
        k: usize,
        f: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        o: [usize; 2],
    ) -> ConvShape {
        ConvShape {
            c,
            h,
            w,
            k,
            f,
            s,
            p,
            d: [1, 1],
            g: 1,
            o,
        }
    }

    /// Whether the shape is one a convolution has: every size positive,
    /// the groups dividing the channels and the filters, and
    /// [`window_fits`](crate::kernels::window_fits) on both axes for the
    /// filter's extent, D·(F − 1) + 1.
    pub const fn fits(&self) -> bool {
        use crate::kernels::window_fits as axis;
        let (Some(eh), Some(ew)) = (self.extent(0), self.extent(1)) else {
            return false;
        };
        self.c > 0
            && self.k > 0
            && self.g > 0
            && self.c.is_multiple_of(self.g)
            && self.k.is_multiple_of(self.g)
            && axis(self.h, eh, self.s[0], self.p[0], self.o[0])
            && axis(self.w, ew, self.s[1], self.p[1], self.o[1])
    }

    /// The input rows (`axis` 0) or columns (1) one filter spans,
    /// D·(F − 1) + 1; `None` for a zero size or an overflow.
    pub const fn extent(&self, axis: usize) -> Option<usize> {
        let (f, d) = (self.f[axis], self.d[axis]);
        if f == 0 || d == 0 {
            return None;
        }
        tri!(d.checked_mul(f - 1)).checked_add(1)
    }

    /// Whether the layer has neither dilation nor groups.
    pub const fn is_plain(&self) -> bool {
        self.d[0] == 1 && self.d[1] == 1 && self.g == 1
    }

    /// Multiply-accumulates of the layer, K·OH·OW·(C/G)·FH·FW (saturating).
    pub const fn macs(&self) -> usize {
        let mut macs = 1usize;
        let channels = match self.c.checked_div(self.g) {
            Some(channels) => channels,
            None => 0,
        };
        let factors = [self.k, self.o[0], self.o[1], channels, self.f[0], self.f[1]];
        let mut i = 0;
        while i < factors.len() {
            macs = macs.saturating_mul(factors[i]);
            i += 1;
        }
        macs
    }

    /// Filter taps per filter, (C/G)·FH·FW.
    pub(crate) const fn taps(&self) -> Option<usize> {
        tri!(tri!(self.c.checked_div(self.g)).checked_mul(self.f[0])).checked_mul(self.f[1])
    }
}

/// Widest output rows laid out shifted (see the module docs): rows of at
/// most half an AVX-512 vector, which the other layout would either pad to
/// WQ or gather two to a vector, one masked load per row.
pub const SHIFT_MAX_OW: usize = 8;

/// Fewest output pixels laid out shifted: one AVX-512 vector. Fewer go two
/// rows to a vector in the phase layout, rather than one pixel at a time.
pub const SHIFT_MIN_PIXELS: usize = 16;

/// Longest padded input row (in f32s, 8 KiB) that [`Layout::transform`]
/// copies to the stack to split into column phases (strides other than 2
/// and 4 with every phase kept, which split straight from the input).
const PADDED_ROW_MAX: usize = 2048;

/// Writes column plane px of `padded` (its values `start(px)`,
/// `start(px) + SW`, …) to row `at .. at + wq` of plane px in `planes`, for
/// px < `npw`, where `padded` holds (wq − 1)·SW + the largest start + 1
/// values: one strided pass per plane. (Strides 2 and 4 with every phase
/// kept in order go through [`split_padded`] instead.)
#[inline(always)]
fn split_columns(
    padded: &[f32],
    (sw, npw, wq): (usize, usize, usize),
    start: impl Fn(usize) -> usize,
    planes: &mut [f32],
    (plane, at): (usize, usize),
) {
    let rows = planes.chunks_exact_mut(plane).map(|p| &mut p[at..at + wq]);
    for (px, row) in rows.take(npw).enumerate() {
        let from = &padded[start(px)..];
        if sw == 1 {
            copy_row(row, from);
            continue;
        }
        for (v, s) in row.iter_mut().zip(from.iter().step_by(sw)) {
            *v = *s;
        }
    }
}

/// Splits input row `src`, padded with `pw` zeros on the left and as many
/// as the rows need on the right, into its N column phases:
/// `rows[px][j]` is padded value `j·N + px`. The blocks of 8N values inside
/// `src` go straight from it through [`deinterleave`]; the padded ends one
/// value at a time.
#[inline(always)]
fn split_padded<const N: usize>(
    src: &[f32],
    pw: usize,
    mut rows: [&mut [f32]; N],
    avx2: Option<Avx2>,
) {
    let wq = rows.iter().map(|r| r.len()).min().unwrap_or(0);
    let block = 8 * N;
    // Blocks lo..hi of the padded row lie inside `src`.
    let lo = pw.div_ceil(block).min(wq / 8);
    let hi = ((pw + src.len()) / block).min(wq / 8).max(lo);
    if hi > lo {
        let values = &src[lo * block - pw..hi * block - pw];
        deinterleave(
            values,
            rows.each_mut().map(|r| &mut r[8 * lo..8 * hi]),
            avx2,
        );
    }
    let value = |i: usize| i.checked_sub(pw).and_then(|j| src.get(j)).copied();
    for (px, row) in rows.iter_mut().enumerate() {
        let (head, rest) = row[..wq].split_at_mut(8 * lo);
        let tail = &mut rest[8 * (hi - lo)..];
        let tail_at = 8 * hi;
        for (j, v) in head.iter_mut().enumerate() {
            *v = value(j * N + px).unwrap_or(0.0);
        }
        for (j, v) in tail.iter_mut().enumerate() {
            *v = value((tail_at + j) * N + px).unwrap_or(0.0);
        }
    }
}

/// `rows[px][j] = values[j·N + px]` for N = 2 or 4 and every j below the
/// rows' length: with AVX2 (given its token) eight values per row at a
/// time, through shuffles, and the rest one by one.
#[inline(always)]
fn deinterleave<const N: usize>(values: &[f32], mut rows: [&mut [f32]; N], avx2: Option<Avx2>) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx2.is_some() {
        // SAFETY: the token proves AVX2.
        done = unsafe { deinterleave_avx2(values, &mut rows) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx2;
    for (px, row) in rows.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate().skip(done) {
            *v = values[j * N + px];
        }
    }
}

/// [`deinterleave`]'s blocks of eight values per row with AVX2 (N = 2 or 4;
/// nothing for others); returns the values per row it wrote. Four rows are a 4 × 4 transpose of pairs:
/// each vector's pairs gathered (a0 a1 b0 b1 c0 c1 d0 d1), pairs of pairs
/// interleaved, then halves swapped; two rows one gather and one swap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn deinterleave_avx2<const N: usize>(values: &[f32], rows: &mut [&mut [f32]; N]) -> usize {
    use std::arch::x86_64::{
        _mm256_castpd_ps, _mm256_castps_pd, _mm256_loadu_ps, _mm256_permute2f128_ps,
        _mm256_permutevar8x32_ps, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps,
        _mm256_unpackhi_pd, _mm256_unpacklo_pd,
    };
    let len = rows.iter().map(|r| r.len()).min().unwrap_or(0);
    let blocks = (len / 8).min(values.len() / (8 * N));
    // No closures here: they would not inherit the target feature.
    let zero = _mm256_setzero_ps();
    for b in 0..blocks {
        let src = &values[8 * N * b..][..8 * N];
        let mut v = [zero; N];
        for (i, v) in v.iter_mut().enumerate() {
            // SAFETY: `src` holds 8N values, N vectors of 8.
            *v = unsafe { _mm256_loadu_ps(src[8 * i..].as_ptr()) };
        }
        let mut out = [zero; N];
        match (&v[..], &mut out[..]) {
            ([v0, v1], [o0, o1]) => {
                let idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
                let p0 = _mm256_permutevar8x32_ps(*v0, idx);
                let p1 = _mm256_permutevar8x32_ps(*v1, idx);
                *o0 = _mm256_permute2f128_ps::<0x20>(p0, p1);
                *o1 = _mm256_permute2f128_ps::<0x31>(p0, p1);
            }
            ([v0, v1, v2, v3], [o0, o1, o2, o3]) => {
                let idx = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
                let p0 = _mm256_castps_pd(_mm256_permutevar8x32_ps(*v0, idx));
                let p1 = _mm256_castps_pd(_mm256_permutevar8x32_ps(*v1, idx));
                let p2 = _mm256_castps_pd(_mm256_permutevar8x32_ps(*v2, idx));
                let p3 = _mm256_castps_pd(_mm256_permutevar8x32_ps(*v3, idx));
                // [a0..a3 | c0..c3], [b0..b3 | d0..d3], then the same for 4..8.
                let t0 = _mm256_castpd_ps(_mm256_unpacklo_pd(p0, p1));
                let t1 = _mm256_castpd_ps(_mm256_unpackhi_pd(p0, p1));
                let t2 = _mm256_castpd_ps(_mm256_unpacklo_pd(p2, p3));
                let t3 = _mm256_castpd_ps(_mm256_unpackhi_pd(p2, p3));
                *o0 = _mm256_permute2f128_ps::<0x20>(t0, t2);
                *o1 = _mm256_permute2f128_ps::<0x20>(t1, t3);
                *o2 = _mm256_permute2f128_ps::<0x31>(t0, t2);
                *o3 = _mm256_permute2f128_ps::<0x31>(t1, t3);
            }
            _ => return 0,
        }
        for (row, out) in rows.iter_mut().zip(out) {
            let dst = &mut row[8 * b..][..8];
            // SAFETY: `dst` holds 8 values.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), out) };
        }
    }
    8 * blocks
}

/// Copies `src` into `dst` (the shorter's length) in blocks of constant
/// length: rows are short, and `copy_from_slice` of a length known only at
/// run time is a call to `memcpy`, which cost B3 a few per cent in calls.
#[inline(always)]
pub(crate) fn copy_row(dst: &mut [f32], src: &[f32]) {
    let len = dst.len().min(src.len());
    let (mut dst, mut src) = (&mut dst[..len], &src[..len]);
    while dst.len() >= 16 {
        let (d, rest) = dst.split_at_mut(16);
        d.copy_from_slice(&src[..16]);
        (dst, src) = (rest, &src[16..]);
    }
    for n in [8, 4, 2, 1] {
        if dst.len() >= n {
            let (d, rest) = dst.split_at_mut(n);
            d.copy_from_slice(&src[..n]);
            (dst, src) = (rest, &src[n..]);
        }
    }
}

/// Sets `dst` to zero in blocks of constant length, as [`copy_row`].
#[inline(always)]
pub(crate) fn zero_row(mut dst: &mut [f32]) {
    while dst.len() >= 16 {
        let (d, rest) = dst.split_at_mut(16);
        d.copy_from_slice(&[0.0; 16]);
        dst = rest;
    }
    for n in [8, 4, 2, 1] {
        if dst.len() >= n {
            let (d, rest) = dst.split_at_mut(n);
            d.copy_from_slice(&[0.0; 8][..n]);
            dst = rest;
        }
    }
}

/// One channel's plane at stride 1 (see [`Layout::transform`]): row `iq`
/// of `plane` (rows of `wq`) holds input row `iq − ph` of `channel` (rows
/// of `w`), its columns from `first` at columns `lo..hi` and zeros around;
/// rows outside the input are zero. Masked vectors of 16, whose masks are
/// the same for every row and are worked out once.
///
/// # Panics
/// If a row's columns do not fit (`lo ≤ hi ≤ wq`, `first + hi − lo ≤ w`)
/// or `channel` holds fewer than `h` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn pad_plane_avx512(
    plane: &mut [f32],
    wq: usize,
    channel: &[f32],
    (h, w, ph): (usize, usize, usize),
    (lo, hi, first): (usize, usize, usize),
) {
    use std::arch::x86_64::{
        _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };
    /// Vectors of a row whose masks are kept: rows up to 256 values.
    const KEPT: usize = 16;
    assert!(lo <= hi && hi <= wq && first + (hi - lo) <= w && channel.len() >= h * w);
    let lanes = |from: usize, to: usize| -> u16 {
        let below = |n: usize| if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
        below(to) & !below(from)
    };
    // Vector v of a row: the lanes it loads (columns lo..hi) and stores.
    let masks = |v: usize| {
        let j = 16 * v;
        (
            lanes(lo.saturating_sub(j), hi.saturating_sub(j)),
            lanes(0, wq - j),
        )
    };
    let vectors = wq.div_ceil(16);
    let mut kept = [(0u16, 0u16); KEPT];
    for (v, m) in kept.iter_mut().enumerate().take(vectors) {
        *m = masks(v);
    }
    for (iq, row) in plane.chunks_exact_mut(wq).enumerate() {
        let iy = iq.wrapping_sub(ph);
        // Lane j of the row reads `base + j`: only lanes in lo..hi are
        // read, input columns first .. first + hi − lo of row iy.
        // Rows outside the input read nothing: zeros, with no load at all
        // (a masked load whose masked-off lanes lie in an unmapped page
        // takes a microcode assist of hundreds of cycles).
        let inside = iy < h;
        let base = if inside {
            channel[iy * w + first..].as_ptr().wrapping_sub(lo)
        } else {
            channel.as_ptr()
        };
        #[allow(clippy::needless_range_loop)] // `kept` holds the first vectors only
        for v in 0..vectors {
            let (load, store) = if v < KEPT { kept[v] } else { masks(v) };
            // SAFETY: the CPU has AVX-512F (this function's target
            // feature). The loaded lanes read input row iy < h (no lane
            // otherwise), columns within it as asserted; masked-off lanes
            // are not read. The stored lanes lie below the row's end.
            unsafe {
                let x = if inside {
                    _mm512_maskz_loadu_ps(load, base.wrapping_add(16 * v))
                } else {
                    _mm512_setzero_ps()
                };
                let to = row.as_mut_ptr().add(16 * v);
                // A masked store is slower than a plain one (AMD Zen 4).
                if store == u16::MAX {
                    _mm512_storeu_ps(to, x);
                } else {
                    _mm512_mask_storeu_ps(to, store, x);
                }
            }
        }
    }
}

/// What a kernel does with one filter tap. A trait rather than a closure so
/// that the body is inlined into the micro-kernel and compiled with its
/// target features.
pub(crate) trait Tap {
    /// Accumulates tap `a` of the filters, reading the input at offset `b`.
    fn tap(&mut self, a: usize, b: usize);
}

/// Everything the blocked kernel derives from a [`ConvShape`]. All of it is
/// plain arithmetic, so with constant shapes it folds at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The layer.
    pub shape: ConvShape,
    /// Output height and width.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Whether the input is re-laid out in scratch (padding or strides);
    /// otherwise the kernel reads it as it is.
    pub transform: bool,
    /// Height of a phase plane.
    pub hq: usize,
    /// Width of a phase plane: the pixel numbering's row stride.
    pub wq: usize,
    /// Phase planes kept per channel along height and width:
    /// min(PY, FH) and min(PX, FW), or FW if [`Layout::shifted`].
    pub phases: [usize; 2],
    /// How many filter rows and columns apart two taps of one phase are,
    /// PY = SH/gcd(SH, DH) and PX = SW/gcd(SW, DW) (the strides without
    /// dilation).
    pub period: [usize; 2],
    /// Whether the layout is shifted (see the module docs): a plane for
    /// each filter column, WQ = OW.
    pub shifted: bool,
    /// Values per phase plane.
    pub plane: usize,
    /// Length of the transformed input (0 without transform).
    pub xt_len: usize,
    /// Pixels computed per output channel: `(OH − 1)·WQ + OW`.
    pub nq: usize,
    /// Whether rows of the computed output are wider than OW, so that the
    /// kernel computes into scratch and the valid values are copied out.
    pub wide: bool,
    /// Largest tap offset into the (transformed) input, plus one.
    pub tap_end: usize,
    /// Division by OW, which the tiles in the output's numbering do for
    /// every vector.
    pub ow_div: Divisor,
}

/// Division by a constant known at run time, by a multiplication (D.
/// Lemire, O. Kaser, N. Kurz, "Faster remainder by direct computation",
/// 2019): exact for dividends below 2³², a hardware division above. A
/// division costs tens of cycles, as much as a tile's taps on a layer of
/// few channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Divisor {
    d: usize,
    /// ⌈2⁶⁴ / d⌉, for d ≥ 2 (0 for d = 1).
    m: u64,
}

impl Divisor {
    /// Division by `d` (positive).
    pub const fn new(d: usize) -> Divisor {
        let m = if d > 1 { u64::MAX / d as u64 + 1 } else { 0 };
        Divisor { d, m }
    }

    /// `(n / d, n % d)`.
    #[inline(always)]
    pub fn div_rem(self, n: usize) -> (usize, usize) {
        if self.d == 1 {
            return (n, 0);
        }
        if n as u64 >= 1 << 32 || self.d as u64 >= 1 << 32 {
            return (n / self.d, n % self.d);
        }
        let q = ((u128::from(self.m) * n as u128) >> 64) as usize;
        (q, n - q * self.d)
    }
}

/// The tiles of one row of `ow` ≥ `lanes` output pixels when tiles start at
/// the row's start: (first pixel, pixels it shares with the tile before,
/// vectors of `lanes`). Two vectors while more than one vector of pixels
/// remains (if the row has two), else one; the last tile is shifted back to
/// end at the row's end.
pub(crate) fn row_tiles(ow: usize, lanes: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let mut ox = 0;
    std::iter::from_fn(move || {
        if ox >= ow {
            return None;
        }
        let v = if ow - ox > lanes && ow >= 2 * lanes {
            2
        } else {
            1
        };
        let start = ox.min(ow - lanes * v);
        let tile = (start, ox - start, v);
        ox = start + lanes * v;
        Some(tile)
    })
}

/// Whether a layer is laid out shifted (see the module docs): its input is
/// transformed anyway, its filters are wider than one column, and its
/// output rows are at most [`SHIFT_MAX_OW`] pixels, at least
/// [`SHIFT_MIN_PIXELS`] in all.
const fn shifted(transform: bool, fw: usize, oh: usize, ow: usize) -> bool {
    transform && fw > 1 && ow <= SHIFT_MAX_OW && oh.saturating_mul(ow) >= SHIFT_MIN_PIXELS
}

impl Layout {
    /// The layout of `shape`, or `None` if the shape does not
    /// [fit](ConvShape::fits), is grouped (the caller lays out one group),
    /// or a length overflows `usize`.
    pub const fn new(shape: ConvShape) -> Option<Layout> {
        if !shape.fits() || shape.g != 1 {
            return None;
        }
        let [oh, ow] = shape.o;
        let [sh, sw] = shape.s;
        let [fh, fw] = shape.f;
        let [dh, dw] = shape.d;
        let transform = sh != 1 || sw != 1 || shape.p[0] != 0 || shape.p[1] != 0;
        let shifted = shifted(transform, fw, oh, ow);
        // `fits` checked that the padded sizes fit.
        let (hq, wq) = if transform {
            (
                (shape.h + 2 * shape.p[0]).div_ceil(sh),
                if shifted {
                    ow
                } else {
                    (shape.w + 2 * shape.p[1]).div_ceil(sw)
                },
            )
        } else {
            (shape.h, shape.w)
        };
        let period = [sh / gcd(sh, dh), sw / gcd(sw, dw)];
        let phases = [
            min(period[0], fh),
            if shifted { fw } else { min(period[1], fw) },
        ];
        let plane = tri!(hq.checked_mul(wq));
        let per_channel = tri!(plane.checked_mul(phases[0] * phases[1]));
        // Without a transform this is the input's length, which must fit
        // as well (tap offsets are computed within it).
        let planes_len = tri!(shape.c.checked_mul(per_channel));
        let xt_len = if transform { planes_len } else { 0 };
        let nq = tri!(tri!((oh - 1).checked_mul(wq)).checked_add(ow));
        // The scratch, transformed input and wide output, must fit too.
        tri!(tri!(shape.k.checked_mul(nq)).checked_add(xt_len));
        let mut lay = Layout {
            shape,
            oh,
            ow,
            transform,
            hq,
            wq,
            phases,
            period,
            shifted,
            plane,
            xt_len,
            nq,
            wide: wq != ow,
            tap_end: 0,
            ow_div: Divisor::new(ow),
        };
        // The last tap of the last channel reads furthest; which phase that
        // is depends on the filter, so take the largest over phases. The
        // extents fit (`fits`), and so do the offsets within the planes.
        let mut py = 0;
        while py < phases[0] {
            let mut px = 0;
            while px < phases[1] {
                let ky = py + (fh - 1 - py) / period[0] * period[0];
                let kx = if shifted {
                    px
                } else {
                    px + (fw - 1 - px) / period[1] * period[1]
                };
                let at = lay.tap_offset(shape.c - 1, ky, kx) + 1;
                if at > lay.tap_end {
                    lay.tap_end = at;
                }
                px += 1;
            }
            py += 1;
        }
        Some(lay)
    }

    /// The offset into the (transformed) input, relative to the pixel, of
    /// tap (ky, kx) of input channel `ci`: in plane (ky mod PY, kx mod PX),
    /// or (ky mod PY, kx) shifted, ⌊ky·DH/SH⌋ rows and ⌊kx·DW/SW⌋ columns
    /// on (no columns shifted).
    const fn tap_offset(&self, ci: usize, ky: usize, kx: usize) -> usize {
        let ConvShape {
            s: [sh, sw],
            d: [dh, dw],
            ..
        } = self.shape;
        let [nph, npw] = self.phases;
        let (px, col) = if self.shifted {
            (kx, 0)
        } else {
            (kx % self.period[1], kx * dw / sw)
        };
        let plane = (ci * nph + ky % self.period[0]) * npw + px;
        plane * self.plane + ky * dh / sh * self.wq + col
    }

    /// The first padded row that row phase `py` holds, py·DH mod SH (py
    /// itself without dilation, which needs no division).
    #[inline(always)]
    const fn row_start(&self, py: usize) -> usize {
        match self.shape.d[0] {
            1 => py,
            dh => py * dh % self.shape.s[0],
        }
    }

    /// The first padded column that column plane `px` holds: px·DW mod SW,
    /// or px·DW shifted (px itself without dilation).
    #[inline(always)]
    const fn col_start(&self, px: usize) -> usize {
        match self.shape.d[1] {
            1 => px,
            dw if self.shifted => px * dw,
            dw => px * dw % self.shape.s[1],
        }
    }

    /// Input rows and columns past a block of pixels that its taps read:
    /// ⌊(FH − 1)·DH/SH⌋ rows and ⌊(FW − 1)·DW/SW⌋ columns, as an offset.
    #[inline(always)]
    pub const fn halo(&self) -> usize {
        let ConvShape {
            f: [fh, fw],
            s: [sh, sw],
            d: [dh, dw],
            ..
        } = self.shape;
        (fh - 1) * dh / sh * self.wq + (fw - 1) * dw / sw
    }

    /// Whether tiles of `lanes`-wide vectors should start at each output
    /// row's start ([`row_tiles`]), so that the WQ − OW columns past its end
    /// are never computed, rather than run across rows. A one-vector tile
    /// loads as many filter values for half the products; measured, it
    /// costs about 3/4 of a two-vector one (an 8×8 output with WQ = 10 ran
    /// 20 % slower in one-vector row tiles than in two-vector tiles across
    /// rows).
    #[inline(always)]
    pub fn rows(&self, lanes: usize) -> bool {
        let (ow, wq) = (self.ow, self.wq);
        if ow < lanes || wq == ow {
            return false;
        }
        // In quarters of a two-vector tile, against WQ/(2·lanes) two-vector
        // tiles: cost/4 < WQ/(2·lanes).
        let cost: usize = row_tiles(ow, lanes)
            .map(|(_, _, v)| if v == 2 { 4 } else { 3 })
            .sum();
        lanes * cost < 2 * wq
    }

    /// Whether tiles of `lanes`-wide vectors each holding two output rows
    /// (of at most `lanes/2` pixels) waste fewer lanes than tiles across
    /// rows of WQ computed pixels: OW/(lanes/2) against OW/WQ.
    #[inline(always)]
    pub const fn pairs(&self, lanes: usize) -> bool {
        self.ow <= lanes / 2 && self.wq > lanes / 2 && self.oh >= 2
    }

    /// Whether tiles of the output's numbering (oy·OW + ox) leave out
    /// columns that tiles of the input's would compute (WQ > OW), with rows
    /// wider than half a vector, so that a vector runs over two row ends at
    /// most, and more than a vector of pixels.
    #[inline(always)]
    pub const fn dense(&self, lanes: usize) -> bool {
        2 * self.ow > lanes && self.wq > self.ow && self.nq >= lanes
    }

    /// Scratch the blocked kernel needs, in f32s: the transformed input and
    /// the wide output.
    #[inline(always)]
    pub const fn scratch_len(&self) -> usize {
        self.xt_len + if self.wide { self.shape.k * self.nq } else { 0 }
    }

    /// Every tap of one input channel: its index in the channel's FH·FW
    /// filter values and its offset into the channel's planes. The taps of
    /// one plane come together, so that consecutive reads stay close; at
    /// stride 1 and not shifted (one plane), in the filter's order. The
    /// blocked kernel packs the filters in this order and reads the
    /// offsets from this table.
    pub fn channel_taps(&self) -> Vec<(usize, usize)> {
        let [fh, fw] = self.shape.f;
        let [nph, npw] = self.phases;
        let [pyn, pxn] = if self.shifted {
            [self.period[0], fw]
        } else {
            self.period
        };
        let mut taps = Vec::with_capacity(fh * fw);
        for py in 0..nph {
            for px in 0..npw {
                for ky in (py..fh).step_by(pyn) {
                    for kx in (px..fw).step_by(pxn) {
                        taps.push((ky * fw + kx, self.tap_offset(0, ky, kx)));
                    }
                }
            }
        }
        taps
    }

    /// How far apart two input channels' planes are.
    pub const fn channel_stride(&self) -> usize {
        self.phases[0] * self.phases[1] * self.plane
    }

    /// [`Layout::transform`] at stride 1: each channel's one plane (or, shifted,
    /// one per filter column) holds the padded input, plane px shifted left
    /// by px·DW columns. Row by row, a zeroed left edge, a copy and a zeroed
    /// right edge (with AVX-512, masked vectors), with nothing worked out
    /// per row but the row.
    #[inline(always)]
    fn transform_unit_stride(&self, x: &[f32], xt: &mut [f32], avx512: Option<Avx512>) {
        let ConvShape {
            c,
            h,
            w,
            p: [ph, pw],
            ..
        } = self.shape;
        let (wq, plane, npw) = (self.wq, self.plane, self.phases[1]);
        let channels = xt[..self.xt_len].chunks_exact_mut(npw * plane);
        for (channel, planes) in x.chunks_exact(h * w).take(c).zip(channels) {
            for (px, planes) in planes.chunks_exact_mut(plane).enumerate() {
                // Column jq reads input column jq + start − PW: inside the
                // row for jq in lo..hi (from `first`, if any).
                let start = self.col_start(px);
                let lo = pw.saturating_sub(start).min(wq);
                let hi = (w + pw).saturating_sub(start).clamp(lo, wq);
                let first = if hi > lo { lo + start - pw } else { 0 };
                #[cfg(target_arch = "x86_64")]
                if avx512.is_some() {
                    // SAFETY: the token proves AVX-512F.
                    unsafe { pad_plane_avx512(planes, wq, channel, (h, w, ph), (lo, hi, first)) };
                    continue;
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = avx512;
                for (iq, row) in planes.chunks_exact_mut(wq).enumerate() {
                    let iy = iq.wrapping_sub(ph);
                    if iy >= h {
                        zero_row(row);
                        continue;
                    }
                    let (left, rest) = row.split_at_mut(lo);
                    let (mid, right) = rest.split_at_mut(hi - lo);
                    zero_row(left);
                    copy_row(mid, &channel[iy * w + first..]);
                    zero_row(right);
                }
            }
        }
    }

    /// The layout of `c` of the layer's channels (as a layer of its own):
    /// the transform of channels `c0..c0 + c` is this layout's transform of
    /// their input planes into their part of the transformed input, which
    /// starts at `c0` times `xt_len / C`. `None` unless `0 < c ≤ C`.
    pub fn channels(&self, c: usize) -> Option<Layout> {
        if c == 0 || c > self.shape.c {
            return None;
        }
        Some(Layout {
            shape: ConvShape { c, ..self.shape },
            xt_len: self.xt_len / self.shape.c * c,
            ..*self
        })
    }

    /// Writes the transformed input: zero-padded phase planes. Each input
    /// row is read once, into the row of every column phase it feeds; with
    /// AVX2's token, rows split into two or four phases go through its
    /// shuffles, and with AVX-512's, rows at stride 1 are written a masked
    /// vector at a time.
    #[inline(always)]
    pub fn transform(&self, x: &[f32], xt: &mut [f32], tokens: Active) {
        let avx2 = tokens.avx2;
        let ConvShape {
            c,
            h,
            w,
            s: [sh, sw],
            p: [ph, pw],
            ..
        } = self.shape;
        let (hq, wq, plane) = (self.hq, self.wq, self.plane);
        let [nph, npw] = self.phases;
        if sh == 1 && sw == 1 {
            return self.transform_unit_stride(x, xt, tokens.avx512);
        }
        // Padded column jq·SW + start(px) is input column
        // jq·SW + start(px) − PW: the columns jq in lo..hi of plane px
        // fall inside the row.
        let cols = |px: usize| {
            let start = self.col_start(px);
            let lo = pw.saturating_sub(start).div_ceil(sw).min(wq);
            let hi = (w + pw).saturating_sub(start).div_ceil(sw).clamp(lo, wq);
            (lo, hi)
        };
        // With column strides, or shifted (a plane per filter column), the
        // values of a padded input row that the column planes read,
        // (WQ − 1)·SW + the furthest plane's start + 1, kept on the stack
        // if they fit.
        let reach = (0..npw).map(|px| self.col_start(px) + 1).max().unwrap_or(0);
        let mut row_buf = [0.0f32; PADDED_ROW_MAX];
        let mut padded = match wq
            .saturating_sub(1)
            .checked_mul(sw)
            .and_then(|n| n.checked_add(reach))
        {
            Some(n) if (sw > 1 || self.shifted) && n <= PADDED_ROW_MAX => Some(&mut row_buf[..n]),
            _ => None,
        };
        // Every column phase, in order (plane px starting at column px): a
        // split of each row.
        let split = matches!((sw, npw), (2, 2) | (4, 4)) && self.col_start(1) == 1;
        let channels = xt[..self.xt_len].chunks_exact_mut(nph * npw * plane);
        for (channel, planes) in x.chunks_exact(h * w).take(c).zip(channels) {
            for py in 0..nph {
                let phases = &mut planes[py * npw * plane..(py + 1) * npw * plane];
                let first_row = self.row_start(py);
                for iq in 0..hq {
                    // Padded row iq·SH + start(py) is input row iy.
                    let iy = (iq * sh + first_row).wrapping_sub(ph);
                    if iy < h && split {
                        let src = &channel[iy * w..(iy + 1) * w];
                        let rows = phases.chunks_exact_mut(plane);
                        let mut rows = rows.map(|p| &mut p[iq * wq..(iq + 1) * wq]);
                        if let (Some(r0), Some(r1)) = (rows.next(), rows.next()) {
                            if sw == 2 {
                                split_padded(src, pw, [r0, r1], avx2);
                            } else if let (Some(r2), Some(r3)) = (rows.next(), rows.next()) {
                                split_padded(src, pw, [r0, r1, r2, r3], avx2);
                            }
                        }
                        continue;
                    }
                    if let (Some(padded), true) = (padded.as_deref_mut(), iy < h) {
                        // The padded row on the stack, then every phase of
                        // it at once: no bounds to work out per phase.
                        let src = &channel[iy * w..(iy + 1) * w];
                        let a = pw.min(padded.len());
                        let b = (pw + w).min(padded.len());
                        zero_row(&mut padded[..a]);
                        copy_row(&mut padded[a..b], &src[..b - a]);
                        zero_row(&mut padded[b..]);
                        let start = |px| self.col_start(px);
                        split_columns(padded, (sw, npw, wq), start, phases, (plane, iq * wq));
                        continue;
                    }
                    for px in 0..npw {
                        let row = &mut phases[px * plane + iq * wq..][..wq];
                        if iy >= h {
                            zero_row(row);
                            continue;
                        }
                        let src = &channel[iy * w..(iy + 1) * w];
                        let (lo, hi) = cols(px);
                        let (left, rest) = row.split_at_mut(lo);
                        let (mid, right) = rest.split_at_mut(hi - lo);
                        zero_row(left);
                        zero_row(right);
                        if mid.is_empty() {
                            continue;
                        }
                        // lo·SW ≥ PW − start(px), so this does not
                        // underflow.
                        let first = lo * sw + self.col_start(px) - pw;
                        if sw == 1 {
                            copy_row(mid, &src[first..first + mid.len()]);
                        } else {
                            for (v, s) in mid.iter_mut().zip(src[first..].chunks(sw)) {
                                *v = s[0];
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Divisor;

    #[test]
    fn division_by_multiplication_is_exact() {
        let mut n = 0x9E37_79B9_7F4A_7C15u64;
        for d in (1..200).chain([255, 256, 1000, 65_535, 65_536, (1 << 31) + 11]) {
            let div = Divisor::new(d);
            let edges = [0, 1, d - 1, d, d + 1, (1 << 32) - 1, 1 << 32, usize::MAX];
            for x in edges.into_iter().chain((0..300).map(|_| {
                n ^= n << 13;
                n ^= n >> 7;
                n ^= n << 17;
                (n >> (n % 40)) as usize
            })) {
                assert_eq!(div.div_rem(x), (x / d, x % d), "{x} / {d}");
            }
        }
    }
}

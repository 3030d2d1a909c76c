//! The convolution with filters in the lanes, AVX-512 and AVX2, for
//! layers whose output rows do not fill whole vectors of pixels, such as
//! AlexNet's first (55 pixels) and VGG's 56 × 56 blocks.
//!
//! The blocked kernel puts 16 pixels in a vector and numbers them across
//! rows, so that where a row is not a multiple of 16 pixels, some vectors
//! gather two rows through masked loads (a merge that takes a port the
//! FMAs need, on Intel cores); a stride also needs the input split into
//! phase planes, 16 per channel at stride 4. Here the vectors hold 16
//! filters instead, and neither matters: a tile is two or three vectors of
//! filters × up to [`TILE_PIXELS`] consecutive pixels of one output row,
//! and every tap loads one vector of filter values per group and
//! broadcasts one input value per pixel, read where it is (or from a
//! zero-padded copy). The filters are first packed 16 to a vector per
//! tap. A tile's sums, a vector of filters per pixel, are transposed in
//! registers and stored straight into the filters' planes.
//!
//! The tile's fixed costs (the transpose, and a store per filter and
//! tile) are paid once per tile, so the path pays only where a filter has
//! many taps. The loop over a filter row's taps is unrolled for the rows
//! of common layers (3 taps at stride 1 or 2, AlexNet's 11 at stride 4, 1
//! for 1 × 1 layers), so that every broadcast reads at a fixed offset; on
//! an Intel Xeon with two FMA ports, 3 × 3 layers of stride 1 then ran
//! faster here than in the blocked kernel whatever the width of their
//! rows, from 16 channels on (see [`applies`] for the rule and its
//! measurements).
//!
//! The AVX2 + FMA form ([`conv_avx2`]) has 8 filters to a vector and 16
//! registers: a tile is two vectors of filters × [`AVX2_TILE_PIXELS`]
//! consecutive pixels of the output plane, numbered across its rows, so
//! that a row of 55, 28 or 7 pixels needs no narrower tile of its own
//! (only the plane's last tile is narrower). Each pixel of a tile reads
//! its input from an offset of its own, into the zero-padded copy as
//! above; the tap's two filter vectors, six broadcasts and twelve FMAs
//! are written in assembly, since the compiler otherwise loads the next
//! tap's values early and spills accumulators. A last, odd vector of
//! filters takes tiles of 8 pixels. A tile's sums are transposed four
//! pixels at a time (8 filters × 4 pixels, each half of a vector one
//! filter's run) and stored straight into the filters' planes. On Zen 4
//! capped at AVX2, VGG's layers ran at 84 to 96 % of what a loop of FMAs
//! alone does; 3 × 4 tiles (three vectors of filters), which need all 16
//! registers, spilled an accumulator when compiled from intrinsics and
//! ran at half that speed, and tiles kept within a row (7 = 6 + 1 pixels)
//! took about 1.7 times as long on 7 × 7 outputs. See [`applies_avx2`]
//! for where the form pays.

#[cfg(target_arch = "x86_64")]
use super::layout::{copy_row, zero_row};
use super::layout::{tri, ConvShape};
use super::pointwise;

/// Filters per vector.
pub(super) const LANES: usize = 16;

/// Consecutive output pixels per tile (the last tile of a row may have
/// fewer).
pub const TILE_PIXELS: usize = 8;

/// Vectors of filters per tile, at most: 3 × 8 accumulators, 3 filter
/// vectors and a broadcast value take 28 of the 32 registers.
const TILE_GROUPS: usize = 3;

/// Fewest filter taps (C·FH·FW) a layer may have to take this path: the
/// measured break-even lies between 3 × 7 × 7 (147) and 3 × 9 × 9 (243).
pub const MIN_TAPS: usize = 240;

/// Fewest filter taps a layer whose filter rows are 3 taps at stride and
/// dilation 1 (3 × 3 layers of stride 1, which the tiles unroll) may have
/// to take this path, whatever its rows' width. On an Intel Xeon (AVX-512,
/// two FMA ports), one thread, µs, blocked kernel → this path: 16 → 32 on
/// 32 × 32 59 → 54; CIFAR-VGG's 32 → 32 on 32 × 32 119 → 104, 32 → 64 and
/// 64 → 64 on 16 × 16 59 → 53 and 120 → 110; VGG-16's 64 → 64 on
/// 224 × 224 29.0 → 23.6 ms, 128 → 128 on 112 × 112 28.7 → 25.3 ms;
/// 256 → 256 on 32 × 32 as fast. With 3 channels (27 taps) the blocked
/// kernel was 1.4 times as fast.
pub const MIN_TAPS_ROWS3: usize = 144;

/// Narrowest output row this path takes: ResNet's 7 × 7 layers (512
/// channels, 3 × 3) ran 1.4× as fast here as in the blocked kernel, which
/// computes them as rows of 9 padded pixels, two to a vector.
pub const MIN_ROW: usize = 7;

/// Whether a layer takes this path on a CPU with AVX-512, where it pays:
/// output rows of at least [`MIN_ROW`] pixels, more than one vector of
/// filters (a tile of one broadcasts a value per product, and its loads
/// would bound it), and either
///
/// - filter rows of 3 taps at stride and dilation 1 and at least
///   [`MIN_TAPS_ROWS3`] taps per filter;
/// - 1 × 1 layers of stride 1 without padding on planes of fewer than
///   [`POINTWISE_MAX_PIXELS`] pixels;
/// - or output rows not a multiple of 16 pixels (in the blocked kernel,
///   some of its vectors would gather two rows through masks, or compute
///   padding) and at least [`MIN_TAPS`] taps per filter.
///
/// Those 1 × 1 layers, MobileNetV2's, measured on an Intel Xeon (AVX-512,
/// two FMA ports), one thread, µs, blocked kernel → this path (best of 30
/// samples):
///
/// - 7 × 7: 576 → 160 70 → 57; 960 → 160 123 → 98; 960 → 320 227 → 182;
///   320 → 1280 341 → 274; 160 → 960 116 → 94
/// - 14 × 14: 384 → 96 101 → 86; 576 → 96 149 → 120; 96 → 576 144 → 134;
///   64 → 384 64 → 62; 256 → 64 44 → 40
/// - 28 × 28 and larger, slower: 32 → 192 63 → 87; 144 → 24 on 56 × 56
///   181 → 276
pub const fn applies(shape: &ConvShape) -> bool {
    let Some(g) = Geom::new(*shape, LANES) else {
        return false;
    };
    let s = g.s;
    let fits = if matches!(g.row_form(), (3, 1)) {
        g.taps >= MIN_TAPS_ROWS3
    } else if pointwise(&s) {
        s.h * s.w < POINTWISE_MAX_PIXELS
    } else {
        g.ow % LANES != 0 && g.taps >= MIN_TAPS
    };
    fits && g.ow >= MIN_ROW && s.k > LANES
}

/// Pixels from which a 1 × 1 layer of stride 1 (no padding) runs in the
/// blocked kernels rather than on this path: there it is one row of H·W
/// pixels, which fills 16-pixel vectors but for the last; on a 7 × 7
/// plane 49 pixels take four vectors (a quarter of their lanes recompute
/// pixels), on 14 × 14 196 take 13, and the filters of the layers there
/// (up to 1.6 MB) stream from L2 or L3 for every tile.
pub const POINTWISE_MAX_PIXELS: usize = 256;

/// Fewest filter taps (C·FH·FW) a layer of stride 1 may have to take the
/// AVX2 form: with 64 filters, 16 channels of 3 × 3 ran 8 % faster on
/// 14 × 14, as fast on 24 × 24 and 28 × 28, 4 % slower on 56 × 56; 12
/// channels (108 taps) as fast on 28 × 28, 8 % slower on 56 × 56.
pub const AVX2_MIN_TAPS: usize = 144;

/// Fewest filter taps a strided layer may have to take the AVX2 form
/// (the blocked kernel splits a strided layer's input into phase planes):
/// ResNet's 1 × 1 of stride 2 on 64 channels ran 2 % slower here, on 128
/// to 512 channels 12 to 22 % faster.
pub const AVX2_MIN_TAPS_STRIDED: usize = 100;

/// Whether a layer takes the AVX2 form on a CPU with AVX2 but not
/// AVX-512: output rows not a multiple of 16 pixels (the blocked AVX2
/// tile's width, which such rows fill), more than one vector of filters,
/// and at least [`AVX2_MIN_TAPS`] taps per filter, or
/// [`AVX2_MIN_TAPS_STRIDED`] if the layer is strided.
///
/// Measured on an AMD EPYC (Zen 4) capped at AVX2 (`CNN_ISA=avx2`), one
/// thread, µs per layer, blocked AVX2 kernel → this form (the median of
/// three rounds' minima over 11 paired runs; ratio: the median of the
/// paired ratios):
///
/// - AlexNet conv1, 3 → 96, 11 × 11, stride 4, 227 × 227: 2136 → 1990 (0.92)
/// - VGG 64 → 64, 3 × 3, 56 × 56: 2247 → 2209 (0.98)
/// - VGG 128 → 128 on 28 × 28: 2289 → 2120 (0.93)
/// - VGG 256 → 256 on 14 × 14: 2352 → 2125 (0.91)
/// - VGG 512 → 512 on 7 × 7: 3075 → 2298 (0.70)
/// - ResNet 64 → 128, 3 × 3, stride 2, 56 × 56: 1325 → 1105 (0.83)
/// - ResNet 64 → 128, 1 × 1, stride 2, 56 × 56: 178 → 184 (1.02), blocked
/// - ResNet's stem, 3 → 64, 7 × 7, stride 2, 224 × 224: 2379 → 2536 (1.05),
///   blocked (rows of 112)
/// - CIFAR-VGG 3 → 32 on 32 × 32: 27.1 → 48.2 (1.78), blocked (27 taps)
/// - CIFAR-VGG 32 → 32 on 32 × 32: 191 → 201 (1.05), blocked (rows of 32)
/// - CIFAR-VGG 32 → 64 on 16 × 16: 91.7 → 93.2 (1.02), blocked (rows of 16)
/// - CIFAR-VGG 64 → 64 on 16 × 16: 179 → 178 (0.98), blocked (rows of 16)
/// - CIFAR-VGG 64 → 128 on 8 × 8: 92.2 → 88.5 (0.97)
/// - LeNet's 6 → 16, 5 × 5 on 14 × 14: 6.6 → 4.9 (0.75)
///
/// 1 × 1 layers of stride 1 without padding (which the blocked kernel
/// runs as one row of H·W pixels) take the form only on planes of fewer
/// than [`POINTWISE_MAX_PIXELS`] pixels. MobileNetV2's, same
/// measure (best of 30 samples, one thread):
///
/// - 7 × 7, 576 → 160: 122 → 99 (0.81); 960 → 160: 205 → 161 (0.79);
///   960 → 320: 416 → 326 (0.78); 320 → 1280: 518 → 474 (0.92); 160 → 960:
///   190 → 184 (0.97)
/// - 14 × 14, 384 → 64: 0.96; 384 → 96: 0.96; 576 → 96: 0.94
pub const fn applies_avx2(shape: &ConvShape) -> bool {
    let Some(g) = Geom::new(*shape, AVX2_LANES) else {
        return false;
    };
    let s = g.s;
    if pointwise(&s) && s.h * s.w >= POINTWISE_MAX_PIXELS {
        return false;
    }
    let min_taps = if s.s[0] > 1 || s.s[1] > 1 {
        AVX2_MIN_TAPS_STRIDED
    } else {
        AVX2_MIN_TAPS
    };
    g.ow % (2 * AVX2_LANES) != 0 && s.k > AVX2_LANES && g.taps >= min_taps
}

/// The sizes this path works with.
#[derive(Debug, Clone, Copy)]
struct Geom {
    s: ConvShape,
    oh: usize,
    ow: usize,
    /// Height and width of the (padded) input planes.
    hp: usize,
    wp: usize,
    /// Filter taps per filter, C·FH·FW.
    taps: usize,
    /// Vectors of filters, ⌈K/lanes⌉.
    groups: usize,
    /// Scratch: the padded input, if the layer is padded.
    padded_len: usize,
}

impl Geom {
    /// The sizes of `s` with `lanes` filters to a vector (16 or 8), or
    /// `None` if the shape does not fit, is grouped (the caller runs one
    /// group at a time), has no output pixel, or a length overflows
    /// `usize`.
    const fn new(s: ConvShape, lanes: usize) -> Option<Geom> {
        if !s.fits() || s.g != 1 || s.o[1] == 0 {
            return None;
        }
        let [oh, ow] = s.o;
        // `fits` checked that the padded sizes fit.
        let hp = s.h + 2 * s.p[0];
        let wp = s.w + 2 * s.p[1];
        let taps = tri!(s.taps());
        let groups = s.k.div_ceil(lanes);
        let padded_len = if s.p[0] == 0 && s.p[1] == 0 {
            0
        } else {
            tri!(tri!(s.c.checked_mul(hp)).checked_mul(wp))
        };
        // The input, output and packed filters are slices: their lengths
        // fit.
        tri!(s.c.checked_mul(tri!(s.h.checked_mul(s.w))));
        tri!(s.k.checked_mul(tri!(oh.checked_mul(ow))));
        tri!(tri!(groups.checked_mul(taps)).checked_mul(lanes));
        Some(Geom {
            s,
            oh,
            ow,
            hp,
            wp,
            taps,
            groups,
            padded_len,
        })
    }

    /// Whether the layer's filters outweigh its (padded) input: then the
    /// tiles run filter groups outermost, so that each group's filters
    /// come from memory once, rather than all of them once per run of
    /// pixels.
    #[cfg(target_arch = "x86_64")]
    const fn filters_outweigh_input(&self) -> bool {
        self.taps * self.s.k > self.s.c * self.hp * self.wp
    }

    /// The AVX-512 tiles' form of the filter rows: (taps, stride) at
    /// dilation 1 where they unroll the row (VGG's and ResNet's 3 × 3
    /// layers, strided or not, AlexNet's first and 1 × 1 layers), else
    /// (0, 0).
    const fn row_form(&self) -> (usize, usize) {
        match (self.s.f[1], self.s.s[1], self.s.d[1]) {
            (3, 1, 1) => (3, 1),
            (3, 2, 1) => (3, 2),
            (11, 4, 1) => (11, 4),
            (1, 1, 1) => (1, 1),
            _ => (0, 0),
        }
    }
}

/// Scratch of this path, in f32s: the zero-padded input if the layer is
/// padded; `None` if the path does not take the layer (see [`Geom::new`]).
pub const fn scratch_len(shape: &ConvShape) -> Option<usize> {
    match Geom::new(*shape, LANES) {
        Some(g) => Some(g.padded_len),
        None => None,
    }
}

/// [`pad`], its channels split in two halves over a team's threads when
/// the layer is split ([`crate::par`]), each half by `pad_half`: otherwise
/// the partner waits for the whole copy, which with two cores' caches
/// between them (the partner read the last pass's copy) is slow.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pad_split(
    g: &Geom,
    x: &[f32],
    xp: &mut [f32],
    split: bool,
    pad_half: impl Fn(&Geom, &[f32], &mut [f32]) + Sync,
) {
    let half = g.s.c / 2;
    if split && half > 0 && crate::par::active() {
        let (x0, x1) = x.split_at(half * g.s.h * g.s.w);
        let (p0, p1) = xp.split_at_mut(half * g.hp * g.wp);
        crate::par::join(|| pad_half(g, x0, p0), || pad_half(g, x1, p1));
    } else {
        pad_half(g, x, xp);
    }
}

/// Copies `x` into `xp` with the layer's zero padding around each plane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pad(g: &Geom, x: &[f32], xp: &mut [f32]) {
    let [ph, pw] = g.s.p;
    let (h, w) = (g.s.h, g.s.w);
    for (src, dst) in x.chunks_exact(h * w).zip(xp.chunks_exact_mut(g.hp * g.wp)) {
        dst[..ph * g.wp].fill(0.0);
        dst[(ph + h) * g.wp..].fill(0.0);
        for (s, d) in src
            .chunks_exact(w)
            .zip(dst[ph * g.wp..].chunks_exact_mut(g.wp))
        {
            zero_row(&mut d[..pw]);
            copy_row(&mut d[pw..pw + w], s);
            zero_row(&mut d[pw + w..]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::conv;

/// The kernel itself.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_castpd_ps, _mm512_castps_pd, _mm512_fmadd_ps, _mm512_loadu_ps,
        _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_permutex2var_ps,
        _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps, _mm512_unpackhi_pd,
        _mm512_unpackhi_ps, _mm512_unpacklo_pd, _mm512_unpacklo_ps, _mm_prefetch, _MM_HINT_T1,
    };

    use super::{pad, pad_split, ConvShape, Geom, LANES, TILE_GROUPS, TILE_PIXELS};
    use crate::cpu::Avx512;

    /// The convolution of `x` into `y` (channel planes of OH·OW), bias and
    /// ReLU included when `relu`, with the filters packed 16 to a vector
    /// (tap t of filter 16·grp + i at `(grp·taps + t)·16 + i`). Two threads
    /// share the groups of filters when `split`. The caller has checked
    /// the slices' lengths against the shape, the scratch against
    /// [`scratch_len`](super::scratch_len); a shape the path does not take
    /// does nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv(
        token: Avx512,
        s: &ConvShape,
        split: bool,
        x: &[f32],
        packed: &[f32],
        bias: &[f32],
        y: &mut [f32],
        relu: bool,
        scratch: &mut [f32],
    ) {
        let Some(g) = Geom::new(*s, LANES) else {
            return;
        };
        let xp: &[f32] = if s.p == [0, 0] {
            x
        } else {
            let padded = &mut scratch[..g.padded_len];
            pad_split(&g, x, padded, split, pad);
            padded
        };
        let plane = g.oh * g.ow;
        if split && g.groups > 1 {
            let half = g.groups.div_ceil(2);
            let (y0, y1) = y[..s.k * plane].split_at_mut(half * LANES * plane);
            crate::par::join(
                || groups(token, &g, 0..half, xp, packed, bias, relu, y0),
                || groups(token, &g, half..g.groups, xp, packed, bias, relu, y1),
            );
        } else {
            let y = &mut y[..s.k * plane];
            groups(token, &g, 0..g.groups, xp, packed, bias, relu, y);
        }
    }

    /// The first two steps of a transpose, for each four vectors 4i .. 4i + 4
    /// of `r`: vector 4i + m of the result holds, in each 128-bit lane l,
    /// lane 4l + m of those four vectors. Pairs of vectors interleaved, then
    /// pairs of pairs.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[inline(always)]
    unsafe fn columns_of_fours<const N: usize>(r: [__m512; N]) -> [__m512; N] {
        // SAFETY: the CPU supports AVX-512F (this function's contract).
        unsafe {
            let mut a = [_mm512_setzero_ps(); N];
            for i in 0..N / 2 {
                a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let mut b = [_mm512_setzero_ps(); N];
            for i in 0..N / 4 {
                for h in 0..2 {
                    let p = _mm512_castps_pd(a[4 * i + h]);
                    let q = _mm512_castps_pd(a[4 * i + 2 + h]);
                    b[4 * i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(p, q));
                    b[4 * i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(p, q));
                }
            }
            b
        }
    }

    /// Output channels of groups `grps` (written to `y`, which starts at the
    /// first group's first channel), tile by tile along each output row.
    #[allow(clippy::too_many_arguments)]
    fn groups(
        token: Avx512,
        g: &Geom,
        grps: std::ops::Range<usize>,
        xp: &[f32],
        packed: &[f32],
        bias: &[f32],
        relu: bool,
        y: &mut [f32],
    ) {
        let _ = token;
        let k0 = grps.start * LANES;
        let (full, rest) = (g.ow / TILE_PIXELS, g.ow % TILE_PIXELS);
        let form = g.row_form();
        // A tile of groups `grp ..` × `$p` pixels from `ox0` of row `oy`, of
        // $n groups as the groups left ask, in the row's form.
        macro_rules! tile {
            ($n:expr, $p:literal, $at:expr, $pre:expr) => {
                match form {
                    (3, 1) => tile!($n, $p, $at, $pre, 3, 1),
                    (3, 2) => tile!($n, $p, $at, $pre, 3, 2),
                    (11, 4) => tile!($n, $p, $at, $pre, 11, 4),
                    (1, 1) => tile!($n, $p, $at, $pre, 1, 1),
                    _ => tile!($n, $p, $at, $pre, 0, 0),
                }
            };
            ($n:expr, $p:literal, $at:expr, $pre:expr, $fw:literal, $sw:literal) => {
                // SAFETY: the token proves AVX-512F, AVX2 and FMA.
                unsafe {
                    let (at, pre) = ($at, $pre);
                    match $n {
                        3 => tile::<3, $p, $fw, $sw>(g, xp, packed, bias, relu, at, y, k0, pre),
                        2 => tile::<2, $p, $fw, $sw>(g, xp, packed, bias, relu, at, y, k0, pre),
                        _ => tile::<1, $p, $fw, $sw>(g, xp, packed, bias, relu, at, y, k0, pre),
                    }
                }
            };
        }
        // A row of tiles of `n` groups from `grp`, the first of which
        // prefetches `pre`.
        let mut row = |grp: usize, n: usize, oy: usize, pre: &[f32]| {
            for t in 0..full {
                let pre = if t == 0 { pre } else { &[] };
                tile!(n, 8, (grp, oy, t * TILE_PIXELS), pre);
            }
            // The row's last pixels, fewer than a tile.
            let at = (grp, oy, full * TILE_PIXELS);
            let pre = if full == 0 { pre } else { &[] };
            match rest {
                0 => {}
                1 => tile!(n, 1, at, pre),
                2 => tile!(n, 2, at, pre),
                3 => tile!(n, 3, at, pre),
                4 => tile!(n, 4, at, pre),
                5 => tile!(n, 5, at, pre),
                6 => tile!(n, 6, at, pre),
                _ => tile!(n, 7, at, pre),
            }
        };
        // Threes and twos: a tile of one group broadcasts a value per
        // product, and its loads would bound it.
        let sets = || {
            let mut grp = grps.start;
            std::iter::from_fn(move || {
                let n = match grps.end.checked_sub(grp)? {
                    0 => return None,
                    1 => 1,
                    2 | 4 => 2,
                    _ => TILE_GROUPS,
                };
                grp += n;
                Some((grp - n, n))
            })
        };
        // Rows outermost, so that a row's input stays in L1 while every set
        // of groups passes over it. Where the filters outweigh the input
        // (ResNet's 512 → 512 on 7 × 7: 9.4 MB of filters, 166 KB of
        // input), sets outermost instead, so that a set's filters come
        // from memory once rather than once per row; and while a set's
        // rows after the first run on its filters in L2, they prefetch the
        // next set's into L2, a share per row, so that the next set's first
        // row does not wait on memory.
        if g.filters_outweigh_input() {
            let set_len = g.taps * LANES;
            let mut sets = sets().peekable();
            while let Some((grp, n)) = sets.next() {
                let next = match sets.peek() {
                    Some(&(next, m)) => &packed[next * set_len..(next + m) * set_len],
                    None => &[],
                };
                let share = next.len().div_ceil(g.oh.saturating_sub(1).max(1)).max(1);
                let mut shares = next.chunks(share);
                for oy in 0..g.oh {
                    let pre = if oy == 0 {
                        &[]
                    } else {
                        shares.next().unwrap_or(&[])
                    };
                    row(grp, n, oy, pre);
                }
            }
        } else {
            for oy in 0..g.oh {
                for (grp, n) in sets() {
                    row(grp, n, oy, &[]);
                }
            }
        }
    }

    /// One tile: filter groups `grp .. grp + N` × pixels `ox0 .. ox0 + P`
    /// (P ≤ 8) of output row `oy`, written to the filters' planes in `y`,
    /// whose first plane is filter `k0`'s. A function of its own for each
    /// size of tile, not inlined into the loop over tiles.
    ///
    /// `FW` nonzero: the filter rows are `FW` taps wide, at horizontal
    /// stride `SW` and dilation 1, so that the loop over a row's taps
    /// unrolls and every broadcast reads at a fixed offset. On an Intel
    /// Xeon (AVX-512, two FMA ports) the loop over a row of 3 taps of
    /// run-time length ran at about 0.8 of the unrolled one's rate.
    ///
    /// # Safety
    /// The CPU supports AVX-512F, AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn tile<const N: usize, const P: usize, const FW: usize, const SW: usize>(
        g: &Geom,
        xp: &[f32],
        packed: &[f32],
        bias: &[f32],
        relu: bool,
        (grp, oy, ox0): (usize, usize, usize),
        y: &mut [f32],
        k0: usize,
        pre: &[f32],
    ) {
        let s = g.s;
        let [fh, _] = s.f;
        let [sh, _] = s.s;
        let [dh, _] = s.d;
        // Fixed where `FW` says so (checked below).
        let [fw, sw, dw] = if FW > 0 {
            [FW, SW, 1]
        } else {
            [s.f[1], s.s[1], s.d[1]]
        };
        assert!(fw == s.f[1] && sw == s.s[1] && dw == s.d[1]);
        let plane = g.oh * g.ow;
        // The filters of the tile's groups below K.
        let k1 = ((grp + N) * LANES).min(s.k);
        // Bounds: the tile reads rows oy·SH + ky·DH (< HP) of each plane,
        // columns ox0·SW + p·SW + kx·DW (< WP); packed groups grp .. grp + N;
        // biases below K; writes y[(k − k0)·plane + oy·OW + ox0 ..][..8] for
        // k below k1.
        let reach = [(fh - 1) * dh + 1, (fw - 1) * dw + 1];
        assert!(P <= TILE_PIXELS && oy * sh + reach[0] <= g.hp);
        assert!((ox0 + P - 1) * sw + reach[1] <= g.wp);
        assert!(xp.len() >= s.c * g.hp * g.wp && bias.len() >= s.k);
        assert!(packed.len() >= (grp + N) * g.taps * LANES);
        assert!(grp * LANES >= k0 && k1 > grp * LANES && oy < g.oh && ox0 + P <= g.ow);
        assert!(y.len() >= (k1 - 1 - k0) * plane + oy * g.ow + ox0 + P);
        // SAFETY: the CPU supports AVX-512F (this function's contract); every
        // access is in bounds, as asserted above.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); P]; N];
            for (n, acc) in acc.iter_mut().enumerate() {
                let first = (grp + n) * LANES;
                let mask = ((1u32 << (s.k - first).min(LANES)) - 1) as u16;
                *acc = [_mm512_maskz_loadu_ps(mask, bias.as_ptr().add(first)); P];
            }
            let x = xp.as_ptr();
            let w = packed.as_ptr().add(grp * g.taps * LANES);
            // `pre`'s cache lines (of 16 values), a share per channel.
            let lines = pre.len().div_ceil(LANES);
            let per_channel = lines.div_ceil(s.c);
            let mut line = 0;
            for c in 0..s.c {
                for _ in 0..per_channel {
                    if line < lines {
                        _mm_prefetch::<_MM_HINT_T1>(pre.as_ptr().add(line * LANES).cast());
                    }
                    line += 1;
                }
                for ky in 0..fh {
                    let row = x.add((c * g.hp + oy * sh + ky * dh) * g.wp + ox0 * sw);
                    let taps = w.add((c * fh + ky) * fw * LANES);
                    for kx in 0..fw {
                        let mut f = [_mm512_setzero_ps(); N];
                        for (n, f) in f.iter_mut().enumerate() {
                            *f = _mm512_loadu_ps(taps.add((n * g.taps + kx) * LANES));
                        }
                        // Pixel by pixel, so that one broadcast value is
                        // live at a time.
                        for p in 0..P {
                            let v = _mm512_set1_ps(*row.add(p * sw + kx * dw));
                            for (acc, &f) in acc.iter_mut().zip(&f) {
                                acc[p] = _mm512_fmadd_ps(f, v, acc[p]);
                            }
                        }
                    }
                }
            }
            let zero = _mm512_setzero_ps();
            let out = y.as_mut_ptr().add(oy * g.ow + ox0);
            // The tile's pixels in either half of a vector.
            let lo = ((1u32 << P) - 1) as u16;
            let hi = lo << TILE_PIXELS;
            for (n, acc) in acc.iter().enumerate() {
                let mut pixels = [zero; TILE_PIXELS];
                for (v, &a) in pixels.iter_mut().zip(acc) {
                    *v = if relu { _mm512_max_ps(zero, a) } else { a };
                }
                // Vector 2m + h holds filters 8h + m and 8h + 4 + m of the
                // group in its halves.
                let first = (grp + n) * LANES;
                for (v, t) in transpose8(pixels).into_iter().enumerate() {
                    let (m, h) = (v / 2, v % 2);
                    let (low, high) = (first + 8 * h + m, first + 8 * h + 4 + m);
                    if low < k1 {
                        _mm512_mask_storeu_ps(out.add((low - k0) * plane), lo, t);
                    }
                    if high < k1 {
                        // Masked-off lanes are not written.
                        let at = out.add((high - k0) * plane).wrapping_sub(TILE_PIXELS);
                        _mm512_mask_storeu_ps(at, hi, t);
                    }
                }
            }
        }
    }

    /// Transposes 8 pixels × 16 filters (a vector per pixel) into 16 runs of 8
    /// pixels, two per vector: vector 2m + h holds filter 8h + m in its low
    /// half and filter 8h + 4 + m in its high half. [`columns_of_fours`], then
    /// one two-source permute per vector.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[inline(always)]
    unsafe fn transpose8(r: [__m512; TILE_PIXELS]) -> [__m512; TILE_PIXELS] {
        // SAFETY: the CPU supports AVX-512F (this function's contract).
        unsafe {
            // b[4i + m] holds, in each 128-bit lane l, filter 4l + m of pixels
            // 4i .. 4i + 4.
            let b = columns_of_fours(r);
            // Lanes 2h and 2h + 1 of pixels 0..4 and 4..8, interleaved.
            let pick = [
                _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23),
                _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31),
            ];
            let mut t = [_mm512_setzero_ps(); TILE_PIXELS];
            for m in 0..4 {
                for (h, &pick) in pick.iter().enumerate() {
                    t[2 * m + h] = _mm512_permutex2var_ps(b[m], pick, b[4 + m]);
                }
            }
            t
        }
    }
}

/// Filters per vector of the AVX2 form.
pub(super) const AVX2_LANES: usize = 8;

/// Output pixels per tile of two vectors of filters in the AVX2 form:
/// 2 × 6 accumulators, and with the 2 vectors of filter values and a
/// broadcast value, 15 of the 16 registers. The pixels run on across the
/// rows of an output plane, so that only the plane's last tile is
/// narrower.
pub const AVX2_TILE_PIXELS: usize = 6;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::conv as conv_avx2;

/// The AVX2 + FMA form: 8 filters to a vector, 16 registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m128, __m256, _mm256_broadcast_ss, _mm256_castpd_ps, _mm256_castps256_ps128,
        _mm256_castps_pd, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps,
        _mm256_setzero_ps, _mm256_unpackhi_pd, _mm256_unpackhi_ps, _mm256_unpacklo_pd,
        _mm256_unpacklo_ps, _mm_castps_pd, _mm_movehl_ps, _mm_store_sd, _mm_store_ss,
        _mm_storeu_ps,
    };

    use super::{pad, pad_split, ConvShape, Geom, AVX2_LANES as LANES, AVX2_TILE_PIXELS as PIXELS};
    use crate::cpu::Avx2;

    /// Output pixels per tile of one vector of filters (a last, odd one):
    /// 8 accumulators, as many as keep two FMA units busy through their
    /// latency of four cycles.
    const SINGLE: usize = 8;

    /// The convolution of `x` into `y` (channel planes of OH·OW), bias and
    /// ReLU included when `relu`, with the filters packed 8 to a vector
    /// (tap t of filter 8·grp + i at `(grp·taps + t)·8 + i`). Two threads
    /// share the groups of filters when `split`. The caller has checked
    /// the slices' lengths against the shape, the scratch against
    /// [`scratch_len`](super::scratch_len); a shape the path does not take
    /// does nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv(
        token: Avx2,
        s: &ConvShape,
        split: bool,
        x: &[f32],
        packed: &[f32],
        bias: &[f32],
        y: &mut [f32],
        relu: bool,
        scratch: &mut [f32],
    ) {
        let Some(g) = Geom::new(*s, LANES) else {
            return;
        };
        let xp: &[f32] = if s.p == [0, 0] {
            x
        } else {
            let padded = &mut scratch[..g.padded_len];
            // SAFETY: the token proves AVX2.
            pad_split(&g, x, padded, split, |g, x, xp| unsafe {
                pad_avx2(g, x, xp)
            });
            padded
        };
        let plane = g.oh * g.ow;
        if split && g.groups > 1 {
            // An even number of groups first (of three or more), so that at
            // most one half has an odd group.
            let half = if g.groups > 2 {
                g.groups.div_ceil(4) * 2
            } else {
                1
            };
            let (y0, y1) = y[..s.k * plane].split_at_mut(half * LANES * plane);
            crate::par::join(
                || groups(token, &g, 0..half, xp, packed, bias, relu, y0),
                || groups(token, &g, half..g.groups, xp, packed, bias, relu, y1),
            );
        } else {
            let y = &mut y[..s.k * plane];
            groups(token, &g, 0..g.groups, xp, packed, bias, relu, y);
        }
    }

    /// [`pad`] compiled with AVX2, so that its copies of rows are vector
    /// moves.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn pad_avx2(g: &Geom, x: &[f32], xp: &mut [f32]) {
        pad(g, x, xp);
    }

    /// Output channels of groups `grps` (written to `y`, which starts at
    /// the first group's first channel): for each run of [`PIXELS`]
    /// pixels of the output plane in turn, tiles of two groups; then a
    /// last, odd group in runs of [`SINGLE`] pixels.
    #[allow(clippy::too_many_arguments)]
    fn groups(
        token: Avx2,
        g: &Geom,
        grps: std::ops::Range<usize>,
        xp: &[f32],
        packed: &[f32],
        bias: &[f32],
        relu: bool,
        y: &mut [f32],
    ) {
        let _ = token;
        let k0 = grps.start * LANES;
        let plane = g.oh * g.ow;
        // A tile of $n groups from `grp` × $p pixels from `at`.
        macro_rules! tile {
            ($n:literal, $p:literal, $grp:expr, $at:expr) => {
                // SAFETY: the token proves AVX2 and FMA.
                unsafe { tile::<$n, $p>(g, xp, packed, bias, relu, ($grp, $at), y, k0) }
            };
        }
        // Runs of `run` pixels from the plane's first: (q, oy, ox) of each,
        // pixel q at row oy, column ox.
        let runs = |run: usize| {
            let (mut oy, mut ox) = (0, 0);
            (0..plane).step_by(run).map(move |q| {
                let at = (q, oy, ox);
                ox += run;
                while ox >= g.ow {
                    (oy, ox) = (oy + 1, ox - g.ow);
                }
                at
            })
        };
        let pairs = grps.start..grps.end - grps.len() % 2;
        let mut pair = |grp: usize, at: (usize, usize, usize)| {
            // The plane's last pixels, fewer than a tile.
            match plane - at.0 {
                1 => tile!(2, 1, grp, at),
                2 => tile!(2, 2, grp, at),
                3 => tile!(2, 3, grp, at),
                4 => tile!(2, 4, grp, at),
                5 => tile!(2, 5, grp, at),
                _ => tile!(2, 6, grp, at),
            }
        };
        // Runs of pixels outermost, so that a run's input stays in L1
        // while every pair of groups passes over it, their filters from
        // L2. Where the filters outweigh the input (1 × 1 layers on small
        // planes: MobileNetV2's 320 → 1280 on 7 × 7 has 1.6 MB of filters
        // and 63 KB of input), pairs of groups outermost instead, so that
        // a pair's filters stay in L1 over the plane rather than all of
        // them coming from L2 or L3 for every run.
        if g.filters_outweigh_input() {
            for grp in pairs.clone().step_by(2) {
                for at in runs(PIXELS) {
                    pair(grp, at);
                }
            }
        } else {
            for at in runs(PIXELS) {
                for grp in pairs.clone().step_by(2) {
                    pair(grp, at);
                }
            }
        }
        if pairs.end < grps.end {
            let grp = pairs.end;
            for at in runs(SINGLE) {
                match plane - at.0 {
                    1 => tile!(1, 1, grp, at),
                    2 => tile!(1, 2, grp, at),
                    3 => tile!(1, 3, grp, at),
                    4 => tile!(1, 4, grp, at),
                    5 => tile!(1, 5, grp, at),
                    6 => tile!(1, 6, grp, at),
                    7 => tile!(1, 7, grp, at),
                    _ => tile!(1, 8, grp, at),
                }
            }
        }
    }

    /// One tile: filter groups `grp .. grp + N` × output pixels
    /// `q .. q + P` of the plane (pixel q at row `oy`, column `ox`; the
    /// pixels run on into the next rows), written to the filters' planes in
    /// `y`, whose first plane is filter `k0`'s. A function of its own for
    /// each size of tile, not inlined into the loop over tiles.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const N: usize, const P: usize>(
        g: &Geom,
        xp: &[f32],
        packed: &[f32],
        bias: &[f32],
        relu: bool,
        (grp, (q, oy, ox)): (usize, (usize, usize, usize)),
        y: &mut [f32],
        k0: usize,
    ) {
        let s = g.s;
        let [fh, fw] = s.f;
        let [sh, sw] = s.s;
        let [dh, dw] = s.d;
        let plane = g.oh * g.ow;
        // The filters of the tile's groups below K.
        let k1 = ((grp + N) * LANES).min(s.k);
        // Each pixel's first input value in a padded plane: it reads rows
        // oy·SH + ky·DH (< HP), columns ox·SW + kx·DW (< WP).
        let reach = [(fh - 1) * dh + 1, (fw - 1) * dw + 1];
        let mut off = [0usize; P];
        let (mut py, mut px) = (oy, ox);
        for off in &mut off {
            assert!(py * sh + reach[0] <= g.hp && px * sw + reach[1] <= g.wp);
            *off = py * sh * g.wp + px * sw;
            px += 1;
            if px == g.ow {
                (py, px) = (py + 1, 0);
            }
        }
        // Bounds: reads planes below C of the padded input, packed groups
        // grp .. grp + N, biases below K; writes y[(k − k0)·plane + q ..][..P]
        // for k below k1.
        assert!(P <= SINGLE && q == oy * g.ow + ox && ox < g.ow && q + P <= plane);
        assert!(xp.len() >= s.c * g.hp * g.wp && bias.len() >= s.k);
        assert!(packed.len() >= (grp + N) * g.taps * LANES);
        assert!(grp * LANES >= k0 && k1 > grp * LANES);
        assert!(y.len() >= (k1 - 1 - k0) * plane + q + P);
        // SAFETY: the CPU supports AVX2 and FMA (this function's contract);
        // every access is in bounds, as asserted above.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); P]; N];
            for (n, acc) in acc.iter_mut().enumerate() {
                let first = (grp + n) * LANES;
                let b = if first + LANES <= s.k {
                    _mm256_loadu_ps(bias.as_ptr().add(first))
                } else {
                    // The last group, zero past K.
                    let mut b = [0.0f32; LANES];
                    for (b, &v) in b.iter_mut().zip(bias.get(first..).unwrap_or_default()) {
                        *b = v;
                    }
                    _mm256_loadu_ps(b.as_ptr())
                };
                *acc = [b; P];
            }
            // Group n's filter values of a tap are `ws` after group 0's.
            let (w, ws) = (packed.as_ptr().add(grp * g.taps * LANES), g.taps * LANES);
            // One tap: the filter values at `$w` times the input values at
            // `$x + off[p]`.
            macro_rules! tap {
                ($x:expr, $w:expr) => {{
                    let (x, w): (*const f32, *const f32) = ($x, $w);
                    if let (Ok(acc), Ok(off)) = (
                        <&mut [__m256; 12]>::try_from(acc.as_flattened_mut()),
                        <&[usize; 6]>::try_from(&off[..]),
                    ) {
                        tap_2x6(acc, w, ws, x, off);
                    } else if let (Ok(acc), Ok(off)) = (
                        <&mut [__m256; 8]>::try_from(acc.as_flattened_mut()),
                        <&[usize; 8]>::try_from(&off[..]),
                    ) {
                        tap_1x8(acc, w, x, off);
                    } else {
                        let mut f = [_mm256_setzero_ps(); N];
                        for (n, f) in f.iter_mut().enumerate() {
                            *f = _mm256_loadu_ps(w.add(n * ws));
                        }
                        for p in 0..P {
                            let v = _mm256_broadcast_ss(&*x.add(off[p]));
                            for (acc, &f) in acc.iter_mut().zip(&f) {
                                acc[p] = _mm256_fmadd_ps(f, v, acc[p]);
                            }
                        }
                    }
                }};
            }
            // 1 × 1 and 3 × 3 filters with their taps unrolled, others in
            // loops.
            let x = xp.as_ptr();
            let (xs, fs) = (g.hp * g.wp, fh * fw * LANES);
            if fh == 1 && fw == 1 {
                for c in 0..s.c {
                    tap!(x.add(c * xs), w.add(c * fs));
                }
            } else if fh == 3 && fw == 3 {
                let (rs, cs) = (dh * g.wp, dw);
                for c in 0..s.c {
                    let (x, w) = (x.add(c * xs), w.add(c * fs));
                    for ky in 0..3 {
                        for kx in 0..3 {
                            tap!(x.add(ky * rs + kx * cs), w.add((ky * 3 + kx) * LANES));
                        }
                    }
                }
            } else {
                for c in 0..s.c {
                    for ky in 0..fh {
                        let x = x.add(c * xs + ky * dh * g.wp);
                        let w = w.add(c * fs + ky * fw * LANES);
                        for kx in 0..fw {
                            tap!(x.add(kx * dw), w.add(kx * LANES));
                        }
                    }
                }
            }
            let zero = _mm256_setzero_ps();
            let out = y.as_mut_ptr().add(q);
            for (n, acc) in acc.iter().enumerate() {
                let first = (grp + n) * LANES;
                // Four pixels at a time: vector m of a transposed quad holds
                // filter m's run in its low half, filter 4 + m's in its high.
                for quad in 0..P.div_ceil(4) {
                    let len = (P - 4 * quad).min(4);
                    let mut pixels = [zero; 4];
                    for (v, &a) in pixels.iter_mut().zip(&acc[4 * quad..]) {
                        *v = if relu { _mm256_max_ps(zero, a) } else { a };
                    }
                    for (m, t) in transpose4(pixels).into_iter().enumerate() {
                        let halves = [_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t)];
                        for (h, half) in halves.into_iter().enumerate() {
                            let k = first + 4 * h + m;
                            if k < k1 {
                                store(out.add((k - k0) * plane + 4 * quad), half, len);
                            }
                        }
                    }
                }
            }
        }
    }

    /// One tap of a tile of 2 groups × 6 pixels: the groups' filter values
    /// (at `w` and `w + ws`), each pixel's input value (at `x + off[p]`)
    /// broadcast, twelve FMAs, in exactly that order: the compiler
    /// otherwise loads the next taps' values early and runs out of
    /// registers.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `w .. w + 8`, `w + ws .. w + ws + 8` and
    /// each `x + off[p]` are readable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tap_2x6(
        acc: &mut [__m256; 12],
        w: *const f32,
        ws: usize,
        x: *const f32,
        off: &[usize; 6],
    ) {
        // Group 0's six pixels, then group 1's.
        let [a0, a1, a2, a3, a4, a5, b0, b1, b2, b3, b4, b5] = acc;
        let [o0, o1, o2, o3, o4, o5] = *off;
        // SAFETY: the caller's contract.
        unsafe {
            std::arch::asm!(
                "vmovups {f0}, [{w}]",
                "vmovups {f1}, [{w} + {ws}*4]",
                "vbroadcastss {v}, dword ptr [{x} + {o0}*4]",
                "vfmadd231ps {a0}, {f0}, {v}",
                "vfmadd231ps {b0}, {f1}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o1}*4]",
                "vfmadd231ps {a1}, {f0}, {v}",
                "vfmadd231ps {b1}, {f1}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o2}*4]",
                "vfmadd231ps {a2}, {f0}, {v}",
                "vfmadd231ps {b2}, {f1}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o3}*4]",
                "vfmadd231ps {a3}, {f0}, {v}",
                "vfmadd231ps {b3}, {f1}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o4}*4]",
                "vfmadd231ps {a4}, {f0}, {v}",
                "vfmadd231ps {b4}, {f1}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o5}*4]",
                "vfmadd231ps {a5}, {f0}, {v}",
                "vfmadd231ps {b5}, {f1}, {v}",
                w = in(reg) w,
                ws = in(reg) ws,
                x = in(reg) x,
                o0 = in(reg) o0,
                o1 = in(reg) o1,
                o2 = in(reg) o2,
                o3 = in(reg) o3,
                o4 = in(reg) o4,
                o5 = in(reg) o5,
                f0 = out(ymm_reg) _,
                f1 = out(ymm_reg) _,
                v = out(ymm_reg) _,
                a0 = inout(ymm_reg) *a0,
                a1 = inout(ymm_reg) *a1,
                a2 = inout(ymm_reg) *a2,
                a3 = inout(ymm_reg) *a3,
                a4 = inout(ymm_reg) *a4,
                a5 = inout(ymm_reg) *a5,
                b0 = inout(ymm_reg) *b0,
                b1 = inout(ymm_reg) *b1,
                b2 = inout(ymm_reg) *b2,
                b3 = inout(ymm_reg) *b3,
                b4 = inout(ymm_reg) *b4,
                b5 = inout(ymm_reg) *b5,
                options(nostack, preserves_flags, readonly, pure),
            );
        }
    }

    /// One tap of a tile of 1 group × 8 pixels: the group's filter values
    /// (at `w`), each pixel's input value (at `x + off[p]`) broadcast,
    /// eight FMAs, as [`tap_2x6`].
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `w .. w + 8` and each `x + off[p]` are
    /// readable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tap_1x8(acc: &mut [__m256; 8], w: *const f32, x: *const f32, off: &[usize; 8]) {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
        let [o0, o1, o2, o3, o4, o5, o6, o7] = *off;
        // SAFETY: the caller's contract.
        unsafe {
            std::arch::asm!(
                "vmovups {f}, [{w}]",
                "vbroadcastss {v}, dword ptr [{x} + {o0}*4]",
                "vfmadd231ps {a0}, {f}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o1}*4]",
                "vfmadd231ps {a1}, {f}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o2}*4]",
                "vfmadd231ps {a2}, {f}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o3}*4]",
                "vfmadd231ps {a3}, {f}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o4}*4]",
                "vfmadd231ps {a4}, {f}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o5}*4]",
                "vfmadd231ps {a5}, {f}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o6}*4]",
                "vfmadd231ps {a6}, {f}, {v}",
                "vbroadcastss {v}, dword ptr [{x} + {o7}*4]",
                "vfmadd231ps {a7}, {f}, {v}",
                w = in(reg) w,
                x = in(reg) x,
                o0 = in(reg) o0,
                o1 = in(reg) o1,
                o2 = in(reg) o2,
                o3 = in(reg) o3,
                o4 = in(reg) o4,
                o5 = in(reg) o5,
                o6 = in(reg) o6,
                o7 = in(reg) o7,
                f = out(ymm_reg) _,
                v = out(ymm_reg) _,
                a0 = inout(ymm_reg) *a0,
                a1 = inout(ymm_reg) *a1,
                a2 = inout(ymm_reg) *a2,
                a3 = inout(ymm_reg) *a3,
                a4 = inout(ymm_reg) *a4,
                a5 = inout(ymm_reg) *a5,
                a6 = inout(ymm_reg) *a6,
                a7 = inout(ymm_reg) *a7,
                options(nostack, preserves_flags, readonly, pure),
            );
        }
    }

    /// Stores the first `len` (1 to 4) values of `v` at `at`.
    ///
    /// # Safety
    /// The CPU supports AVX; `at .. at + len` is writable.
    #[inline(always)]
    unsafe fn store(at: *mut f32, v: __m128, len: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            match len {
                4 => _mm_storeu_ps(at, v),
                3 => {
                    _mm_store_sd(at.cast(), _mm_castps_pd(v));
                    _mm_store_ss(at.add(2), _mm_movehl_ps(v, v));
                }
                2 => _mm_store_sd(at.cast(), _mm_castps_pd(v)),
                _ => _mm_store_ss(at, v),
            }
        }
    }

    /// Transposes 4 pixels × 8 filters (a vector per pixel) into 8 runs of
    /// 4 pixels: vector m holds filter m in its low half, filter 4 + m in
    /// its high half. Pairs of pixels interleaved, then pairs of pairs.
    ///
    /// # Safety
    /// The CPU supports AVX.
    #[inline(always)]
    unsafe fn transpose4(r: [__m256; 4]) -> [__m256; 4] {
        // SAFETY: the CPU supports AVX (this function's contract).
        unsafe {
            let a = [
                _mm256_unpacklo_ps(r[0], r[1]),
                _mm256_unpackhi_ps(r[0], r[1]),
                _mm256_unpacklo_ps(r[2], r[3]),
                _mm256_unpackhi_ps(r[2], r[3]),
            ];
            let pd = |v| _mm256_castps_pd(v);
            [
                _mm256_castpd_ps(_mm256_unpacklo_pd(pd(a[0]), pd(a[2]))),
                _mm256_castpd_ps(_mm256_unpackhi_pd(pd(a[0]), pd(a[2]))),
                _mm256_castpd_ps(_mm256_unpacklo_pd(pd(a[1]), pd(a[3]))),
                _mm256_castpd_ps(_mm256_unpackhi_pd(pd(a[1]), pd(a[3]))),
            ]
        }
    }
}

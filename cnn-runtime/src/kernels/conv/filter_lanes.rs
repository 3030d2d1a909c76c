//! The AVX-512 convolution with filters in the lanes, for layers whose
//! output rows do not fill whole vectors of pixels, such as AlexNet's
//! first (55 pixels) and VGG's 56 × 56 blocks.
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
//! many taps. Measured on an AVX-512 Xeon, against the blocked kernel:
//! AlexNet's first layer (3 × 11 × 11, stride 4) and VGG's 64-channel
//! 3 × 3 layer on 56 × 56 ran about 5 % faster (the median of paired runs
//! of the networks), 3-channel layers of 9 × 9 filters as fast or faster,
//! and 7 × 7 or smaller, or rows of 16 or 32 pixels, as fast or slower.

#[cfg(target_arch = "x86_64")]
use super::layout::{copy_row, zero_row};
use super::layout::{tri, ConvShape};

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

/// Narrowest output row this path takes: ResNet's 7 × 7 layers (512
/// channels, 3 × 3) ran 1.4× as fast here as in the blocked kernel, which
/// computes them as rows of 9 padded pixels, two to a vector.
pub const MIN_ROW: usize = 7;

/// Whether a layer takes this path on a CPU with AVX-512, where it pays:
/// output rows of at least [`MIN_ROW`] pixels but not a multiple of 16
/// (in the blocked kernel, some of its vectors would gather two rows
/// through masks, or compute padding), at least
/// [`MIN_TAPS`] taps per filter, and more than one vector of filters (a
/// tile of one broadcasts a value per product, and its loads would bound
/// it).
pub const fn applies(shape: &ConvShape) -> bool {
    match Geom::new(*shape) {
        Some(g) => g.ow >= MIN_ROW && g.ow % LANES != 0 && g.s.k > LANES && g.taps >= MIN_TAPS,
        None => false,
    }
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
    /// Vectors of 16 filters, ⌈K/16⌉.
    groups: usize,
    /// Scratch: the padded input, if the layer is padded.
    padded_len: usize,
}

impl Geom {
    /// The sizes of `s`, or `None` if the shape does not fit, is grouped
    /// (the caller runs one group at a time), has no output pixel, or a
    /// length overflows `usize`.
    const fn new(s: ConvShape) -> Option<Geom> {
        if !s.fits() || s.g != 1 || s.o[1] == 0 {
            return None;
        }
        let [oh, ow] = s.o;
        // `fits` checked that the padded sizes fit.
        let hp = s.h + 2 * s.p[0];
        let wp = s.w + 2 * s.p[1];
        let taps = tri!(s.taps());
        let groups = s.k.div_ceil(LANES);
        let padded_len = if s.p[0] == 0 && s.p[1] == 0 {
            0
        } else {
            tri!(tri!(s.c.checked_mul(hp)).checked_mul(wp))
        };
        // The input, output and packed filters are slices: their lengths
        // fit.
        tri!(s.c.checked_mul(tri!(s.h.checked_mul(s.w))));
        tri!(s.k.checked_mul(tri!(oh.checked_mul(ow))));
        tri!(tri!(groups.checked_mul(taps)).checked_mul(LANES));
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
}

/// Scratch of this path, in f32s: the zero-padded input if the layer is
/// padded; `None` if the path does not take the layer (see [`Geom::new`]).
pub const fn scratch_len(shape: &ConvShape) -> Option<usize> {
    match Geom::new(*shape) {
        Some(g) => Some(g.padded_len),
        None => None,
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
        _mm512_unpackhi_ps, _mm512_unpacklo_pd, _mm512_unpacklo_ps,
    };

    use super::{pad, ConvShape, Geom, LANES, TILE_GROUPS, TILE_PIXELS};
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
        let Some(g) = Geom::new(*s) else { return };
        let xp: &[f32] = if s.p == [0, 0] {
            x
        } else {
            let padded = &mut scratch[..g.padded_len];
            pad(&g, x, padded);
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
        // A tile of groups `grp ..` × `$p` pixels from `ox0` of row `oy`, of
        // $n groups as the groups left ask.
        macro_rules! tile {
            ($n:expr, $p:literal, $at:expr) => {
                // SAFETY: the token proves AVX-512F, AVX2 and FMA.
                unsafe {
                    match $n {
                        3 => tile::<3, $p>(g, xp, packed, bias, relu, $at, y, k0),
                        2 => tile::<2, $p>(g, xp, packed, bias, relu, $at, y, k0),
                        _ => tile::<1, $p>(g, xp, packed, bias, relu, $at, y, k0),
                    }
                }
            };
        }
        for oy in 0..g.oh {
            let mut grp = grps.start;
            while grp < grps.end {
                // Threes and twos: a tile of one group broadcasts a value per
                // product, and its loads would bound it.
                let n = match grps.end - grp {
                    1 => 1,
                    2 | 4 => 2,
                    _ => TILE_GROUPS,
                };
                for t in 0..full {
                    tile!(n, 8, (grp, oy, t * TILE_PIXELS));
                }
                // The row's last pixels, fewer than a tile.
                let at = (grp, oy, full * TILE_PIXELS);
                match rest {
                    0 => {}
                    1 => tile!(n, 1, at),
                    2 => tile!(n, 2, at),
                    3 => tile!(n, 3, at),
                    4 => tile!(n, 4, at),
                    5 => tile!(n, 5, at),
                    6 => tile!(n, 6, at),
                    _ => tile!(n, 7, at),
                }
                grp += n;
            }
        }
    }

    /// One tile: filter groups `grp .. grp + N` × pixels `ox0 .. ox0 + P`
    /// (P ≤ 8) of output row `oy`, written to the filters' planes in `y`,
    /// whose first plane is filter `k0`'s. A function of its own for each
    /// size of tile, not inlined into the loop over tiles.
    ///
    /// # Safety
    /// The CPU supports AVX-512F, AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn tile<const N: usize, const P: usize>(
        g: &Geom,
        xp: &[f32],
        packed: &[f32],
        bias: &[f32],
        relu: bool,
        (grp, oy, ox0): (usize, usize, usize),
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
            for c in 0..s.c {
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

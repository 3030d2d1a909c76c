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

use super::layout::ConvShape;

/// Filters per vector.
const LANES: usize = 16;

/// Consecutive output pixels per tile (the last tile of a row may have
/// fewer).
pub const TILE_PIXELS: usize = 8;

/// Vectors of filters per tile, at most: 3 × 8 accumulators, 3 filter
/// vectors and a broadcast value take 28 of the 32 registers.
const TILE_GROUPS: usize = 3;

/// Fewest filter taps (C·FH·FW) a layer may have to take this path: the
/// measured break-even lies between 3 × 7 × 7 (147) and 3 × 9 × 9 (243).
pub const MIN_TAPS: usize = 240;

/// Whether a layer takes this path on a CPU with AVX-512, where it pays:
/// sizes whose scratch fits `usize`, output rows wider than a tile but not a multiple of 16 pixels
/// (in the blocked kernel, some of its vectors would gather two rows
/// through masks; rows of at most 8 have a layout of their own there), at
/// least [`MIN_TAPS`] taps per filter, and more than one vector of filters
/// (a tile of one broadcasts a value per product, and its loads would
/// bound it).
#[inline(always)]
pub fn applies(shape: &ConvShape) -> bool {
    Geom::new(*shape).is_some_and(|g| {
        g.ow > TILE_PIXELS && g.ow % LANES != 0 && g.s.k > LANES && g.taps >= MIN_TAPS
    })
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
    /// Scratch: the padded input (if padded) and the packed filters.
    padded_len: usize,
    packed_len: usize,
}

impl Geom {
    /// The sizes of `s`, or `None` if the filter does not fit or a length
    /// overflows `usize`.
    #[inline(always)]
    fn new(s: ConvShape) -> Option<Geom> {
        let [oh, ow] = s.out()?;
        // `out` checked that the padded sizes fit.
        let hp = s.h + 2 * s.p[0];
        let wp = s.w + 2 * s.p[1];
        let taps = s.c.checked_mul(s.f[0])?.checked_mul(s.f[1])?;
        let groups = s.k.div_ceil(LANES);
        let padded_len = if s.p == [0, 0] {
            0
        } else {
            s.c.checked_mul(hp)?.checked_mul(wp)?
        };
        let packed_len = groups.checked_mul(taps)?.checked_mul(LANES)?;
        // The input, output and filters are slices: their lengths fit.
        s.c.checked_mul(s.h.checked_mul(s.w)?)?;
        s.k.checked_mul(oh.checked_mul(ow)?)?;
        padded_len.checked_add(packed_len)?;
        Some(Geom {
            s,
            oh,
            ow,
            hp,
            wp,
            taps,
            groups,
            padded_len,
            packed_len,
        })
    }
}

/// Scratch of this path, in f32s: the zero-padded input (if the layer is
/// padded) and the filters packed 16 to a vector, ⌈K/16⌉·16·C·FH·FW.
pub fn scratch_len(shape: ConvShape) -> usize {
    Geom::new(shape).map_or(0, |g| g.padded_len + g.packed_len)
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
            d[..pw].fill(0.0);
            d[pw..pw + w].copy_from_slice(s);
            d[pw + w..].fill(0.0);
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
        _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps, _mm512_shuffle_f32x4,
        _mm512_storeu_ps, _mm512_unpackhi_pd, _mm512_unpackhi_ps, _mm512_unpacklo_pd,
        _mm512_unpacklo_ps,
    };

    use super::super::Geometry;
    use super::{pad, Geom, LANES, TILE_GROUPS, TILE_PIXELS};

    /// The convolution of `x` into `y` (channel planes of OH·OW), bias and
    /// ReLU included when `relu`; false if a slice is too short. Two threads
    /// share the groups of filters when `split`.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(crate) fn conv<G: Geometry>(
        geometry: G,
        split: bool,
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
        y: &mut [f32],
        relu: bool,
        scratch: &mut [f32],
    ) -> bool {
        let Some(g) = geometry.layout().and_then(|lay| Geom::new(lay.shape)) else {
            return false;
        };
        let s = g.s;
        if g.ow < TILE_PIXELS
            || x.len() < s.c * s.h * s.w
            || weight.len() < s.k * g.taps
            || bias.len() < s.k
            || y.len() < s.k * g.oh * g.ow
            || scratch.len() < g.padded_len + g.packed_len
        {
            return false;
        }
        let (padded, packed) = scratch.split_at_mut(g.padded_len);
        let packed = &mut packed[..g.packed_len];
        let xp: &[f32] = if s.p == [0, 0] {
            x
        } else {
            pad(&g, x, padded);
            padded
        };
        // SAFETY: the CPU supports AVX-512F (this function's contract).
        unsafe { pack(&g, weight, packed) };
        let packed: &[f32] = packed;
        let plane = g.oh * g.ow;
        if split && g.groups > 1 {
            let half = g.groups.div_ceil(2);
            let (y0, y1) = y[..s.k * plane].split_at_mut(half * LANES * plane);
            rayon::join(
                || groups(geometry, 0..half, xp, packed, bias, relu, y0),
                || groups(geometry, half..g.groups, xp, packed, bias, relu, y1),
            );
        } else {
            let y = &mut y[..s.k * plane];
            groups(geometry, 0..g.groups, xp, packed, bias, relu, y);
        }
        true
    }

    /// Packs the filters 16 to a vector: `packed[(grp·taps + t)·16 + i]` is tap
    /// t of filter 16·grp + i, or 0 past the last filter.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[inline(always)]
    unsafe fn pack(g: &Geom, weight: &[f32], packed: &mut [f32]) {
        let k = g.s.k;
        for grp in 0..g.groups {
            let filters = (k - grp * LANES).min(LANES);
            let src = &weight[grp * LANES * g.taps..];
            let dst = &mut packed[grp * g.taps * LANES..][..g.taps * LANES];
            let mut t = 0;
            while t < g.taps {
                let n = (g.taps - t).min(LANES);
                pack_block(&src[t..], g.taps, filters, n, &mut dst[t * LANES..]);
                t += n;
            }
        }
    }

    /// Packs taps `..taps` of `filters` filters (row i of `src` at `i·lds`),
    /// both at most 16: `dst[t·16 + i]` is tap t of filter i, 0 from
    /// `filters` on. One 16 × 16 transpose in registers.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[inline(always)]
    unsafe fn pack_block(src: &[f32], lds: usize, filters: usize, taps: usize, dst: &mut [f32]) {
        assert!(filters <= LANES && taps <= LANES);
        assert!(filters == 0 || (filters - 1) * lds + taps <= src.len());
        assert!(taps * LANES <= dst.len());
        let mask = ((1u32 << taps) - 1) as u16;
        // SAFETY: the CPU supports AVX-512F (this function's contract);
        // row i's first `taps` values are in bounds, as are `dst`'s first
        // `taps` vectors (asserted).
        unsafe {
            let mut r = [_mm512_setzero_ps(); LANES];
            for (i, r) in r.iter_mut().enumerate().take(filters) {
                *r = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(i * lds));
            }
            for (t, v) in transpose16(r).iter().enumerate().take(taps) {
                _mm512_storeu_ps(dst.as_mut_ptr().add(t * LANES), *v);
            }
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

    /// The 16 × 16 transpose of `r`: lane j of vector i becomes lane i of
    /// vector j. [`columns_of_fours`], then 128-bit lanes across vectors in
    /// two steps.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[inline(always)]
    unsafe fn transpose16(r: [__m512; LANES]) -> [__m512; LANES] {
        // SAFETY: the CPU supports AVX-512F (this function's contract).
        let b = unsafe { columns_of_fours(r) };
        let mut c = [_mm512_setzero_ps(); LANES];
        for m in 0..4 {
            for i in 0..2 {
                let (p, q) = (b[8 * i + m], b[8 * i + 4 + m]);
                c[8 * i + m] = _mm512_shuffle_f32x4::<0x88>(p, q);
                c[8 * i + 4 + m] = _mm512_shuffle_f32x4::<0xdd>(p, q);
            }
        }
        let mut t = [_mm512_setzero_ps(); LANES];
        for m in 0..4 {
            for h in 0..2 {
                let (p, q) = (c[4 * h + m], c[8 + 4 * h + m]);
                t[m + 4 * h] = _mm512_shuffle_f32x4::<0x88>(p, q);
                t[m + 4 * h + 8] = _mm512_shuffle_f32x4::<0xdd>(p, q);
            }
        }
        t
    }

    /// Output channels of groups `grps` (written to `y`, which starts at the
    /// first group's first channel), tile by tile along each output row.
    /// Generic over the layer's geometry, so that its sizes fold into the
    /// tiles.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn groups<G: Geometry>(
        geometry: G,
        grps: std::ops::Range<usize>,
        xp: &[f32],
        packed: &[f32],
        bias: &[f32],
        relu: bool,
        y: &mut [f32],
    ) {
        let Some(g) = geometry.layout().and_then(|lay| Geom::new(lay.shape)) else {
            return;
        };
        let g = &g;
        let k0 = grps.start * LANES;
        let (full, rest) = (g.ow / TILE_PIXELS, g.ow % TILE_PIXELS);
        // A tile of groups `grp ..` × `$p` pixels from `ox0` of row `oy`, of
        // $n groups as the groups left ask.
        macro_rules! tile {
            ($n:expr, $p:literal, $at:expr) => {
                // SAFETY: the CPU supports AVX-512F (this function's target
                // features).
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
    /// whose first plane is filter `k0`'s.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
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
        let plane = g.oh * g.ow;
        // The filters of the tile's groups below K.
        let k1 = ((grp + N) * LANES).min(s.k);
        // Bounds: the tile reads rows oy·SH + ky (< HP) of each plane, columns
        // ox0·SW + p·SW + kx (< WP); packed groups grp .. grp + N; biases below
        // K; writes y[(k − k0)·plane + oy·OW + ox0 ..][..8] for k below k1.
        assert!(P <= TILE_PIXELS && oy * sh + fh <= g.hp && (ox0 + P - 1) * sw + fw <= g.wp);
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
                    let row = x.add((c * g.hp + oy * sh + ky) * g.wp + ox0 * sw);
                    let taps = w.add((c * fh + ky) * fw * LANES);
                    for kx in 0..fw {
                        let mut f = [_mm512_setzero_ps(); N];
                        for (n, f) in f.iter_mut().enumerate() {
                            *f = _mm512_loadu_ps(taps.add((n * g.taps + kx) * LANES));
                        }
                        // Pixel by pixel, so that one broadcast value is
                        // live at a time.
                        for p in 0..P {
                            let v = _mm512_set1_ps(*row.add(p * sw + kx));
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

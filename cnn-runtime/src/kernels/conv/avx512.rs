//! The AVX-512 register tile, selected at run time: vectors of 16 pixels,
//! tiles of up to 8 output channels × 32 pixels (16 accumulators of the 32
//! registers). Output rows of at most 8 pixels are mostly laid out a plane
//! per filter column (see `layout`), so that their vectors run across rows;
//! where they are not (under 16 pixels, filters one column wide, or no
//! padding or stride), they go two to a vector. Wider output rows are
//! numbered without the columns a padded input row has past them, so that
//! those are not computed, and a vector that runs into the next rows reads
//! its parts (two, or three for rows under 16) through masks.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::blocked::{self, Clamp, Micro, Part, Taps, Tiling};
use super::layout::{Layout, Tap};
use crate::cpu;

/// Pixels per vector.
const LANES: usize = 16;

/// The tile's clamp of sums `s` (`zero` and `six` splat): max(0, s) and
/// min(6, s) keep a NaN in `s`, as [`Act::Relu`](crate::Act::Relu) and
/// [`Act::Relu6`](crate::Act::Relu6) do.
///
/// # Safety
/// The CPU supports AVX-512F.
#[inline(always)]
unsafe fn clamp(clamp: Clamp, zero: __m512, six: __m512, s: __m512) -> __m512 {
    // SAFETY: the caller's contract.
    unsafe {
        match clamp {
            Clamp::None => s,
            Clamp::Relu => _mm512_max_ps(zero, s),
            Clamp::Relu6 => _mm512_min_ps(six, _mm512_max_ps(zero, s)),
        }
    }
}

/// Output channels per full tile.
const MR: usize = 8;

/// The AVX-512 micro-kernel, with the token that proves the CPU has it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512(pub cpu::Avx512);

impl Avx512 {
    /// [`blocked::rows`] compiled with AVX-512F enabled.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn rows(
        self,
        lay: &Layout,
        k0: usize,
        k1: usize,
        xt: &[f32],
        filters: (&[f32], Taps<'_>),
        bias: &[f32],
        clamp: Clamp,
        out: &mut [f32],
    ) {
        // SAFETY: the token proves AVX-512F, AVX2 and FMA.
        unsafe { rows_avx512(self, lay, k0, k1, xt, filters, bias, clamp, out) }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma")]
fn rows_avx512(
    u: Avx512,
    lay: &Layout,
    k0: usize,
    k1: usize,
    xt: &[f32],
    filters: (&[f32], Taps<'_>),
    bias: &[f32],
    clamp: Clamp,
    out: &mut [f32],
) {
    blocked::rows(u, lay, k0, k1, xt, filters, bias, clamp, out);
}

/// How a tile's vectors read the input (the `LOAD` of [`Acc`]).
mod load {
    /// Vector `v`: the 16 pixels from `LANES·v`.
    pub const RUN: u8 = 0;
    /// Vector `v`: rows `2v` and `2v + 1` of the tile in its low and high
    /// halves ([`load_pair`](super::load_pair)).
    pub const PAIRS: u8 = 1;
    /// Vector `v`: the 16 pixels from `off[v]`.
    pub const AT: u8 = 2;
    /// As `AT`, except that vector `v`, if bit `v` of `LOAD − SPLIT` is
    /// set, reads the lanes `split[v]` from `off[v]` and the others from
    /// `off[v] + gap` (a vector that runs into the next output row).
    pub const SPLIT: u8 = 4;
    /// Every vector `v`: the lanes `split[v]` from `off[v]`, the lanes
    /// `third[v]` from `off[v] + 2·gap`, the others from `off[v] + gap`
    /// (rows narrower than a vector: it may run over two row ends).
    pub const THREE: u8 = 8;
}

/// The accumulators of one tile and where its taps read, as `LOAD` says.
/// Made only by [`Avx512::tile_at`] and [`Avx512::pair`], after checking
/// that every tap of the layout reads within the input and the filters.
struct Acc<const M: usize, const V: usize, const LOAD: u8> {
    acc: [[__m512; V]; M],
    /// The tile's first pixel (first row's, when paired) in the input.
    x: *const f32,
    /// The tile's packed filters: tap `t` of channel `i` at `t·MR + i`.
    a: *const f32,
    /// When paired: the input's row stride and the lanes of a row's pixels
    /// in the low half.
    wq: usize,
    lo: __mmask16,
    /// For `AT`, `SPLIT` and `THREE`: each vector's first pixel in the
    /// input, the lanes it reads there, those it reads two rows on, and how
    /// far on the next row's pixels are.
    off: [usize; V],
    split: [__mmask16; V],
    third: [__mmask16; V],
    gap: usize,
}

impl<const M: usize, const V: usize, const LOAD: u8> Tap for Acc<M, V, LOAD> {
    #[inline(always)]
    fn tap(&mut self, ai: usize, bi: usize) {
        // SAFETY: `Acc` exists only inside `Avx512::tile_at` and `pair`,
        // which hold the token (AVX-512F) and have checked that the lanes
        // each vector reads from `x + bi` (see `load`) and `a + ai·MR + i`
        // (i < M) are in bounds for every tap of its layout.
        unsafe {
            let mut xv = [_mm512_setzero_ps(); V];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = match LOAD {
                    load::PAIRS => load_pair(self.x.add(2 * v * self.wq + bi), self.wq, self.lo),
                    load::AT => _mm512_loadu_ps(self.x.add(bi + self.off[v])),
                    load::THREE => {
                        // Masked-off lanes are not read.
                        let p = self.x.add(bi + self.off[v]);
                        let (first, third) = (self.split[v], self.third[v]);
                        let here = _mm512_maskz_loadu_ps(first, p);
                        let next = p.wrapping_add(self.gap);
                        let two = _mm512_mask_loadu_ps(here, !(first | third), next);
                        _mm512_mask_loadu_ps(two, third, next.wrapping_add(self.gap))
                    }
                    _ if LOAD >= load::SPLIT && (LOAD - load::SPLIT) >> v & 1 == 1 => {
                        // Masked-off lanes are not read.
                        let p = self.x.add(bi + self.off[v]);
                        let here = _mm512_maskz_loadu_ps(self.split[v], p);
                        _mm512_mask_loadu_ps(here, !self.split[v], p.wrapping_add(self.gap))
                    }
                    _ if LOAD >= load::SPLIT => _mm512_loadu_ps(self.x.add(bi + self.off[v])),
                    _ => _mm512_loadu_ps(self.x.add(bi + LANES * v)),
                };
            }
            for (i, acc) in self.acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*self.a.add(ai * MR + i));
                for (s, &xv) in acc.iter_mut().zip(&xv) {
                    *s = _mm512_fmadd_ps(w, xv, *s);
                }
            }
        }
    }
}

/// Two rows of at most 8 values, `p` and `p + wq`, as the low and high
/// halves of one vector (`lo` the lanes of a row); other lanes zero.
///
/// # Safety
/// AVX-512F; the lanes `lo` from `p` and from `p + wq` are readable.
#[inline(always)]
unsafe fn load_pair(p: *const f32, wq: usize, lo: __mmask16) -> __m512 {
    // SAFETY: the caller's contract; masked-off lanes are not read, so the
    // high half's base may point before the row.
    unsafe {
        let low = _mm512_maskz_loadu_ps(lo, p);
        let high = p.wrapping_add(wq).wrapping_sub(LANES / 2);
        _mm512_mask_loadu_ps(low, lo << (LANES / 2), high)
    }
}

impl Avx512 {
    /// A tile of `M` channels × `V` vectors, read from the input as `LOAD`
    /// says (`RUN` from pixel `q0`; the others at `off`, `split`, `third`
    /// and `gap`, with `q0` 0) and written to `out` at `i·ldo + o0 + LANES·v`,
    /// except the first `skip` of those pixels; otherwise as
    /// [`Micro::tile`]. A function of its own for each kind and size of
    /// tile, not inlined into the loop over tiles: one function holding
    /// every tile took LLVM minutes to optimise, and a call per tile costs
    /// nothing beside its taps.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn tile_at<const M: usize, const V: usize, const LOAD: u8, const T: usize>(
        self,
        lay: &Layout,
        part: &Part,
        xt: &[f32],
        q0: usize,
        (off, split, third): ([usize; V], [__mmask16; V], [__mmask16; V]),
        a: &[f32],
        bias: &[f32],
        out: &mut [f32],
        (o0, ldo): (usize, usize),
        skip: usize,
    ) {
        let lda = lay.shape.c * lay.shape.f[0] * lay.shape.f[1];
        let gap = lay.wq - lay.ow;
        // How far past a tap's offset the tile reads.
        let reach = match LOAD {
            load::RUN | load::PAIRS => LANES * V,
            _ => (0..V)
                .map(|v| {
                    off[v]
                        + if split[v] == u16::MAX { 0 } else { gap }
                        + if third[v] == 0 { 0 } else { gap }
                })
                .max()
                .map_or(0, |end| end + LANES),
        };
        // Bounds of every access below: taps read xt[q0 + b .. q0 + b + reach]
        // with b < tap_end, filters a[t·MR + i] with i < M and t < lda, and
        // the tile writes out[i·ldo + o0 .. i·ldo + o0 + 16V].
        assert!(q0 + lay.tap_end + reach - 1 <= xt.len());
        assert!(M <= MR && (lda - 1) * MR + M <= a.len() && M <= bias.len());
        assert!((M - 1) * ldo + o0 + LANES * V <= out.len());
        assert!(V <= blocked::NV && skip < LANES * V);
        // SAFETY: the token proves AVX-512F; the loads of stored sums stay
        // within the bounds of `out` asserted above.
        let acc = unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; M];
            for (i, (acc, &b)) in acc.iter_mut().zip(bias).enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = if part.first {
                        _mm512_set1_ps(b)
                    } else {
                        _mm512_loadu_ps(out.as_ptr().add(i * ldo + o0 + LANES * v))
                    };
                }
            }
            acc
        };
        let mut t = Acc::<M, V, LOAD> {
            acc,
            x: xt[q0..].as_ptr(),
            a: a.as_ptr(),
            wq: 0,
            lo: 0,
            off,
            split,
            third,
            gap,
        };
        part.for_each_tap::<T>(&mut t);
        // Vector v stores its lanes at or past `skip`.
        let masks: [u16; V] = std::array::from_fn(|v| {
            let from = skip.saturating_sub(LANES * v);
            if from >= LANES {
                0
            } else {
                u16::MAX << from
            }
        });
        // SAFETY: the token proves AVX-512F; the stores stay within the
        // bounds asserted above.
        unsafe {
            let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            for (i, acc) in t.acc.iter().enumerate() {
                let o = out.as_mut_ptr().add(i * ldo + o0);
                for (v, &s) in acc.iter().enumerate() {
                    let s = clamp(part.clamp, zero, six, s);
                    if skip == 0 {
                        _mm512_storeu_ps(o.add(LANES * v), s);
                    } else {
                        _mm512_mask_storeu_ps(o.add(LANES * v), masks[v], s);
                    }
                }
            }
        }
    }

    /// The tile of [`Micro::DENSE`]: `M` channels × `V` vectors of output
    /// pixels `d0 ..` in the numbering oy·OW + ox. Each vector starts at its
    /// first pixel's place in the input; one that runs past its output row
    /// reads the rest from the next row, WQ − OW further on (and, for rows
    /// under 16 pixels, from the row after, twice as far).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn dense<const M: usize, const V: usize, const T: usize>(
        self,
        lay: &Layout,
        part: &Part,
        xt: &[f32],
        d0: usize,
        a: &[f32],
        bias: &[f32],
        out: &mut [f32],
        ldo: usize,
        skip: usize,
    ) {
        let (ow, wq) = (lay.ow, lay.wq);
        let mut off = [0; V];
        let mut split = [u16::MAX; V];
        let mut third = [0; V];
        for v in 0..V {
            let d = d0 + LANES * v;
            let (oy, ox) = lay.ow_div.div_rem(d);
            off[v] = oy * wq + ox;
            // Lanes up to the row's end, and from the end of the next.
            let (end, next_end) = (ow - ox, 2 * ow - ox);
            if end < LANES {
                split[v] = (1 << end) - 1;
            }
            if next_end < LANES {
                third[v] = u16::MAX << next_end;
            }
        }
        // Which of (at most) two vectors run into the next row, as the
        // tile's `LOAD`.
        macro_rules! tile {
            ($load:expr) => {
                // SAFETY: the token proves AVX-512F, AVX2 and FMA.
                unsafe {
                    self.tile_at::<M, V, { $load }, T>(
                        lay,
                        part,
                        xt,
                        0,
                        (off, split, third),
                        a,
                        bias,
                        out,
                        (d0, ldo),
                        skip,
                    )
                }
            };
        }
        if ow < LANES {
            return tile!(load::THREE);
        }
        match (split[0] != u16::MAX, V == 2 && split[V - 1] != u16::MAX) {
            (false, false) => tile!(load::AT),
            (true, false) => tile!(load::SPLIT + 1),
            (false, true) => tile!(load::SPLIT + 2),
            (true, true) => tile!(load::SPLIT + 3),
        }
    }

    /// A tile of `M` channels × `2V` rows of paired rows from row `r0`
    /// (see [`Micro::PAIRS`]); a function of its own as [`Avx512::tile_at`].
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn pair_at<const M: usize, const V: usize, const T: usize>(
        self,
        lay: &Layout,
        part: &Part,
        xt: &[f32],
        r0: usize,
        a: &[f32],
        bias: &[f32],
        out: &mut [f32],
        ldo: usize,
        skip: usize,
    ) {
        let (wq, ow) = (lay.wq, lay.ow);
        let lda = lay.shape.c * lay.shape.f[0] * lay.shape.f[1];
        let last = (r0 + 2 * V - 1) * wq;
        // Bounds of every access below: row r of the tile reads
        // xt[(r0 + r)·wq + b ..][..ow] with b < tap_end, and writes
        // out[i·ldo + (r0 + r)·wq ..][..ow]; filters as in `tile`.
        assert!(ow <= LANES / 2 && skip < 2 * V && V <= blocked::NV);
        assert!(last + lay.tap_end - 1 + ow <= xt.len());
        assert!(M <= MR && (lda - 1) * MR + M <= a.len() && M <= bias.len());
        assert!((M - 1) * ldo + last + ow <= out.len());
        let lo: __mmask16 = (1 << ow) - 1;
        let rows = |v: usize| {
            let keep = |r: usize, m: __mmask16| if r >= skip { m } else { 0 };
            keep(2 * v, lo) | keep(2 * v + 1, lo << (LANES / 2))
        };
        let mut t = Acc::<M, V, { load::PAIRS }> {
            acc: [[_mm512_setzero_ps(); V]; M],
            x: xt[r0 * wq..].as_ptr(),
            a: a.as_ptr(),
            wq,
            lo,
            off: [0; V],
            split: [0; V],
            third: [0; V],
            gap: 0,
        };
        // SAFETY: the token proves AVX-512F; the loads of stored sums read
        // the tile's rows of `out`, in bounds as asserted above.
        unsafe {
            for (i, (acc, &b)) in t.acc.iter_mut().zip(bias).enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = if part.first {
                        _mm512_set1_ps(b)
                    } else {
                        load_pair(out.as_ptr().add(i * ldo + (r0 + 2 * v) * wq), wq, lo)
                    };
                }
            }
        }
        part.for_each_tap::<T>(&mut t);
        // SAFETY: as for the loads; the masks keep the stores within the
        // rows' OW values, and leave out the first `skip` rows.
        unsafe {
            let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            for (i, acc) in t.acc.iter().enumerate() {
                for (v, &s) in acc.iter().enumerate() {
                    let s = clamp(part.clamp, zero, six, s);
                    let row = out.as_mut_ptr().add(i * ldo + (r0 + 2 * v) * wq);
                    let keep = rows(v);
                    _mm512_mask_storeu_ps(row, keep & lo, s);
                    _mm512_mask_storeu_ps(
                        row.wrapping_add(wq).wrapping_sub(LANES / 2),
                        keep & !lo,
                        s,
                    );
                }
            }
        }
    }
}

impl Avx512 {
    /// [`Avx512::pair_at`], for [`Micro::tile_any`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn pair<const M: usize, const V: usize, const T: usize>(
        self,
        lay: &Layout,
        part: &Part,
        xt: &[f32],
        r0: usize,
        a: &[f32],
        bias: &[f32],
        out: &mut [f32],
        ldo: usize,
        skip: usize,
    ) {
        // SAFETY: the token proves AVX-512F, AVX2 and FMA.
        unsafe { self.pair_at::<M, V, T>(lay, part, xt, r0, a, bias, out, ldo, skip) }
    }
}

impl Micro for Avx512 {
    const LANES: usize = LANES;
    const MR: usize = MR;
    const PAIRS: bool = true;
    const DENSE: bool = true;

    #[inline(always)]
    fn tile<const M: usize, const V: usize, const T: usize>(
        self,
        lay: &Layout,
        part: &Part,
        xt: &[f32],
        q0: usize,
        a: &[f32],
        bias: &[f32],
        out: &mut [f32],
        ldo: usize,
        skip: usize,
    ) {
        let none = ([0; V], [0; V], [0; V]);
        let at = (q0, ldo);
        // SAFETY: the token proves AVX-512F, AVX2 and FMA.
        unsafe {
            self.tile_at::<M, V, { load::RUN }, T>(lay, part, xt, q0, none, a, bias, out, at, skip)
        }
    }

    blocked::tile_any!(
        [8, 6, 4, 2],
        Tiling::Pixels | Tiling::Rows => tile,
        Tiling::Pairs => pair,
        Tiling::Dense => dense
    );
}

//! The blocked convolution: output channels × pixels in tiles of
//! MR × LANES·NV held in registers (MR and LANES set by the micro-kernel),
//! each tile accumulated over every filter tap straight from the
//! (transformed) input, with bias and a clamp (ReLU, ReLU6) applied on the way out.
//! No im2col copy: the input is read in place of the columns. Pixels go in
//! blocks of a few tiles, and input channels in chunks whose input for a
//! block is at most [`CHUNK_FLOATS`], the partial sums kept in the output
//! between chunks.
//!
//! Tiles run over pixels numbered as the input's rows (oy·WQ + ox: the
//! WQ − OW columns past each output row are computed, then dropped by
//! [`finish`]'s copy-out), over whole output rows, two rows to a vector,
//! or, where the micro-kernel can (AVX-512, rows over half a vector),
//! over the output's numbering (oy·OW + ox), written in place.

use super::layout::{copy_row, row_tiles, Layout, Tap};
use crate::kernels::{activate, Act};

/// Vectors of pixels per register tile, at most: with AVX2, 6 × 2
/// accumulators, 2 input vectors and a broadcast filter value fit the 16
/// registers without spilling; 4 × 3 does not quite, and the spilled
/// accumulator's store-to-load round trip then bounds every tap. With
/// AVX-512, 8 × 3 tiles measured slower than 8 × 2 on an AMD Zen 5 core
/// and within noise of them (2 % faster on B4 and B5) on an Intel Xeon;
/// from L1, both run at the FMA peak there.
pub(crate) const NV: usize = 2;

/// Input values a block of pixels may read per chunk of channels (64 KiB).
/// Each pass over a chunk reloads and stores the block's partial sums, so
/// fewer passes can pay more than keeping a chunk's input within L1: on an
/// AVX-512 Xeon (48 KiB L1, 2 MiB L2) a budget of 64 KiB ran B3–B6 3–14 %
/// faster than one of 16 KiB, and 32 KiB or 128 KiB no faster.
const CHUNK_FLOATS: usize = 16384;

/// Register tiles per block of pixels.
const BLOCK_TILES: usize = 4;

/// The taps of one input channel, in the order the filters are packed:
/// each tap's offset into the channel's planes (see
/// [`Layout::channel_taps`]), and how far apart channels are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taps<'a> {
    pub offsets: &'a [usize],
    pub stride: usize,
}

/// An activation that the tiles apply as they store their sums (the
/// others are left to [`finish`]): a clamp, which a max and a min compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clamp {
    /// The sums as they are.
    None,
    /// ReLU: max(0, s).
    Relu,
    /// ReLU6: min(6, max(0, s)).
    Relu6,
}

impl Clamp {
    /// The clamp that `act` is, or [`Clamp::None`].
    pub const fn of(act: Act) -> Clamp {
        match act {
            Act::Relu => Clamp::Relu,
            Act::Relu6 => Clamp::Relu6,
            _ => Clamp::None,
        }
    }

    /// The activation that the clamp computes.
    pub const fn act(self) -> Act {
        match self {
            Clamp::None => Act::Identity,
            Clamp::Relu => Act::Relu,
            Clamp::Relu6 => Act::Relu6,
        }
    }
}

/// Which input channels one pass over a tile accumulates.
#[derive(Debug, Clone)]
pub(crate) struct Part<'a> {
    /// The input channels.
    pub channels: std::ops::Range<usize>,
    /// The first pass: start from the bias rather than the stored sums.
    pub first: bool,
    /// The activation the tiles apply as they store the sums: the
    /// layer's, if it is a clamp, on the last pass; else none.
    pub clamp: Clamp,
    /// Where a channel's taps read.
    pub taps: Taps<'a>,
}

impl Part<'_> {
    /// Calls `f.tap(a, b)` for every tap of the part's channels, in the
    /// order the filters are packed: `a` counts the taps from the first
    /// channel's first, `b` is the tap's offset into the (transformed)
    /// input, relative to the pixel. One flat loop per channel over a table
    /// of offsets, which the tiles run as fast as fully unrolled taps.
    ///
    /// `T` is the number of taps per channel where it is one of those
    /// [`with_taps`] lists (the loop over a channel's taps then unrolls,
    /// which layers of few channels need to keep up with their loads), or
    /// 0.
    #[inline(always)]
    pub fn for_each_tap<const T: usize>(&self, f: &mut impl Tap) {
        let n = self.taps.offsets.len();
        if let (true, Ok(offsets)) = (T != 0, <&[usize; T]>::try_from(self.taps.offsets)) {
            for ci in self.channels.clone() {
                let (a0, b0) = (ci * T, ci * self.taps.stride);
                for (t, &b) in offsets.iter().enumerate() {
                    f.tap(a0 + t, b0 + b);
                }
            }
            return;
        }
        for ci in self.channels.clone() {
            let (a0, b0) = (ci * n, ci * self.taps.stride);
            for (t, &b) in self.taps.offsets.iter().enumerate() {
                f.tap(a0 + t, b0 + b);
            }
        }
    }
}

/// One register tile of output, accumulated over the filter taps of some
/// input channels.
///
/// `a` holds the packed filters of the tile's `M` ≤ [`Micro::MR`] output
/// channels: tap `t` of channel `i` at `t·MR + i`; `bias` their biases; `xt` is the input and
/// `q0` the tile's first pixel; the `M` rows of `LANES·V` outputs go to
/// `out` at `i·ldo + q0` (and are read from there after the first pass),
/// except the first `skip` pixels of each row: the last tile of a row of
/// pixels is shifted back to end at `nq`, and the pixels it shares with the
/// tile before are that tile's.
pub(crate) trait Micro: Copy {
    /// Pixels per vector.
    const LANES: usize;
    /// Output channels per full tile.
    const MR: usize;

    /// Computes one tile of `M` channels × `LANES·V` pixels (`T` as in
    /// [`Part::for_each_tap`]).
    #[allow(clippy::too_many_arguments)]
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
    );

    /// Whether the micro-kernel has tiles of paired rows
    /// ([`Tiling::Pairs`]): vectors that each hold two output rows of at
    /// most `LANES/2` pixels, the first row's in the low half, a tile
    /// starting at output row `at`, the first `skip` rows left to the tile
    /// before.
    const PAIRS: bool = false;

    /// Whether the micro-kernel has tiles in the output's numbering
    /// ([`Tiling::Dense`]): `LANES·v` output pixels from `at` in the
    /// numbering oy·OW + ox, which leaves out the WQ − OW columns past each
    /// row that the input's numbering has. Each vector reads the input from
    /// its first pixel's place, and from the next rows for the pixels past
    /// the row's end; the tile writes `out` (the layer's output, rows of
    /// OH·OW) at `i·ldo + at`, except the first `skip` pixels.
    const DENSE: bool = false;

    /// A tile of `tiling`'s kind ([`Micro::tile`] for pixels or rows; the
    /// kinds of [`Micro::PAIRS`] and [`Micro::DENSE`], only if the kernel
    /// has them) with `m` ≤ [`Micro::MR`] and `v` ≤ [`NV`] known at run
    /// time: a match over the sizes (see [`with_tile`]).
    #[allow(clippy::too_many_arguments)]
    fn tile_any(
        self,
        tiling: Tiling,
        m: usize,
        v: usize,
        lay: &Layout,
        part: &Part,
        xt: &[f32],
        q0: usize,
        a: &[f32],
        bias: &[f32],
        out: &mut [f32],
        ldo: usize,
        skip: usize,
    );
}

/// Runs `$body` with `$m` and `$v` bound to the constants matching the
/// run-time tile size: `$m` one of the listed heights (the last arm takes
/// any other), `$v` 2 or else 1.
macro_rules! with_tile {
    ($mr:expr, $nv:expr, [$($h:literal),*], |$m:ident, $v:ident| $body:expr) => {
        match ($mr, $nv) {
            $(
                ($h, 2) => {
                    const $m: usize = $h;
                    const $v: usize = 2;
                    $body
                }
            )*
            (_, 2) => {
                const $m: usize = 1;
                const $v: usize = 2;
                $body
            }
            $(
                ($h, _) => {
                    const $m: usize = $h;
                    const $v: usize = 1;
                    $body
                }
            )*
            _ => {
                const $m: usize = 1;
                const $v: usize = 1;
                $body
            }
        }
    };
}
pub(crate) use with_tile;

/// Runs `$body` with `$t` bound to the number of taps per channel `$n` for
/// which the tiles are compiled with the loop over a channel's taps
/// unrolled, 9 and 25 (3 × 3 and 5 × 5 filters at stride 1), else to 0
/// (see [`Part::for_each_tap`]).
macro_rules! with_taps {
    ($n:expr, |$t:ident| $body:expr) => {
        match $n {
            9 => {
                const $t: usize = 9;
                $body
            }
            25 => {
                const $t: usize = 25;
                $body
            }
            _ => {
                const $t: usize = 0;
                $body
            }
        }
    };
}
pub(crate) use with_taps;

/// Implements [`Micro::tile_any`]: for each listed kind of tile, a match
/// over the listed tile heights calling that kind's tile method
/// `$tile::<M, V>`. Kinds not listed are never chosen (see
/// [`Micro::PAIRS`], [`Micro::DENSE`]) and do nothing.
macro_rules! tile_any {
    ($heights:tt, $($kind:pat => $tile:ident),+) => {
        #[inline(always)]
        fn tile_any(
            self,
            tiling: $crate::kernels::conv::blocked::Tiling,
            m: usize,
            v: usize,
            lay: &Layout,
            part: &Part,
            xt: &[f32],
            at: usize,
            a: &[f32],
            bias: &[f32],
            out: &mut [f32],
            ldo: usize,
            skip: usize,
        ) {
            #[allow(unreachable_patterns)]
            match tiling {
                $(
                    $kind => $crate::kernels::conv::blocked::with_tile!(m, v, $heights, |M, V| {
                        $crate::kernels::conv::blocked::with_taps!(part.taps.offsets.len(), |T| self
                            .$tile::<M, V, T>(lay, part, xt, at, a, bias, out, ldo, skip))
                    }),
                )+
                _ => {}
            }
        }
    };
}
pub(crate) use tile_any;

/// Whether [`rows`] on micro-kernel `U` writes the layer's output as it is
/// (tiles of [`Tiling::Dense`], rows of OH·OW) rather than rows of NQ
/// pixels of the input's numbering.
#[inline(always)]
pub(crate) fn dense<U: Micro>(lay: &Layout) -> bool {
    tiling::<U>(lay) == Tiling::Dense
}

/// How [`rows`] cuts a layer's pixels into tiles for micro-kernel `U`.
#[inline(always)]
fn tiling<U: Micro>(lay: &Layout) -> Tiling {
    let lanes = U::LANES;
    if U::PAIRS && lay.pairs(lanes) {
        Tiling::Pairs
    } else if U::DENSE && lay.dense(lanes) {
        Tiling::Dense
    } else if lay.rows(lanes) {
        Tiling::Rows
    } else {
        Tiling::Pixels
    }
}

/// Computes output channels `k0..k1` into `out` (row `k − k0` at
/// `(k − k0)·nq`, or `(k − k0)·OH·OW` if [`dense`]), bias and `clamp`
/// included; other activations are left to [`finish`].
///
/// `xt` is the input as the layout reads it, `filters` the whole layer's
/// packed in groups of [`Micro::MR`] (filter `g·MR + j`, tap `t` at
/// `(g·taps + t)·MR + j`, the taps of each channel in the order of
/// `taps`), `bias` the whole layer's. `k0` is a multiple of `MR`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn rows<U: Micro>(
    u: U,
    lay: &Layout,
    k0: usize,
    k1: usize,
    xt: &[f32],
    (filters, taps): (&[f32], Taps<'_>),
    bias: &[f32],
    clamp: Clamp,
    out: &mut [f32],
) {
    let lda = lay.shape.c * lay.shape.f[0] * lay.shape.f[1];
    let mr = U::MR;
    // The tile of channels from k: its group's filters, from its place in
    // the group (tiles narrower than MR come only at the end).
    let tile_filters = |k: usize| &filters[(k / mr) * mr * lda + k % mr..];
    let nq = lay.nq;
    let lanes = U::LANES;
    let tiling = tiling::<U>(lay);
    let ldo = if tiling == Tiling::Dense {
        lay.oh * lay.ow
    } else {
        nq
    };
    // The widest tile that fits the row of pixels (or the rows, in pairs);
    // a narrower last tile is shifted back to end at nq (or OH),
    // recomputing a few pixels.
    let nv = match tiling {
        Tiling::Pairs => lay.oh / 2,
        _ => ldo / lanes,
    }
    .min(NV);
    if nv == 0 {
        for q in 0..nq {
            for k in k0..k1 {
                let o = &mut out[(k - k0) * nq + q];
                *o = pixel(lay, taps, xt, q, tile_filters(k), mr, bias[k], clamp);
            }
        }
        return;
    }
    let c = lay.shape.c;
    // Blocks of pixels, and chunks of input channels small enough that their
    // input for a block stays in L1 while every tile of output channels
    // passes over it; the sums of a chunk go through `out` to the next. With
    // tiles aligned to rows or in pairs of rows, a block is whole rows.
    let block = BLOCK_TILES * lanes * nv;
    let (units, per_block, block_len) = match tiling {
        Tiling::Pixels => (nq, block, block),
        // The block's rows, and one more on either side.
        Tiling::Dense => (ldo, block, (block / lay.ow + 2) * lay.wq),
        Tiling::Rows => {
            let rows = (block / lay.wq).max(1);
            (lay.oh, rows, rows * lay.wq)
        }
        Tiling::Pairs => {
            let rows = BLOCK_TILES * 2 * nv;
            (lay.oh, rows, rows * lay.wq)
        }
    };
    let span = (block_len + lay.halo()) * lay.phases[0] * lay.phases[1];
    let passes = c.div_ceil((CHUNK_FLOATS / span).max(1));
    let chunk = c.div_ceil(passes);
    // Blocks outermost, so that a block's partial sums stay in cache
    // between the passes over its chunks of channels.
    let mut u0 = 0;
    while u0 < units {
        let u1 = (u0 + per_block).min(units);
        let mut c0 = 0;
        while c0 < c {
            let c1 = (c0 + chunk).min(c);
            let part = Part {
                channels: c0..c1,
                first: c0 == 0,
                clamp: if c1 == c { clamp } else { Clamp::None },
                taps,
            };
            let mut k = k0;
            while k < k1 {
                let mr = tile_height(k1 - k, U::MR);
                let a = tile_filters(k);
                let b = &bias[k..];
                let o = &mut out[(k - k0) * ldo..];
                // One expansion of the tile sizes for each kind of tile
                // (each size is a copy of the micro-kernel), and no closure
                // around it: a closure would not inherit the caller's
                // target features, and the intrinsics would not inline.
                // A tile starts at `at`: an output row for pairs, else a
                // pixel of the tiling's numbering.
                if tiling == Tiling::Pairs {
                    for (at, skip, v) in units_in_steps(u0..u1, lay.oh, 2 * nv, nv) {
                        u.tile_any(tiling, mr, v, lay, &part, xt, at, a, b, o, ldo, skip);
                    }
                } else {
                    for (at, skip, v) in tiles(lay, tiling, lanes, u0..u1, nv) {
                        u.tile_any(tiling, mr, v, lay, &part, xt, at, a, b, o, ldo, skip);
                    }
                }
                k += mr;
            }
            c0 = c1;
        }
        u0 = u1;
    }
}

/// Output channels in the next register tile, with `left` to go: a full
/// tile of `mr`, else the largest of 6, 4, 2 and 1 that fits, so that the
/// micro-kernel is compiled for four or five tile heights rather than `mr`
/// (the benchmark networks built in twice the time with every height), and
/// any remainder below `mr` still takes tiles that waste nothing.
#[inline(always)]
fn tile_height(left: usize, mr: usize) -> usize {
    match left {
        _ if left >= mr => mr,
        6.. => 6,
        4.. => 4,
        2 | 3 => 2,
        _ => 1,
    }
}

/// How the pixels are cut into register tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tiling {
    /// Runs of `LANES·V` pixels of the numbering q = oy·WQ + ox, across
    /// rows.
    Pixels,
    /// Tiles starting at each output row's start ([`row_tiles`]).
    Rows,
    /// Vectors of two output rows, each in half a vector
    /// ([`Layout::pairs`]; [`Micro::PAIRS`]).
    Pairs,
    /// Runs of `LANES·V` pixels of the output's numbering oy·OW + ox
    /// ([`Layout::dense`]; [`Micro::DENSE`]).
    Dense,
}

/// The tiles of one block as (first pixel, pixels shared with the tile
/// before, vectors): with row-aligned tiles the block is output rows, each
/// split by [`row_tiles`]; otherwise it is pixels of the numbering in tiles
/// of `lanes·nv`, the last shifted back to end at `nq` (and of one vector
/// if one holds the pixels left).
fn tiles(
    lay: &Layout,
    tiling: Tiling,
    lanes: usize,
    block: std::ops::Range<usize>,
    nv: usize,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let (wq, ow) = (lay.wq, lay.ow);
    let nq = if tiling == Tiling::Dense {
        lay.oh * ow
    } else {
        lay.nq
    };
    let (rows, pixels) = if tiling == Tiling::Rows {
        (block, 0..0)
    } else {
        (0..0, block)
    };
    let rows = rows.flat_map(move |row| {
        row_tiles(ow, lanes).map(move |(ox, skip, v)| (row * wq + ox, skip, v))
    });
    // The last pixels, if one vector holds them, in a one-vector tile.
    let pixels = pixels.step_by(lanes * nv).map(move |q| {
        let v = if nq - q <= lanes { 1 } else { nv };
        let q0 = q.min(nq - lanes * v);
        (q0, q - q0, v)
    });
    rows.chain(pixels)
}

/// Tiles of `step` output rows in pairs over the rows `block`, as (first
/// row, rows shared with the tile before, `nv`): the last shifted back to
/// end at row `end`.
fn units_in_steps(
    block: std::ops::Range<usize>,
    end: usize,
    step: usize,
    nv: usize,
) -> impl Iterator<Item = (usize, usize, usize)> {
    block.step_by(step).map(move |u| {
        let u0 = u.min(end - step);
        (u0, u - u0, nv)
    })
}

/// One pixel of one output channel, for rows of pixels narrower than a
/// vector: `a` the channel's packed filter (tap `t` at `t·stride`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pixel(
    lay: &Layout,
    taps: Taps<'_>,
    xt: &[f32],
    q: usize,
    a: &[f32],
    stride: usize,
    bias: f32,
    clamp: Clamp,
) -> f32 {
    let mut dot = Dot {
        sum: bias,
        a,
        stride,
        x: &xt[q..],
    };
    let part = Part {
        channels: 0..lay.shape.c,
        first: true,
        clamp,
        taps,
    };
    part.for_each_tap::<0>(&mut dot);
    clamp.act().apply(dot.sum)
}

/// One output value's dot product.
struct Dot<'a> {
    sum: f32,
    a: &'a [f32],
    stride: usize,
    x: &'a [f32],
}

impl Tap for Dot<'_> {
    #[inline(always)]
    fn tap(&mut self, a: usize, b: usize) {
        self.sum += self.a[a * self.stride] * self.x[b];
    }
}

/// Copies the valid pixels of `k` filters' wide output to `y` (both from
/// the same filter on) and applies the activations that the tiles did not.
pub(crate) fn finish(lay: &Layout, k: usize, wide: Option<&[f32]>, y: &mut [f32], act: Act) {
    let (oh, ow) = (lay.oh, lay.ow);
    let len = k * oh * ow;
    if let Some(wide) = wide {
        for (yk, wk) in y[..len]
            .chunks_exact_mut(oh * ow)
            .zip(wide.chunks_exact(lay.nq))
        {
            for (oy, row) in yk.chunks_exact_mut(ow).enumerate() {
                copy_row(row, &wk[oy * lay.wq..oy * lay.wq + ow]);
            }
        }
    }
    finish_in_place(len, y, act, Clamp::of(act).act());
}

/// Applies `act` to the first `len` values of `y`, unless it is `applied`,
/// the activation the kernel applied as it stored them.
pub(crate) fn finish_in_place(len: usize, y: &mut [f32], act: Act, applied: Act) {
    if act != applied && act != Act::Identity {
        activate(act, &mut y[..len]);
    }
}

//! The portable register tile: plain arrays that the compiler vectorises for
//! whatever the target offers.

use super::blocked::{self, Micro, Part, Tiling};
use super::layout::{Layout, Tap};

/// Output channels per full tile.
const MR: usize = 6;

/// The portable micro-kernel, available everywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

/// The accumulators of one tile and where its taps read.
struct Acc<'a, const M: usize, const V: usize> {
    acc: [[[f32; 8]; V]; M],
    /// The input from the tile's first pixel.
    x: &'a [f32],
    /// The tile's packed filters: tap `t` of channel `i` at `t·MR + i`.
    a: &'a [f32],
}

impl<const M: usize, const V: usize> Tap for Acc<'_, M, V> {
    #[inline(always)]
    fn tap(&mut self, ai: usize, bi: usize) {
        let x = &self.x[bi..bi + 8 * V];
        for (i, acc) in self.acc.iter_mut().enumerate() {
            let w = self.a[ai * MR + i];
            for (accv, xv) in acc.iter_mut().zip(x.chunks_exact(8)) {
                for (s, &x) in accv.iter_mut().zip(xv) {
                    *s += w * x;
                }
            }
        }
    }
}

impl Micro for Portable {
    const LANES: usize = 8;
    const MR: usize = MR;

    // A function of its own for each size of tile (see the AVX2 tile).
    #[inline(never)]
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
        let lda = lay.shape.c * lay.shape.f[0] * lay.shape.f[1];
        let a = &a[..(lda - 1) * MR + M];
        let xt = &xt[q0..lay.tap_end + q0 + 8 * V - 1];
        let mut t = Acc::<M, V> {
            acc: [[[0.0; 8]; V]; M],
            x: xt,
            a,
        };
        for (i, (acc, &b)) in t.acc.iter_mut().zip(bias).enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                let at = i * ldo + q0 + 8 * v;
                *acc = if part.first {
                    [b; 8]
                } else {
                    out[at..at + 8].try_into().unwrap_or([0.0; 8])
                };
            }
        }
        part.for_each_tap::<T>(&mut t);
        for (i, acc) in t.acc.iter().enumerate() {
            let row = &mut out[i * ldo + q0..i * ldo + q0 + 8 * V];
            for (j, (d, &s)) in row.iter_mut().zip(acc.as_flattened()).enumerate() {
                if j >= skip {
                    *d = part.clamp.act().apply(s);
                }
            }
        }
    }

    blocked::tile_any!([6, 4, 2], Tiling::Pixels | Tiling::Rows => tile);
}

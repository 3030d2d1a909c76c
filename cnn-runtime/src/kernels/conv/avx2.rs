//! The AVX2 + FMA register tile, selected at run time.

use std::arch::x86_64::{
    __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps,
    _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

use super::blocked::{self, Clamp, Micro, Part, Taps, Tiling};
use super::layout::{Layout, Tap};
use crate::cpu;

/// Output channels per full tile.
const MR: usize = 6;

/// The AVX2 + FMA micro-kernel, with the token that proves the CPU has it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(pub cpu::Avx2);

impl Avx2 {
    /// [`blocked::rows`] compiled with AVX2 and FMA enabled.
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
        // SAFETY: the token proves AVX2 and FMA.
        unsafe { rows_avx2(self, lay, k0, k1, xt, filters, bias, clamp, out) }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
fn rows_avx2(
    u: Avx2,
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

/// The accumulators of one tile and where its taps read. Made only by
/// [`Avx2::tile`], after checking that every tap of the layout reads within
/// the input and the filters.
struct Acc<const M: usize, const V: usize> {
    acc: [[__m256; V]; M],
    /// The tile's first pixel in the input.
    x: *const f32,
    /// The tile's packed filters: tap `t` of channel `i` at `t·MR + i`.
    a: *const f32,
}

impl<const M: usize, const V: usize> Tap for Acc<M, V> {
    #[inline(always)]
    fn tap(&mut self, ai: usize, bi: usize) {
        // SAFETY: `Acc` exists only inside `Avx2::tile`, which holds the
        // token (AVX2 + FMA) and has checked that `x + bi .. x + bi + 8V` and
        // `a + ai·MR + i` (i < M) are in bounds for every tap of its layout.
        unsafe {
            // The full tile (M = 6, V = 2) in assembly, the rest below.
            if let Ok(acc) = <&mut [__m256; 12]>::try_from(self.acc.as_flattened_mut()) {
                tap_6x2(acc, self.x.add(bi), self.a.add(ai * MR));
                return;
            }
            let mut xv = [_mm256_setzero_ps(); V];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = _mm256_loadu_ps(self.x.add(bi + 8 * v));
            }
            for (i, acc) in self.acc.iter_mut().enumerate() {
                let w = _mm256_broadcast_ss(&*self.a.add(ai * MR + i));
                for (s, &xv) in acc.iter_mut().zip(&xv) {
                    *s = _mm256_fmadd_ps(w, xv, *s);
                }
            }
        }
    }
}

/// One tap of a 6 × 16 tile: two vectors of input, six broadcast filter
/// values, twelve FMAs, in exactly that order. The compiler otherwise hoists
/// the loads of later taps and runs out of registers.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x .. x + 16` and `a .. a + 6` are readable.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tap_6x2(acc: &mut [__m256; 12], x: *const f32, a: *const f32) {
    let [c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51] = acc;
    // SAFETY: the caller's contract.
    unsafe {
        std::arch::asm!(
            "vmovups {x0}, [{x}]",
            "vmovups {x1}, [{x} + 32]",
            "vbroadcastss {w}, dword ptr [{a}]",
            "vfmadd231ps {c00}, {w}, {x0}",
            "vfmadd231ps {c01}, {w}, {x1}",
            "vbroadcastss {w}, dword ptr [{a} + 4]",
            "vfmadd231ps {c10}, {w}, {x0}",
            "vfmadd231ps {c11}, {w}, {x1}",
            "vbroadcastss {w}, dword ptr [{a} + 8]",
            "vfmadd231ps {c20}, {w}, {x0}",
            "vfmadd231ps {c21}, {w}, {x1}",
            "vbroadcastss {w}, dword ptr [{a} + 12]",
            "vfmadd231ps {c30}, {w}, {x0}",
            "vfmadd231ps {c31}, {w}, {x1}",
            "vbroadcastss {w}, dword ptr [{a} + 16]",
            "vfmadd231ps {c40}, {w}, {x0}",
            "vfmadd231ps {c41}, {w}, {x1}",
            "vbroadcastss {w}, dword ptr [{a} + 20]",
            "vfmadd231ps {c50}, {w}, {x0}",
            "vfmadd231ps {c51}, {w}, {x1}",
            x = in(reg) x,
            a = in(reg) a,
            x0 = out(ymm_reg) _,
            x1 = out(ymm_reg) _,
            w = out(ymm_reg) _,
            c00 = inout(ymm_reg) *c00,
            c01 = inout(ymm_reg) *c01,
            c10 = inout(ymm_reg) *c10,
            c11 = inout(ymm_reg) *c11,
            c20 = inout(ymm_reg) *c20,
            c21 = inout(ymm_reg) *c21,
            c30 = inout(ymm_reg) *c30,
            c31 = inout(ymm_reg) *c31,
            c40 = inout(ymm_reg) *c40,
            c41 = inout(ymm_reg) *c41,
            c50 = inout(ymm_reg) *c50,
            c51 = inout(ymm_reg) *c51,
            options(nostack, preserves_flags, readonly, pure),
        );
    }
}

impl Avx2 {
    /// [`Micro::tile`]: a function of its own for each size of tile, not
    /// inlined into the loop over tiles (one function holding every tile
    /// took LLVM minutes to optimise, and a call per tile costs nothing
    /// beside its taps).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    fn tile_at<const M: usize, const V: usize, const T: usize>(
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
        // Bounds of every access below: taps read xt[q0 + b .. q0 + b + 8V]
        // with b < tap_end, filters a[t·MR + i] with i < M and t < lda, and
        // the tile writes out[i·ldo + q0 .. i·ldo + q0 + 8V].
        assert!(q0 + lay.tap_end + 8 * V - 1 <= xt.len());
        assert!(M <= MR && (lda - 1) * MR + M <= a.len() && M <= bias.len());
        assert!((M - 1) * ldo + q0 + 8 * V <= out.len());
        assert!(V <= blocked::NV && skip < 8 * V);
        // SAFETY: the token proves AVX2; the loads of stored sums stay
        // within the bounds of `out` asserted above.
        let acc = unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; M];
            for (i, (acc, &b)) in acc.iter_mut().zip(bias).enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = if part.first {
                        _mm256_set1_ps(b)
                    } else {
                        _mm256_loadu_ps(out.as_ptr().add(i * ldo + q0 + 8 * v))
                    };
                }
            }
            acc
        };
        let mut t = Acc::<M, V> {
            acc,
            x: xt[q0..].as_ptr(),
            a: a.as_ptr(),
        };
        part.for_each_tap::<T>(&mut t);
        // SAFETY: the token proves AVX2; the stores stay within the bounds
        // asserted above (and `row` holds 8V values).
        unsafe {
            let (zero, six) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
            for (i, acc) in t.acc.iter().enumerate() {
                let mut row = [0.0f32; 8 * blocked::NV];
                let (o, to_row) = if skip == 0 {
                    (out.as_mut_ptr().add(i * ldo + q0), false)
                } else {
                    (row.as_mut_ptr(), true)
                };
                for (v, &s) in acc.iter().enumerate() {
                    // max(0, s) and min(6, s) keep a NaN in s, as Act::Relu
                    // and Act::Relu6 do.
                    let s = match part.clamp {
                        Clamp::None => s,
                        Clamp::Relu => _mm256_max_ps(zero, s),
                        Clamp::Relu6 => _mm256_min_ps(six, _mm256_max_ps(zero, s)),
                    };
                    _mm256_storeu_ps(o.add(8 * v), s);
                }
                if to_row {
                    let at = i * ldo + q0;
                    out[at + skip..at + 8 * V].copy_from_slice(&row[skip..8 * V]);
                }
            }
        }
    }
}

impl Micro for Avx2 {
    const LANES: usize = 8;
    const MR: usize = MR;

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
        // SAFETY: the token proves AVX2 and FMA.
        unsafe { self.tile_at::<M, V, T>(lay, part, xt, q0, a, bias, out, ldo, skip) }
    }

    blocked::tile_any!([6, 4, 2], Tiling::Pixels | Tiling::Rows => tile);
}

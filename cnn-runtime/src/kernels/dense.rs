//! Fully connected layers: a GEMV for one input, and for a batch a GEMM
//! that reads the weights once per group of inputs.
//!
//! Weights are N×IN row-major, as PyTorch's `Linear` stores them, so output
//! `n` is the dot product of weight row `n` with the input. The GEMV core
//! computes four rows at a time (the input is loaded once for the four) with
//! `LANES` independent accumulators per row, so that the loop vectorises
//! without waiting on one accumulator's latency. On x86-64 with AVX-512, or
//! AVX2 and FMA (detected at run time), the same core is compiled with
//! fused multiply-adds for that width; elsewhere it is plain Rust.
//!
//! A batch on AVX-512 goes up to 16 inputs at a time in the lanes of a
//! vector, so that each weight loaded serves them all; a layer of few
//! outputs takes blocks of four rows by four inputs instead. Elsewhere a
//! batch is a GEMV per input.

use super::activation::activate;
use super::Act;
use crate::cpu::{Active, Isa, Unsupported};

/// How the GEMV core multiplies and adds.
trait MulAdd {
    /// `a · b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// A multiply then an add: vectorises on every target.
struct Separate;

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// One fused multiply-add: only where the target has an FMA instruction
/// (elsewhere `f32::mul_add` is a slow library call).
#[cfg(target_arch = "x86_64")]
struct Fused;

#[cfg(target_arch = "x86_64")]
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// Sum of an accumulator array, pairwise.
#[inline(always)]
fn sum_lanes<const LANES: usize>(acc: [f32; LANES]) -> f32 {
    let mut acc = acc;
    let mut width = LANES;
    while width > 1 {
        let half = width / 2;
        for i in 0..half {
            acc[i] += acc[i + half];
        }
        if width % 2 == 1 {
            acc[0] += acc[width - 1];
        }
        width = half;
    }
    acc[0]
}

/// `Σ w[i]·x[i]` over a short tail, in order.
#[inline(always)]
fn dot_tail<M: MulAdd>(w: &[f32], x: &[f32]) -> f32 {
    w.iter().zip(x).fold(0.0, |s, (&w, &x)| M::mul_add(w, x, s))
}

/// GEMV with the shapes as values: `y[n] = act(Σᵢ weight[n·IN + i]·x[i] + bias[n])`.
#[inline(always)]
fn gemv<M: MulAdd, const LANES: usize>(
    inputs: usize,
    n: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let x = &x[..inputs];
    let weight = &weight[..inputs * n];
    let bias = &bias[..n];
    let y = &mut y[..n];
    if inputs == 0 {
        y.copy_from_slice(bias);
        activate(act, y);
        return;
    }
    let (x_body, x_tail) = x.as_chunks::<LANES>();
    let body = inputs - x_tail.len();

    // Four rows at a time.
    let mut rows4 = weight.chunks_exact(4 * inputs);
    let mut outs4 = y.chunks_exact_mut(4);
    for ((rows, out), b) in rows4.by_ref().zip(outs4.by_ref()).zip(bias.chunks_exact(4)) {
        let (r0, rest) = rows.split_at(inputs);
        let (r1, rest) = rest.split_at(inputs);
        let (r2, r3) = rest.split_at(inputs);
        let mut acc = [[0.0f32; LANES]; 4];
        let chunks = x_body
            .iter()
            .zip(r0[..body].as_chunks::<LANES>().0)
            .zip(r1[..body].as_chunks::<LANES>().0)
            .zip(r2[..body].as_chunks::<LANES>().0)
            .zip(r3[..body].as_chunks::<LANES>().0);
        for ((((xc, w0), w1), w2), w3) in chunks {
            for i in 0..LANES {
                acc[0][i] = M::mul_add(w0[i], xc[i], acc[0][i]);
                acc[1][i] = M::mul_add(w1[i], xc[i], acc[1][i]);
                acc[2][i] = M::mul_add(w2[i], xc[i], acc[2][i]);
                acc[3][i] = M::mul_add(w3[i], xc[i], acc[3][i]);
            }
        }
        for (r, row) in [r0, r1, r2, r3].into_iter().enumerate() {
            let sum = sum_lanes(acc[r]) + dot_tail::<M>(&row[body..], x_tail);
            out[r] = act.apply(sum + b[r]);
        }
    }

    // The remaining rows, one at a time.
    let done = n - n % 4;
    for ((row, out), b) in rows4
        .remainder()
        .chunks_exact(inputs)
        .zip(outs4.into_remainder())
        .zip(&bias[done..])
    {
        let mut acc = [0.0f32; LANES];
        for (xc, wc) in x_body.iter().zip(row[..body].as_chunks::<LANES>().0) {
            for i in 0..LANES {
                acc[i] = M::mul_add(wc[i], xc[i], acc[i]);
            }
        }
        let sum = sum_lanes(acc) + dot_tail::<M>(&row[body..], x_tail);
        *out = act.apply(sum + b);
    }
}

/// Fully connected layer on `batch` inputs: `x` batch×IN, `weight` N×IN
/// row-major (PyTorch's layout), `bias` N → `y = act(x·Wᵀ + b)`, batch×N.
///
/// On the widest core in use ([`Isa::active`](crate::cpu::Isa::active)):
/// with AVX-512 a GEMV, or for a batch a GEMM that reads the weights once
/// per group of inputs; with AVX2 and FMA a GEMV per input; else the same
/// in plain Rust. NaN and infinities propagate as in any sum of products.
///
/// # Panics
/// If a slice is shorter than its shape (the plan passes slices of exactly
/// the right length).
#[allow(clippy::too_many_arguments)]
pub fn fc(
    batch: usize,
    inputs: usize,
    n: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    fc_any(Active::get(), (inputs, n), batch, x, weight, bias, y, act);
}

/// [`fc`] on the cores of `isa` (for tests and benchmarks, which force
/// each one).
///
/// # Errors
/// The CPU lacks `isa`.
///
/// # Panics
/// As [`fc`].
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn fc_with(
    isa: Isa,
    batch: usize,
    inputs: usize,
    n: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) -> Result<(), Unsupported> {
    if !isa.supported() {
        return Err(Unsupported(isa));
    }
    fc_any(Active::of(isa), (inputs, n), batch, x, weight, bias, y, act);
    Ok(())
}

/// A layer's inputs and outputs.
type Dims = (usize, usize);

/// The fc layer on the widest core `tokens` allow: AVX-512 (a GEMM for a
/// batch), AVX2 + FMA, or plain Rust.
#[allow(clippy::too_many_arguments)]
fn fc_any(
    tokens: Active,
    d: Dims,
    batch: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    #[cfg(target_arch = "x86_64")]
    if tokens.avx512.is_some() {
        let (inputs, n) = d;
        if batch == 1 {
            // SAFETY: the token proves the features `gemv_avx512` is compiled for.
            unsafe { gemv_avx512(d, x, weight, bias, y, act) };
        } else if n < GEMM_MIN_OUTPUTS {
            // SAFETY: as above, for `blocks_avx512`.
            unsafe { blocks_avx512(inputs, n, batch, x, weight, bias, y, act) };
        } else {
            // SAFETY: as above, for `gemm_avx512`.
            unsafe { gemm_avx512(d, batch, x, weight, bias, y, act) };
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if tokens.avx2.is_some() {
        for_each_input(d, batch, x, y, |x, y| {
            // SAFETY: the token proves the features `gemv_avx2` is compiled
            // for.
            unsafe { gemv_avx2(d, x, weight, bias, y, act) }
        });
        return;
    }
    let _ = tokens;
    let (inputs, n) = d;
    for_each_input(d, batch, x, y, |x, y| {
        gemv::<Separate, 8>(inputs, n, x, weight, bias, y, act);
    });
}

/// Runs `gemv` on each of `batch` inputs and its outputs.
#[inline(always)]
fn for_each_input(
    d: Dims,
    batch: usize,
    x: &[f32],
    y: &mut [f32],
    mut gemv: impl FnMut(&[f32], &mut [f32]),
) {
    let (inputs, n) = d;
    for i in 0..batch {
        gemv(&x[i * inputs..][..inputs], &mut y[i * n..][..n]);
    }
}

/// The GEMV core compiled for AVX2 and FMA. Callers lack the features,
/// so it is not inlined into them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gemv_avx2(d: Dims, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], act: Act) {
    let (inputs, n) = d;
    gemv::<Fused, 16>(inputs, n, x, weight, bias, y, act);
}

/// The GEMV core compiled for AVX-512: one 16-wide vector per row (two,
/// with a longer tail, measured slower on 400 inputs).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn gemv_avx512(d: Dims, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], act: Act) {
    let (inputs, n) = d;
    gemv::<Fused, 16>(inputs, n, x, weight, bias, y, act);
}

/// Fewest outputs for which a batch goes through [`gemm_avx512`]; below,
/// transposing the inputs costs more than the weights' loads it saves, and
/// [`blocks_avx512`] takes it (B1's 10 outputs: 10 % slower through
/// `gemm_avx512`, 13 % with a GEMV per input).
#[cfg(target_arch = "x86_64")]
const GEMM_MIN_OUTPUTS: usize = 32;

/// Lanes of a vector: the batch's inputs that [`gemm_avx512`] takes at
/// once, times the input values of each in a vector.
#[cfg(target_arch = "x86_64")]
const LANES: usize = 16;

/// Input values per block that [`gemm_avx512`] transposes onto the stack
/// (32 KiB); a multiple of [`LANES`].
#[cfg(target_arch = "x86_64")]
const KB: usize = 512;

/// Outputs per block whose sums [`gemm_avx512`] keeps on the stack between
/// blocks of input values (16 KiB).
#[cfg(target_arch = "x86_64")]
const NB: usize = 256;

/// Output rows that [`rows_avx512`] takes at once: more than 8 rows 8 KiB
/// apart (inputs a multiple of 1,024) share one set of the 12-way L1 cache,
/// and 16 rows measured 45 % slower on 2,048 inputs.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = 8;

/// The fc layer on a batch with AVX-512, the inputs in the lanes of a
/// vector: a group of G inputs (16, 8, 4 or 2) takes 16/G consecutive
/// values of each. A block of their values is transposed onto the stack,
/// one vector for each 16/G values, and the weights w[j][k..k + 16/G],
/// broadcast G times, multiply it into output j's vector of sums; those
/// lanes are summed at the end. So a weight is loaded once for the group,
/// and no lane is wasted on groups of 2, 4, 8 or 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn gemm_avx512(
    d: Dims,
    batch: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let (inputs, n) = d;
    let x = &x[..batch * inputs];
    let weight = &weight[..inputs * n];
    let bias = &bias[..n];
    let y = &mut y[..batch * n];
    if inputs == 0 {
        for out in y.chunks_exact_mut(n) {
            out.copy_from_slice(bias);
            activate(act, out);
        }
        return;
    }
    let mut i0 = 0;
    while i0 < batch {
        // No closures here: they would not inherit the target features.
        let g = (d, batch, i0);
        i0 += match batch - i0 {
            9.. => group_avx512::<1>(g, x, weight, bias, y, act),
            5.. => group_avx512::<2>(g, x, weight, bias, y, act),
            3 | 4 => group_avx512::<4>(g, x, weight, bias, y, act),
            2 => group_avx512::<8>(g, x, weight, bias, y, act),
            _ => group_avx512::<16>(g, x, weight, bias, y, act),
        };
    }
}

/// Up to 16/`K` inputs of the `batch` from `i0`, `K` values of each per
/// vector (see [`gemm_avx512`]), at least one input value each; returns
/// how many inputs it took.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn group_avx512<const K: usize>(
    (d, batch, i0): (Dims, usize, usize),
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) -> usize {
    let (inputs, n) = d;
    let images = (LANES / K).min(batch - i0);
    let group = &x[i0 * inputs..][..images * inputs];
    // Values past the last multiple of K: added one by one at the end.
    let body = inputs - inputs % K;
    // Lanes past the group's inputs hold stale values, whose sums are
    // never read.
    let mut xt = [[0.0f32; LANES]; KB];
    let mut sums = [[0.0f32; LANES]; NB];
    for j0 in (0..n).step_by(NB) {
        let rows = NB.min(n - j0);
        let sums = &mut sums[..rows];
        for s in sums.iter_mut() {
            *s = [0.0; LANES];
        }
        for k0 in (0..body).step_by(KB) {
            let kb = KB.min(body - k0);
            for (i, xi) in group.chunks_exact(inputs).enumerate() {
                let values = xi[k0..k0 + kb].chunks_exact(K);
                for (t, v) in xt.iter_mut().zip(values) {
                    t[i * K..(i + 1) * K].copy_from_slice(v);
                }
            }
            let xt = &xt[..kb / K];
            let mut j = 0;
            while j < rows {
                let w = &weight[(j0 + j) * inputs + k0..];
                let s = &mut sums[j..];
                j += match rows - j {
                    ROWS.. => rows_avx512::<ROWS, K>(xt, w, inputs, s),
                    4.. => rows_avx512::<4, K>(xt, w, inputs, s),
                    2 | 3 => rows_avx512::<2, K>(xt, w, inputs, s),
                    _ => rows_avx512::<1, K>(xt, w, inputs, s),
                };
            }
        }
        for (i, (xi, out)) in group
            .chunks_exact(inputs)
            .zip(y[i0 * n..].chunks_exact_mut(n))
            .enumerate()
        {
            for (j, (out, s)) in out[j0..j0 + rows].iter_mut().zip(&*sums).enumerate() {
                let row = &weight[(j0 + j) * inputs..][..inputs];
                let tail = dot_tail::<Fused>(&row[body..], &xi[body..]);
                let lanes: f32 = s[i * K..(i + 1) * K].iter().sum();
                *out = act.apply(lanes + tail + bias[j0 + j]);
            }
        }
    }
    images
}

/// Adds to the vector of sums of each of `R` outputs (`sums[r]`) the
/// products of their weights with the transposed inputs `xt`: for row `q`
/// of `xt`, the `K` weights from `w[r·ldw + q·K]`, repeated 16/`K` times.
/// Returns `R`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rows_avx512<const R: usize, const K: usize>(
    xt: &[[f32; LANES]],
    w: &[f32],
    ldw: usize,
    sums: &mut [[f32; LANES]],
) -> usize {
    use std::arch::x86_64::{
        __m512, _mm256_loadu_pd, _mm512_broadcast_f32x4, _mm512_broadcast_f64x4, _mm512_castpd_ps,
        _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_pd, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps, _mm_loadu_ps,
    };
    let kb = xt.len() * K;
    // Bounds of the reads below: row r < R reads w[r·ldw + k], k < kb.
    assert!(kb > 0 && (R - 1) * ldw + kb <= w.len() && R <= sums.len());
    // SAFETY: only reached from `gemm_avx512`, compiled with AVX-512F; the
    // reads stay within the bounds asserted above.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); R];
        for (acc, s) in acc.iter_mut().zip(&*sums) {
            *acc = _mm512_loadu_ps(s.as_ptr());
        }
        let w = w.as_ptr();
        for (q, xq) in xt.iter().enumerate() {
            let v = _mm512_loadu_ps(xq.as_ptr());
            for (r, acc) in acc.iter_mut().enumerate() {
                let p = w.add(r * ldw + q * K);
                let wr: __m512 = match K {
                    1 => _mm512_set1_ps(*p),
                    2 => _mm512_castpd_ps(_mm512_set1_pd(p.cast::<f64>().read_unaligned())),
                    4 => _mm512_broadcast_f32x4(_mm_loadu_ps(p)),
                    8 => _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(p.cast()))),
                    _ => _mm512_loadu_ps(p),
                };
                *acc = _mm512_fmadd_ps(wr, v, *acc);
            }
        }
        for (acc, s) in acc.iter().zip(sums.iter_mut()) {
            _mm512_storeu_ps(s.as_mut_ptr(), *acc);
        }
    }
    R
}

/// The fc layer on a batch with AVX-512, for layers of few outputs: blocks
/// of four rows by four inputs, then the inputs and rows left over. A row
/// block's weights are read from memory once and from cache for the inputs
/// after the first, and each input value once per four rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn blocks_avx512(
    inputs: usize,
    n: usize,
    batch: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let x = &x[..batch * inputs];
    let weight = &weight[..inputs * n];
    let bias = &bias[..n];
    let y = &mut y[..batch * n];
    let d = (inputs, n);
    let (rows4, inputs4) = (n - n % 4, batch - batch % 4);
    for first in (0..rows4).step_by(4) {
        for image in (0..inputs4).step_by(4) {
            block_avx512::<4, 4>(d, first, image, x, weight, bias, y, act);
        }
        for image in inputs4..batch {
            block_avx512::<4, 1>(d, first, image, x, weight, bias, y, act);
        }
    }
    for first in rows4..n {
        for image in (0..inputs4).step_by(4) {
            block_avx512::<1, 4>(d, first, image, x, weight, bias, y, act);
        }
        for image in inputs4..batch {
            block_avx512::<1, 1>(d, first, image, x, weight, bias, y, act);
        }
    }
}

/// Outputs `first..first + R` of inputs `image..image + I`, with R × I
/// vector sums: `y[i·N + j] = act(Σₖ weight[j·IN + k]·x[i·IN + k] + bias[j])`.
/// The last partial vector of each row is read through a mask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
fn block_avx512<const R: usize, const I: usize>(
    (inputs, n): (usize, usize),
    first: usize,
    image: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_reduce_add_ps,
        _mm512_setzero_ps,
    };
    const LANES: usize = 16;
    // No closures here: they would not inherit the target features, and
    // the intrinsics in them would be calls.
    let mut rows: [&[f32]; R] = [&[]; R];
    for (r, row) in rows.iter_mut().enumerate() {
        *row = &weight[(first + r) * inputs..][..inputs];
    }
    let mut xs: [&[f32]; I] = [&[]; I];
    for (i, xi) in xs.iter_mut().enumerate() {
        *xi = &x[(image + i) * inputs..][..inputs];
    }
    let zero = _mm512_setzero_ps();
    let mut acc: [[__m512; R]; I] = [[zero; R]; I];
    let body = inputs - inputs % LANES;
    for k in (0..body).step_by(LANES) {
        let mut w = [zero; R];
        for (w, row) in w.iter_mut().zip(&rows) {
            // SAFETY: k + 16 ≤ body ≤ inputs, the length of every row.
            *w = unsafe { _mm512_loadu_ps(row.as_ptr().add(k)) };
        }
        for i in 0..I {
            // SAFETY: as above.
            let v = unsafe { _mm512_loadu_ps(xs[i].as_ptr().add(k)) };
            for r in 0..R {
                acc[i][r] = _mm512_fmadd_ps(w[r], v, acc[i][r]);
            }
        }
    }
    if body < inputs {
        // The lanes past `inputs - body` are neither read nor summed.
        let mask = (1u16 << (inputs - body)) - 1;
        let mut w = [zero; R];
        for (w, row) in w.iter_mut().zip(&rows) {
            // SAFETY: a masked load reads only the lanes of its mask, here
            // body..inputs, within every row and input.
            *w = unsafe { _mm512_maskz_loadu_ps(mask, row.as_ptr().add(body)) };
        }
        for i in 0..I {
            // SAFETY: as above.
            let v = unsafe { _mm512_maskz_loadu_ps(mask, xs[i].as_ptr().add(body)) };
            for r in 0..R {
                acc[i][r] = _mm512_fmadd_ps(w[r], v, acc[i][r]);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        let out = &mut y[(image + i) * n + first..][..R];
        for ((out, &sum), &b) in out.iter_mut().zip(acc).zip(&bias[first..first + R]) {
            *out = act.apply(_mm512_reduce_add_ps(sum) + b);
        }
    }
}

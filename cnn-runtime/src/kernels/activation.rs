//! Element-wise activations, and softmax.
//!
//! Every activation is written as a function of one value without branches
//! or calls (selects, bit operations and polynomials), so that a loop of it
//! vectorises. [`activate`], and the kernels of [`norm`](super::norm) that
//! end in an activation, run such loops through [`elementwise`], compiled
//! for AVX-512, for AVX2 and FMA, and for the build target, chosen by the
//! tokens of the instruction set in use.
//!
//! Sigmoid, tanh and SiLU take e^x from [`exp`], GELU the erfc of
//! [`erfc`](super::erfc) vectorised (in f64). Each is within 2.5·10⁻⁷
//! (relative) of the exact value, except that sigmoid's and SiLU's values
//! below about 3·10⁻³⁷ in magnitude may flush to zero, and they keep
//! [`Act::apply`]'s NaN and infinities: NaN stays NaN, sigmoid(±∞) = 1 and
//! 0, tanh(±∞) = ±1, SiLU, GELU and hard swish map +∞ to +∞ and −∞ to NaN
//! (−∞ · 0, as PyTorch's formulas do).

use super::Act;
use crate::cpu::{Active, Isa, Unsupported};

/// Applies an activation in place, vectorised on every instruction set.
/// Never panics; NaN and infinities as [`Act::apply`] (see the module
/// docs).
pub fn activate(act: Act, y: &mut [f32]) {
    if act != Act::Identity {
        elementwise(Active::get(), act, InPlace(y));
    }
}

/// [`activate`] as with `isa` in use (for tests and benchmarks, which force
/// each instruction set).
///
/// # Errors
/// The CPU lacks `isa`.
#[doc(hidden)]
pub fn activate_with(isa: Isa, act: Act, y: &mut [f32]) -> Result<(), Unsupported> {
    if !isa.supported() {
        return Err(Unsupported(isa));
    }
    elementwise(Active::of(isa), act, InPlace(y));
    Ok(())
}

/// The activation of each value, in place.
struct InPlace<'a>(&'a mut [f32]);

impl Elementwise for InPlace<'_> {
    #[inline(always)]
    fn run<M: MulAdd>(self, act: impl Fn(f32) -> f32) {
        for v in self.0 {
            *v = act(*v);
        }
    }
}

/// A loop over values that ends in an activation. [`elementwise`] runs it
/// with the activation as a function of one value, so that the loop is
/// compiled once per activation and instruction set, `M` the
/// instruction set's multiply-add.
pub(super) trait Elementwise {
    /// The loop, applying `act` to each value it computes.
    fn run<M: MulAdd>(self, act: impl Fn(f32) -> f32);
}

/// Runs `work` with the activation `act`, compiled for the widest of
/// `tokens`.
pub(super) fn elementwise(tokens: Active, act: Act, work: impl Elementwise) {
    #[cfg(target_arch = "x86_64")]
    if tokens.avx512.is_some() {
        // SAFETY: the token proves AVX-512F, AVX2 and FMA.
        return unsafe { elementwise_avx512(act, work) };
    }
    #[cfg(target_arch = "x86_64")]
    if tokens.avx2.is_some() {
        // SAFETY: the token proves AVX2 and FMA.
        return unsafe { elementwise_avx2(act, work) };
    }
    let _ = tokens;
    with_activation::<Separate>(act, work);
}

/// [`with_activation`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn elementwise_avx512(act: Act, work: impl Elementwise) {
    with_activation::<Fused>(act, work);
}

/// [`with_activation`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn elementwise_avx2(act: Act, work: impl Elementwise) {
    with_activation::<Fused>(act, work);
}

/// Runs `work` with `act` as a function of one value.
#[inline(always)]
fn with_activation<M: MulAdd>(act: Act, work: impl Elementwise) {
    match act {
        Act::Identity => work.run::<M>(|x| x),
        Act::Relu => work.run::<M>(relu),
        Act::Relu6 => work.run::<M>(relu6),
        Act::LeakyRelu(slope) => work.run::<M>(move |x| leaky_relu(slope, x)),
        Act::Sigmoid => work.run::<M>(sigmoid::<M>),
        Act::Tanh => work.run::<M>(tanh::<M>),
        Act::Silu => work.run::<M>(silu::<M>),
        Act::Gelu => work.run::<M>(gelu::<M>),
        Act::HardSwish => work.run::<M>(hard_swish),
    }
}

/// How a kernel multiplies and adds.
pub(super) trait MulAdd {
    /// `a · b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
    /// `a · b + c` in f64.
    fn mul_add64(a: f64, b: f64, c: f64) -> f64;
}

/// A multiply then an add: vectorises on every target.
pub(super) struct Separate;

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    fn mul_add64(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

/// One fused multiply-add: only where the target has an FMA instruction
/// (elsewhere `f32::mul_add` is a slow library call).
#[cfg(target_arch = "x86_64")]
pub(super) struct Fused;

#[cfg(target_arch = "x86_64")]
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul_add64(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

/// `max(0, x)`; NaN and −0 stay.
///
/// As `0 > x ? 0 : x` (`maxps(0, x)`, which gives `x` for NaN) OR-ed
/// with `x > 0 ? x : 0`, which changes no value: a loop storing `0 > x ? 0
/// : x` back where `x` came from is compiled into masked stores of the
/// zeros (LLVM), which AMD's cores run several times slower.
#[inline(always)]
fn relu(x: f32) -> f32 {
    let kept = if 0.0 > x { 0.0 } else { x };
    let positive = if x > 0.0 { x } else { 0.0 };
    f32::from_bits(kept.to_bits() | positive.to_bits())
}

/// `min(max(0, x), 6)`; NaN and −0 stay.
#[inline(always)]
fn relu6(x: f32) -> f32 {
    let x = if x < 0.0 { 0.0 } else { x };
    if x > 6.0 {
        6.0
    } else {
        x
    }
}

/// `x`, or `slope·x` below 0: `x` times `slope` or 1 (not a choice
/// between `slope·x` and `x`, for the reason [`relu`] gives).
#[inline(always)]
fn leaky_relu(slope: f32, x: f32) -> f32 {
    x * if x < 0.0 { slope } else { 1.0 }
}

/// `x · relu6(x + 3) / 6`, the division a multiplication by 1/6 (which
/// still gives `x` itself from 3 on: 6 · (1/6) rounds to 1).
#[inline(always)]
fn hard_swish(x: f32) -> f32 {
    x * (relu6(x + 3.0) * (1.0 / 6.0))
}

/// `1 / (1 + e^−x)`.
#[inline(always)]
fn sigmoid<M: MulAdd>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<M>(-x))
}

/// `x / (1 + e^−x)`, as [`Act::apply`] writes it (so −∞ gives ∞/∞, NaN).
#[inline(always)]
fn silu<M: MulAdd>(x: f32) -> f32 {
    x / (1.0 + exp::<M>(-x))
}

/// `tanh(x)`: below |x| = 0.625 Cephes' odd polynomial (`tanhf`), above
/// it `1 − 2/(e^2|x| + 1)` with the sign of `x`, which is ±1 once e^2|x|
/// overflows.
#[inline(always)]
fn tanh<M: MulAdd>(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let p = horner::<M, 5>(
        z,
        [
            -3.333_328e-1,
            1.333_144_2e-1,
            -5.373_971_6e-2,
            2.063_909e-2,
            -5.704_988_7e-3,
        ],
    );
    let small = M::mul_add(p * z, x, x);
    let large = (1.0 - 2.0 / (exp::<M>(a + a) + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

/// `x · Φ(x) = x/2 · erfc(−x/√2)`, with erfc from the Chebyshev fit of
/// [`erfc`](super::erfc) (Numerical Recipes' `erfcc`, fractional error
/// below 1.2·10⁻⁷): for `z = |x|/√2`, `erfc(z) = t·e^(−z² + P(t))` with
/// `t = 1/(1 + z/2)`, and `erfc(−z) = 2 − erfc(z)`.
///
/// Evaluated in f64, as [`erfc`](super::erfc) is: in f32 the roundings of
/// `t`, of `P`'s terms and of `z²` add up to several times the fit's error
/// (`z²` alone loses 10⁻⁶ of the exponent at |x| ≈ 5). The result is then
/// rounded once: within about 2·10⁻⁷ (relative) of GELU.
#[inline(always)]
fn gelu<M: MulAdd>(x: f32) -> f32 {
    // |x| kept below the bound (NaN too), where e^−z² is far below f32's
    // range: the result takes NaN and ±∞ from x itself.
    let a = x.abs();
    let inside = a < GELU_BOUND;
    let a = if inside { a } else { GELU_BOUND };
    // t to f32's precision by a division in f32, then to f64's by a step
    // of Newton's method (a division in f64 costs more).
    let t = f64::from(1.0 / M::mul_add(a, HALF_FRAC_1_SQRT_2, 1.0));
    let a = f64::from(a);
    let d = M::mul_add64(a, 0.5 * std::f64::consts::FRAC_1_SQRT_2, 1.0);
    let t = M::mul_add64(t, M::mul_add64(-d, t, 1.0), t);
    let p = horner64::<M, 10>(
        t,
        [
            -1.265_512_23,
            1.000_023_68,
            0.374_091_96,
            0.096_784_18,
            -0.186_288_06,
            0.278_868_07,
            -1.135_203_98,
            1.488_515_87,
            -0.822_152_23,
            0.170_872_77,
        ],
    );
    // −z² + P(t), with z² = a²/2.
    let erfc = t * exp64::<M>(M::mul_add64(-0.5 * a, a, p));
    let erfc = if inside { erfc } else { 0.0 };
    let q = if x < 0.0 { erfc } else { 2.0 - erfc };
    (0.5 * f64::from(x) * q) as f32
}

/// 1/(2√2), for GELU's `t = 1/(1 + |x|/(2√2))`.
const HALF_FRAC_1_SQRT_2: f32 = 0.353_553_38;

/// The |x| from which GELU's erfc(|x|/√2) is taken as 0: −x/2·erfc(x/√2)
/// is below half the smallest f32 there, so rounds to 0 anyway.
const GELU_BOUND: f32 = 14.5;

/// e^x in f64 for GELU's exponent (−107 < x < 1), to about 2·10⁻⁹: `n =
/// round(x/ln 2)`, e^r for `r = x − n·ln 2` (|r| ≤ ln 2/2) from a
/// polynomial of degree 6 fitted on that interval (Chebyshev
/// interpolation, error 2.1·10⁻⁹: f32 needs no more), times 2ⁿ made in
/// the exponent bits.
#[inline(always)]
fn exp64<M: MulAdd>(x: f64) -> f64 {
    // 1.5·2⁵²: adding it rounds to an integer, and leaves n in the low
    // bits of `t`.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let t = M::mul_add64(x, std::f64::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = M::mul_add64(n, -std::f64::consts::LN_2, x);
    let p = horner64::<M, 7>(
        r,
        [
            1.0,
            1.000_000_040_038_87,
            0.500_000_005_001_879_7,
            0.166_664_053_026_343,
            0.041_666_340_142_225_58,
            0.008_375_968_226_311_425,
            0.001_394_215_983_366_143_6,
        ],
    );
    // 2ⁿ: (n + 1023) << 52 (wrapping arithmetic: n's bits sit at the
    // bottom of t's).
    p * f64::from_bits((t.to_bits() << 52).wrapping_add(1023 << 52))
}

/// e^x: see [`exp_sum`].
#[inline(always)]
fn exp<M: MulAdd>(x: f32) -> f32 {
    exp_sum::<M>(x, 0.0)
}

/// e^(a + b), where `b` carries bits of the exponent that `a` could not
/// (`b` small beside `a`, or both small): within about 1.5·10⁻⁷
/// (relative) of the exact value, +∞ above ln(f32::MAX), 0 below −86.9
/// (where e^x is under 2⁻¹²⁵: flushed), NaN for NaN.
///
/// Cody and Waite's reduction: `n = round((a + b)/ln 2)`, `r = a + b − n·ln
/// 2` in |r| ≤ ln 2/2, with ln 2 in two parts so that `a − n·LN2_HI` is
/// exact; then e^r from Cephes' polynomial (`expf`, degree 7), times 2ⁿ
/// made in the exponent bits.
#[inline(always)]
fn exp_sum<M: MulAdd>(a: f32, b: f32) -> f32 {
    let s = a + b;
    // ROUND = 1.5·2²³: adding it rounds to an integer, and leaves n in the
    // low mantissa bits of `t` (|n| < 2²²).
    let t = M::mul_add(s, std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = M::mul_add(n, -LN2_HI, a);
    let r = M::mul_add(n, -LN2_LO, r) + b;
    let p = horner::<M, 6>(
        r,
        [
            0.5,
            1.666_666_5e-1,
            4.166_579_6e-2,
            8.333_452e-3,
            1.398_199_9e-3,
            1.987_569_2e-4,
        ],
    );
    let e = M::mul_add(p, r * r, r) + 1.0;
    // 2^(n − 1), built as its exponent bits (n − 1 + 127) << 23 from the
    // low bits of t, times 2·e^r: so that n = 128, at the top of the range,
    // still has an exponent (wrapping arithmetic: outside the range the
    // bits are garbage, replaced below).
    let scale = f32::from_bits((t.to_bits() << 23).wrapping_add(126 << 23));
    let e = (e + e) * scale;
    if s > EXP_MAX {
        f32::INFINITY
    } else if s < EXP_MIN {
        0.0
    } else {
        e
    }
}

/// 1.5·2²³, which rounds a sum to an integer.
const ROUND: f32 = 12_582_912.0;
/// ln 2 to 9 bits (355/512), so that `n · LN2_HI` is exact for |n| < 2¹⁵.
const LN2_HI: f32 = 0.693_359_4;
/// ln 2 − LN2_HI.
const LN2_LO: f32 = -2.121_944_4e-4;
/// ln(f32::MAX): e^x overflows above.
const EXP_MAX: f32 = 88.722_84;
/// Below, e^x < 2⁻¹²⁵ (n − 1 < −126 would leave the exponent's range) and
/// [`exp_sum`] gives 0.
const EXP_MIN: f32 = -86.9;

/// The polynomial `c[0] + c[1]·x + … + c[N − 1]·x^(N − 1)` by Horner's
/// scheme.
#[inline(always)]
fn horner<M: MulAdd, const N: usize>(x: f32, c: [f32; N]) -> f32 {
    let mut p = c[N - 1];
    for &c in c[..N - 1].iter().rev() {
        p = M::mul_add(p, x, c);
    }
    p
}

/// [`horner`] in f64.
#[inline(always)]
fn horner64<M: MulAdd, const N: usize>(x: f64, c: [f64; N]) -> f64 {
    let mut p = c[N - 1];
    for &c in c[..N - 1].iter().rev() {
        p = M::mul_add64(p, x, c);
    }
    p
}

/// Softmax over all values, in place: `e^(v − max) / Σ e^(u − max)`, shifted
/// by the largest value so that no exponential overflows.
///
/// Never panics. A NaN anywhere makes every output NaN, a `+∞` makes every
/// output NaN (∞ − ∞ in the shift), all `−∞` gives NaN (0/0); an empty slice
/// is left as it is.
pub fn softmax(y: &mut [f32]) {
    let max = y.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in y.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in y.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::{exp, exp64, exp_sum, Separate};

    /// e^x of f32, against f64's, relative, over a sweep of its range.
    fn worst_exp(exp: impl Fn(f32) -> f32) -> (f64, f32) {
        let mut worst = (0.0, 0.0);
        for i in -869_000..=887_228 {
            let x = i as f32 / 10_000.0;
            let want = f64::from(x).exp();
            let error = (f64::from(exp(x)) - want).abs() / want;
            if error > worst.0 {
                worst = (error, x);
            }
        }
        worst
    }

    #[test]
    fn exp_is_within_two_parts_in_ten_million() {
        let (error, x) = worst_exp(exp::<Separate>);
        assert!(error < 1.5e-7, "e^{x}: {error:e}");
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::Avx2::detect().is_some() {
            let (error, x) = worst_exp(exp::<super::Fused>);
            assert!(error < 1.5e-7, "fused, e^{x}: {error:e}");
        }
    }

    #[test]
    fn exp_overflows_underflows_and_keeps_nan() {
        let e = exp::<Separate>;
        assert_eq!(e(88.73), f32::INFINITY);
        assert_eq!(e(f32::INFINITY), f32::INFINITY);
        assert_eq!(e(f32::MAX), f32::INFINITY);
        assert!(e(88.72).is_finite());
        assert_eq!(e(-87.0), 0.0);
        assert_eq!(e(f32::NEG_INFINITY), 0.0);
        assert_eq!(e(f32::MIN), 0.0);
        assert!(e(-86.8) > 0.0);
        assert!(e(f32::NAN).is_nan());
        assert_eq!(e(0.0), 1.0);
    }

    /// The low part carries what the high part could not: e^(a + b) for
    /// a = −25.3 (its f32 ulp 2·10⁻⁶), b a few ulps of it.
    #[test]
    fn exp_sum_takes_the_low_part_into_account() {
        let a = -25.3f32;
        for b in [1e-6f32, -3e-6, 7.5e-7] {
            let want = (f64::from(a) + f64::from(b)).exp();
            let got = f64::from(exp_sum::<Separate>(a, b));
            assert!(
                (got - want).abs() < 1.5e-7 * want,
                "e^({a} + {b}) = {got}, not {want}"
            );
        }
    }

    #[test]
    fn exp64_is_within_three_parts_in_a_billion() {
        for i in -107_000..=1_000 {
            let x = f64::from(i) / 1_000.0;
            let (got, want) = (exp64::<Separate>(x), x.exp());
            assert!(
                (got - want).abs() < 3e-9 * want,
                "e^{x} = {got}, not {want}"
            );
        }
    }
}

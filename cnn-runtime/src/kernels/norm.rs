//! Element-wise kernels of normalisation and residual connections: a
//! per-channel affine map (a batch norm that could not be folded into the
//! conv before it) and the sum of two tensors, each followed by an
//! activation, vectorised through [`elementwise`].

use super::activation::{elementwise, Elementwise, MulAdd};
use super::Act;
use crate::cpu::{Active, Isa, Unsupported};

/// A per-channel affine map, then the activation: `y = act(x·scale[ch] +
/// shift[ch])` for the `hw` values of each of the `c` channels of `x`
/// (C×HW), as a batch norm in inference computes it, with `scale =
/// γ/√(σ² + ε)` and `shift = β − μ·scale`. The multiply-add is fused on
/// AVX2 and AVX-512.
///
/// # Panics
/// If `x` or `y` is shorter than C·HW, or `scale` or `shift` than C.
pub fn channel_affine(
    c: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    x: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let work = Affine::new(c, hw, scale, shift, Some(x), y);
    elementwise(Active::get(), act, work);
}

/// [`channel_affine`] in place: `y = act(y·scale[ch] + shift[ch])`.
///
/// # Panics
/// If `y` is shorter than C·HW, or `scale` or `shift` than C.
pub fn channel_affine_in_place(
    c: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let work = Affine::new(c, hw, scale, shift, None, y);
    elementwise(Active::get(), act, work);
}

/// [`channel_affine`] (from `x`) or [`channel_affine_in_place`] (`x` none)
/// as with `isa` in use (for tests and benchmarks).
///
/// # Errors
/// The CPU lacks `isa`.
///
/// # Panics
/// As [`channel_affine`].
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn channel_affine_with(
    isa: Isa,
    c: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    x: Option<&[f32]>,
    y: &mut [f32],
    act: Act,
) -> Result<(), Unsupported> {
    if !isa.supported() {
        return Err(Unsupported(isa));
    }
    let work = Affine::new(c, hw, scale, shift, x, y);
    elementwise(Active::of(isa), act, work);
    Ok(())
}

/// The sum of two tensors, then the activation, in place: `y = act(y +
/// x)`, the end of a residual block.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn add(x: &[f32], y: &mut [f32], act: Act) {
    elementwise(Active::get(), act, Add::new(x, y));
}

/// [`add`] as with `isa` in use (for tests and benchmarks).
///
/// # Errors
/// The CPU lacks `isa`.
///
/// # Panics
/// As [`add`].
#[doc(hidden)]
pub fn add_with(isa: Isa, x: &[f32], y: &mut [f32], act: Act) -> Result<(), Unsupported> {
    if !isa.supported() {
        return Err(Unsupported(isa));
    }
    elementwise(Active::of(isa), act, Add::new(x, y));
    Ok(())
}

/// The loop of [`channel_affine`]: from `x`, or in place.
struct Affine<'a> {
    hw: usize,
    scale: &'a [f32],
    shift: &'a [f32],
    x: Option<&'a [f32]>,
    y: &'a mut [f32],
}

impl<'a> Affine<'a> {
    /// The slices cut to their lengths (panics if one is shorter).
    fn new(
        c: usize,
        hw: usize,
        scale: &'a [f32],
        shift: &'a [f32],
        x: Option<&'a [f32]>,
        y: &'a mut [f32],
    ) -> Self {
        Affine {
            hw,
            scale: &scale[..c],
            shift: &shift[..c],
            x: x.map(|x| &x[..c * hw]),
            y: &mut y[..c * hw],
        }
    }
}

impl Elementwise for Affine<'_> {
    #[inline(always)]
    fn run<M: MulAdd>(self, act: impl Fn(f32) -> f32) {
        let Affine {
            hw,
            scale,
            shift,
            x,
            y,
        } = self;
        if hw == 0 {
            return;
        }
        let channels = y.chunks_exact_mut(hw).zip(scale.iter().zip(shift));
        for (ch, (yc, (&a, &b))) in channels.enumerate() {
            match x {
                Some(x) => {
                    for (out, &v) in yc.iter_mut().zip(&x[ch * hw..][..hw]) {
                        *out = act(M::mul_add(v, a, b));
                    }
                }
                None => {
                    for out in yc {
                        *out = act(M::mul_add(*out, a, b));
                    }
                }
            }
        }
    }
}

/// The loop of [`add`].
struct Add<'a> {
    x: &'a [f32],
    y: &'a mut [f32],
}

impl<'a> Add<'a> {
    /// Panics if `x` and `y` differ in length.
    fn new(x: &'a [f32], y: &'a mut [f32]) -> Self {
        assert_eq!(x.len(), y.len(), "the tensors added differ in length");
        Add { x, y }
    }
}

impl Elementwise for Add<'_> {
    #[inline(always)]
    fn run<M: MulAdd>(self, act: impl Fn(f32) -> f32) {
        for (out, &v) in self.y.iter_mut().zip(self.x) {
            *out = act(*out + v);
        }
    }
}

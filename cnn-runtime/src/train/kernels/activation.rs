//! Element-wise activations and softmax for training: every [`Act`]
//! (relu, relu6, leaky relu, sigmoid, tanh, SiLU, GELU in its exact erf
//! form, hard swish). Their backward passes take the activation's input `x`
//! and output `y`: sigmoid′ = y(1 − y), tanh′ = 1 − y², the others from `x`
//! with PyTorch's choices at the kinks (relu′(0) = 0, relu6′ = 0 at 0 and
//! 6, leaky relu′(0) = slope, hard swish′ = x/3 + 1/2 at ±3), and softmax's
//! Jacobian is diag(y) − y·yᵀ.

use crate::kernels::Act;

/// `y = act(x)` over `len` values.
pub fn activate_with(len: usize, act: Act, x: &[f32], y: &mut [f32]) {
    let (x, y) = (&x[..len], &mut y[..len]);
    if act == Act::Relu {
        // The common case, a loop of selects.
        for (out, &v) in y.iter_mut().zip(x) {
            *out = if v < 0.0 { 0.0 } else { v };
        }
        return;
    }
    for (out, &v) in y.iter_mut().zip(x) {
        *out = act.apply(v);
    }
}

/// The backward pass of an activation over `len` values: `dx = dy · act′`,
/// computed from the activation's input `x` and output `y`.
#[inline(always)]
pub fn activate_backward_with(
    len: usize,
    act: Act,
    (x, y): (&[f32], &[f32]),
    dy: &[f32],
    dx: &mut [f32],
) {
    let (x, y, dy, dx) = (&x[..len], &y[..len], &dy[..len], &mut dx[..len]);
    if act == Act::Relu {
        // The common case, a loop of selects.
        for ((&x, &d), g) in x.iter().zip(dy).zip(dx.iter_mut()) {
            *g = if x > 0.0 { d } else { 0.0 };
        }
        return;
    }
    for (((&x, &y), &d), g) in x.iter().zip(y).zip(dy).zip(dx.iter_mut()) {
        *g = d * derivative(act, x, y);
    }
}

/// The activation's derivative at input `x`, whose output is `y`.
#[inline(always)]
fn derivative(act: Act, x: f32, y: f32) -> f32 {
    let unit = |inside: bool| if inside { 1.0 } else { 0.0 };
    match act {
        Act::Identity => 1.0,
        Act::Relu => unit(x > 0.0),
        Act::Relu6 => unit(x > 0.0 && x < 6.0),
        Act::LeakyRelu(slope) => {
            if x > 0.0 {
                1.0
            } else {
                slope
            }
        }
        Act::Sigmoid => y * (1.0 - y),
        Act::Tanh => 1.0 - y * y,
        Act::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
        // Φ(x) + x·φ(x).
        Act::Gelu => {
            let phi = (-0.5 * x * x).exp() / (2.0 * std::f32::consts::PI).sqrt();
            0.5 * crate::kernels::erfc(-x * std::f32::consts::FRAC_1_SQRT_2) + x * phi
        }
        // PyTorch's `hardswish_backward`: x/3 + 1/2 on [−3, 3], ends
        // included.
        Act::HardSwish => {
            if x < -3.0 {
                0.0
            } else if x <= 3.0 {
                x / 3.0 + 0.5
            } else {
                1.0
            }
        }
    }
}

/// Softmax over each of `n` images' `len` values, shifted by the maximum.
pub fn softmax_with(len: usize, n: usize, x: &[f32], y: &mut [f32]) {
    if len == 0 {
        return;
    }
    for (xb, yb) in x[..n * len]
        .chunks_exact(len)
        .zip(y[..n * len].chunks_exact_mut(len))
    {
        let max = xb.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (out, &v) in yb.iter_mut().zip(xb) {
            *out = (v - max).exp();
            sum += *out;
        }
        let inv = 1.0 / sum;
        for out in yb.iter_mut() {
            *out *= inv;
        }
    }
}

/// The backward pass of a softmax over `len` values of `n` images:
/// `dx = y ⊙ (dy − ⟨dy, y⟩)` per image.
#[inline(always)]
pub fn softmax_backward_with(len: usize, n: usize, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    if len == 0 {
        return;
    }
    for ((yb, dyb), dxb) in y[..n * len]
        .chunks_exact(len)
        .zip(dy[..n * len].chunks_exact(len))
        .zip(dx[..n * len].chunks_exact_mut(len))
    {
        let dot: f32 = yb.iter().zip(dyb).map(|(y, d)| y * d).sum();
        for ((&y, &d), g) in yb.iter().zip(dyb).zip(dxb.iter_mut()) {
            *g = y * (d - dot);
        }
    }
}

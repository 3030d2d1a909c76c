//! Element-wise activations and softmax for training. Their backward passes
//! need only the layer's output `y`: relu′ = \[y > 0\], sigmoid′ = y(1 − y),
//! tanh′ = 1 − y², and softmax's Jacobian is diag(y) − y·yᵀ.

use crate::kernels::Act;

/// `y = act(x)` over `len` values.
pub fn activate_with(len: usize, act: Act, x: &[f32], y: &mut [f32]) {
    for (out, &v) in y[..len].iter_mut().zip(&x[..len]) {
        *out = act.apply(v);
    }
}

/// The backward pass of an activation over `len` values: `dx = dy · act′`,
/// computed from the activation's output `y`.
#[inline(always)]
pub fn activate_backward_with(len: usize, act: Act, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let values = y[..len].iter().zip(&dy[..len]).zip(&mut dx[..len]);
    match act {
        Act::Identity => dx[..len].copy_from_slice(&dy[..len]),
        Act::Relu => {
            for ((&y, &d), g) in values {
                *g = if y > 0.0 { d } else { 0.0 };
            }
        }
        Act::Sigmoid => {
            for ((&y, &d), g) in values {
                *g = d * y * (1.0 - y);
            }
        }
        Act::Tanh => {
            for ((&y, &d), g) in values {
                *g = d * (1.0 - y * y);
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

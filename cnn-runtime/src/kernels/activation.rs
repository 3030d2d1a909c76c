//! Element-wise activations and softmax, in place.

use super::Act;

/// Applies an activation in place: one loop per kind, so that ReLU
/// vectorises. Never panics: ReLU keeps NaN (NaN is not below 0), sigmoid
/// maps ±∞ to 1 and 0, tanh maps ±∞ to ±1, and NaN stays NaN.
#[inline]
pub fn activate(act: Act, y: &mut [f32]) {
    match act {
        Act::Identity => {}
        Act::Relu => {
            for v in y {
                *v = if *v < 0.0 { 0.0 } else { *v };
            }
        }
        act => {
            for v in y {
                *v = act.apply(*v);
            }
        }
    }
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

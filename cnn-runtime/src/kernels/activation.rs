use super::Act;

/// Applies an activation in place.
#[inline]
pub fn activate(act: Act, y: &mut [f32]) {
    if act == Act::Identity {
        return;
    }
    for v in y {
        *v = act.apply(*v);
    }
}

/// Softmax over all values, in place, shifted by the maximum for stability.
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

use super::dense::activation;
use crate::kernels::Act;

/// A per-channel affine map, then the activation, computed in f64: `y =
/// act(x·scale[ch] + shift[ch])` for the `hw` values of each of the `c`
/// channels of `x` (C×HW).
pub fn channel_affine(
    c: usize,
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    x: &[f32],
    y: &mut [f32],
    act: Act,
) {
    for ch in 0..c {
        let (a, b) = (f64::from(scale[ch]), f64::from(shift[ch]));
        for i in ch * hw..(ch + 1) * hw {
            y[i] = activation(act, f64::from(x[i]) * a + b) as f32;
        }
    }
}

/// The sum of two tensors, then the activation, computed in f64: `y =
/// act(y + x)`.
pub fn add(x: &[f32], y: &mut [f32], act: Act) {
    assert_eq!(x.len(), y.len(), "the tensors added differ in length");
    for (out, &v) in y.iter_mut().zip(x) {
        *out = activation(act, f64::from(*out) + f64::from(v)) as f32;
    }
}

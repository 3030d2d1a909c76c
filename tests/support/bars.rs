//! A small labelled data set for the training tests, with no RNG
//! dependency.

use ndarray::Array4;

/// A deterministic value in [0, 1) from a counter (SplitMix64's mix).
pub fn noise(i: usize) -> f32 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

/// `n` 1×6×6 images of three classes — a horizontal bar, a vertical bar, a
/// diagonal, at varying positions — each pixel `on` on the bar,
/// `spread · noise` and `offset` added everywhere; the labels cycle 0, 1, 2.
pub fn bars_with(n: usize, on: f32, spread: f32, offset: f32) -> (Array4<f32>, Vec<usize>) {
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let x = Array4::from_shape_fn((n, 1, 6, 6), |(i, _, h, w)| {
        let at = 1 + i / 3 % 4;
        let lit = match labels[i] {
            0 => h == at,
            1 => w == at,
            _ => h == w,
        };
        on * f32::from(u8::from(lit)) + spread * noise(i * 36 + h * 6 + w) + offset
    });
    (x, labels)
}

/// [`bars_with`] with bars of 1 and noise of 0.3.
#[allow(dead_code)]
pub fn bars(n: usize) -> (Array4<f32>, Vec<usize>) {
    bars_with(n, 1.0, 0.3, 0.0)
}

//! Dropout in training mode, PyTorch's inverted dropout: each value is
//! dropped (set to zero) with probability `p`, and the values kept are
//! scaled by `1/(1 − p)`, so that the expected output is the input and
//! inference is the identity.
//!
//! The mask is a pure function of a seed, the layer, the image's index in
//! the batch and the value's index in the image (a counter-based generator:
//! SplitMix64's mixer over those counters), so the forward and the
//! backward pass draw the same mask without storing it, and the mask does
//! not depend on how the batch is cut into chunks or spread over threads.

/// The dropout of one layer in one training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of dropping a value, `0 ≤ p < 1`.
    pub p: f32,
    /// The step's seed (the training pass uses the parameters'
    /// [`steps`](crate::Parameters::steps)).
    pub seed: u64,
    /// The layer's index in the network's layers.
    pub layer: usize,
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection of `u64` that mixes every bit.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Dropout {
    /// The factor kept values are multiplied by, `1/(1 − p)`.
    #[inline(always)]
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    /// The 32-bit draws below which a value is dropped: `p · 2³²`.
    #[inline(always)]
    fn threshold(&self) -> u64 {
        (f64::from(self.p.clamp(0.0, 1.0)) * 4_294_967_296.0).round() as u64
    }

    /// The generator's state for image `image` of the batch.
    #[inline(always)]
    fn stream(&self, image: usize) -> u64 {
        let layer = mix(self.seed.wrapping_add(GOLDEN)) ^ (self.layer as u64).wrapping_add(GOLDEN);
        mix(mix(layer) ^ (image as u64).wrapping_mul(GOLDEN))
    }

    /// Whether value `index` of image `image` of the batch is kept.
    #[inline(always)]
    pub fn keeps(&self, image: usize, index: usize) -> bool {
        self.keeps_in(self.stream(image), self.threshold(), index)
    }

    #[inline(always)]
    fn keeps_in(&self, stream: u64, threshold: u64, index: usize) -> bool {
        let draw = mix(stream.wrapping_add((index as u64).wrapping_add(1).wrapping_mul(GOLDEN)));
        (draw >> 32) >= threshold
    }

    /// Applies the mask of images `first ..` of the batch to `n` images of
    /// `len` values, `x` into `y`: `y = x · scale` where kept, 0 elsewhere
    /// (the backward pass is the same map of `dy` into `dx`).
    #[inline(always)]
    pub fn apply_with(&self, len: usize, first: usize, n: usize, x: &[f32], y: &mut [f32]) {
        let (scale, threshold) = (self.scale(), self.threshold());
        for (b, (xs, ys)) in x[..n * len]
            .chunks_exact(len)
            .zip(y[..n * len].chunks_exact_mut(len))
            .enumerate()
        {
            let stream = self.stream(first + b);
            for (j, (out, &v)) in ys.iter_mut().zip(xs).enumerate() {
                *out = if self.keeps_in(stream, threshold, j) {
                    v * scale
                } else {
                    0.0
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_p_and_scales_the_rest() {
        for p in [0.0f32, 0.1, 0.5, 0.9] {
            let drop = Dropout {
                p,
                seed: 3,
                layer: 2,
            };
            let (len, n) = (1000, 4);
            let x = vec![1.0; n * len];
            let mut y = vec![f32::NAN; n * len];
            drop.apply_with(len, 5, n, &x, &mut y);
            let kept = y.iter().filter(|&&v| v != 0.0).count();
            let rate = 1.0 - kept as f64 / (n * len) as f64;
            assert!((rate - f64::from(p)).abs() < 0.03, "p {p}: dropped {rate}");
            for (j, &v) in y.iter().enumerate() {
                let keep = drop.keeps(5 + j / len, j % len);
                assert_eq!(v, if keep { 1.0 / (1.0 - p) } else { 0.0 });
            }
        }
    }

    #[test]
    fn the_mask_depends_on_seed_layer_and_image() {
        let base = Dropout {
            p: 0.5,
            seed: 1,
            layer: 0,
        };
        let mask = |d: Dropout, image: usize| -> Vec<bool> {
            (0..64).map(|j| d.keeps(image, j)).collect()
        };
        let m = mask(base, 0);
        assert_eq!(m, mask(base, 0));
        assert_ne!(m, mask(base, 1));
        assert_ne!(m, mask(Dropout { seed: 2, ..base }, 0));
        assert_ne!(m, mask(Dropout { layer: 1, ..base }, 0));
    }
}

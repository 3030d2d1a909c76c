//! Forward kernels, compiled once here with the sizes as run-time values
//! and specialised inside, per instruction set and tile shape, where that
//! pays.
//!
//! Each kernel has a plain counterpart in [`reference`](mod@reference), and
//! the tests check one against the other. Slices are row-major: volumes
//! C×H×W, conv weights K×C×FH×FW, fc weights N×IN.

pub mod reference;

mod activation;
mod aligned;
mod conv;
mod dense;
mod norm;
mod pool;

pub use activation::{activate, activate_with, softmax};
pub use conv::{
    conv_direct_with, conv_im2col_scratch, conv_im2col_with, conv_scratch, conv_with, split_pays,
    ConvError, ConvKernel, ConvShape, PackedConv, PARALLEL_MIN_MACS, POINTWISE_MIN_PIXELS,
    TEAM_MIN_MACS,
};
pub use dense::{fc, fc_with};
pub use norm::{add, add_with, channel_affine, channel_affine_in_place, channel_affine_with};
pub use pool::{avg_pool, global_avg_pool, global_avg_pool_with, max_pool, pool_with};
pub use reference::Window;

/// Length of the im2col matrix of one image, C·FH·FW × OH·OW, for `c`
/// channels, filters `f` and outputs `o` (saturating): the scratch of the
/// im2col convolution and of training's.
pub const fn cols_len(c: usize, f: [usize; 2], o: [usize; 2]) -> usize {
    c.saturating_mul(f[0])
        .saturating_mul(f[1])
        .saturating_mul(o[0])
        .saturating_mul(o[1])
}

/// Whether `o` windows of size `f`, stride `s`, fit an axis of `n` values
/// padded by `p` on both sides: every size positive, the padded length
/// fits `usize`, and the last window ends inside it, `(o − 1)·s + f ≤
/// n + 2p`. The output may stop short of the padded input's end (a layer
/// that rounds down). The one bound every windowed kernel checks its shape
/// against; the output size itself comes from the network's shape
/// arithmetic.
pub const fn window_fits(n: usize, f: usize, s: usize, p: usize, o: usize) -> bool {
    if n == 0 || f == 0 || s == 0 || o == 0 {
        return false;
    }
    let Some(padded) = p.checked_mul(2) else {
        return false;
    };
    let Some(padded) = n.checked_add(padded) else {
        return false;
    };
    match (o - 1).checked_mul(s) {
        Some(start) => f <= padded && start <= padded - f,
        None => false,
    }
}

/// An element-wise activation, applied on its own or fused into the conv
/// or fc that precedes it; PyTorch's semantics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// No activation.
    Identity,
    /// `max(0, x)` (NaN stays NaN).
    Relu,
    /// `min(max(0, x), 6)`.
    Relu6,
    /// `x` for `x ≥ 0`, `slope·x` below.
    LeakyRelu(f32),
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x · sigmoid(x)` (SiLU, swish).
    Silu,
    /// `x · Φ(x) = x/2 · (1 + erf(x/√2))`, the exact form.
    Gelu,
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
}

impl Act {
    /// The activation of one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Identity => x,
            Act::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            // NaN stays NaN.
            Act::Relu6 => x.clamp(0.0, 6.0),
            Act::LeakyRelu(slope) => {
                if x < 0.0 {
                    slope * x
                } else {
                    x
                }
            }
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::Tanh => x.tanh(),
            Act::Silu => x / (1.0 + (-x).exp()),
            Act::Gelu => 0.5 * x * erfc(-x * std::f32::consts::FRAC_1_SQRT_2),
            Act::HardSwish => x * Act::Relu6.apply(x + 3.0) / 6.0,
        }
    }
}

/// The complementary error function `erfc(x) = 1 − erf(x)`, computed in
/// f64 with the Chebyshev fit of Numerical Recipes' `erfcc` (fractional
/// error below 1.2·10⁻⁷ everywhere), so that GELU's `x/2·erfc(−x/√2)` is
/// accurate far into the negative range, where `1 + erf` would cancel.
pub fn erfc(x: f32) -> f32 {
    let z = f64::from(x).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * (-z * z + poly).exp();
    (if x >= 0.0 { r } else { 2.0 - r }) as f32
}

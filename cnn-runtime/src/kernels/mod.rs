//! Forward kernels, compiled once here with the sizes as run-time values
//! and specialised inside, per instruction set and tile shape, where that
//! pays.
//!
//! Each kernel has a plain counterpart in [`reference`](mod@reference), and
//! the tests check one against the other. Slices are row-major: volumes
//! C×H×W, conv weights K×C×FH×FW, fc weights N×IN.

pub mod reference;

mod activation;
mod conv;
mod dense;
mod pool;

pub use activation::{activate, softmax};
pub use conv::{
    conv_direct_with, conv_im2col_scratch, conv_im2col_with, conv_scratch, conv_with, split_pays,
    ConvError, ConvKernel, ConvShape, PackedConv, PARALLEL_MIN_MACS, POINTWISE_MIN_PIXELS,
};
pub use dense::{fc, fc_with};
pub use pool::{avg_pool, max_pool, pool_with};
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
/// or fc that precedes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// No activation.
    Identity,
    /// `max(0, x)` (NaN stays NaN).
    Relu,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
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
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::Tanh => x.tanh(),
        }
    }
}

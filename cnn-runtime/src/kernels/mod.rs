//! Forward kernels, specialised by const generics so that every size is a
//! compile-time constant after monomorphisation.
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
    conv_blocked_with, conv_direct, conv_direct_with, conv_filter_lanes_scratch, conv_gemm,
    conv_gemm_scratch, conv_im2col_scratch, conv_im2col_with, conv_pointwise, conv_pointwise_with,
    ConvPath, ConvShape, PARALLEL_MIN_MACS, POINTWISE_MIN_PIXELS,
};
pub use dense::{fc, fc_batch};
pub use pool::{avg_pool, max_pool};

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

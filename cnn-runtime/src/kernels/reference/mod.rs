//! Plain reference implementations with run-time dimensions: the
//! independent ground truth every specialised kernel is tested against.
//! Clarity over speed.

mod conv;
mod dense;
mod pool;

pub use conv::conv2d;
pub use dense::{activate, fc, softmax};
pub use pool::{avg_pool, max_pool};

/// The dimensions of a 2-D sliding window over a C×H×W volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window (filter) height and width.
    pub f: [usize; 2],
    /// Stride along height and width.
    pub s: [usize; 2],
    /// Zero padding along height and width.
    pub p: [usize; 2],
}

impl Window {
    /// Output height and width: `(H − F + 2P)/S + 1`.
    pub fn out(&self) -> [usize; 2] {
        [
            (self.h + 2 * self.p[0] - self.f[0]) / self.s[0] + 1,
            (self.w + 2 * self.p[1] - self.f[1]) / self.s[1] + 1,
        ]
    }
}

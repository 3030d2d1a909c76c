//! Plain reference implementations with run-time dimensions: the
//! independent ground truth every specialised kernel is tested against.
//! Clarity over speed.

mod conv;
mod dense;
mod norm;
mod pool;

pub use conv::conv2d;
pub use dense::{activate, fc, softmax};
pub use norm::{add, channel_affine};
pub use pool::{avg_pool, global_avg_pool, max_pool};

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
    /// Output height and width, as the layer's shape arithmetic computed
    /// them (`cnn-spec`).
    pub o: [usize; 2],
}

impl Window {
    /// The convolution by `k` filters over these windows (no dilation, one
    /// group).
    pub const fn conv(self, k: usize) -> crate::kernels::ConvShape {
        crate::kernels::ConvShape::plain(
            self.c,
            [self.h, self.w],
            k,
            self.f,
            self.s,
            self.p,
            self.o,
        )
    }

    /// Output height and width.
    pub fn out(&self) -> [usize; 2] {
        self.o
    }

    /// Whether every window lies inside the padded input
    /// ([`window_fits`](crate::kernels::window_fits) on both axes), every
    /// size is positive, and the volumes' lengths fit `usize`.
    pub fn fits(&self) -> bool {
        use crate::kernels::window_fits as axis;
        let len = |dims: [usize; 3]| dims.into_iter().try_fold(1usize, usize::checked_mul);
        self.c > 0
            && axis(self.h, self.f[0], self.s[0], self.p[0], self.o[0])
            && axis(self.w, self.f[1], self.s[1], self.p[1], self.o[1])
            && len([self.c, self.h, self.w]).is_some()
            && len([self.c, self.o[0], self.o[1]]).is_some()
    }
}

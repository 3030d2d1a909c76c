//! A network's forward pass as data: the steps `network!` decided while it
//! expanded (which layer each runs, which activation it fuses, where it
//! reads and writes), held in a constant of the user's crate and run by
//! [`crate::run`] with the kernels compiled here.
//!
//! The graph-level decisions (buffers, fusion, the batched tail) are the
//! expansion's; the kernel-level ones (which kernel, its scratch) are this
//! crate's, as `const fn`s the constant evaluates: [`Plan::workspace_len`]
//! adds the largest [`conv_scratch`] of its layers to its buffers.

use crate::kernels::reference::Window;
use crate::kernels::{conv_scratch, Act, ConvShape};

/// Where a step reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// The caller's input.
    Input,
    /// The caller's output.
    Output,
    /// The workspace's buffers, from this offset (in f32s).
    Arena(usize),
}

/// What a step computes; the lengths it reads and writes follow from it
/// ([`Op::lens`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Convolution by the weight and bias of layer `layer` (its index in
    /// the network's `LAYERS`), then the batch norm of layer `bn` (folded
    /// into its filters when the parameters are prepared), then `act`.
    Conv {
        /// The layer whose parameters it uses.
        layer: usize,
        /// The batch norm folded into it.
        bn: Option<usize>,
        /// Its sizes.
        shape: ConvShape,
        /// The activation fused into it.
        act: Act,
    },
    /// Max pooling, padded with −∞.
    MaxPool(Window),
    /// Average pooling, the zero padding counted in the divisor.
    AvgPool(Window),
    /// The mean of each of `c` channels of `hw` values.
    GlobalAvgPool {
        /// Channels.
        c: usize,
        /// Values per channel.
        hw: usize,
    },
    /// Batch norm of layer `layer` on its own, in place, then `act`.
    BatchNorm {
        /// The layer whose parameters it uses.
        layer: usize,
        /// Channels.
        c: usize,
        /// Values per channel.
        hw: usize,
        /// The activation fused into it.
        act: Act,
    },
    /// A residual add: the source added into the destination (both `len`
    /// values per image), then `act`.
    Add {
        /// Values per image.
        len: usize,
        /// The activation fused into it.
        act: Act,
    },
    /// Fully connected, by the weight and bias of layer `layer`.
    Fc {
        /// The layer whose parameters it uses.
        layer: usize,
        /// Inputs per image.
        inputs: usize,
        /// Outputs per image.
        units: usize,
        /// The activation fused into it.
        act: Act,
    },
    /// An activation over `len` values, in place.
    Activate {
        /// The activation.
        act: Act,
        /// Values per image.
        len: usize,
    },
    /// Softmax over each image's `len` values, in place.
    Softmax {
        /// Values per image.
        len: usize,
    },
    /// A copy of `len` values.
    Copy {
        /// Values per image.
        len: usize,
    },
}

impl Op {
    /// Values read and written per image; `None` if they overflow `usize`.
    pub const fn lens(&self) -> Option<(usize, usize)> {
        const fn volume(c: usize, h: usize, w: usize) -> Option<usize> {
            match c.checked_mul(h) {
                Some(ch) => ch.checked_mul(w),
                None => None,
            }
        }
        match *self {
            Op::Conv { shape: s, .. } => match (volume(s.c, s.h, s.w), volume(s.k, s.o[0], s.o[1]))
            {
                (Some(i), Some(o)) => Some((i, o)),
                _ => None,
            },
            Op::MaxPool(w) | Op::AvgPool(w) => {
                match (volume(w.c, w.h, w.w), volume(w.c, w.o[0], w.o[1])) {
                    (Some(i), Some(o)) => Some((i, o)),
                    _ => None,
                }
            }
            Op::Fc { inputs, units, .. } => Some((inputs, units)),
            Op::GlobalAvgPool { c, hw } => match c.checked_mul(hw) {
                Some(len) => Some((len, c)),
                None => None,
            },
            Op::BatchNorm { c, hw, .. } => match c.checked_mul(hw) {
                Some(len) => Some((len, len)),
                None => None,
            },
            Op::Activate { len, .. }
            | Op::Softmax { len }
            | Op::Copy { len }
            | Op::Add { len, .. } => Some((len, len)),
        }
    }

    /// Whether the step works in place: its source is its destination, or
    /// for an add, its destination is also read.
    pub const fn in_place(&self) -> bool {
        matches!(
            self,
            Op::Activate { .. } | Op::Softmax { .. } | Op::BatchNorm { .. } | Op::Add { .. }
        )
    }
}

/// One step of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// What it computes.
    pub op: Op,
    /// Where it reads.
    pub src: Buf,
    /// Where it writes (the same as `src` for an in-place step).
    pub dst: Buf,
}

/// A network's forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The steps of one image, in order.
    pub steps: &'static [Step],
    /// Length of the buffers the steps use, in f32s.
    pub arena: usize,
    /// The fc layers that end the pass, which a batch runs once for all
    /// its images, if any.
    pub tail: Option<Tail>,
}

/// The steps a batch runs once for all its images: fc layers and in-place
/// steps that end the pass, so that each fc layer reads its weights once
/// per batch, not once per image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tail {
    /// The first step of [`Plan::steps`] that the tail replaces: the steps
    /// before run image by image.
    pub start: usize,
    /// Where the steps before leave an image's volume (`Input` if there is
    /// no step before).
    pub from: Buf,
    /// The tail's steps. Their lengths and arena offsets are per image: run
    /// over `n` images, a buffer at `Arena(o)` starts at `o·n` in the
    /// batch's rows and holds `n` times the step's length, image after
    /// image; the first reads `Arena(0)`, where the images' volumes are
    /// gathered, or `Input`.
    pub steps: &'static [Step],
    /// Length of the rows the tail uses per image, in f32s.
    pub rows: usize,
}

impl Plan {
    /// Kernel scratch the steps need: the largest [`conv_scratch`] of the
    /// convolutions (saturating).
    pub const fn scratch_len(&self) -> usize {
        let mut len = 0;
        let mut i = 0;
        while i < self.steps.len() {
            if let Op::Conv { shape, .. } = &self.steps[i].op {
                let need = conv_scratch(shape);
                if need > len {
                    len = need;
                }
            }
            i += 1;
        }
        len
    }

    /// f32s of workspace one image needs: the buffers, then the kernel
    /// scratch (saturating at `usize::MAX`, which no allocation reaches).
    pub const fn workspace_len(&self) -> usize {
        self.arena.saturating_add(self.scratch_len())
    }

    /// f32s per image of the rows the batched tail needs (0 without one).
    pub const fn batch_rows(&self) -> usize {
        match &self.tail {
            Some(tail) => tail.rows,
            None => 0,
        }
    }
}

//! Convolution kernels, compiled once here for every layer shape.
//!
//! A layer is described by a [`ConvShape`] (its sizes, run-time values) and
//! computed by the kernel [`ConvKernel::choose`] picks for it and the
//! instruction set in use. The filters are packed for that kernel once, into
//! a [`PackedConv`], when the parameters are set; every pass then runs
//! [`PackedConv::run`].
//!
//! The main path is a blocked implicit GEMM: the input is zero-padded and
//! split into stride phases in scratch (see `layout`), then register tiles
//! of output channels × pixels accumulate over every filter tap straight
//! from it, a block of pixels and an L1-sized chunk of input channels at a
//! time. The tile's micro-kernel is AVX-512 (8 channels × 32 pixels),
//! AVX2 + FMA (6 × 16, its full tile in assembly) or portable; the filters
//! are packed so that a tap's values for the tile's channels are
//! consecutive. With AVX-512, layers whose output rows are not a multiple
//! of 16 pixels and whose filters have many taps take a kernel with filters
//! rather than pixels in its vectors instead (see `filter_lanes`), and
//! with AVX2 alone its form with 8 filters to a vector. 1×1
//! layers with stride 1 and no padding run the blocked kernel on the input
//! as it is, without scratch, or with fewer than [`POINTWISE_MIN_PIXELS`]
//! pixels a GEMV per pixel. Large layers split their output channels in two
//! with `rayon::join` when they run on a thread of a rayon pool that has
//! more than one thread (see [`PARALLEL_MIN_MACS`]).
//!
//!
//! Dilated layers take the same kernels: the layout reads each tap where
//! its dilation puts it. A grouped layer is G layers of its group's shape
//! (C/G channels, K/G filters), each computed in turn by the kernel chosen
//! for that shape, on its slices of the input, filters and output, and
//! with the same scratch. Depthwise layers (as many groups as channels)
//! have a kernel of their own (see `depthwise`): one plane of input in,
//! one of output out per filter, so memory-bound, with output pixels in
//! the vectors.
//!
//! Direct loops and im2col + sgemm are kept for comparison
//! ([`conv_direct_with`], [`conv_im2col_with`]).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocked;
mod depthwise;
mod direct;
mod filter_lanes;
mod im2col;
mod layout;
mod portable;

use std::fmt;

pub use layout::ConvShape;

use blocked::{Clamp, Taps};
use layout::{tri, Layout};
use portable::Portable;

use super::aligned::Aligned;
use super::Act;
use crate::cpu::{Active, Avx2, Avx512, Isa};

/// Multiply-accumulates from which a layer's output channels are split
/// across two threads: when the layer runs on a thread of a rayon pool that
/// has more than one (as in `forward_batch`). A caller outside any pool is
/// not split from, since handing a job to the pool from outside makes
/// rayon allocate now and then, and a single-image pass allocates nothing.
pub const PARALLEL_MIN_MACS: usize = 4_000_000;

/// Multiply-accumulates from which a layer is split when a pass runs with
/// a spinning partner thread ([`crate::par::team`]): handing it half a
/// layer costs about a microsecond, not a wake-up.
pub const TEAM_MIN_MACS: usize = 500_000;

/// Pixels from which a 1×1 layer uses the blocked kernel: one vector.
pub const POINTWISE_MIN_PIXELS: usize = 8;

/// Pixels per AVX-512 vector of the blocked kernel.
const AVX512_LANES: usize = 16;

/// The kernel that computes a convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    /// The blocked register-tile kernel, its micro-kernel compiled for the
    /// instruction set: AVX-512 (tiles of 8 filters × 32 pixels), AVX2 + FMA
    /// or portable (6 × 16).
    Blocked(Isa),
    /// AVX-512 with 16 filters in each vector rather than 16 pixels.
    FilterLanes,
    /// AVX2 + FMA with 8 filters in each vector rather than 8 pixels.
    FilterLanesAvx2,
    /// A 1×1 layer (stride 1, no padding) on fewer than
    /// [`POINTWISE_MIN_PIXELS`] pixels: a GEMV per pixel.
    Narrow,
    /// A depthwise layer (G = C > 1, any channel multiplier K/C): each
    /// filter's plane a row at a time, a vector of output pixels per
    /// accumulator, compiled for the instruction set: AVX-512 (16 pixels),
    /// AVX2 (8) or portable.
    Depthwise(Isa),
    /// Direct loops, an output row at a time: any shape, dilated and
    /// grouped ones included.
    Direct,
}

/// Whether a layer is depthwise: a group per input channel, and more than
/// one channel (a single channel is a plain layer).
const fn is_depthwise(shape: &ConvShape) -> bool {
    shape.g > 1 && shape.g == shape.c
}

/// The layer of one group: C/G channels and K/G filters (the layer itself
/// if it has one group).
const fn group_shape(shape: &ConvShape) -> ConvShape {
    match (shape.c.checked_div(shape.g), shape.k.checked_div(shape.g)) {
        (Some(c), Some(k)) => ConvShape {
            c,
            k,
            g: 1,
            ..*shape
        },
        _ => *shape,
    }
}

/// Whether a layer is 1×1 with stride 1 and no padding: its input is its
/// own column matrix.
const fn pointwise(shape: &ConvShape) -> bool {
    shape.f[0] == 1
        && shape.f[1] == 1
        && shape.s[0] == 1
        && shape.s[1] == 1
        && shape.p[0] == 0
        && shape.p[1] == 0
}

/// A 1×1 layer's pixels as one row of H·W (the blocked kernel then tiles
/// across the rows without a gap); other layers as they are.
const fn normalised(shape: &ConvShape) -> ConvShape {
    if !pointwise(shape) {
        return *shape;
    }
    let pixels = shape.h.saturating_mul(shape.w);
    ConvShape {
        h: 1,
        w: pixels,
        o: [1, pixels],
        ..*shape
    }
}

impl ConvKernel {
    /// The kernel a layer of `shape` runs when `isa` is the widest
    /// instruction set in use: the one place this rule is written.
    ///
    /// - Depthwise layers (G = C > 1):
    ///   [`Depthwise`](ConvKernel::Depthwise) of that set.
    /// - Other grouped layers: the kernel the rules below give one group's
    ///   layer (C/G channels, K/G filters), run for each group in turn.
    /// - 1×1 layers (stride 1, no padding) on fewer than
    ///   [`POINTWISE_MIN_PIXELS`] pixels: [`Narrow`](ConvKernel::Narrow);
    ///   on more, the blocked tile on the input as it is, one row of H·W
    ///   pixels.
    /// - AVX-512: filters in the lanes where that kernel pays (output rows
    ///   of at least 7 pixels, more than 16 filters, and 3 × 3 of stride 1
    ///   with at least 144 taps per filter, 1×1 of stride 1 on planes under
    ///   256 pixels, or rows not a multiple of 16 pixels and at least 240
    ///   taps, as `filter_lanes::applies` measures); otherwise the blocked
    ///   AVX-512 tile,
    ///   or the AVX2 one when the layer computes fewer pixels than one
    ///   16-wide vector and its rows cannot go two to a vector.
    /// - AVX2: filters in the lanes of 8 where that kernel pays (1×1 of
    ///   stride 1 only on planes under 256 pixels; output rows not a
    ///   multiple of 16 pixels, at least 144 taps per filter, 100 if
    ///   strided, more than 8 filters, as measured in
    ///   `filter_lanes::applies_avx2`); otherwise the blocked AVX2 tile.
    /// - Portable: the blocked tile.
    ///
    /// Dilation changes no choice: every kernel reads its taps where the
    /// dilation puts them.
    pub const fn choose(shape: &ConvShape, isa: Isa) -> ConvKernel {
        if is_depthwise(shape) {
            return ConvKernel::Depthwise(isa);
        }
        let shape = &group_shape(shape);
        let pointwise = pointwise(shape);
        if pointwise && shape.h.saturating_mul(shape.w) < POINTWISE_MIN_PIXELS {
            return ConvKernel::Narrow;
        }
        match isa {
            Isa::Avx512 if filter_lanes::applies(shape) => ConvKernel::FilterLanes,
            Isa::Avx2 if filter_lanes::applies_avx2(shape) => ConvKernel::FilterLanesAvx2,
            Isa::Avx512 => match Layout::new(normalised(shape)) {
                Some(lay) if lay.nq < AVX512_LANES && !lay.pairs(AVX512_LANES) => {
                    ConvKernel::Blocked(Isa::Avx2)
                }
                _ => ConvKernel::Blocked(Isa::Avx512),
            },
            isa => ConvKernel::Blocked(isa),
        }
    }

    /// The instruction set the kernel is compiled for.
    pub const fn isa(self) -> Isa {
        match self {
            ConvKernel::Blocked(isa) => isa,
            ConvKernel::FilterLanes => Isa::Avx512,
            ConvKernel::FilterLanesAvx2 => Isa::Avx2,
            ConvKernel::Depthwise(isa) => isa,
            ConvKernel::Narrow | ConvKernel::Direct => Isa::Portable,
        }
    }

    /// Filters per block of the packed filters: the tile's filters, whose
    /// values of one tap are consecutive.
    const fn block(self) -> usize {
        match self {
            ConvKernel::Blocked(Isa::Avx512) => avx512_tile_filters(),
            ConvKernel::Blocked(_) => 6,
            ConvKernel::FilterLanes => filter_lanes::LANES,
            ConvKernel::FilterLanesAvx2 => filter_lanes::AVX2_LANES,
            ConvKernel::Narrow | ConvKernel::Depthwise(_) | ConvKernel::Direct => 1,
        }
    }

    /// Whether the kernel computes a grouped layer a group at a time, as
    /// a layer of the group's shape (the others take the whole layer).
    const fn per_group(self) -> bool {
        match self {
            ConvKernel::Blocked(_)
            | ConvKernel::FilterLanes
            | ConvKernel::FilterLanesAvx2
            | ConvKernel::Narrow => true,
            ConvKernel::Depthwise(_) | ConvKernel::Direct => false,
        }
    }

    /// Scratch of the kernel for a layer, in f32s; `None` if the shape does
    /// not fit, the kernel does not take it, or the length overflows
    /// `usize`. Kernels that run a group at a time need one group's
    /// scratch, which every group reuses. The blocked kernel needs the
    /// zero-padded, phase-split input (unless the layer has stride 1 and
    /// no padding) and, when its rows are computed wider than the
    /// output's, the K × ((OH − 1)·WQ + OW) values before the copy-out
    /// (see `layout`); filters in the lanes need the zero-padded input if
    /// the layer is padded; the GEMV per pixel and the depthwise kernel
    /// need none.
    pub const fn scratch_len(self, shape: &ConvShape) -> Option<usize> {
        if !shape.fits() {
            return None;
        }
        let group = group_shape(shape);
        match self {
            ConvKernel::Blocked(_) => match Layout::new(normalised(&group)) {
                Some(lay) => Some(lay.scratch_len()),
                None => None,
            },
            ConvKernel::FilterLanes | ConvKernel::FilterLanesAvx2 => {
                filter_lanes::scratch_len(&group)
            }
            ConvKernel::Narrow => {
                if pointwise(shape) {
                    Some(0)
                } else {
                    None
                }
            }
            ConvKernel::Depthwise(_) => {
                if is_depthwise(shape) {
                    Some(0)
                } else {
                    None
                }
            }
            // A row of the output.
            ConvKernel::Direct => Some(shape.o[1]),
        }
    }
}

/// The AVX-512 tile's filters (its MR), known off x86-64 too.
const fn avx512_tile_filters() -> usize {
    8
}

/// Scratch, in f32s, that a layer needs whatever the instruction set, so
/// that a network's workspace does not depend on the machine: the largest
/// [`ConvKernel::scratch_len`] of the kernels [`ConvKernel::choose`] gives
/// on every [`Isa`]. Saturates at `usize::MAX` for a shape that does not
/// fit or overflows.
pub const fn conv_scratch(shape: &ConvShape) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < Isa::ALL.len() {
        match ConvKernel::choose(shape, Isa::ALL[i]).scratch_len(shape) {
            Some(n) if n > len => len = n,
            Some(_) => {}
            None => return usize::MAX,
        }
        i += 1;
    }
    len
}

/// Why a convolution cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvError {
    /// This CPU lacks the instruction set the kernel is compiled for.
    Unsupported(Isa),
    /// The shape is not one a convolution has (see [`ConvShape::fits`]), or
    /// its lengths overflow `usize`.
    Shape,
    /// The kernel does not take layers of this shape: the GEMV per pixel
    /// needs a 1×1 layer with stride 1 and no padding, the depthwise kernel
    /// a depthwise layer.
    Unsuited(ConvKernel),
    /// A slice is shorter than the layer needs.
    Short {
        /// Which slice: `"input"`, `"filters"`, `"bias"`, `"output"` or
        /// `"scratch"`.
        what: &'static str,
        /// Values the layer needs.
        need: usize,
        /// Values given.
        got: usize,
    },
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvError::Unsupported(isa) => {
                write!(f, "this CPU does not support the {} kernels", isa.name())
            }
            ConvError::Shape => f.write_str("not the shape of a convolution"),
            ConvError::Unsuited(kernel) => {
                write!(f, "the {kernel:?} kernel does not take this layer")
            }
            ConvError::Short { what, need, got } => {
                write!(f, "the {what} holds {got} values, the layer needs {need}")
            }
        }
    }
}

impl std::error::Error for ConvError {}

/// `Err(Short)` unless `slice` holds at least `need` values.
fn check(what: &'static str, got: usize, need: usize) -> Result<(), ConvError> {
    if got < need {
        Err(ConvError::Short { what, need, got })
    } else {
        Ok(())
    }
}

/// A layer's filters packed for its kernel: made once per set of weights,
/// then run on every pass.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConv {
    /// The layer, 1×1 layers as one row of pixels.
    shape: ConvShape,
    kernel: ConvKernel,
    /// For kernels that run a group at a time, each group's filters in
    /// turn, `group_len` apart, packed as one layer of the group's shape;
    /// for the others, the layer's filters as given. Packed: blocks of
    /// [`ConvKernel::block`] filters, a tap's values of a block
    /// consecutive: filter `b·B + j`, tap `t` at `(b·taps + t)·B + j`, zero
    /// past the last filter. For the blocked kernel, each channel's taps
    /// are in the order of `offsets`; otherwise in the filter's.
    filters: Aligned,
    /// Values of one group's packed filters.
    group_len: usize,
    /// For the blocked kernel, each tap of a channel's offset into its
    /// planes (see [`Layout::channel_taps`]).
    offsets: Vec<usize>,
    /// The biases, zero for a layer without.
    bias: Vec<f32>,
    /// For the blocked kernel, the layout of one group's layer.
    layout: Option<Layout>,
    /// The kernel's scratch, in f32s.
    scratch_len: usize,
}

impl PackedConv {
    /// Packs `weight` (K×(C/G)×FH×FW, PyTorch's layout) and `bias` (K
    /// values, or none: zeros) for `kernel`.
    ///
    /// # Errors
    /// The shape does not fit or the kernel does not take it, the CPU
    /// lacks the kernel's instruction set, or a slice is shorter than the
    /// layer's.
    pub fn new(
        shape: ConvShape,
        kernel: ConvKernel,
        weight: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, ConvError> {
        if direct_lens(&shape).is_none() {
            return Err(ConvError::Shape);
        }
        let shape = normalised(&shape);
        let scratch_len = kernel
            .scratch_len(&shape)
            .ok_or(ConvError::Unsuited(kernel))?;
        if !kernel.isa().supported() {
            return Err(ConvError::Unsupported(kernel.isa()));
        }
        let taps = shape.taps().ok_or(ConvError::Shape)?;
        let len = shape.k.checked_mul(taps).ok_or(ConvError::Shape)?;
        check("filters", weight.len(), len)?;
        let bias = match bias {
            Some(bias) => {
                check("bias", bias.len(), shape.k)?;
                bias[..shape.k].to_vec()
            }
            None => vec![0.0; shape.k],
        };
        let (one, groups) = if kernel.per_group() {
            (group_shape(&shape), shape.g)
        } else {
            (shape, 1)
        };
        let layout = match kernel {
            ConvKernel::Blocked(_) => Some(Layout::new(one).ok_or(ConvError::Shape)?),
            _ => None,
        };
        let (order, offsets): (Vec<usize>, Vec<usize>) = match layout {
            Some(lay) => lay.channel_taps().into_iter().unzip(),
            None => ((0..shape.f[0] * shape.f[1]).collect(), Vec::new()),
        };
        let filters: Vec<f32> = weight[..len]
            .chunks_exact(len / groups)
            .flat_map(|weight| pack(weight, one.k, &order, kernel.block()))
            .collect();
        Ok(PackedConv {
            shape,
            kernel,
            group_len: filters.len() / groups,
            filters: Aligned::new(filters),
            offsets,
            bias,
            layout,
            scratch_len,
        })
    }

    /// The kernel the filters are packed for.
    pub fn kernel(&self) -> ConvKernel {
        self.kernel
    }

    /// Scratch [`PackedConv::run`] needs, in f32s.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// The convolution of `x` (C×H×W) into `y` (K×OH×OW), bias and `act`
    /// applied; with `split`, the output channels are shared with another
    /// thread of the current rayon pool.
    ///
    /// # Errors
    /// A slice is shorter than the layer needs (the scratch than
    /// [`PackedConv::scratch_len`]), or the CPU lacks the kernel's
    /// instruction set.
    pub fn run(
        &self,
        x: &[f32],
        y: &mut [f32],
        act: Act,
        scratch: &mut [f32],
        split: bool,
    ) -> Result<(), ConvError> {
        let s = &self.shape;
        let [oh, ow] = s.o;
        check("input", x.len(), s.c * s.h * s.w)?;
        check("output", y.len(), s.k * oh * ow)?;
        check("scratch", scratch.len(), self.scratch_len())?;
        let bias = &self.bias[..];
        match self.kernel {
            ConvKernel::Direct => {
                let row = &mut scratch[..s.o[1]];
                direct::conv(*s, x, &self.filters, Some(bias), y, act, row);
                Ok(())
            }
            ConvKernel::Depthwise(isa) => {
                let tokens = Active::of(isa);
                if !isa.supported() {
                    return Err(ConvError::Unsupported(isa));
                }
                depthwise::conv(tokens, s, split, x, &self.filters, bias, y, act);
                Ok(())
            }
            kernel => {
                let one = group_shape(s);
                let (xg, yg) = (one.c * s.h * s.w, one.k * oh * ow);
                let filters = self.filters.chunks_exact(self.group_len.max(1));
                let groups = x.chunks_exact(xg).zip(y.chunks_exact_mut(yg));
                let parts = groups.zip(filters).zip(bias.chunks_exact(one.k));
                for (((x, y), filters), bias) in parts.take(s.g) {
                    self.run_group(kernel, &one, x, filters, bias, y, act, scratch, split)?;
                }
                Ok(())
            }
        }
    }

    /// One group of the layer (or the layer, ungrouped) through a kernel
    /// that runs a group at a time: `one` its shape, the slices its own.
    #[allow(clippy::too_many_arguments)]
    fn run_group(
        &self,
        kernel: ConvKernel,
        one: &ConvShape,
        x: &[f32],
        filters: &[f32],
        bias: &[f32],
        y: &mut [f32],
        act: Act,
        scratch: &mut [f32],
        split: bool,
    ) -> Result<(), ConvError> {
        let [oh, ow] = one.o;
        // Filters in the lanes apply ReLU as they store, and no other.
        let relu = act == Act::Relu;
        let fused = if relu { Act::Relu } else { Act::Identity };
        match kernel {
            ConvKernel::Narrow => {
                narrow(one.c, one.w, one.k, x, filters, bias, y, act);
                Ok(())
            }
            ConvKernel::FilterLanes => {
                #[cfg(target_arch = "x86_64")]
                if let Some(token) = Avx512::detect() {
                    filter_lanes::conv(token, one, split, x, filters, bias, y, relu, scratch);
                    blocked::finish_in_place(one.k * oh * ow, y, act, fused);
                    return Ok(());
                }
                Err(ConvError::Unsupported(Isa::Avx512))
            }
            ConvKernel::FilterLanesAvx2 => {
                #[cfg(target_arch = "x86_64")]
                if let Some(token) = Avx2::detect() {
                    filter_lanes::conv_avx2(token, one, split, x, filters, bias, y, relu, scratch);
                    blocked::finish_in_place(one.k * oh * ow, y, act, fused);
                    return Ok(());
                }
                Err(ConvError::Unsupported(Isa::Avx2))
            }
            ConvKernel::Blocked(isa) => {
                let tiles = Tiles::of(isa).ok_or(ConvError::Unsupported(isa))?;
                let lay = self.layout.as_ref().ok_or(ConvError::Shape)?;
                let taps = Taps {
                    offsets: &self.offsets,
                    stride: lay.channel_stride(),
                };
                run_blocked(lay, tiles, split, x, (filters, taps), bias, y, act, scratch);
                Ok(())
            }
            ConvKernel::Depthwise(_) | ConvKernel::Direct => Err(ConvError::Unsuited(kernel)),
        }
    }
}

/// Packs `weight` (K filters of C channels of `order.len()` taps) into
/// blocks of `block` filters, each channel's taps in `order` (of their
/// indices in the channel's filter): filter `b·block + j`, tap `t` of
/// channel `c` at `(b·C·T + c·T + t)·block + j`, the filters past K zero.
fn pack(weight: &[f32], k: usize, order: &[usize], block: usize) -> Vec<f32> {
    let per_channel = order.len();
    let taps = weight.len() / k.max(1);
    let blocks = k.div_ceil(block);
    let mut packed = vec![0.0; blocks * block * taps];
    for (g, dst) in packed.chunks_exact_mut(block * taps).enumerate() {
        let filters = weight.chunks_exact(taps).skip(g * block).take(block);
        for (j, filter) in filters.enumerate() {
            for (c, channel) in filter.chunks_exact(per_channel).enumerate() {
                for (t, &from) in order.iter().enumerate() {
                    dst[(c * per_channel + t) * block + j] = channel[from];
                }
            }
        }
    }
    packed
}

/// A micro-kernel of the blocked path, with the token its instruction set
/// needs.
#[derive(Clone, Copy)]
enum Tiles {
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::Avx512),
    Portable,
}

impl Tiles {
    /// The micro-kernel of `isa`, if the CPU has it.
    fn of(isa: Isa) -> Option<Tiles> {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Avx512::detect().map(|t| Tiles::Avx512(avx512::Avx512(t))),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Avx2::detect().map(|t| Tiles::Avx2(avx2::Avx2(t))),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => None,
            Isa::Portable => Some(Tiles::Portable),
        }
    }

    /// Output channels per full register tile.
    fn mr(self) -> usize {
        use blocked::Micro;
        match self {
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx2(_) => avx2::Avx2::MR,
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512(_) => avx512::Avx512::MR,
            Tiles::Portable => Portable::MR,
        }
    }

    /// Whether [`Tiles::rows`] writes the layer's output as it is (rows of
    /// OH·OW) rather than rows of NQ pixels (see [`blocked::dense`]).
    fn dense(self, lay: &Layout) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx2(_) => blocked::dense::<avx2::Avx2>(lay),
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512(_) => blocked::dense::<avx512::Avx512>(lay),
            Tiles::Portable => blocked::dense::<Portable>(lay),
        }
    }

    /// The tokens the input's transform may use.
    fn tokens(self) -> Active {
        match self {
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx2(t) => Active {
                avx2: Some(t.0),
                avx512: None,
            },
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512(t) => Active {
                avx2: Some(t.0.avx2()),
                avx512: Some(t.0),
            },
            Tiles::Portable => Active {
                avx2: None,
                avx512: None,
            },
        }
    }

    /// Output channels `k0..k1` into `out`.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        self,
        lay: &Layout,
        k0: usize,
        k1: usize,
        xt: &[f32],
        filters: (&[f32], Taps<'_>),
        bias: &[f32],
        clamp: Clamp,
        out: &mut [f32],
    ) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx2(t) => t.rows(lay, k0, k1, xt, filters, bias, clamp, out),
            #[cfg(target_arch = "x86_64")]
            Tiles::Avx512(t) => t.rows(lay, k0, k1, xt, filters, bias, clamp, out),
            Tiles::Portable => blocked::rows(Portable, lay, k0, k1, xt, filters, bias, clamp, out),
        }
    }
}

/// The blocked path on a layer whose slices have been checked.
#[allow(clippy::too_many_arguments)]
fn run_blocked(
    lay: &Layout,
    tiles: Tiles,
    split: bool,
    x: &[f32],
    filters: (&[f32], Taps<'_>),
    bias: &[f32],
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) {
    let s = lay.shape;
    let (xt, wide) = scratch.split_at_mut(lay.xt_len);
    let xt: &[f32] = if lay.transform {
        transform_split(lay, tiles, x, xt, split);
        xt
    } else {
        x
    };
    let clamp = Clamp::of(act);
    let dense = tiles.dense(lay);
    let ldo = if dense { lay.oh * lay.ow } else { lay.nq };
    let wide = (lay.wide && !dense).then(|| &mut wide[..s.k * lay.nq]);
    // Filters k0..k1: their tiles into `out` (the wide rows, or `y`), then
    // their copy-out and the activation the tiles leave, on the thread
    // that computed them and while they are in its cache.
    let part = |k0: usize, k1: usize, out: Option<&mut [f32]>, y: &mut [f32]| match out {
        Some(wide) => {
            tiles.rows(lay, k0, k1, xt, filters, bias, clamp, wide);
            blocked::finish(lay, k1 - k0, Some(wide), y, act);
        }
        None => {
            tiles.rows(lay, k0, k1, xt, filters, bias, clamp, y);
            blocked::finish(lay, k1 - k0, None, y, act);
        }
    };
    let mr = tiles.mr();
    let y = &mut y[..s.k * lay.oh * lay.ow];
    if split && s.k > mr {
        // Split at a multiple of the tile height.
        let k_half = (s.k / mr).div_ceil(2) * mr;
        let (y0, y1) = y.split_at_mut(k_half * lay.oh * lay.ow);
        match wide {
            Some(wide) => {
                let (w0, w1) = wide.split_at_mut(k_half * ldo);
                crate::par::join(
                    || part(0, k_half, Some(w0), y0),
                    || part(k_half, s.k, Some(w1), y1),
                );
            }
            None => crate::par::join(|| part(0, k_half, None, y0), || part(k_half, s.k, None, y1)),
        }
    } else {
        part(0, s.k, wide, y);
    }
}

/// [`transform`], its channels split in two halves over a team's threads
/// when the layer is split ([`crate::par`]): otherwise the partner waits
/// for the whole copy.
fn transform_split(lay: &Layout, tiles: Tiles, x: &[f32], xt: &mut [f32], split: bool) {
    let c = lay.shape.c;
    let half = c / 2;
    if split && crate::par::active() {
        if let (Some(first), Some(second)) = (lay.channels(half), lay.channels(c - half)) {
            let (x0, x1) = x.split_at(half * lay.shape.h * lay.shape.w);
            let (t0, t1) = xt[..lay.xt_len].split_at_mut(first.xt_len);
            crate::par::join(
                || transform(&first, tiles, x0, t0),
                || transform(&second, tiles, x1, t1),
            );
            return;
        }
    }
    transform(lay, tiles, x, xt);
}

/// [`Layout::transform`], compiled with AVX-512 when the micro-kernel has
/// it, so that the copies of rows become vector moves.
fn transform(lay: &Layout, tiles: Tiles, x: &[f32], xt: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Tiles::Avx512(_) = tiles {
        // SAFETY: the token proves AVX-512F, AVX2 and FMA.
        unsafe { transform_avx512(lay, x, xt, tiles.tokens()) };
        return;
    }
    lay.transform(x, xt, tiles.tokens());
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn transform_avx512(lay: &Layout, x: &[f32], xt: &mut [f32], tokens: Active) {
    lay.transform(x, xt, tokens);
}

/// Whether a layer of `macs` multiply-accumulates is split across threads:
/// large enough, and on a worker of a pool with another thread to help.
pub fn split_pays(macs: usize) -> bool {
    if crate::par::active() {
        return macs >= TEAM_MIN_MACS;
    }
    macs >= PARALLEL_MIN_MACS
        && rayon::current_thread_index().is_some()
        && rayon::current_num_threads() > 1
}

/// A 1×1 layer on fewer than [`POINTWISE_MIN_PIXELS`] pixels, too few for
/// a vector of them: a GEMV (the fc kernel) per pixel, on a copy of the
/// pixel's channels kept on the stack, or with more than [`NARROW_MAX_C`]
/// channels a plain sum per pixel. The slices have been checked.
#[allow(clippy::too_many_arguments)]
fn narrow(
    c: usize,
    hw: usize,
    k: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let (x, weight, bias, y) = (&x[..c * hw], &weight[..k * c], &bias[..k], &mut y[..k * hw]);
    if hw == 1 {
        super::dense::fc(1, c, k, x, weight, bias, y, act);
    } else if c <= NARROW_MAX_C {
        let mut column = [0.0f32; NARROW_MAX_C];
        let mut sums = [0.0f32; NARROW_K_CHUNK];
        for p in 0..hw {
            let column = &mut column[..c];
            for (v, pixels) in column.iter_mut().zip(x.chunks_exact(hw)) {
                *v = pixels[p];
            }
            let filters = weight
                .chunks(NARROW_K_CHUNK * c)
                .zip(bias.chunks(NARROW_K_CHUNK));
            let outs = y.chunks_mut(NARROW_K_CHUNK * hw);
            for ((filters, bias), out) in filters.zip(outs) {
                let sums = &mut sums[..bias.len()];
                super::dense::fc(1, c, bias.len(), column, filters, bias, sums, act);
                for (o, &v) in out.chunks_exact_mut(hw).zip(sums.iter()) {
                    o[p] = v;
                }
            }
        }
    } else {
        for ((filter, &b), out) in weight.chunks_exact(c).zip(bias).zip(y.chunks_exact_mut(hw)) {
            let mut sums = [b; POINTWISE_MIN_PIXELS];
            for (&w, pixels) in filter.iter().zip(x.chunks_exact(hw)) {
                for (sum, &v) in sums.iter_mut().zip(pixels) {
                    *sum += w * v;
                }
            }
            for (o, &sum) in out.iter_mut().zip(&sums) {
                *o = act.apply(sum);
            }
        }
    }
}

/// Channels up to which [`narrow`] copies a pixel's channels to the stack
/// (8 KiB) for the GEMV kernel.
const NARROW_MAX_C: usize = 2048;

/// Filters per GEMV in [`narrow`]: the sums of one pixel on the stack.
const NARROW_K_CHUNK: usize = 256;

/// A layer through a given kernel, packing its filters first (for tests
/// and benchmarks, which force each kernel; a network packs once).
///
/// # Errors
/// As [`PackedConv::new`] and [`PackedConv::run`].
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn conv_with(
    shape: ConvShape,
    kernel: ConvKernel,
    split: bool,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) -> Result<(), ConvError> {
    PackedConv::new(shape, kernel, weight, bias)?.run(x, y, act, scratch, split)
}

/// Direct convolution, without scratch (for tests and benchmarks).
///
/// # Errors
/// The shape does not fit or a slice is too short.
#[doc(hidden)]
pub fn conv_direct_with(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    act: Act,
) -> Result<(), ConvError> {
    check_slices(&shape, x, weight, bias, y)?;
    direct::conv(shape, x, weight, bias, y, act, &mut vec![0.0; shape.o[1]]);
    Ok(())
}

/// `Err` unless the shape fits and the slices hold the layer's input,
/// filters, bias and output.
fn check_slices(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &[f32],
) -> Result<(), ConvError> {
    let [input, filters, output] = direct_lens(shape).ok_or(ConvError::Shape)?;
    check("input", x.len(), input)?;
    check("filters", weight.len(), filters)?;
    check("bias", bias.map_or(shape.k, <[f32]>::len), shape.k)?;
    check("output", y.len(), output)
}

/// The input's, the filters' and the output's lengths, if they fit.
const fn direct_lens(shape: &ConvShape) -> Option<[usize; 3]> {
    if !shape.fits() {
        return None;
    }
    let input = tri!(shape.c.checked_mul(tri!(shape.h.checked_mul(shape.w))));
    let filters = tri!(shape.k.checked_mul(tri!(shape.taps())));
    let output = tri!(shape
        .k
        .checked_mul(tri!(shape.o[0].checked_mul(shape.o[1]))));
    Some([input, filters, output])
}

/// Scratch of [`conv_im2col_with`]: one group's (C/G)·FH·FW × OH·OW
/// column matrix (saturating).
#[doc(hidden)]
pub const fn conv_im2col_scratch(shape: &ConvShape) -> usize {
    im2col::scratch_len(shape)
}

/// im2col + sgemm (for tests and benchmarks).
///
/// # Errors
/// The shape does not fit or a slice is too short.
#[doc(hidden)]
pub fn conv_im2col_with(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) -> Result<(), ConvError> {
    check_slices(&shape, x, weight, bias, y)?;
    check("scratch", scratch.len(), conv_im2col_scratch(&shape))?;
    let zeros;
    let bias = match bias {
        Some(bias) => bias,
        None => {
            zeros = vec![0.0; shape.k];
            &zeros
        }
    };
    im2col::conv(shape, x, weight, bias, y, act, scratch);
    Ok(())
}

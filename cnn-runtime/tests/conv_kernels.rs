//! Every convolution kernel against the reference kernel, over random
//! layers (plain, dilated, grouped and depthwise), on every instruction set
//! this CPU has: each kernel is forced in turn (`conv_with`), and may be
//! skipped only because the CPU lacks its instruction set or the kernel
//! does not take the layer's shape — two errors the tests tell apart.
//! Output sizes come from the shape arithmetic of `cnn-spec`, rounded down
//! where a stride does not divide (as a `floor` layer computes them).

use cnn_runtime::cpu::Isa;
use cnn_runtime::kernels::{
    conv_direct_with, conv_im2col_scratch, conv_im2col_with, conv_scratch, conv_with, reference,
    Act, ConvError, ConvKernel, ConvShape, PackedConv,
};
use cnn_spec::arith::window_out_floor;
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
            g,
            ..
        } = shape;
        let [oh, ow] = shape.o;
        let x = values(seed, c * h * w);
        let weight = values(seed + 1, k * (c / g) * fh * fw);
        let bias = values(seed + 2, k);
        let mut expected = vec![0.0; k * oh * ow];
        reference::conv2d(shape, &x, &weight, Some(&bias), &mut expected, act);
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
        Just(Act::Relu6),
        Just(Act::Sigmoid),
        Just(Act::Tanh)
    ]
}

/// A layer's volume: C, H, W and K.
type Volume = (usize, usize, usize, usize);
/// A layer's filter: FH, FW, SH, SW, PH and PW.
type Filter = (usize, usize, usize, usize, usize, usize);
/// How a layer's taps spread and its channels split: DH, DW and G.
type Spread = (usize, usize, usize);

/// Neither dilation nor groups.
const PLAIN: Spread = (1, 1, 1);

/// The layer of a volume and a filter, if the filter fits the padded
/// input: its output rounded down where the stride does not divide, as a
/// network that says `floor` (and PyTorch) computes it.
fn layer(volume: Volume, filter: Filter) -> Option<ConvShape> {
    spread_layer(volume, filter, PLAIN)
}

/// [`layer`] with dilation and groups (G dividing C and K), the filter's
/// extent D·(F − 1) + 1 fitting the padded input.
fn spread_layer(
    (c, h, w, k): Volume,
    (fh, fw, sh, sw, ph, pw): Filter,
    (dh, dw, g): Spread,
) -> Option<ConvShape> {
    let oh = window_out_floor(h, dh * (fh - 1) + 1, sh, ph).ok()?;
    let ow = window_out_floor(w, dw * (fw - 1) + 1, sw, pw).ok()?;
    let shape = ConvShape {
        d: [dh, dw],
        g,
        ..ConvShape::plain(c, [h, w], k, [fh, fw], [sh, sw], [ph, pw], [oh, ow])
    };
    (c % g == 0 && k % g == 0).then_some(shape)
}

/// The layer of a volume and a filter that fits.
fn fit(volume: Volume, filter: Filter) -> ConvShape {
    layer(volume, filter).expect("the filter fits")
}

/// The layer of a volume, a filter and a spread that fit.
fn spread_fit(volume: Volume, filter: Filter, spread: Spread) -> ConvShape {
    spread_layer(volume, filter, spread).expect("the filter fits")
}

/// The layers of the volumes and filters drawn whose filter fits.
fn fitting(
    volume: impl Strategy<Value = Volume>,
    filter: impl Strategy<Value = Filter>,
) -> impl Strategy<Value = ConvShape> {
    (volume, filter).prop_filter_map("the filter fits", |(volume, filter)| layer(volume, filter))
}

/// The layers of the volumes, filters and dilations (1 to 3) drawn whose
/// filter fits.
fn dilated(
    volume: impl Strategy<Value = Volume>,
    filter: impl Strategy<Value = Filter>,
) -> impl Strategy<Value = ConvShape> {
    (volume, filter, 1usize..4, 1usize..4)
        .prop_filter_map("the filter fits", |(volume, filter, dh, dw)| {
            spread_layer(volume, filter, (dh, dw, 1))
        })
}

/// The layers of the outputs (C, OH, OW, K), filters and dilations drawn:
/// the input sized to give that output, where one does.
fn producing_dilated(
    output: impl Strategy<Value = Volume>,
    filter: impl Strategy<Value = Filter>,
    dilation: impl Strategy<Value = (usize, usize)>,
) -> impl Strategy<Value = ConvShape> {
    (output, filter, dilation).prop_filter_map(
        "an input gives the output",
        |((c, oh, ow, k), filter, (dh, dw))| {
            let (fh, fw, sh, sw, ph, pw) = filter;
            let h = ((oh - 1) * sh + dh * (fh - 1) + 1).checked_sub(2 * ph)?;
            let w = ((ow - 1) * sw + dw * (fw - 1) + 1).checked_sub(2 * pw)?;
            let spread = (dh, dw, 1);
            let shape = spread_layer((c, h, w, k), filter, spread).filter(|_| h > 0 && w > 0)?;
            (shape.o == [oh, ow]).then_some(shape)
        },
    )
}

/// The layers of the outputs (C, OH, OW, K) and filters drawn: the input
/// sized to give that output, where one does.
fn producing(
    output: impl Strategy<Value = Volume>,
    filter: impl Strategy<Value = Filter>,
) -> impl Strategy<Value = ConvShape> {
    producing_dilated(output, filter, Just((1, 1)))
}

/// Random layers that fit: small volumes, filters, strides, paddings and
/// dilations (pairs included), enough channels to exercise every tile
/// height.
fn shape() -> impl Strategy<Value = ConvShape> {
    (
        (1usize..6, 1usize..13, 1usize..13, 1usize..11),
        (1usize..6, 1usize..6, 1usize..4, 1usize..4),
        (1usize..4, 1usize..4),
    )
        .prop_flat_map(|(volume, (fh, fw, sh, sw), (dh, dw))| {
            // Paddings up to past half the filter's extent.
            let (eh, ew) = (dh * (fh - 1) + 1, dw * (fw - 1) + 1);
            (
                Just((volume, (fh, fw, sh, sw), (dh, dw))),
                0..=eh / 2 + 1,
                0..=ew / 2 + 1,
            )
        })
        .prop_filter_map(
            "the filter fits",
            |((volume, (fh, fw, sh, sw), (dh, dw)), ph, pw)| {
                spread_layer(volume, (fh, fw, sh, sw, ph, pw), (dh, dw, 1))
            },
        )
}

/// Random grouped layers: 2 to 4 groups of 1 to 4 channels and 1 to 6
/// filters each (a group of one channel too, but never depthwise, which
/// [`depthwise_shape`] draws), dilated as [`shape`].
fn grouped_shape() -> impl Strategy<Value = ConvShape> {
    (
        (2usize..5, 1usize..5, 1usize..13, 1usize..13, 1usize..7),
        (1usize..5, 1usize..5, 1usize..4, 1usize..4),
        (1usize..4, 1usize..4),
    )
        .prop_flat_map(|(volume, filter, (dh, dw))| {
            let (eh, ew) = (dh * (filter.0 - 1) + 1, dw * (filter.1 - 1) + 1);
            (
                Just((volume, filter, (dh, dw))),
                0..=eh / 2 + 1,
                0..=ew / 2 + 1,
            )
        })
        .prop_filter_map(
            "the filter fits, the layer is not depthwise",
            |(((g, cg, h, w, kg), (fh, fw, sh, sw), (dh, dw)), ph, pw)| {
                let volume = (g * cg, h, w, g * kg);
                let filter = (fh, fw, sh, sw, ph, pw);
                spread_layer(volume, filter, (dh, dw, g)).filter(|s| s.g != s.c)
            },
        )
}

/// Random depthwise layers: 2 to 19 channels, multiplier 1 or 2, rows of
/// up to 80 pixels (strips of every width, in vectors of 16 and 8, with
/// a narrower last vector), filters up to 5 × 5 with strides 1 to 3 (3
/// takes the portable loops), dilations 1 to 3 and paddings up to past
/// half the filter's extent.
fn depthwise_shape() -> impl Strategy<Value = ConvShape> {
    (
        (2usize..20, 1usize..3, 1usize..20, 1usize..81),
        (1usize..6, 1usize..6, 1usize..4, 1usize..4),
        (1usize..4, 1usize..4),
    )
        .prop_flat_map(|(volume, filter, (dh, dw))| {
            let (eh, ew) = (dh * (filter.0 - 1) + 1, dw * (filter.1 - 1) + 1);
            (
                Just((volume, filter, (dh, dw))),
                0..=eh / 2 + 1,
                0..=ew / 2 + 1,
            )
        })
        .prop_filter_map(
            "the filter fits",
            |(((c, m, h, w), (fh, fw, sh, sw), (dh, dw)), ph, pw)| {
                let filter = (fh, fw, sh, sw, ph, pw);
                spread_layer((c, h, w, c * m), filter, (dh, dw, c))
            },
        )
}

/// Random 3 × 3 depthwise layers of stride 1 or 2 along both axes, as
/// MobileNet's are (the depthwise kernel's own path for them): paddings 0
/// to 2 on each axis, 1 to 9 rows (fewer than the 4 computed at a time
/// too) of up to 80 pixels, multiplier 1 or 2.
fn depthwise_3x3_shape() -> impl Strategy<Value = ConvShape> {
    (
        (2usize..12, 1usize..3, 1usize..20, 1usize..81),
        (1usize..3, 0usize..3, 0usize..3),
    )
        .prop_filter_map("the filter fits", |((c, m, h, w), (s, ph, pw))| {
            spread_layer((c, h, w, c * m), (3, 3, s, s, ph, pw), (1, 1, c))
        })
}

/// Random layers with many input channels, so that the blocked path
/// accumulates them in several passes (more so with strides, whose phase
/// planes widen the input a block of pixels reads, and dilations, whose
/// taps reach further).
fn deep_shape() -> impl Strategy<Value = ConvShape> {
    dilated(
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

/// Output rows of 1 to 8 pixels, 1 to 11 rows of them, with strides,
/// paddings and dilations: from 16 pixels on, with filters wider than a
/// column, the shifted layout (a plane per filter column); below, the
/// phase layout.
fn short_rows_shape() -> impl Strategy<Value = ConvShape> {
    producing_dilated(
        (1usize..40, 1usize..12, 1usize..9, 1usize..20),
        (
            1usize..6,
            1usize..6,
            1usize..4,
            1usize..4,
            0usize..3,
            0usize..3,
        ),
        (1usize..4, 1usize..4),
    )
}

/// Layers of many taps per filter (most of them taken with filters in the
/// lanes where the CPU has AVX-512): 2 to 11 channels and large filters,
/// 17 to 79 filters (some not a multiple of 16, some more than three
/// vectors) and output rows of 8 to 40 pixels (some ending in a tile of
/// fewer than 8), with strides and paddings: among them rows of 11 taps at
/// stride 4, which that kernel unrolls, as AlexNet's first layer has.
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

/// Layers for the AVX2 kernel with filters in the lanes: 1 to 40
/// filters (one vector of 8 or part of one, pairs of vectors, and a last,
/// odd vector beside pairs), 1 × 1, 3 × 3 and other filters (the taps
/// unrolled for the first two), strides, paddings and dilations, and
/// output rows of 1 to 20 pixels, so that runs of 6 and 8 pixels start
/// and end anywhere in a row, span several short rows, and leave a last,
/// narrower tile.
fn lanes_avx2_shape() -> impl Strategy<Value = ConvShape> {
    producing_dilated(
        (1usize..7, 1usize..7, 1usize..21, 1usize..41),
        prop_oneof![
            (
                Just(1usize),
                Just(1usize),
                1usize..4,
                1usize..4,
                0usize..2,
                0usize..2
            ),
            (
                Just(3usize),
                Just(3usize),
                1usize..4,
                1usize..4,
                0usize..3,
                0usize..3
            ),
            (
                1usize..6,
                1usize..6,
                1usize..4,
                1usize..4,
                0usize..3,
                0usize..3
            ),
        ],
        (1usize..3, 1usize..3),
    )
}

/// Grouped layers whose groups have 9 to 24 filters each (a pair of
/// vectors of 8 and a last, odd one per group, with the AVX2 kernel with
/// filters in the lanes), strided, padded and dilated.
fn grouped_lanes_shape() -> impl Strategy<Value = ConvShape> {
    (
        (2usize..4, 1usize..4, 2usize..10, 2usize..14, 9usize..25),
        (
            1usize..4,
            1usize..4,
            1usize..3,
            1usize..3,
            0usize..2,
            0usize..2,
        ),
        (1usize..3, 1usize..3),
    )
        .prop_filter_map(
            "the filter fits, the layer is not depthwise",
            |((g, cg, h, w, kg), filter, (dh, dw))| {
                spread_layer((g * cg, h, w, g * kg), filter, (dh, dw, g)).filter(|s| s.g != s.c)
            },
        )
}

/// Every kernel there is: each instruction set's blocked tile and
/// depthwise kernel, and the kernels of their own.
const KERNELS: [ConvKernel; 10] = [
    ConvKernel::Blocked(Isa::Portable),
    ConvKernel::Blocked(Isa::Avx2),
    ConvKernel::Blocked(Isa::Avx512),
    ConvKernel::FilterLanes,
    ConvKernel::FilterLanesAvx2,
    ConvKernel::Narrow,
    ConvKernel::Depthwise(Isa::Portable),
    ConvKernel::Depthwise(Isa::Avx2),
    ConvKernel::Depthwise(Isa::Avx512),
    ConvKernel::Direct,
];

/// Whether `kernel` may refuse `shape` as a shape it does not take: the
/// GEMV per pixel all but 1×1
/// layers of stride 1 without padding, the depthwise kernel all but
/// depthwise layers. The others take every layer that fits.
fn may_refuse(kernel: ConvKernel, shape: &ConvShape) -> bool {
    match kernel {
        ConvKernel::Narrow => shape.f != [1, 1] || shape.s != [1, 1] || shape.p != [0, 0],
        ConvKernel::Depthwise(_) => shape.g != shape.c || shape.g == 1,
        _ => false,
    }
}

/// The layer through `kernel`, packed and run with scratch of its own
/// length (NaN-filled); `None` where the kernel cannot run, which must be
/// for a reason the test accepts: the CPU lacks the kernel's instruction
/// set, or the kernel does not take the layer.
fn run_kernel(case: &Case, kernel: ConvKernel, split: bool) -> Option<Vec<f32>> {
    let mut y = case.output();
    let n = case.expected.len();
    let packed = match PackedConv::new(case.shape, kernel, &case.weight, Some(&case.bias)) {
        Ok(packed) => packed,
        Err(ConvError::Unsupported(isa)) => {
            assert!(!isa.supported(), "{kernel:?} refused a supported set");
            return None;
        }
        Err(ConvError::Unsuited(k)) => {
            assert!(
                k == kernel && may_refuse(kernel, &case.shape),
                "{k:?} refused {:?}",
                case.shape
            );
            return None;
        }
        Err(e) => panic!("{kernel:?} on {:?}: {e}", case.shape),
    };
    let mut scratch = vec![f32::NAN; packed.scratch_len()];
    let result = packed.run(&case.x, &mut y[..n], case.act, &mut scratch, split);
    result.unwrap_or_else(|e| panic!("{kernel:?} on {:?}: {e}", case.shape));
    Some(y)
}

/// The layer through direct loops, im2col + sgemm, the kernel chosen for
/// the instruction set in use, and every kernel on every instruction set
/// this CPU has, split across threads and not.
fn every_path(case: &Case) -> Result<(), TestCaseError> {
    let n = case.expected.len();
    let mut y = case.output();
    let (x, w, b) = (&case.x, &case.weight, Some(&case.bias[..]));
    conv_direct_with(case.shape, x, w, b, &mut y[..n], case.act).map_err(fail)?;
    case.check("direct", &y)?;

    let mut y = case.output();
    let mut scratch = vec![0.0; conv_im2col_scratch(&case.shape)];
    conv_im2col_with(case.shape, x, w, b, &mut y[..n], case.act, &mut scratch).map_err(fail)?;
    case.check("im2col", &y)?;

    // What a network runs: the kernel chosen for the instruction set in
    // use, with the scratch the workspace reserves.
    let auto = ConvKernel::choose(&case.shape, Isa::active());
    let mut y = case.output();
    let mut scratch = vec![f32::NAN; conv_scratch(&case.shape)];
    conv_with(
        case.shape,
        auto,
        false,
        x,
        w,
        b,
        &mut y[..n],
        case.act,
        &mut scratch,
    )
    .map_err(fail)?;
    case.check("chosen", &y)?;

    for split in [false, true] {
        for kernel in KERNELS {
            if let Some(y) = run_kernel(case, kernel, split) {
                case.check(&format!("{kernel:?}, split {split}"), &y)?;
            }
        }
    }
    Ok(())
}

fn fail(e: ConvError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
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
    fn avx2_filter_lanes_layers_match_the_reference(shape in lanes_avx2_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn grouped_lanes_layers_match_the_reference(shape in grouped_lanes_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn grouped_layers_match_the_reference(shape in grouped_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn depthwise_layers_match_the_reference(shape in depthwise_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn depthwise_3x3_layers_match_the_reference(shape in depthwise_3x3_shape(), act in act(), seed in any::<u64>()) {
        every_path(&Case::new(shape, act, seed))?;
    }

    #[test]
    fn pointwise_shapes_match_the_reference(
        c in 1usize..40, (h, w) in prop_oneof![(1usize..3, 1usize..4), (1usize..9, 1usize..12)],
        k in 1usize..20, act in act(), seed in any::<u64>()
    ) {
        every_path(&Case::new(fit((c, h, w, k), (1, 1, 1, 1, 0, 0)), act, seed))?;
    }
}

/// The rule for the kernel a layer gets, on the benchmark networks' layers
/// and at its edges.
#[test]
fn kernels_are_chosen_by_the_rule() {
    let choose = |volume, filter, isa| ConvKernel::choose(&fit(volume, filter), isa);
    let avx512 = Isa::Avx512;
    // AlexNet's first layer and VGG's 56 × 56 block: filters in the lanes.
    let alexnet = ((3, 227, 227, 96), (11, 11, 4, 4, 0, 0));
    assert_eq!(
        choose(alexnet.0, alexnet.1, avx512),
        ConvKernel::FilterLanes
    );
    let vgg = ((64, 56, 56, 64), (3, 3, 1, 1, 1, 1));
    assert_eq!(choose(vgg.0, vgg.1, avx512), ConvKernel::FilterLanes);
    // With AVX2 alone, filters in the lanes of 8 where rows are not a
    // multiple of 16 pixels and filters have enough taps (fewer if
    // strided): AlexNet's first layer, VGG's blocks from 56 × 56 down to
    // 7 × 7, ResNet's stride-2 3 × 3 and its 1 × 1 of stride 2 on 128
    // channels, CIFAR-VGG's 8 × 8 block, 16 channels of 3 × 3 (144 taps);
    // portable code keeps the blocked tile.
    let avx2 = Isa::Avx2;
    let lanes = [
        alexnet,
        vgg,
        ((128, 28, 28, 128), (3, 3, 1, 1, 1, 1)),
        ((512, 7, 7, 512), (3, 3, 1, 1, 1, 1)),
        ((64, 56, 56, 128), (3, 3, 2, 2, 1, 1)),
        ((128, 28, 28, 256), (1, 1, 2, 2, 0, 0)),
        ((64, 8, 8, 128), (3, 3, 1, 1, 1, 1)),
        ((16, 28, 28, 64), (3, 3, 1, 1, 1, 1)),
    ];
    for (volume, filter) in lanes {
        let got = choose(volume, filter, avx2);
        assert_eq!(got, ConvKernel::FilterLanesAvx2, "{volume:?} {filter:?}");
    }
    assert_eq!(
        choose(alexnet.0, alexnet.1, Isa::Portable),
        ConvKernel::Blocked(Isa::Portable)
    );
    // With AVX2, the blocked tile for rows of 16 or 32 pixels (CIFAR-VGG's
    // 32 × 32 and 16 × 16 blocks, ResNet's stem: 112), too few taps
    // (CIFAR-VGG's first layer, 27; 12 channels of 3 × 3, 108; ResNet's
    // 1 × 1 of stride 2 on 64 channels), or one vector of filters.
    let blocked = [
        ((3, 32, 32, 32), (3, 3, 1, 1, 1, 1)),
        ((32, 32, 32, 32), (3, 3, 1, 1, 1, 1)),
        ((64, 16, 16, 64), (3, 3, 1, 1, 1, 1)),
        ((3, 224, 224, 64), (7, 7, 2, 2, 3, 3)),
        ((12, 28, 28, 64), (3, 3, 1, 1, 1, 1)),
        ((64, 56, 56, 128), (1, 1, 2, 2, 0, 0)),
        ((64, 28, 28, 8), (3, 3, 1, 1, 1, 1)),
    ];
    for (volume, filter) in blocked {
        let got = choose(volume, filter, avx2);
        assert_eq!(got, ConvKernel::Blocked(avx2), "{volume:?} {filter:?}");
    }
    // 3 × 3 of stride 1 from 144 taps, whatever the rows: CIFAR-VGG's
    // rows of 32 and 16, but not its first layer (27 taps).
    for (volume, filter) in [
        ((32, 32, 32, 32), (3, 3, 1, 1, 1, 1)),
        ((16, 32, 32, 32), (3, 3, 1, 1, 1, 1)),
        ((64, 16, 16, 64), (3, 3, 1, 1, 1, 1)),
    ] {
        let got = choose(volume, filter, avx512);
        assert_eq!(got, ConvKernel::FilterLanes, "{volume:?}");
    }
    let first = ((3, 32, 32, 32), (3, 3, 1, 1, 1, 1));
    assert_eq!(
        choose(first.0, first.1, avx512),
        ConvKernel::Blocked(avx512)
    );
    // Other rows of 32, or too few taps, or one vector of filters: blocked.
    let rows32 = ((32, 36, 36, 32), (5, 5, 1, 1, 0, 0));
    assert_eq!(
        choose(rows32.0, rows32.1, avx512),
        ConvKernel::Blocked(avx512)
    );
    let few = ((2, 24, 24, 96), (10, 10, 1, 1, 0, 0));
    assert_eq!(choose(few.0, few.1, avx512), ConvKernel::Blocked(avx512));
    let one = ((3, 24, 24, 16), (11, 11, 1, 1, 0, 0));
    assert_eq!(choose(one.0, one.1, avx512), ConvKernel::Blocked(avx512));
    // Fewer pixels than a vector that cannot go two rows to one: AVX2's.
    let tiny = ((8, 3, 3, 8), (3, 3, 1, 1, 1, 1));
    assert_eq!(
        choose(tiny.0, tiny.1, avx512),
        ConvKernel::Blocked(Isa::Avx2)
    );
    // 1×1: a GEMV per pixel below 8 pixels, the blocked tile from 8 on
    // where filters in the lanes do not pay.
    let point = |hw| ((256, 1, hw, 64), (1, 1, 1, 1, 0, 0));
    assert_eq!(choose(point(7).0, point(7).1, avx512), ConvKernel::Narrow);
    assert_eq!(
        choose(point(256).0, point(256).1, avx512),
        ConvKernel::Blocked(avx512)
    );
    // Filters in the lanes for 1×1 layers on planes under 256 pixels
    // (MobileNetV2's on 7 × 7 and 14 × 14, B6), the blocked tile from
    // 28 × 28 on, with either instruction set.
    let mobile = |c, hw, k| ((c, hw, hw, k), (1, 1, 1, 1, 0, 0));
    for (c, hw, k) in [(576, 7, 160), (320, 7, 1280), (384, 14, 64), (256, 14, 64)] {
        let (volume, filter) = mobile(c, hw, k);
        let got = choose(volume, filter, avx2);
        assert_eq!(got, ConvKernel::FilterLanesAvx2, "{volume:?}");
        let got = choose(volume, filter, avx512);
        assert_eq!(got, ConvKernel::FilterLanes, "{volume:?}");
    }
    let (volume, filter) = mobile(32, 28, 192);
    assert_eq!(choose(volume, filter, avx2), ConvKernel::Blocked(avx2));
    assert_eq!(choose(volume, filter, avx512), ConvKernel::Blocked(avx512));

    let spread =
        |volume, filter, spread, isa| ConvKernel::choose(&spread_fit(volume, filter, spread), isa);
    // Depthwise layers (MobileNetV2's, multiplier 1, and one of 2): the
    // depthwise kernel of the set in use, whatever the stride or dilation.
    for isa in Isa::ALL {
        for (volume, filter, d) in [
            ((32, 112, 112, 32), (3, 3, 1, 1, 1, 1), 1),
            ((96, 112, 112, 96), (3, 3, 2, 2, 1, 1), 1),
            ((960, 7, 7, 960), (3, 3, 1, 1, 1, 1), 1),
            ((16, 20, 20, 32), (5, 5, 3, 3, 4, 4), 2),
        ] {
            let g = volume.0;
            let got = spread(volume, filter, (d, d, g), isa);
            assert_eq!(got, ConvKernel::Depthwise(isa), "{volume:?}");
        }
    }
    // One input channel is a plain layer, not a depthwise one.
    let lenet = ((1, 28, 28, 6), (5, 5, 1, 1, 2, 2));
    assert_eq!(
        spread(lenet.0, lenet.1, (1, 1, 1), avx512),
        ConvKernel::Blocked(avx512)
    );
    // Other groups: the rule on one group's layer. Two groups of VGG's
    // 56 × 56 block take filters in the lanes; 32 groups of 4 channels
    // (ResNeXt's) the blocked tile; 1×1 groups on 7 pixels the GEMV.
    let vgg2 = ((128, 56, 56, 128), (3, 3, 1, 1, 1, 1));
    assert_eq!(
        spread(vgg2.0, vgg2.1, (1, 1, 2), avx512),
        ConvKernel::FilterLanes
    );
    assert_eq!(
        spread(vgg2.0, vgg2.1, (1, 1, 2), Isa::Avx2),
        ConvKernel::FilterLanesAvx2
    );
    let resnext = ((128, 56, 56, 128), (3, 3, 1, 1, 1, 1));
    for isa in Isa::ALL {
        let got = spread(resnext.0, resnext.1, (1, 1, 32), isa);
        assert_eq!(got, ConvKernel::Blocked(isa));
    }
    let point_groups = ((64, 1, 7, 64), (1, 1, 1, 1, 0, 0));
    assert_eq!(
        spread(point_groups.0, point_groups.1, (1, 1, 4), avx512),
        ConvKernel::Narrow
    );
    // Dilation changes no choice: DeepLab's dilated 3 × 3 on 56 × 56 takes
    // filters in the lanes as VGG's does, on 32 × 32 the blocked tile.
    let deeplab = ((64, 56, 56, 64), (3, 3, 1, 1, 2, 2));
    assert_eq!(
        spread(deeplab.0, deeplab.1, (2, 2, 1), avx512),
        ConvKernel::FilterLanes
    );
    let b3_dilated = ((32, 32, 32, 32), (3, 3, 1, 1, 2, 2));
    assert_eq!(
        spread(b3_dilated.0, b3_dilated.1, (2, 2, 1), avx512),
        ConvKernel::Blocked(avx512)
    );
    assert_eq!(
        spread(b3_dilated.0, b3_dilated.1, (2, 2, 1), Isa::Avx2),
        ConvKernel::Blocked(Isa::Avx2)
    );
}

/// MobileNetV2's depthwise layers and ResNet-18's layers (the 3 × 224 × 224
/// networks), at their own sizes, some with fewer channels or filters to
/// keep the test fast, and a grouped and a dilated layer of their kind,
/// through every path.
#[test]
fn mobilenet_v2_and_resnet18_layers() {
    let depthwise = |c, hw, s| spread_fit((c, hw, hw, c), (3, 3, s, s, 1, 1), (1, 1, c));
    let layers = [
        // MobileNetV2: 3 × 3 depthwise, stride 1 and 2, pad 1, ReLU6.
        (depthwise(8, 112, 1), Act::Relu6),
        (depthwise(8, 112, 2), Act::Relu6),
        (depthwise(16, 56, 1), Act::Relu6),
        (depthwise(16, 56, 2), Act::Relu6),
        (depthwise(24, 28, 2), Act::Relu6),
        (depthwise(384, 14, 1), Act::Relu6),
        (depthwise(576, 14, 2), Act::Relu6),
        (depthwise(960, 7, 1), Act::Relu6),
        // ResNet-18: the stem (4 of its 64 filters), a 3 × 3 block of
        // each size, the stride-2 3 × 3 and 1 × 1 of a downsampling block.
        (fit((3, 224, 224, 4), (7, 7, 2, 2, 3, 3)), Act::Relu),
        (fit((64, 56, 56, 8), (3, 3, 1, 1, 1, 1)), Act::Relu),
        (fit((64, 56, 56, 8), (3, 3, 2, 2, 1, 1)), Act::Relu),
        (fit((64, 56, 56, 16), (1, 1, 2, 2, 0, 0)), Act::Identity),
        (fit((128, 28, 28, 8), (3, 3, 1, 1, 1, 1)), Act::Relu),
        (fit((256, 14, 14, 16), (3, 3, 1, 1, 1, 1)), Act::Relu),
        (fit((512, 7, 7, 16), (3, 3, 1, 1, 1, 1)), Act::Relu),
        // ResNeXt's grouped 3 × 3 (32 groups of 4) and a dilated 3 × 3.
        (
            spread_fit((128, 14, 14, 128), (3, 3, 1, 1, 1, 1), (1, 1, 32)),
            Act::Relu,
        ),
        (
            spread_fit((64, 28, 28, 24), (3, 3, 1, 1, 2, 2), (2, 2, 1)),
            Act::Relu,
        ),
    ];
    for (shape, act) in layers {
        every_path(&Case::new(shape, act, 13))
            .map_err(|e| format!("{shape:?}: {e}"))
            .unwrap();
    }
}

#[test]
fn unsupported_sets_and_short_slices_are_told_apart() {
    let case = Case::new(fit((2, 6, 6, 3), (3, 3, 2, 2, 1, 1)), Act::Identity, 3);
    for isa in Isa::ALL {
        let kernel = ConvKernel::Blocked(isa);
        let got = PackedConv::new(case.shape, kernel, &case.weight, Some(&case.bias)).map(|_| ());
        if isa.supported() {
            assert_eq!(got, Ok(()));
        } else {
            assert_eq!(got, Err(ConvError::Unsupported(isa)));
        }
    }
    let kernel = ConvKernel::choose(&case.shape, Isa::active());
    let packed =
        PackedConv::new(case.shape, kernel, &case.weight, Some(&case.bias)).expect("packs");
    let mut y = case.output();
    let need = packed.scratch_len();
    let mut scratch = vec![0.0; need - 1];
    let got = packed.run(&case.x, &mut y, case.act, &mut scratch, false);
    assert_eq!(
        got,
        Err(ConvError::Short {
            what: "scratch",
            need,
            got: need - 1
        })
    );
    let got = PackedConv::new(case.shape, kernel, &case.weight[1..], Some(&case.bias)).map(|_| ());
    assert!(matches!(
        got,
        Err(ConvError::Short {
            what: "filters",
            ..
        })
    ));
    // Kernels of their own refuse the layers they do not take.
    let got = PackedConv::new(case.shape, ConvKernel::Narrow, &case.weight, None).map(|_| ());
    assert_eq!(got, Err(ConvError::Unsuited(ConvKernel::Narrow)));
}

/// Each layer as a network declares it, through the kernel chosen for
/// the instruction set in use.
#[test]
fn benchmark_and_edge_layers() {
    let layers = [
        ((3, 32, 32, 10), (5, 5, 1, 1, 2, 2), Act::Relu),
        ((6, 14, 14, 16), (5, 5, 1, 1, 0, 0), Act::Tanh),
        ((3, 23, 19, 7), (5, 3, 3, 2, 1, 2), Act::Sigmoid),
        ((16, 40, 40, 13), (3, 3, 1, 1, 1, 1), Act::Relu),
        ((3, 47, 51, 11), (11, 11, 4, 4, 0, 1), Act::Relu),
        ((3, 59, 63, 40), (11, 11, 4, 4, 1, 2), Act::Relu),
        ((5, 20, 33, 9), (3, 3, 2, 2, 1, 1), Act::Identity),
        ((4, 17, 13, 9), (1, 2, 3, 4, 0, 1), Act::Relu),
        ((24, 7, 7, 9), (1, 1, 1, 1, 0, 0), Act::Relu),
        // ResNet's stride-2 layers on even sizes drop an edge.
        ((8, 16, 16, 12), (3, 3, 2, 2, 1, 1), Act::Relu),
        ((8, 16, 16, 12), (1, 1, 2, 2, 0, 0), Act::Identity),
        // Two vectors of 8 filters, the second of one filter, split over
        // two threads a vector each; rows of one pixel.
        ((1, 4, 3, 9), (3, 3, 1, 1, 0, 0), Act::Identity),
    ];
    for (volume, filter, act) in layers {
        every_path(&Case::new(fit(volume, filter), act, 11)).unwrap();
    }
}

/// Strides 2 and 4 with every column phase kept: rows split straight from
/// the input, in blocks of 8 per phase, with the padded ends on either side
/// of the blocks (paddings up to past a block, rows shorter than one).
#[test]
fn strided_phase_splits() {
    for sw in [2, 4] {
        for pw in [0, 1, 3, 9, 40] {
            for w in [3, 37, 70, 131] {
                // 2 channels of 5 × w, 3 filters of 2 × (sw + 1).
                if let Some(shape) = layer((2, 5, w, 3), (2, sw + 1, 2, sw, 1, pw)) {
                    every_path(&Case::new(shape, Act::Identity, 7)).unwrap();
                }
            }
        }
    }
}

/// A strided row too long for the transform's stack copy (WQ·SW > 2048)
/// takes the per-phase copy, through every path.
#[test]
fn long_strided_rows() {
    for (s, p) in [((1, 2), (0, 1)), ((2, 3), (1, 0))] {
        let shape = fit((2, 4, 4200, 3), (2, 3, s.0, s.1, p.0, p.1));
        every_path(&Case::new(shape, Act::Identity, 5)).unwrap();
    }
}

/// The blocked kernel's scratch: the zero-padded, phase-split input and,
/// where rows are computed wider than the output's, the wide output.
fn blocked_scratch(shape: &ConvShape) -> Option<usize> {
    ConvKernel::Blocked(Isa::Portable).scratch_len(shape)
}

/// Only the phases a tap reads are kept: a 1×2 filter with strides 3×4
/// needs one row phase and two column phases of 6×4 (17 rows, 13 + 2
/// columns), and its 4-wide output rows match the planes' width.
#[test]
fn scratch_keeps_only_the_phases_taps_read() {
    let shape = fit((4, 17, 13, 9), (1, 2, 3, 4, 0, 1));
    assert_eq!(blocked_scratch(&shape), Some(4 * 2 * 6 * 4));
    assert_eq!(conv_scratch(&shape), 4 * 2 * 6 * 4);
    // A stride far past the input needs one row phase, however large.
    let far = fit((4, 17, 13, 9), (1, 2, usize::MAX / 3, 6, 0, 1));
    assert_eq!(far.o, [1, 3]);
    assert_eq!(conv_scratch(&far), 4 * 2 * 3);
}

/// Filters in the lanes need only the zero-padded input (their filters
/// are packed once, with the parameters); the workspace reserves the
/// larger of that and the blocked kernel's scratch, whatever the CPU.
#[test]
fn the_workspace_reserves_every_kernels_scratch() {
    let lanes = |shape: &ConvShape| ConvKernel::FilterLanes.scratch_len(shape);
    let unpadded = fit((3, 24, 24, 96), (11, 11, 1, 1, 0, 0));
    assert_eq!(lanes(&unpadded), Some(0));
    assert_eq!(blocked_scratch(&unpadded), Some(96 * (13 * 24 + 14)));
    assert_eq!(conv_scratch(&unpadded), 96 * (13 * 24 + 14));
    let padded = fit((3, 18, 18, 40), (11, 11, 1, 1, 1, 1));
    assert_eq!(lanes(&padded), Some(3 * 20 * 20));
    assert_eq!(conv_scratch(&padded), 3 * 20 * 20 + 40 * (9 * 20 + 10));
    // Rows narrower than a tile are the kernel's too.
    let narrow = fit((3, 24, 7, 96), (3, 3, 1, 1, 1, 1));
    assert_eq!(lanes(&narrow), Some(3 * 26 * 9));
}

/// Output rows of at most 8 pixels take a plane per filter column, OW
/// wide, and no wide output: B3's last convolution, 64 channels of 8×8
/// padded to 10×10, takes 3 planes of 10×8 per channel.
#[test]
fn short_rows_take_a_plane_per_filter_column() {
    let shape = fit((64, 8, 8, 128), (3, 3, 1, 1, 1, 1));
    assert_eq!(conv_scratch(&shape), 64 * 3 * 10 * 8);
    // With strides: 2 row phases of ⌈17/2⌉ rows, 5 columns of 4.
    let strided = fit((2, 15, 9, 3), (4, 5, 2, 2, 1, 1));
    assert_eq!(strided.o, [7, 4]);
    assert_eq!(conv_scratch(&strided), 2 * 2 * 5 * 9 * 4);
    // Fewer than 16 pixels keep the phase layout and its wide output.
    let small = fit((64, 1, 8, 128), (3, 3, 1, 1, 1, 1));
    assert_eq!(small.o, [1, 8]);
    assert_eq!(conv_scratch(&small), 64 * 3 * 10 + 128 * 8);
}

/// A layer whose sizes overflow `usize` is refused, not a panic, and its
/// scratch saturates (which the network's compile-time check rejects).
#[test]
fn overflowing_sizes_are_refused() {
    let big = 1 << 31;
    let shape = ConvShape::plain(1, [1, 1], 1, [1, 1], [1, 1], [big, big], [2 * big + 1; 2]);
    assert_eq!(conv_scratch(&shape), usize::MAX);
    let (x, w, b) = ([1.0], [1.0], Some(&[0.0][..]));
    let mut y = [0.0; 4];
    for kernel in KERNELS {
        let got = conv_with(
            shape,
            kernel,
            false,
            &x,
            &w,
            b,
            &mut y,
            Act::Identity,
            &mut [],
        );
        assert_eq!(got, Err(ConvError::Shape), "{kernel:?}");
    }
    // An output the filter cannot produce is refused as well.
    let wrong = ConvShape {
        o: [3, 2],
        ..fit((1, 4, 4, 1), (3, 3, 1, 1, 0, 0))
    };
    let got = conv_with(
        wrong,
        ConvKernel::Blocked(Isa::Portable),
        false,
        &[0.0; 16],
        &[0.0; 9],
        b,
        &mut y,
        Act::Identity,
        &mut [],
    );
    assert_eq!(got, Err(ConvError::Shape));
}

/// 1×1 layers on rows narrower than a vector: one pixel, a few pixels
/// with more filters than one GEMV takes, and more channels than fit the
/// stack copy.
#[test]
fn narrow_pointwise_layers() {
    for (c, hw, k) in [(300, 1, 7), (40, 3, 300), (2100, 3, 5), (2100, 1, 3)] {
        let shape = fit((c, 1, hw, k), (1, 1, 1, 1, 0, 0));
        assert_eq!(
            ConvKernel::choose(&shape, Isa::active()),
            ConvKernel::Narrow
        );
        every_path(&Case::new(shape, Act::Tanh, 3))
            .map_err(|e| format!("{c}×{hw}, {k} filters: {e}"))
            .unwrap();
    }
}

//! The generated forward pass against a plain interpreter of the same
//! layers (`cnn_runtime::reference_forward`, built on the reference kernels
//! only, with no fusion and no folding), on random networks covering every
//! layer kind and option, groups, residual blocks and names
//! (tests/forward/cases.rs, written by tests/gen_forward_cases.py).
//!
//! For each network, its batch norms given random statistics: `forward`,
//! `forward_batch` (batches of 1, 3 and 7) and the batched pass it runs on
//! chunks (1 to 7 images) agree with the interpreter to 1e-4 relative;
//! non-contiguous views give the same result as contiguous arrays; wrong
//! shapes are errors naming both shapes; NaN and infinities flow through
//! as in the interpreter. Together the cases reach every convolution
//! kernel on every instruction set, and every step of a plan with every
//! activation fused into it (`cases_reach_every_kernel_and_step`).

use std::collections::BTreeSet;

use cnn::Network;
use cnn_runtime::cpu::Isa;
use cnn_runtime::kernels::{Act, ConvKernel};
use cnn_runtime::plan::Op;
use cnn_runtime::{reference_forward, LayerKind};
use ndarray::{s, Array3, Array4, ArrayView3, Axis};

#[path = "forward/cases.rs"]
mod cases;

/// SplitMix64: a small deterministic source of test inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [−1, 1).
    fn value(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.value() + 1.0) / 2.0
    }
}

/// `N` with PyTorch's initialisation, and batch norms that are not the
/// identity, so that folding them into a convolution, or running them on
/// their own, has something to get wrong: weights of either sign, 0.7 to
/// 1.3 in size; biases and running means within ±0.3; running variances
/// from 0.5 to 2.
fn random_net<N: Network>(seed: u64) -> N {
    let mut net = N::init(seed);
    let mut rng = Rng(seed ^ 0xba7c_4e0a);
    let norms: Vec<&str> = N::LAYERS
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::BatchNorm { .. }))
        .map(|l| l.path)
        .collect();
    for tensor in net.parameters_mut().iter_mut() {
        let name = tensor.name().to_string();
        let Some((layer, what)) = name.rsplit_once('.') else {
            continue;
        };
        if !norms.contains(&layer) {
            continue;
        }
        for v in tensor.data_mut() {
            *v = match what {
                "weight" => rng.uniform(0.7, 1.3).copysign(rng.value()),
                "running_var" => rng.uniform(0.5, 2.0),
                "bias" | "running_mean" => rng.uniform(-0.3, 0.3),
                other => panic!("{}: unexpected batch norm tensor `{other}`", N::NAME),
            };
        }
    }
    net
}

const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

/// `got` agrees with the interpreter's `want`: the same NaN or infinity, or
/// within `RTOL` relative with an `ATOL` floor near 0.
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if g.is_nan() || w.is_nan() {
            g.is_nan() && w.is_nan()
        } else if g.is_infinite() || w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= RTOL * w.abs() + ATOL
        };
        assert!(ok, "{what}: value {i} is {g}, the reference gives {w}");
    }
}

fn reference<N: Network>(net: &N, image: ArrayView3<f32>) -> Vec<f32> {
    let x: Vec<f32> = image.iter().copied().collect();
    reference_forward::forward(N::LAYERS, N::MODEL.graph, net.parameters(), &x)
}

/// Everything the forward pass promises, on network `N`.
fn check<N: Network>(seed: u64) {
    let name = N::NAME;
    let net = random_net::<N>(seed);
    let [c, h, w] = N::INPUT;
    let mut rng = Rng(seed);
    let batch = Array4::from_shape_simple_fn((7, c, h, w), || rng.value());
    let want: Vec<Vec<f32>> = batch.outer_iter().map(|x| reference(&net, x)).collect();

    // One image.
    let first = batch.index_axis(Axis(0), 0);
    let out = net.forward(first).expect("forward");
    assert_eq!(out.shape(), &N::OUTPUT[..], "{name}: output shape");
    let out = out.as_standard_layout().into_owned();
    assert_close(
        &format!("{name} forward"),
        out.as_slice().unwrap(),
        &want[0],
    );

    // Batches.
    for n in [1, 3, 7] {
        let got = net
            .forward_batch(batch.slice(s![..n, .., .., ..]))
            .expect("forward_batch");
        assert_eq!(got.shape()[0], n);
        for (i, image) in got.outer_iter().enumerate() {
            let image: Vec<f32> = image.iter().copied().collect();
            assert_close(&format!("{name} batch of {n}, image {i}"), &image, &want[i]);
        }
    }

    // The batched pass itself, whatever chunks the pool size makes: up to
    // seven images at once, with NaN-filled buffers.
    let x = batch.as_slice().expect("a standard-layout batch");
    let (input, output) = (x.len() / 7, N::OUTPUT.iter().product::<usize>());
    let mut scratch = vec![f32::NAN; N::WORKSPACE];
    for n in 1..=7 {
        let mut rows = vec![f32::NAN; 2 * n * N::BATCH_ROWS];
        let mut got = vec![f32::NAN; n * output];
        net.forward_raw_batch(n, &x[..n * input], &mut got, &mut scratch, &mut rows)
            .expect("the batched pass runs");
        for (i, image) in got.chunks(output.max(1)).enumerate() {
            assert_close(
                &format!("{name} {n} images at once, image {i}"),
                image,
                &want[i],
            );
        }
    }

    // Non-contiguous views: H and W stored transposed, and every other image.
    let transposed = first
        .permuted_axes([0, 2, 1])
        .as_standard_layout()
        .into_owned();
    let view = transposed.view().permuted_axes([0, 2, 1]);
    assert_eq!(view, first);
    let got = net.forward(view).expect("forward on a transposed view");
    assert_eq!(got, out, "{name}: a transposed view gives another result");
    let strided = batch.slice(s![..;2, .., .., ..]);
    let got = net
        .forward_batch(strided)
        .expect("forward_batch on a strided view");
    for (i, image) in got.outer_iter().enumerate() {
        let image: Vec<f32> = image.iter().copied().collect();
        assert_close(
            &format!("{name} strided batch, image {i}"),
            &image,
            &want[2 * i],
        );
    }

    check_shape_errors(&net);
    check_specials(&net, &mut rng);
}

/// A wrong input shape is an `Err` naming both shapes.
fn check_shape_errors<N: Network>(net: &N) {
    let [c, h, w] = N::INPUT;
    let expected = format!("{:?}", N::INPUT);
    for wrong in [[c + 1, h, w], [c, h + 2, w], [c, h, w + 1]] {
        let x = Array3::<f32>::zeros(wrong);
        let message = net.forward(x.view()).expect_err("wrong shape").to_string();
        let given = format!("{wrong:?}");
        assert!(
            message.contains(&expected) && message.contains(&given),
            "{}: `{message}` should name {expected} and {given}",
            N::NAME
        );
        let x = Array4::<f32>::zeros((2, wrong[0], wrong[1], wrong[2]));
        let message = net
            .forward_batch(x.view())
            .expect_err("wrong shape")
            .to_string();
        let given = format!("{:?}", [2, wrong[0], wrong[1], wrong[2]]);
        assert!(
            message.contains(&given) && message.contains(&format!("{:?}", [2, c, h, w])),
            "{}: `{message}` should name both batch shapes",
            N::NAME
        );
    }
}

/// NaN and infinities in the input: no panic, and the same NaN and
/// infinities as the interpreter (finite values still close).
fn check_specials<N: Network>(net: &N, rng: &mut Rng) {
    let [c, h, w] = N::INPUT;
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let mut batch = Array4::from_shape_simple_fn((3, c, h, w), || rng.value());
    for (i, mut image) in batch.outer_iter_mut().enumerate() {
        let len = image.len();
        let at = (rng.next_u64() % len as u64) as usize;
        if let Some(v) = image.iter_mut().nth(at) {
            *v = specials[i];
        }
    }
    let got = net
        .forward_batch(batch.view())
        .expect("forward_batch with NaN");
    for (i, (image, x)) in got.outer_iter().zip(batch.outer_iter()).enumerate() {
        // A batch runs its fc layers as one GEMM, which sums in another
        // order than the GEMV of one image: close, and the same specials.
        let single: Vec<f32> = net
            .forward(x)
            .expect("forward with NaN")
            .into_iter()
            .collect();
        let batched: Vec<f32> = image.iter().copied().collect();
        assert_close(
            &format!(
                "{}: forward_batch against forward, special input {i}",
                N::NAME
            ),
            &batched,
            &single,
        );
        let image: Vec<f32> = image.iter().copied().collect();
        assert_close(
            &format!("{} with {} in the input", N::NAME, specials[i]),
            &image,
            &reference(net, x),
        );
    }
}

/// The name of an activation, its slope left out.
fn act_name(act: Act) -> &'static str {
    match act {
        Act::Identity => "identity",
        Act::Relu => "relu",
        Act::Relu6 => "relu6",
        Act::LeakyRelu(_) => "leaky_relu",
        Act::Sigmoid => "sigmoid",
        Act::Tanh => "tanh",
        Act::Silu => "silu",
        Act::Gelu => "gelu",
        Act::HardSwish => "hardswish",
    }
}

/// What a step of a plan reaches: the kernel each instruction set runs a
/// convolution with (and how the layer is special for it), the steps, and
/// the activation fused into each.
fn reached(op: &Op) -> Vec<String> {
    match *op {
        Op::Conv { shape, bn, act, .. } => {
            let after = if bn.is_some() { "conv+bn" } else { "conv" };
            let mut out = vec![format!("{} after {after}", act_name(act))];
            let depthwise = shape.g > 1 && shape.g == shape.c;
            let traits = [
                ("grouped", shape.g > 1 && !depthwise),
                ("dilated", shape.d != [1, 1]),
                ("strided", shape.s != [1, 1]),
                ("with a multiplier", depthwise && shape.k > shape.c),
            ];
            for isa in Isa::ALL {
                let kernel = ConvKernel::choose(&shape, isa);
                out.push(format!("{isa:?}: {kernel:?}"));
                for (name, _) in traits.iter().filter(|(_, on)| *on) {
                    out.push(format!("{isa:?}: {kernel:?} {name}"));
                }
            }
            out
        }
        Op::MaxPool(win) | Op::AvgPool(win) => {
            let kind = if matches!(op, Op::MaxPool(_)) {
                "max pool"
            } else {
                "average pool"
            };
            let padded = if win.p == [0, 0] { "" } else { " padded" };
            vec![format!("{kind}{padded}")]
        }
        Op::GlobalAvgPool { .. } => vec!["global average pool".to_string()],
        Op::BatchNorm { act, .. } => vec![
            "batch norm on its own".to_string(),
            format!("{} after bn", act_name(act)),
        ],
        Op::Add { act, .. } => vec![format!("{} after add", act_name(act))],
        Op::Fc { act, .. } => vec![format!("{} after fc", act_name(act))],
        Op::Activate { act, .. } => vec![format!("{} alone", act_name(act))],
        Op::Softmax { .. } => vec!["softmax".to_string()],
        Op::Copy { .. } => vec!["copy".to_string()],
    }
}

/// Everything the cases must reach together.
fn required() -> Vec<String> {
    let mut out = Vec::new();
    for isa in Isa::ALL {
        let mut kernels = vec![
            (
                ConvKernel::Blocked(isa),
                &["", " grouped", " dilated", " strided"][..],
            ),
            (ConvKernel::Narrow, &["", " grouped"][..]),
            (
                ConvKernel::Depthwise(isa),
                &["", " with a multiplier", " dilated", " strided"][..],
            ),
        ];
        if isa == Isa::Avx2 {
            kernels.push((
                ConvKernel::FilterLanesAvx2,
                &["", " grouped", " dilated", " strided"][..],
            ));
        }
        if isa == Isa::Avx512 {
            kernels.push((ConvKernel::FilterLanes, &["", " grouped", " dilated"][..]));
            kernels.push((ConvKernel::Blocked(Isa::Avx2), &["", " grouped"][..]));
        }
        for (kernel, traits) in kernels {
            out.extend(traits.iter().map(|t| format!("{isa:?}: {kernel:?}{t}")));
        }
    }
    let acts = [
        "relu",
        "relu6",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "silu",
        "gelu",
        "hardswish",
    ];
    for act in acts {
        for after in ["conv", "conv+bn", "fc", "bn", "add"] {
            out.push(format!("{act} after {after}"));
        }
        out.push(format!("{act} alone"));
    }
    for after in ["conv", "conv+bn", "fc", "bn", "add"] {
        out.push(format!("identity after {after}"));
    }
    for step in [
        "max pool",
        "max pool padded",
        "average pool",
        "average pool padded",
        "global average pool",
        "batch norm on its own",
        "softmax",
        "copy",
        "a batched tail",
    ] {
        out.push(step.to_string());
    }
    out
}

/// The cases reach every convolution kernel `ConvKernel::choose` gives, on
/// every instruction set (grouped, dilated, strided where that is a path of
/// its own), and every step of a plan with every activation fused into it
/// or on its own: read off their plans, so that the runtime's rules are
/// not copied into the generator.
#[test]
fn cases_reach_every_kernel_and_step() {
    let mut seen = BTreeSet::new();
    for model in cases::MODELS {
        for step in model.plan.steps {
            seen.extend(reached(&step.op));
        }
        if model.plan.tail.is_some() {
            seen.insert("a batched tail".to_string());
        }
    }
    let missing: Vec<String> = required()
        .into_iter()
        .filter(|r| !seen.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "no case reaches {missing:?}; change tests/gen_forward_cases.py"
    );
}

cnn::network! {
    /// Large enough for one image on a pool to form a team of two threads,
    /// with a layer for each step that splits (blocked with its padding
    /// copy, depthwise, filters in the lanes, an fc of 1.3 M MACs) and
    /// steps that run on the leader alone between them (an add, a
    /// standalone activation), and blocked layers that leave each half an
    /// activation (relu6, after rows of 6 pixels two to a vector) or,
    /// with AVX2, a copy-out of rows computed wider than the output.
    struct Team {
        input(8, 36, 36)
        conv(32, 3, p = 1, bias = false) bn relu6
        residual(relu) { conv(32, 3, p = 1, g = 32) silu }
        tanh
        conv(48, 3, s = 2, p = 1, floor) silu
        conv(64, 1) bn
        pool(3, 3)
        conv(64, 3, p = 1) relu6
        flatten fc(64) relu fc(10)
    }
}

/// One image through `forward_batch` on pools of one to three threads
/// (alone, or with a partner thread taking half of each large layer) gives
/// exactly what `forward` gives: a split changes which thread computes a
/// filter, not its arithmetic.
#[test]
fn one_image_split_over_a_team_matches_forward() {
    const { assert!(Team::MACS >= cnn_runtime::TEAM_MIN_PASS_MACS) };
    let net = random_net::<Team>(11);
    let mut rng = Rng(5);
    let [c, h, w] = Team::INPUT;
    let x = Array4::from_shape_fn((1, c, h, w), |_| rng.uniform(-1.0, 1.0));
    let alone = net.forward(x.index_axis(Axis(0), 0)).expect("forward");
    for threads in 1..=3 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool");
        for _ in 0..20 {
            let y = pool.install(|| net.forward_batch(x.view())).expect("batch");
            assert_eq!(y.index_axis(Axis(0), 0), alone, "{threads} threads");
        }
    }
}

//! Parity with onnxruntime: each network is exported with `to_onnx_bytes`,
//! checked by `onnx.checker` and run by onnxruntime (through
//! `tests/support/ort_run.py`) on a fixed batch, and the result must match
//! `forward_batch` to a relative tolerance of 1e-4: of each value for the
//! small networks, of the image's largest output for ResNet-18 and
//! MobileNetV2 (see [`Tolerance`]).
//!
//! The networks cover every layer kind and option: residual blocks with and
//! without a shortcut and an activation after the add, on volumes and on
//! flat values, nested; batch norm with running statistics and affine
//! parameters drawn at random (PyTorch's initialisation makes it the
//! identity, which would hide a wrong input order or epsilon); grouped,
//! depthwise, dilated, bias-free and `floor` convolutions; padded and
//! `floor` pools; global average pooling; every activation, alone, fused
//! after a convolution and on flat values; dropout; named groups.
//!
//! Without `python3` (or the interpreter named by `CNN_PYTHON`),
//! `onnxruntime`, `onnx` or `numpy` the tests say so on stderr and pass as
//! skipped, except when the `CI` environment variable is set: there they
//! fail. Install with `python3 -m pip install onnxruntime onnx numpy`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cnn::{network, LayerKind, Network};
use ndarray::{Array4, Axis};

#[path = "../benches/common/modern.rs"]
mod modern;

use modern::{MobileNetV2, ResNet18};

const RTOL: f32 = 1e-4;
/// Absolute slack for values that are zero up to rounding (a sum of
/// products that cancels), far below anything a wrong layer would give.
const ATOL: f32 = 1e-6;
const INSTALL: &str = "python3 -m pip install onnxruntime onnx numpy";

network! {
    /// Conv with padding, max and average pooling, tanh, fc and softmax.
    struct Lenet {
        input(1, 12, 12)
        conv(4, 5, p = 2) relu pool(2)
        conv(6, 3) tanh avgpool(2, 1)
        fc(10) softmax
    }

    /// Strides, pairs for filter, stride and padding, pooling windows that
    /// are not square; ends on a volume.
    struct Strided {
        input(3, 11, 11)
        conv(5, 3, s = 2) sigmoid
        conv(4, (3, 1), s = (1, 2), p = (1, 0))
        pool((2, 1), (1, 1))
        avgpool((2, 3))
    }

    /// `p = same` and a softmax over a whole volume.
    struct Same {
        input(2, 7, 7)
        conv(3, 3, p = same) relu
        conv(2, 5, p = same) softmax
    }

    /// A convolution after `flatten`, which needs the volume back, and an
    /// activation on a flat value.
    struct FlatThenConv {
        input(2, 3, 3)
        flatten sigmoid
        conv(4, 1) relu
        fc(3)
    }

    /// A vector network whose input is already flat, with a redundant
    /// `flatten` at the end.
    struct Vector {
        input(6, 1, 1)
        fc(4) tanh
        fc(2) flatten
    }

    /// No parameters at all.
    struct ActivationsOnly {
        input(1, 3, 5)
        tanh relu
    }

    /// Padding that differs per axis, then a pointwise convolution.
    struct Pointwise {
        input(3, 5, 6)
        conv(4, 3, p = (0, 1)) relu
        conv(2, 1)
    }

    /// Residual blocks: an identity shortcut with nothing after the add; a
    /// projection shortcut (strided, bias-free, batch norm) with relu after
    /// the add; a shortcut that is only a batch norm and one that is only
    /// dropout, with leaky relu and silu after the add; blocks nested in a
    /// block; then, on flat values, a block of fc layers with an fc
    /// shortcut, one whose flat MAIN meets the block's volume input, and
    /// batch norm after fc.
    struct Residuals {
        input(3, 9, 9)
        conv(6, 3, p = 1) bn relu
        residual { conv(6, 3, p = 1) bn relu conv(6, 3, p = 1, bias = false) bn }
        residual(relu) {
            conv(8, 3, s = 2, p = 1) bn relu conv(8, 3, p = 1)
        } shortcut {
            conv(8, 1, s = 2, bias = false) bn
        }
        residual(leaky_relu(0.2)) { conv(8, 1) } shortcut { bn }
        residual(silu) { conv(8, 3, p = 1) tanh } shortcut { dropout(0.5) }
        residual {
            residual(relu) { conv(8, 3, p = 1) bn }
            residual { bn conv(8, 1, bias = false) }
            conv(8, 3, p = 1)
        }
        global_avgpool
        residual(gelu) { fc(8) relu fc(8) } shortcut { fc(8) }
        residual { fc(8) }
        fc(5) bn
    }

    /// Grouped, depthwise (with and without a channel multiplier), dilated
    /// (equal and per axis), bias-free and `floor` convolutions.
    struct Grouped {
        input(4, 12, 11)
        conv(8, 3, p = 1, g = 2) relu6
        conv(8, 3, p = 1, g = 8, bias = false) bn hardswish
        conv(16, 3, s = 2, g = 8, floor) bn
        conv(12, 3, d = 2, p = 2, g = 4) silu
        conv(6, (3, 2), s = 2, d = (2, 1), p = (1, 0), bias = false, floor) gelu
        conv(4, 1, g = 2) tanh
    }

    /// Padded max and average pools (the average counting the padding),
    /// with `floor` and per-axis sizes, on signed values so that a max
    /// pool's −∞ padding differs from a zero one; then global average
    /// pooling, fc and dropout.
    struct Pools {
        input(3, 10, 10)
        conv(4, 3, p = 1)
        pool(3, 2, p = 1, floor)
        avgpool(3, 1, p = 1)
        pool((3, 2), (2, 1), p = (1, 0))
        avgpool(2, 2, p = 1, floor)
        global_avgpool
        fc(5) dropout(0.3) sigmoid fc(3)
    }

    /// Every activation: alone on the input (each in a residual block, so
    /// that the next one still sees negative values), fused after a
    /// convolution, and on flat values; the input spans −8 to 8, past
    /// relu6's and hardswish's bends.
    struct Activations {
        input(2, 6, 6)
        residual { relu6 } residual { leaky_relu } residual { leaky_relu(-0.5) }
        residual { silu } residual { gelu } residual { hardswish }
        conv(4, 3, p = 1) relu6
        conv(4, 1) leaky_relu(0.3)
        conv(4, 1) silu
        conv(4, 1) gelu
        conv(4, 1) hardswish
        flatten relu6 leaky_relu(2.5) silu gelu hardswish sigmoid
    }

    /// Names on groups, layers and residual blocks, identifiers and
    /// integers, a batch norm with its own epsilon, and a `floor`
    /// projection.
    struct Named {
        input(3, 8, 8)
        stem: { conv: conv(4, 3, p = 1, bias = false) norm: bn(eps = 0.25) act: relu6 }
        blocks: {
            0: residual(relu) { a: conv(4, 3, p = 1) b: bn(eps = 0.001) }
            down: residual(relu) {
                conv(8, 3, s = 2, p = 1, floor) bn
            } shortcut {
                proj: { conv(8, 1, s = 2, bias = false, floor) bn }
            }
        }
        head: { pool: global_avgpool drop: dropout(0.5) fc: fc(3) }
        softmax
    }
}

/// How far a value of `forward_batch` may be from onnxruntime's.
#[derive(Debug, Clone, Copy)]
enum Tolerance {
    /// `ATOL + RTOL·|b|`, each value `b` on its own: for small networks,
    /// whose values are sums of a few rounded products.
    PerValue,
    /// `RTOL·max|b|` over the image's outputs: for deep networks, whose
    /// every output is a sum of millions of rounded products through a
    /// dozen batch norms, so that a value near zero carries the absolute
    /// rounding error of the large ones (and relative to itself, no
    /// bound).
    OfLargest,
}

/// A small deterministic source of test values (xorshift64*).
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        lo + (hi - lo) * (bits as f32 / (1u64 << 24) as f32)
    }
}

/// `N` with PyTorch's initialisation, then every batch norm given random
/// affine parameters and running statistics (scale 0.5 to 1.5, shift and
/// mean −0.5 to 0.5, variance 0.1 to 2), so that it is far from the
/// identity.
fn with_random_bn<N: Network>(seed: u64) -> N {
    let mut net = N::init(seed);
    let mut noise = Noise::new(seed);
    for layer in N::LAYERS {
        if !matches!(layer.kind, LayerKind::BatchNorm { .. }) {
            continue;
        }
        for (what, lo, hi) in [
            ("weight", 0.5, 1.5),
            ("bias", -0.5, 0.5),
            ("running_mean", -0.5, 0.5),
            ("running_var", 0.1, 2.0),
        ] {
            let name = layer.tensor_name(what);
            let tensor = net.parameters_mut().get_mut(&name);
            let tensor = tensor.unwrap_or_else(|| panic!("{}: no `{name}`", N::NAME));
            for v in tensor.data_mut() {
                *v = noise.uniform(lo, hi);
            }
        }
    }
    net
}

/// A deterministic batch with positive and negative values.
fn batch([c, h, w]: [usize; 3], n: usize) -> Array4<f32> {
    Array4::from_shape_fn((n, c, h, w), |(i, c, y, x)| {
        let k = (i * 7919 + c * 613 + y * 97 + x * 13) % 41;
        k as f32 / 10.0 - 2.0
    })
}

/// The Python interpreter: `CNN_PYTHON`, else `python3`.
fn python() -> OsString {
    std::env::var_os("CNN_PYTHON").unwrap_or_else(|| "python3".into())
}

/// Why onnxruntime cannot be run here, if it cannot (probed once).
fn missing_onnxruntime() -> Option<&'static str> {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    PROBLEM
        .get_or_init(|| {
            let probe = Command::new(python())
                .args(["-c", "import onnxruntime, onnx, numpy"])
                .output();
            match probe {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(format!(
                    "{} cannot import onnxruntime, onnx and numpy:\n{}",
                    python().to_string_lossy(),
                    String::from_utf8_lossy(&out.stderr)
                )),
                Err(e) => Some(format!("{} cannot be run: {e}", python().to_string_lossy())),
            }
        })
        .as_deref()
}

/// Whether onnxruntime can be run; panics under CI when it cannot.
fn onnxruntime_available() -> bool {
    let Some(problem) = missing_onnxruntime() else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so the onnxruntime parity test must run, but {problem}\nInstall with `{INSTALL}`.");
    }
    // Once per run, and straight to the process's stderr so that the test
    // harness does not capture it.
    static WARNED: OnceLock<()> = OnceLock::new();
    WARNED.get_or_init(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n********************************************************************\n\
             SKIPPED: ONNX parity with onnxruntime did NOT run.\n{problem}\n\
             Install with `{INSTALL}`.\n\
             ********************************************************************\n"
        );
    });
    false
}

/// A fresh directory for one test's files.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnn-onnx-parity-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the model on `x` in onnxruntime; returns the output and its shape.
fn run_onnxruntime(dir: &Path, model: &[u8], x: &Array4<f32>) -> (Vec<f32>, Vec<usize>) {
    let model_path = dir.join("model.onnx");
    let input_path = dir.join("input.f32");
    let output_path = dir.join("output.f32");
    std::fs::write(&model_path, model).unwrap();
    let input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_path, input).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ort_run.py");
    let out = Command::new(python())
        .arg(&script)
        .args([&model_path, &input_path, &output_path])
        .args(x.shape().iter().map(ToString::to_string))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ort_run.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shape = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|d| d.parse().unwrap())
        .collect();
    let values = std::fs::read(&output_path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (values, shape)
}

/// Exports `net`, runs it in onnxruntime on `x` and compares with
/// `forward_batch` within `tolerance`; returns the largest difference
/// relative to the tolerance's scale (`|b|`, or the image's largest
/// `|b|`).
fn check_parity<N: Network>(net: &N, x: &Array4<f32>, tolerance: Tolerance) -> f32 {
    let expected = net.forward_batch(x.view()).unwrap();

    let dir = scratch_dir(N::NAME);
    let (got, shape) = run_onnxruntime(&dir, &net.to_onnx_bytes(), x);
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(shape, expected.shape(), "{}: output shape", N::NAME);
    assert_eq!(got.len(), expected.len(), "{}: output length", N::NAME);
    let got = Array4::from_shape_vec(expected.raw_dim(), got).unwrap();
    let mut worst = 0.0f32;
    for (n, (mine, theirs)) in expected.outer_iter().zip(got.outer_iter()).enumerate() {
        let largest = theirs.iter().fold(0.0f32, |m, b| m.max(b.abs()));
        for (i, (&a, &b)) in mine.iter().zip(&theirs).enumerate() {
            let diff = (a - b).abs();
            let (bound, scale) = match tolerance {
                Tolerance::PerValue => (ATOL + RTOL * b.abs(), b.abs().max(ATOL / RTOL)),
                Tolerance::OfLargest => (RTOL * largest, largest),
            };
            assert!(
                diff <= bound,
                "{}: image {n} value {i} is {a} here but {b} in onnxruntime \
                 (difference {diff:e}, allowed {bound:e})",
                N::NAME
            );
            worst = worst.max(diff / scale);
        }
    }
    // Straight to stderr, uncaptured, so that a CI log shows the test ran.
    let _ = writeln!(
        std::io::stderr(),
        "onnx parity: {} agrees with onnxruntime on {} values \
         (largest relative difference {worst:e}, {tolerance:?})",
        N::NAME,
        expected.len()
    );
    worst
}

/// [`check_parity`] for `N` with seeded weights on a fixed batch of three.
fn parity<N: Network>(seed: u64) {
    if onnxruntime_available() {
        check_parity(&N::init(seed), &batch(N::INPUT, 3), Tolerance::PerValue);
    }
}

/// [`check_parity`] for `N` with random batch norms ([`with_random_bn`]) on
/// a fixed batch of three.
fn parity_with_random_bn<N: Network>(seed: u64) {
    if onnxruntime_available() {
        let net = with_random_bn::<N>(seed);
        check_parity(&net, &batch(N::INPUT, 3), Tolerance::PerValue);
    }
}

/// [`check_parity`] for a deep network with random batch norms on two
/// images of uniform noise in [−2, 2) (about the range of normalised
/// ImageNet images).
fn deep_parity<N: Network>(seed: u64) {
    if !onnxruntime_available() {
        return;
    }
    let net = with_random_bn::<N>(seed);
    let [c, h, w] = N::INPUT;
    let mut noise = Noise::new(seed ^ 0xface);
    let x = Array4::from_shape_simple_fn((2, c, h, w), || noise.uniform(-2.0, 2.0));
    let out = net.forward_batch(x.view()).unwrap();
    for image in out.axis_iter(Axis(0)) {
        let largest = image.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            largest > 1e-3,
            "{}: the outputs vanish ({largest})",
            N::NAME
        );
    }
    check_parity(&net, &x, Tolerance::OfLargest);
}

#[test]
fn lenet_matches_onnxruntime() {
    parity::<Lenet>(1);
}

#[test]
fn strides_and_pairs_match_onnxruntime() {
    parity::<Strided>(2);
}

#[test]
fn same_padding_and_volume_softmax_match_onnxruntime() {
    parity::<Same>(3);
}

#[test]
fn conv_after_flatten_matches_onnxruntime() {
    parity::<FlatThenConv>(4);
}

#[test]
fn vector_network_matches_onnxruntime() {
    parity::<Vector>(5);
}

#[test]
fn network_without_parameters_matches_onnxruntime() {
    parity::<ActivationsOnly>(6);
}

#[test]
fn per_axis_padding_and_pointwise_match_onnxruntime() {
    parity::<Pointwise>(7);
}

#[test]
fn residual_blocks_match_onnxruntime() {
    parity_with_random_bn::<Residuals>(8);
}

#[test]
fn grouped_depthwise_and_dilated_convolutions_match_onnxruntime() {
    parity_with_random_bn::<Grouped>(9);
}

#[test]
fn padded_and_global_pools_match_onnxruntime() {
    parity::<Pools>(10);
}

#[test]
fn every_activation_matches_onnxruntime() {
    if onnxruntime_available() {
        let x = batch(Activations::INPUT, 3).mapv(|v| 4.0 * v);
        check_parity(&Activations::init(11), &x, Tolerance::PerValue);
    }
}

#[test]
fn named_groups_match_onnxruntime() {
    parity_with_random_bn::<Named>(12);
}

#[test]
fn resnet18_matches_onnxruntime() {
    deep_parity::<ResNet18>(18);
}

#[test]
fn mobilenet_v2_matches_onnxruntime() {
    deep_parity::<MobileNetV2>(2);
}

//! Parity with onnxruntime: each network is exported with `to_onnx_bytes`,
//! checked by `onnx.checker` and run by onnxruntime (through
//! `tests/support/ort_run.py`) on a fixed batch, and the result must match
//! `forward_batch` to a relative tolerance of 1e-4.
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

use cnn::{network, Network};
use ndarray::Array4;

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

/// Exports `N` with seeded weights, runs it in onnxruntime on a fixed
/// batch and compares with `forward_batch`.
fn check_parity<N: Network>(seed: u64) {
    if !onnxruntime_available() {
        return;
    }
    let net = N::init(seed);
    let x = batch(N::INPUT, 3);
    let expected = net.forward_batch(x.view()).unwrap();

    let dir = scratch_dir(N::NAME);
    let (got, shape) = run_onnxruntime(&dir, &net.to_onnx_bytes(), &x);
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(shape, expected.shape(), "{}: output shape", N::NAME);
    assert_eq!(got.len(), expected.len(), "{}: output length", N::NAME);
    let mut worst = 0.0f32;
    for (i, (&a, &b)) in expected.iter().zip(&got).enumerate() {
        let diff = (a - b).abs();
        assert!(
            diff <= ATOL + RTOL * b.abs(),
            "{}: value {i} is {a} here but {b} in onnxruntime",
            N::NAME
        );
        worst = worst.max(diff);
    }
    // Straight to stderr, uncaptured, so that a CI log shows the test ran.
    let _ = writeln!(
        std::io::stderr(),
        "onnx parity: {} agrees with onnxruntime on {} values (largest difference {worst:e})",
        N::NAME,
        got.len()
    );
}

#[test]
fn lenet_matches_onnxruntime() {
    check_parity::<Lenet>(1);
}

#[test]
fn strides_and_pairs_match_onnxruntime() {
    check_parity::<Strided>(2);
}

#[test]
fn same_padding_and_volume_softmax_match_onnxruntime() {
    check_parity::<Same>(3);
}

#[test]
fn conv_after_flatten_matches_onnxruntime() {
    check_parity::<FlatThenConv>(4);
}

#[test]
fn vector_network_matches_onnxruntime() {
    check_parity::<Vector>(5);
}

#[test]
fn network_without_parameters_matches_onnxruntime() {
    check_parity::<ActivationsOnly>(6);
}

#[test]
fn per_axis_padding_and_pointwise_match_onnxruntime() {
    check_parity::<Pointwise>(7);
}

//! One harness for the pooling, fully connected, activation and softmax
//! kernels: random shapes and values drive each specialised core, and the
//! result must match the plain reference kernel (exactly for max pooling,
//! to 1e-4 relative otherwise), NaN and infinities included.
//!
//! The cores take their shapes as values, so random shapes exercise the very
//! loops the const-generic entry points inline; a few fixed shapes also go
//! through those entry points.

use cnn_runtime::kernels::reference::{self, Window};
use cnn_runtime::kernels::Act;
use proptest::prelude::*;

// The kernel sources under test, compiled into this test crate so that their
// cores (public in their files, not re-exported by the library) are
// reachable. They name `super::reference`, `super::Act` and
// `super::activation`, which resolve here as in the library.
#[allow(dead_code)]
#[path = "../src/kernels/activation.rs"]
mod activation;
#[allow(dead_code)]
#[path = "../src/kernels/dense.rs"]
mod dense;
#[allow(dead_code)]
#[path = "../src/kernels/pool/mod.rs"]
mod pool;

const CASES: u32 = 300;

/// Mostly ordinary values, sometimes NaN or an infinity.
fn value_with_specials() -> impl Strategy<Value = f32> {
    prop_oneof![
        30 => -4.0f32..4.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
    ]
}

/// Whether `got` agrees with the reference `want`: the same NaN or infinity,
/// or `|got − want| ≤ 1e-4·|want| + 1e-5·scale`, where `scale` bounds the
/// magnitude of the terms that were summed (1 for a single value).
fn close(got: f32, want: f32, scale: f32) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return want == got;
    }
    (got - want).abs() <= 1e-4 * want.abs() + 1e-5 * scale
}

fn assert_all_close(got: &[f32], want: &[f32], scale: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        prop_assert!(close(g, w, s), "value {}: got {}, want {}", i, g, w);
    }
    Ok(())
}

/// A pooling window and an input it fits exactly.
fn pool_case() -> impl Strategy<Value = (Window, Vec<f32>)> {
    (
        1..=4usize,
        1..=4usize,
        1..=4usize,
        1..=3usize,
        1..=3usize,
        1..=6usize,
        1..=9usize,
    )
        .prop_flat_map(|(c, fh, fw, sh, sw, oh, ow)| {
            let (h, w) = ((oh - 1) * sh + fh, (ow - 1) * sw + fw);
            let win = Window {
                c,
                h,
                w,
                f: [fh, fw],
                s: [sh, sw],
                p: [0, 0],
            };
            (
                Just(win),
                proptest::collection::vec(value_with_specials(), c * h * w),
            )
        })
}

/// Rows wider than the pooling kernels' 1,024-column stack row: output rows
/// cut in pieces, and windows wider than that row.
fn wide_pool_case() -> impl Strategy<Value = (Window, Vec<f32>)> {
    (
        1..=2usize,
        prop_oneof![1..=4usize, 1020..=1100usize],
        1..=3usize,
        1..=3usize,
        1..=2usize,
        1..=700usize,
    )
        .prop_flat_map(|(fh, fw, sh, sw, oh, ow)| {
            let (h, w) = ((oh - 1) * sh + fh, (ow - 1) * sw + fw);
            let win = Window {
                c: 2,
                h,
                w,
                f: [fh, fw],
                s: [sh, sw],
                p: [0, 0],
            };
            (
                Just(win),
                proptest::collection::vec(-4.0f32..4.0, 2 * h * w),
            )
        })
}

/// Each pooling core's output on the windows, max or average: the portable
/// core's, then the AVX-512 kernel's where this CPU has it and it takes
/// them (column stride 2, two or three columns wide). The outputs start as
/// NaN garbage: a kernel must overwrite all of it.
fn pool_outputs(max: bool, win: Window, x: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
    let mut portable = vec![f32::NAN; out_len(&win)];
    if max {
        pool::max_pool_core(win, x, &mut portable);
    } else {
        pool::avg_pool_core(win, x, &mut portable);
    }
    let mut outputs = vec![("portable", portable)];
    #[cfg(target_arch = "x86_64")]
    {
        let mut wide = vec![f32::NAN; out_len(&win)];
        if pool::pool_avx512_core(max, win, x, &mut wide) {
            outputs.push(("AVX-512", wide));
        }
    }
    outputs
}

fn out_len(win: &Window) -> usize {
    let [oh, ow] = win.out();
    win.c * oh * ow
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Max pooling is exact: the same value, or NaN where a window holds one.
    #[test]
    fn max_pool_matches_reference((win, x) in pool_case()) {
        let mut want = vec![0.0; out_len(&win)];
        reference::max_pool(win, &x, &mut want);
        for (core, got) in pool_outputs(true, win, &x) {
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                prop_assert!(g == w || (g.is_nan() && w.is_nan()), "{}, value {}: got {}, want {}", core, i, g, w);
            }
        }
    }

    #[test]
    fn wide_pools_match_reference((win, x) in wide_pool_case()) {
        let mut want = vec![0.0; out_len(&win)];
        reference::max_pool(win, &x, &mut want);
        for (core, got) in pool_outputs(true, win, &x) {
            prop_assert_eq!(&got, &want, "{}", core);
        }
        reference::avg_pool(win, &x, &mut want);
        for (_, got) in pool_outputs(false, win, &x) {
            assert_all_close(&got, &want, &vec![4.0; got.len()])?;
        }
    }

    #[test]
    fn avg_pool_matches_reference((win, x) in pool_case()) {
        let mut want = vec![0.0; out_len(&win)];
        reference::avg_pool(win, &x, &mut want);
        // The window's values are below 4 in magnitude.
        for (_, got) in pool_outputs(false, win, &x) {
            assert_all_close(&got, &want, &vec![4.0; got.len()])?;
        }
    }

    /// The fc cores (native, AVX2, portable), on one input and on batches
    /// of up to 17 (groups of 16, 8, 4, 2 and 1 for AVX-512, with more
    /// outputs or fewer than its batch kernel takes), against the f64
    /// reference, with PyTorch-like weight magnitudes.
    #[test]
    fn fc_matches_reference(
        (inputs, n, batch, x, weight, bias) in (1..=70usize, prop_oneof![0..=19usize, 32..=45usize], 1..=17usize)
            .prop_flat_map(|(inputs, n, batch)| {
                let bound = 1.0 / (inputs as f32).sqrt();
                (
                    Just(inputs),
                    Just(n),
                    Just(batch),
                    proptest::collection::vec(-2.0f32..2.0, batch * inputs),
                    proptest::collection::vec(-bound..bound, n * inputs),
                    proptest::collection::vec(-bound..bound, n),
                )
            }),
        act in prop_oneof![Just(Act::Identity), Just(Act::Relu), Just(Act::Sigmoid), Just(Act::Tanh)],
    ) {
        let mut want = vec![0.0; batch * n];
        let mut scale = vec![0.0; batch * n];
        for (b, xb) in x.chunks(inputs).enumerate() {
            reference::fc(xb, &weight, &bias, &mut want[b * n..][..n], act);
            for j in 0..n {
                let terms: f32 = (0..inputs).map(|i| (weight[j * inputs + i] * xb[i]).abs()).sum();
                scale[b * n + j] = terms + bias[j].abs();
            }
        }
        // The first input alone, then the whole batch, on every core.
        for images in [1, batch] {
            let (want, scale) = (&want[..images * n], &scale[..images * n]);
            let mut got = vec![f32::NAN; images * n];
            dense::fc_core(images, inputs, n, &x, &weight, &bias, &mut got, act);
            assert_all_close(&got, want, scale)?;
            let mut got = vec![f32::NAN; images * n];
            dense::fc_portable_core(images, inputs, n, &x, &weight, &bias, &mut got, act);
            assert_all_close(&got, want, scale)?;
            let mut got = vec![f32::NAN; images * n];
            if dense::fc_avx2_core(images, inputs, n, &x, &weight, &bias, &mut got, act) {
                assert_all_close(&got, want, scale)?;
            }
        }
    }

    /// NaN and infinities in the input of a fully connected layer propagate
    /// as in the reference: NaN, ∞ times a weight, ∞ − ∞.
    #[test]
    fn fc_propagates_specials(
        (inputs, n, x, weight) in (1..=40usize, 1..=9usize).prop_flat_map(|(inputs, n)| (
            Just(inputs),
            Just(n),
            proptest::collection::vec(value_with_specials(), inputs),
            proptest::collection::vec(0.01f32..1.0, n * inputs),
        )),
    ) {
        let bias = vec![0.5; n];
        let mut want = vec![0.0; n];
        reference::fc(&x, &weight, &bias, &mut want, Act::Identity);
        let mut got = vec![0.0; n];
        dense::fc_core(1, inputs, n, &x, &weight, &bias, &mut got, Act::Identity);
        assert_all_close(&got, &want, &vec![4.0 * inputs as f32; n])?;
    }

    #[test]
    fn activations_match_reference(
        x in proptest::collection::vec(
            prop_oneof![10 => -30.0f32..30.0, 1 => value_with_specials()],
            0..100,
        ),
        act in prop_oneof![Just(Act::Identity), Just(Act::Relu), Just(Act::Sigmoid), Just(Act::Tanh)],
    ) {
        let mut want = x.clone();
        reference::activate(act, &mut want);
        let mut got = x.clone();
        activation::activate(act, &mut got);
        assert_all_close(&got, &want, &vec![0.1; x.len()])?;
    }

    #[test]
    fn softmax_matches_reference(
        x in proptest::collection::vec(
            prop_oneof![20 => -30.0f32..30.0, 1 => value_with_specials()],
            0..60,
        ),
    ) {
        let mut want = x.clone();
        reference::softmax(&mut want);
        let mut got = x.clone();
        activation::softmax(&mut got);
        assert_all_close(&got, &want, &vec![0.1; x.len()])?;
        if want.iter().all(|v| v.is_finite()) && !want.is_empty() {
            let sum: f32 = got.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-5, "sum {}", sum);
        }
    }
}

/// Runs both pooling kernels' const-generic entry points on one shape and
/// compares them with the reference.
fn check_pool_entry<
    const C: usize,
    const H: usize,
    const W: usize,
    const FH: usize,
    const FW: usize,
    const SH: usize,
    const SW: usize,
    const OH: usize,
    const OW: usize,
>() {
    let win = Window {
        c: C,
        h: H,
        w: W,
        f: [FH, FW],
        s: [SH, SW],
        p: [0, 0],
    };
    assert_eq!(win.out(), [OH, OW]);
    let x: Vec<f32> = (0..C * H * W)
        .map(|i| ((i * 7919) % 1009) as f32 / 100.0 - 5.0)
        .collect();
    let mut want = vec![0.0; C * OH * OW];
    let mut got = vec![f32::NAN; C * OH * OW];
    reference::max_pool(win, &x, &mut want);
    pool::max_pool::<C, H, W, FH, FW, SH, SW, OH, OW>(&x, &mut got);
    assert_eq!(got, want);
    reference::avg_pool(win, &x, &mut want);
    pool::avg_pool::<C, H, W, FH, FW, SH, SW, OH, OW>(&x, &mut got);
    for (g, w) in got.iter().zip(&want) {
        assert!(close(*g, *w, 5.0), "got {g}, want {w}");
    }
}

#[test]
fn pool_entry_points_on_common_shapes() {
    check_pool_entry::<3, 32, 32, 2, 2, 2, 2, 16, 16>();
    check_pool_entry::<5, 55, 55, 3, 3, 2, 2, 27, 27>();
    check_pool_entry::<2, 9, 13, 3, 3, 1, 1, 7, 11>();
    check_pool_entry::<4, 7, 9, 1, 3, 1, 3, 7, 3>();
    check_pool_entry::<1, 5, 5, 5, 5, 1, 1, 1, 1>();
}

#[test]
fn fc_entry_points_match_reference() {
    fn check<const IN: usize, const N: usize>() {
        let x: Vec<f32> = (0..3 * IN)
            .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let weight: Vec<f32> = (0..N * IN)
            .map(|i| ((i * 101) % 23) as f32 / 23.0 - 0.5)
            .collect();
        let bias: Vec<f32> = (0..N).map(|i| i as f32 / 10.0 - 0.3).collect();
        let mut want = vec![0.0; 3 * N];
        for (xb, yb) in x.chunks(IN).zip(want.chunks_mut(N)) {
            reference::fc(xb, &weight, &bias, yb, Act::Relu);
        }
        let mut got = vec![f32::NAN; N];
        dense::fc::<IN, N>(&x, &weight, &bias, &mut got, Act::Relu);
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, *w, IN as f32), "got {g}, want {w}");
        }
        let mut got = vec![f32::NAN; 3 * N];
        dense::fc_batch::<IN, N>(3, &x, &weight, &bias, &mut got, Act::Relu);
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, *w, IN as f32), "got {g}, want {w}");
        }
    }
    check::<2560, 10>();
    check::<400, 120>();
    check::<84, 10>();
    check::<1, 1>();
    check::<7, 5>();
}

/// The fc cores on batches of 1 to 17 inputs, with more input values and
/// outputs than the AVX-512 batch kernel blocks at once (512 and 256), and
/// input values left over past a multiple of 16.
#[test]
fn fc_batches_span_blocks() {
    let (inputs, n) = (1100, 300);
    let x: Vec<f32> = (0..17 * inputs)
        .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let weight: Vec<f32> = (0..n * inputs)
        .map(|i| ((i * 101) % 23) as f32 / 23.0 - 0.5)
        .collect();
    let bias: Vec<f32> = (0..n).map(|i| i as f32 / 100.0 - 1.0).collect();
    let mut want = vec![0.0; 17 * n];
    for (xb, yb) in x.chunks(inputs).zip(want.chunks_mut(n)) {
        reference::fc(xb, &weight, &bias, yb, Act::Identity);
    }
    for batch in 1..=17 {
        let mut got = vec![f32::NAN; batch * n];
        dense::fc_core(
            batch,
            inputs,
            n,
            &x,
            &weight,
            &bias,
            &mut got,
            Act::Identity,
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(*g, *w, inputs as f32),
                "batch {batch}, value {i}: got {g}, want {w}"
            );
        }
    }
}

/// NaN in a max-pooling window gives NaN for that window only.
#[test]
fn max_pool_returns_nan_for_a_window_holding_nan() {
    let mut x: Vec<f32> = (0..16).map(|i| i as f32).collect();
    x[5] = f32::NAN; // row 1, column 1: in the top-left 2×2 window
    x[15] = f32::INFINITY; // bottom-right window
    x[2] = f32::NEG_INFINITY; // top-right window, whose max is 7
    let mut y = [0.0; 4];
    pool::max_pool::<1, 4, 4, 2, 2, 2, 2, 2, 2>(&x, &mut y);
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[7.0, 13.0, f32::INFINITY]);
}

#[test]
fn activations_and_softmax_survive_specials() {
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        f32::MAX,
        f32::MIN,
    ];
    for act in [Act::Identity, Act::Relu, Act::Sigmoid, Act::Tanh] {
        let mut y = specials;
        activation::activate(act, &mut y);
        assert!(y[0].is_nan());
    }
    let mut y = [f32::INFINITY, f32::NEG_INFINITY];
    activation::activate(Act::Sigmoid, &mut y);
    assert_eq!(y, [1.0, 0.0]);
    let mut y = [f32::INFINITY, f32::NEG_INFINITY];
    activation::activate(Act::Tanh, &mut y);
    assert_eq!(y, [1.0, -1.0]);
    for case in [
        &[f32::NAN, 1.0][..],
        &[f32::INFINITY, 1.0],
        &[f32::NEG_INFINITY, f32::NEG_INFINITY],
        &[],
    ] {
        let mut y = case.to_vec();
        activation::softmax(&mut y);
        assert!(y.iter().all(|v| v.is_nan()));
    }
    let mut y = [f32::NEG_INFINITY, 0.0];
    activation::softmax(&mut y);
    assert_eq!(y, [0.0, 1.0]);
}

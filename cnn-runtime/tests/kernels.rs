//! One harness for the pooling, fully connected, activation and softmax
//! kernels: random shapes and values drive each kernel on every
//! instruction set this CPU has (AVX-512, AVX2 + FMA, portable, as
//! `pool_with` and `fc_with` force them), and the result must match the
//! plain reference kernel (exactly for max pooling, to 1e-4 relative
//! otherwise), NaN and infinities included.

use cnn_runtime::cpu::{Isa, Unsupported};
use cnn_runtime::kernels::reference::{self, Window};
use cnn_runtime::kernels::{activate, avg_pool, fc, fc_with, max_pool, pool_with, softmax, Act};
use proptest::prelude::*;

/// The instruction sets this CPU runs, each of which the tests force in
/// turn: a path that cannot run is skipped only because the CPU lacks it.
fn isas() -> impl Iterator<Item = Isa> {
    Isa::ALL.into_iter().filter(|isa| isa.supported())
}

/// A forced path's result: `Ok` on every set [`isas`] gives.
fn ran(result: Result<(), Unsupported>) {
    if let Err(Unsupported(isa)) = result {
        panic!("{} is supported but did not run", isa.name());
    }
}

/// A window of `f`, stride `s` over `len` values (no padding) whose last
/// window ends at the last value.
fn fitted(o: usize, f: usize, s: usize) -> usize {
    (o - 1) * s + f
}

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
            let (h, w) = (fitted(oh, fh, sh), fitted(ow, fw, sw));
            let win = Window {
                c,
                h,
                w,
                f: [fh, fw],
                s: [sh, sw],
                p: [0, 0],
                o: [oh, ow],
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
            let (h, w) = (fitted(oh, fh, sh), fitted(ow, fw, sw));
            let win = Window {
                c: 2,
                h,
                w,
                f: [fh, fw],
                s: [sh, sw],
                p: [0, 0],
                o: [oh, ow],
            };
            (
                Just(win),
                proptest::collection::vec(-4.0f32..4.0, 2 * h * w),
            )
        })
}

/// The pooling's output on the windows, max or average, on each
/// instruction set (AVX-512 has a kernel of its own for windows two or
/// three columns wide at column stride 2). The outputs start as NaN
/// garbage: a kernel must overwrite all of it.
fn pool_outputs(max: bool, win: Window, x: &[f32]) -> Vec<(&'static str, Vec<f32>)> {
    isas()
        .map(|isa| {
            let mut y = vec![f32::NAN; out_len(&win)];
            ran(pool_with(isa, max, win, x, &mut y));
            (isa.name(), y)
        })
        .collect()
}

fn out_len(win: &Window) -> usize {
    win.c * win.o[0] * win.o[1]
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
            for isa in isas() {
                let mut got = vec![f32::NAN; images * n];
                ran(fc_with(isa, images, inputs, n, &x, &weight, &bias, &mut got, act));
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
        for isa in isas() {
            let mut got = vec![0.0; n];
            ran(fc_with(isa, 1, inputs, n, &x, &weight, &bias, &mut got, Act::Identity));
            assert_all_close(&got, &want, &vec![4.0 * inputs as f32; n])?;
        }
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
        activate(act, &mut got);
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
        softmax(&mut got);
        assert_all_close(&got, &want, &vec![0.1; x.len()])?;
        if want.iter().all(|v| v.is_finite()) && !want.is_empty() {
            let sum: f32 = got.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-5, "sum {}", sum);
        }
    }
}

/// Runs both pooling kernels on one shape, as the forward pass calls them,
/// and compares them with the reference.
fn check_pool(c: usize, [h, w]: [usize; 2], f: [usize; 2], s: [usize; 2], o: [usize; 2]) {
    let win = Window {
        c,
        h,
        w,
        f,
        s,
        p: [0, 0],
        o,
    };
    let x: Vec<f32> = (0..c * h * w)
        .map(|i| ((i * 7919) % 1009) as f32 / 100.0 - 5.0)
        .collect();
    let mut want = vec![0.0; out_len(&win)];
    let mut got = vec![f32::NAN; out_len(&win)];
    reference::max_pool(win, &x, &mut want);
    max_pool(win, &x, &mut got);
    assert_eq!(got, want);
    reference::avg_pool(win, &x, &mut want);
    avg_pool(win, &x, &mut got);
    for (g, w) in got.iter().zip(&want) {
        assert!(close(*g, *w, 5.0), "got {g}, want {w}");
    }
}

#[test]
fn pools_on_common_shapes() {
    check_pool(3, [32, 32], [2, 2], [2, 2], [16, 16]);
    check_pool(5, [55, 55], [3, 3], [2, 2], [27, 27]);
    check_pool(2, [9, 13], [3, 3], [1, 1], [7, 11]);
    check_pool(4, [7, 9], [1, 3], [1, 3], [7, 3]);
    check_pool(1, [5, 5], [5, 5], [1, 1], [1, 1]);
}

#[test]
fn fc_on_common_shapes_matches_reference() {
    for (inputs, n) in [(2560, 10), (400, 120), (84, 10), (1, 1), (7, 5)] {
        let x: Vec<f32> = (0..3 * inputs)
            .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let weight: Vec<f32> = (0..n * inputs)
            .map(|i| ((i * 101) % 23) as f32 / 23.0 - 0.5)
            .collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 / 10.0 - 0.3).collect();
        let mut want = vec![0.0; 3 * n];
        for (xb, yb) in x.chunks(inputs).zip(want.chunks_mut(n)) {
            reference::fc(xb, &weight, &bias, yb, Act::Relu);
        }
        for batch in [1, 3] {
            let mut got = vec![f32::NAN; batch * n];
            fc(batch, inputs, n, &x, &weight, &bias, &mut got, Act::Relu);
            for (g, w) in got.iter().zip(&want) {
                assert!(close(*g, *w, inputs as f32), "got {g}, want {w}");
            }
        }
    }
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
        for isa in isas() {
            let mut got = vec![f32::NAN; batch * n];
            let (w, b) = (&weight, &bias);
            ran(fc_with(
                isa,
                batch,
                inputs,
                n,
                &x,
                w,
                b,
                &mut got,
                Act::Identity,
            ));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    close(*g, *w, inputs as f32),
                    "{}, batch {batch}, value {i}: got {g}, want {w}",
                    isa.name()
                );
            }
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
    let win = Window {
        c: 1,
        h: 4,
        w: 4,
        f: [2, 2],
        s: [2, 2],
        p: [0, 0],
        o: [2, 2],
    };
    for isa in isas() {
        let mut y = [0.0; 4];
        ran(pool_with(isa, true, win, &x, &mut y));
        assert!(y[0].is_nan(), "{}", isa.name());
        assert_eq!(&y[1..], &[7.0, 13.0, f32::INFINITY], "{}", isa.name());
    }
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
        activate(act, &mut y);
        assert!(y[0].is_nan());
    }
    let mut y = [f32::INFINITY, f32::NEG_INFINITY];
    activate(Act::Sigmoid, &mut y);
    assert_eq!(y, [1.0, 0.0]);
    let mut y = [f32::INFINITY, f32::NEG_INFINITY];
    activate(Act::Tanh, &mut y);
    assert_eq!(y, [1.0, -1.0]);
    for case in [
        &[f32::NAN, 1.0][..],
        &[f32::INFINITY, 1.0],
        &[f32::NEG_INFINITY, f32::NEG_INFINITY],
        &[],
    ] {
        let mut y = case.to_vec();
        softmax(&mut y);
        assert!(y.iter().all(|v| v.is_nan()));
    }
    let mut y = [f32::NEG_INFINITY, 0.0];
    softmax(&mut y);
    assert_eq!(y, [0.0, 1.0]);
}

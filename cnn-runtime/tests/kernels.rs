//! One harness for the pooling, fully connected, element-wise, activation
//! and softmax kernels: random shapes and values drive each kernel on
//! every instruction set this CPU has (AVX-512, AVX2 + FMA, portable, as
//! the `…_with` entries force them), and the result must match the plain
//! reference kernel, NaN and infinities included: exactly for max pooling
//! and the piecewise-linear activations, to a few parts in 10⁷ for the
//! smooth activations (with a floor for values that flush to zero), to
//! 1e-4 relative for the sums of pooling and fc layers.

use cnn_runtime::cpu::{Isa, Unsupported};
use cnn_runtime::kernels::reference::{self, Window};
use cnn_runtime::kernels::{
    activate, activate_with, add_with, avg_pool, channel_affine, channel_affine_in_place,
    channel_affine_with, fc, fc_with, global_avg_pool, global_avg_pool_with, max_pool, pool_with,
    softmax, Act,
};
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

/// The output size of windows `f`, stride `s`, over `n` values padded by
/// `p`, rounded down as PyTorch does (`n + 2p ≥ f`).
fn out_size(n: usize, f: usize, s: usize, p: usize) -> usize {
    (n + 2 * p - f) / s + 1
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

/// Every activation, a leaky ReLU's slope from −2 to 2.
fn any_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        Just(Act::Identity),
        Just(Act::Relu),
        Just(Act::Relu6),
        (-2.0f32..2.0).prop_map(Act::LeakyRelu),
        Just(Act::Sigmoid),
        Just(Act::Tanh),
        Just(Act::Silu),
        Just(Act::Gelu),
        Just(Act::HardSwish),
    ]
}

/// Inputs of activations: mostly where they bend, also large (exp's
/// overflow and underflow, GELU's and SiLU's tails), tiny, of any
/// magnitude, and NaN or infinite.
fn activation_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        20 => -10.0f32..10.0,
        5 => -120.0f32..120.0,
        2 => -1e-3f32..1e-3,
        2 => (-38i32..38, -1.0f32..1.0).prop_map(|(e, m)| m * 10f32.powi(e)),
        1 => value_with_specials(),
    ]
}

/// Whether an activation's `got` agrees with the f64 reference's `want`,
/// where rounding before the activation may have moved its input by
/// 2⁻²⁴ of `terms` (the magnitudes summed into it; 0 for none):
///
/// - the same NaN or infinity;
/// - the piecewise-linear ones exactly (one rounding, as the reference's);
/// - hard swish within 4e-7 relative (three roundings);
/// - sigmoid, tanh, SiLU and GELU within 3e-7 relative, or 1e-35 absolute
///   (where a value that tiny may flush to zero);
///
/// plus `4e-7·terms·max(1, |slope|)` for what the input's rounding can do
/// through the activation's slope (below 1.2, hard swish's 1.5).
fn act_close(act: Act, got: f32, want: f32, terms: f32) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return want == got;
    }
    let (relative, absolute) = match act {
        Act::Identity | Act::Relu | Act::Relu6 | Act::LeakyRelu(_) => (0.0, 0.0),
        Act::HardSwish => (4e-7, 0.0),
        Act::Sigmoid | Act::Tanh | Act::Silu | Act::Gelu => (3e-7, 1e-35),
    };
    let slope = match act {
        Act::LeakyRelu(slope) => slope.abs().max(1.0),
        _ => 1.5,
    };
    (got - want).abs() <= relative * want.abs() + absolute + 4e-7 * slope * terms
}

/// One axis of a pooling window: size, stride, padding (0 to F/2, as
/// PyTorch allows), input length, and the output rounded down. Two or
/// three wide at stride 2 (the AVX-512 and AVX2 kernels') half the time.
fn pool_axis(wide: usize) -> impl Strategy<Value = (usize, usize, usize, usize, usize)> {
    prop_oneof![(1..=5usize, 1..=3usize), (2..=3usize, Just(2usize)),]
        .prop_flat_map(move |(f, s)| (Just(f), Just(s), 0..=f / 2))
        .prop_flat_map(move |(f, s, p)| {
            // At least one window: n + 2p ≥ f.
            let least = f.saturating_sub(2 * p).max(1);
            (Just(f), Just(s), Just(p), least..=least + wide)
        })
        .prop_map(|(f, s, p, n)| (f, s, p, n, out_size(n, f, s, p)))
}

/// A pooling window, padded or not, with an output that may stop short of
/// the padded input's end, and an input with NaN and infinities.
fn pool_case() -> impl Strategy<Value = (Window, Vec<f32>)> {
    (1..=4usize, pool_axis(12), pool_axis(70)).prop_flat_map(
        |(c, (fh, sh, ph, h, oh), (fw, sw, pw, w, ow))| {
            let win = Window {
                c,
                h,
                w,
                f: [fh, fw],
                s: [sh, sw],
                p: [ph, pw],
                o: [oh, ow],
            };
            (
                Just(win),
                proptest::collection::vec(value_with_specials(), c * h * w),
            )
        },
    )
}

/// Rows wider than the pooling kernels' 1,024-column stack row: output rows
/// cut in pieces, and windows wider than that row, padded or not.
fn wide_pool_case() -> impl Strategy<Value = (Window, Vec<f32>)> {
    (
        1..=2usize,
        prop_oneof![1..=4usize, 1020..=1100usize],
        1..=3usize,
        1..=3usize,
        1..=2usize,
        1..=700usize,
        0..=1usize,
        0..=2usize,
    )
        .prop_flat_map(|(fh, fw, sh, sw, oh, ow, ph, pw)| {
            // Padding up to F/2, leaving at least one input value.
            let (h, w) = (fitted(oh, fh, sh), fitted(ow, fw, sw));
            let ph = ph.min(fh / 2).min((h - 1) / 2);
            let pw = (3 * pw).min(fw / 2).min((w - 1) / 2);
            let (h, w) = (h - 2 * ph, w - 2 * pw);
            let win = Window {
                c: 2,
                h,
                w,
                f: [fh, fw],
                s: [sh, sw],
                p: [ph, pw],
                o: [oh, ow],
            };
            (
                Just(win),
                proptest::collection::vec(-4.0f32..4.0, 2 * h * w),
            )
        })
}

/// The pooling's output on the windows, max or average, on each
/// instruction set (AVX-512 and AVX2 have a kernel of their own for
/// windows two or three columns wide at column stride 2). The outputs
/// start as NaN garbage: a kernel must overwrite all of it.
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

    /// Every activation on every instruction set, over lengths that
    /// leave vector tails, against the f64 reference (`act_close`).
    #[test]
    fn activations_match_reference(
        x in proptest::collection::vec(activation_value(), 0..200),
        act in any_act(),
    ) {
        let mut want = x.clone();
        reference::activate(act, &mut want);
        for isa in isas() {
            let mut got = x.clone();
            ran(activate_with(isa, act, &mut got));
            for (i, ((&g, &w), &v)) in got.iter().zip(&want).zip(&x).enumerate() {
                prop_assert!(
                    act_close(act, g, w, 0.0),
                    "{} {:?}, value {}: {:?}({}) = {}, want {}", isa.name(), act, i, act, v, g, w
                );
            }
        }
        let mut got = x.clone();
        activate(act, &mut got);
        for (&g, &w) in got.iter().zip(&want) {
            prop_assert!(act_close(act, g, w, 0.0), "activate: got {}, want {}", g, w);
        }
    }

    /// A batch norm's affine map and activation, per channel, from another
    /// buffer and in place.
    #[test]
    fn channel_affine_matches_reference(
        (c, hw, scale, shift, x) in (1..=5usize, 0..=70usize).prop_flat_map(|(c, hw)| (
            Just(c),
            Just(hw),
            proptest::collection::vec(-2.0f32..2.0, c),
            proptest::collection::vec(-2.0f32..2.0, c),
            proptest::collection::vec(prop_oneof![30 => -4.0f32..4.0, 1 => value_with_specials()], c * hw),
        )),
        act in any_act(),
    ) {
        let mut want = vec![0.0; c * hw];
        reference::channel_affine(c, hw, &scale, &shift, &x, &mut want, act);
        // What the f32 affine map may have rounded away, before the activation.
        let terms: Vec<f32> = x.iter().enumerate().map(|(i, v)| (v * scale[i / hw]).abs() + shift[i / hw].abs()).collect();
        let check = |got: &[f32], how: &str| -> Result<(), TestCaseError> {
            for (i, ((&g, &w), &t)) in got.iter().zip(&want).zip(&terms).enumerate() {
                prop_assert!(act_close(act, g, w, t), "{} {:?}, value {}: got {}, want {}", how, act, i, g, w);
            }
            Ok(())
        };
        for isa in isas() {
            let mut got = vec![f32::NAN; c * hw];
            ran(channel_affine_with(isa, c, hw, &scale, &shift, Some(&x), &mut got, act));
            check(&got, isa.name())?;
            let mut got = x.clone();
            ran(channel_affine_with(isa, c, hw, &scale, &shift, None, &mut got, act));
            check(&got, isa.name())?;
        }
        let mut got = vec![f32::NAN; c * hw];
        channel_affine(c, hw, &scale, &shift, &x, &mut got, act);
        check(&got, "channel_affine")?;
        let mut got = x.clone();
        channel_affine_in_place(c, hw, &scale, &shift, &mut got, act);
        check(&got, "channel_affine_in_place")?;
    }

    /// A residual's sum and activation, NaN and infinities included (∞ − ∞
    /// is NaN).
    #[test]
    fn add_matches_reference(
        (x, y) in (0..300usize).prop_flat_map(|n| {
            let value = || proptest::collection::vec(prop_oneof![30 => -30.0f32..30.0, 1 => value_with_specials()], n);
            (value(), value())
        }),
        act in any_act(),
    ) {
        let mut want = y.clone();
        reference::add(&x, &mut want, act);
        for isa in isas() {
            let mut got = y.clone();
            ran(add_with(isa, &x, &mut got, act));
            for (i, (((&g, &w), &a), &b)) in got.iter().zip(&want).zip(&x).zip(&y).enumerate() {
                prop_assert!(act_close(act, g, w, a.abs() + b.abs()), "{} {:?}, value {}: {} + {}: got {}, want {}", isa.name(), act, i, a, b, g, w);
            }
        }
    }

    /// The mean of each channel, summed in f32 by the kernels: within
    /// 2e-6 of the mean magnitude (the f32 sum's error, for up to 300
    /// values), NaN and infinities propagating.
    #[test]
    fn global_avg_pool_matches_reference(
        (c, hw, x) in (1..=6usize, 1..=300usize).prop_flat_map(|(c, hw)| (
            Just(c),
            Just(hw),
            proptest::collection::vec(prop_oneof![200 => -4.0f32..4.0, 1 => value_with_specials()], c * hw),
        )),
    ) {
        let mut want = vec![0.0; c];
        reference::global_avg_pool(c, hw, &x, &mut want);
        let mean_magnitude: Vec<f32> = x.chunks(hw).map(|xc| xc.iter().map(|v| v.abs()).sum::<f32>() / hw as f32).collect();
        let check = |got: &[f32], how: &str| -> Result<(), TestCaseError> {
            for (ch, ((&g, &w), &m)) in got.iter().zip(&want).zip(&mean_magnitude).enumerate() {
                let agree = if w.is_nan() || w.is_infinite() {
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())
                } else {
                    (g - w).abs() <= 2e-6 * m
                };
                prop_assert!(agree, "{}, channel {}: got {}, want {}", how, ch, g, w);
            }
            Ok(())
        };
        for isa in isas() {
            let mut got = vec![f32::NAN; c];
            ran(global_avg_pool_with(isa, c, hw, &x, &mut got));
            check(&got, isa.name())?;
        }
        let mut got = vec![f32::NAN; c];
        global_avg_pool(c, hw, &x, &mut got);
        check(&got, "global_avg_pool")?;
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

/// Runs both pooling kernels on one shape, on every instruction set and
/// as the forward pass calls them, and compares them with the reference.
/// The output size is PyTorch's, rounded down.
fn check_pool(c: usize, [h, w]: [usize; 2], f: [usize; 2], s: [usize; 2], p: [usize; 2]) {
    let o = [out_size(h, f[0], s[0], p[0]), out_size(w, f[1], s[1], p[1])];
    check_windows(Window {
        c,
        h,
        w,
        f,
        s,
        p,
        o,
    });
}

/// [`check_pool`] on the windows of `win`, its output size as given.
fn check_windows(win: Window) {
    assert!(win.fits());
    let (c, h, w) = (win.c, win.h, win.w);
    let x: Vec<f32> = (0..c * h * w)
        .map(|i| ((i * 7919) % 1009) as f32 / 100.0 - 5.0)
        .collect();
    let mut want = vec![0.0; out_len(&win)];
    reference::max_pool(win, &x, &mut want);
    for (core, got) in pool_outputs(true, win, &x) {
        assert_eq!(got, want, "{core}, {win:?}");
    }
    let mut got = vec![f32::NAN; out_len(&win)];
    max_pool(win, &x, &mut got);
    assert_eq!(got, want);
    reference::avg_pool(win, &x, &mut want);
    let mut outputs = pool_outputs(false, win, &x);
    avg_pool(win, &x, &mut got);
    outputs.push(("avg_pool", got));
    for (core, got) in outputs {
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, *w, 5.0), "{core}, {win:?}: got {g}, want {w}");
        }
    }
}

#[test]
fn pools_on_common_shapes() {
    check_pool(3, [32, 32], [2, 2], [2, 2], [0, 0]);
    check_pool(5, [55, 55], [3, 3], [2, 2], [0, 0]);
    check_pool(2, [9, 13], [3, 3], [1, 1], [0, 0]);
    check_pool(4, [7, 9], [1, 3], [1, 3], [0, 0]);
    check_pool(1, [5, 5], [5, 5], [1, 1], [0, 0]);
    // The ResNet stem: 64×112×112 → 64×56×56.
    check_pool(64, [112, 112], [3, 3], [2, 2], [1, 1]);
    // Odd sizes, rounded down, padding on one axis, windows as tall as
    // the input.
    check_pool(3, [7, 7], [3, 3], [2, 2], [1, 1]);
    check_pool(2, [8, 33], [3, 3], [2, 2], [1, 1]);
    check_pool(2, [6, 40], [2, 2], [2, 2], [1, 1]);
    check_pool(2, [5, 35], [3, 2], [3, 2], [1, 0]);
    check_pool(1, [3, 3], [3, 3], [1, 1], [1, 1]);
    // Column stride 2 around the vectors' 8 and 16 outputs: the last
    // window's third column the row's last one, in the padding, or not
    // read; vectors part in the padding, and a row of one window.
    check_pool(2, [17, 17], [3, 3], [2, 2], [0, 0]);
    check_pool(2, [16, 16], [3, 3], [2, 2], [1, 1]);
    check_pool(2, [15, 33], [3, 3], [2, 2], [1, 1]);
    check_pool(2, [9, 34], [2, 2], [2, 2], [1, 1]);
    check_pool(3, [6, 31], [4, 3], [1, 2], [2, 0]);
    check_pool(1, [2, 3], [2, 3], [2, 2], [0, 0]);
    // Fewer outputs than the input holds (the kernels take any whose
    // windows fit): the last vector's input columns all inside the row,
    // not all its outputs.
    for (w, ow) in [(40, 13), (70, 20), (70, 30)] {
        for f in [2, 3] {
            check_windows(Window {
                c: 2,
                h: 9,
                w,
                f: [f, f],
                s: [2, 2],
                p: [1, 1],
                o: [3, ow],
            });
        }
    }
}

/// The padding is −∞ for max pooling, never the maximum of a window of
/// negative values, and zeros counted in the mean (`count_include_pad`).
#[test]
fn padding_is_minus_infinity_for_max_and_zero_for_the_mean() {
    // 1×2×2 of negatives, a 3×3 window, stride 2, padding 1: one window,
    // holding the four values and five padding taps.
    let x = [-1.0, -2.0, -3.0, -4.0];
    let win = Window {
        c: 1,
        h: 2,
        w: 2,
        f: [3, 3],
        s: [2, 2],
        p: [1, 1],
        o: [1, 1],
    };
    let mut want = [0.0];
    for isa in isas() {
        let mut y = [f32::NAN];
        ran(pool_with(isa, true, win, &x, &mut y));
        assert_eq!(y, [-1.0], "{}", isa.name());
        ran(pool_with(isa, false, win, &x, &mut y));
        assert_eq!(y, [-10.0 / 9.0], "{}", isa.name());
    }
    reference::max_pool(win, &x, &mut want);
    assert_eq!(want, [-1.0]);
    reference::avg_pool(win, &x, &mut want);
    assert_eq!(want, [-10.0 / 9.0]);
    // NaN next to the padding still wins; an infinity stays.
    let x = [f32::NAN, -2.0, -3.0, f32::NEG_INFINITY];
    for isa in isas() {
        let mut y = [0.0];
        ran(pool_with(isa, true, win, &x, &mut y));
        assert!(y[0].is_nan(), "{}", isa.name());
    }
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

/// NaN and infinities through every activation, on every instruction set,
/// as `Act::apply` maps them: NaN stays NaN, sigmoid(±∞) = 1 and 0,
/// tanh(±∞) = ±1, SiLU, GELU and hard swish give +∞ for +∞ and NaN for −∞
/// (−∞ · 0). Finite values of any size agree with the reference.
#[test]
fn activations_keep_the_specials_of_act_apply() {
    let specials = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        f32::MAX,
        f32::MIN,
        1e-40,
        -1e-40,
        1e-20,
        -1e-20,
        88.8,
        -88.8,
        87.0,
        -87.0,
        100.0,
        -100.0,
        14.5,
        -14.5,
        13.2,
        -13.2,
        44.0,
        -44.0,
        1e10,
        -1e10,
    ];
    let acts = [
        Act::Identity,
        Act::Relu,
        Act::Relu6,
        Act::LeakyRelu(0.1),
        Act::LeakyRelu(-1.5),
        Act::Sigmoid,
        Act::Tanh,
        Act::Silu,
        Act::Gelu,
        Act::HardSwish,
    ];
    for act in acts {
        let mut want = specials;
        reference::activate(act, &mut want);
        for isa in isas() {
            let mut got = specials;
            ran(activate_with(isa, act, &mut got));
            for ((&x, &g), &w) in specials.iter().zip(&got).zip(&want) {
                let scalar = act.apply(x);
                let context = format!("{} {act:?}({x}) = {g}", isa.name());
                if !x.is_finite() {
                    assert_eq!(
                        g.is_nan(),
                        scalar.is_nan(),
                        "{context}, Act::apply {scalar}"
                    );
                    assert!(g.is_nan() || g == scalar, "{context}, Act::apply {scalar}");
                } else {
                    assert!(act_close(act, g, w, 0.0), "{context}, want {w}");
                }
                if matches!(act, Act::Relu | Act::Relu6 | Act::LeakyRelu(_)) && !x.is_nan() {
                    // The sign of zero too.
                    assert_eq!(g.to_bits(), scalar.to_bits(), "{context}");
                }
            }
        }
    }
    let cases: [(Act, [f32; 3]); 5] = [
        (Act::Sigmoid, [1.0, 0.0, f32::NAN]),
        (Act::Tanh, [1.0, -1.0, f32::NAN]),
        (Act::Silu, [f32::INFINITY, f32::NAN, f32::NAN]),
        (Act::Gelu, [f32::INFINITY, f32::NAN, f32::NAN]),
        (Act::HardSwish, [f32::INFINITY, f32::NAN, f32::NAN]),
    ];
    for (act, want) in cases {
        for isa in isas() {
            let mut y = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
            ran(activate_with(isa, act, &mut y));
            for (g, w) in y.iter().zip(want) {
                assert!(
                    g == &w || (g.is_nan() && w.is_nan()),
                    "{} {act:?}: {y:?}",
                    isa.name()
                );
            }
        }
    }
}

#[test]
fn softmax_survives_specials() {
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

//! The parser and the checks never panic: random token sequences and random
//! layer lists give `Ok` or `Err`. When a network is accepted, its volumes
//! and counts agree with an independent computation in 128-bit integers,
//! and planning it and rendering its documentation do not panic either.

use cnn_spec::{parse_networks, plan, render, LayerKind};
use proptest::prelude::*;

/// Tokens the DSL uses, and some it does not.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "input",
            "conv",
            "pool",
            "avgpool",
            "relu",
            "sigmoid",
            "tanh",
            "flatten",
            "fc",
            "softmax",
            "covn",
            "same",
            "s",
            "p",
            "x",
            "struct",
            "pub",
            "N",
            "#[doc = \"d\"]",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            ",", "=", ";", ":", "-", "(", ")", "{", "}", "[", "]", "."
        ])
        .prop_map(str::to_string),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..40).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "2.5",
            "\"a\"",
            "7u8",
            "99999999999999999999999",
            "'c'"
        ])
        .prop_map(str::to_string),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..12,
        1 => any::<u64>(),
        1 => Just(usize::MAX as u64),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => size().prop_map(|n| n.to_string()),
        1 => (size(), size()).prop_map(|(h, w)| format!("({h}, {w})")),
    ]
}

/// A layer with plausible syntax and random, often wrong, numbers.
fn layer() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            value(),
            value(),
            prop::option::of(value()),
            prop::option::of(prop_oneof![value(), Just("same".to_string())])
        )
            .prop_map(|(k, f, s, p)| {
                let mut text = format!("conv({k}, {f}");
                if let Some(s) = s {
                    text += &format!(", s = {s}");
                }
                if let Some(p) = p {
                    text += &format!(", p = {p}");
                }
                text + ")"
            }),
        (value(), prop::option::of(value())).prop_map(|(f, s)| match s {
            Some(s) => format!("pool({f}, {s})"),
            None => format!("pool({f})"),
        }),
        (value(), value()).prop_map(|(f, s)| format!("avgpool({f}, {s})")),
        size().prop_map(|n| format!("fc({n})")),
        prop::sample::select(vec!["relu", "sigmoid", "tanh", "flatten", "softmax"])
            .prop_map(str::to_string),
    ]
}

/// Checks an accepted network against the formulas, in u128.
fn verify(src: &str) {
    let Ok(networks) = parse_networks(src) else {
        return;
    };
    for network in networks {
        let plan = plan::plan(&network);
        assert!(plan.workspace_len() <= cnn_spec::check::MAX_VOLUME, "{src}");
        for text in [
            render::summary(&network),
            render::json(&network),
            render::markdown(&network),
            render::svg(&network),
            render::rustdoc(&network),
        ] {
            assert!(!text.is_empty(), "{src}");
        }
        let mut volume = network.input;
        let (mut params, mut macs) = (0u128, 0u128);
        for layer in &network.layers {
            assert_eq!(layer.input, volume);
            let (c, h, w) = (volume.c as u128, volume.h as u128, volume.w as u128);
            let out = |len: u128, f: usize, s: usize, p: usize| {
                let span = len + 2 * p as u128 - f as u128;
                assert_eq!(span % s as u128, 0, "{src}");
                span / s as u128 + 1
            };
            let (oc, oh, ow) = match layer.kind {
                LayerKind::Conv { k, f, s, p } => {
                    let (oh, ow) = (out(h, f.h, s.h, p.h), out(w, f.w, s.w, p.w));
                    let k = k as u128;
                    params += (f.h * f.w) as u128 * c * k + k;
                    macs += k * oh * ow * c * (f.h * f.w) as u128;
                    (k, oh, ow)
                }
                LayerKind::MaxPool { f, s } | LayerKind::AvgPool { f, s } => {
                    (c, out(h, f.h, s.h, 0), out(w, f.w, s.w, 0))
                }
                LayerKind::Fc { n } => {
                    params += c * h * w * n as u128 + n as u128;
                    macs += c * h * w * n as u128;
                    (n as u128, 1, 1)
                }
                LayerKind::Flatten => (c * h * w, 1, 1),
                LayerKind::Activation(_) | LayerKind::Softmax => (c, h, w),
            };
            assert_eq!(
                [
                    layer.output.c as u128,
                    layer.output.h as u128,
                    layer.output.w as u128
                ],
                [oc, oh, ow],
                "{src}"
            );
            volume = layer.output;
        }
        assert_eq!(network.params as u128, params, "{src}");
        assert_eq!(network.macs as u128, macs, "{src}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn random_tokens_never_panic(tokens in prop::collection::vec(token(), 0..30), wrap in any::<bool>()) {
        let body = tokens.join(" ");
        let src = if wrap { format!("struct N {{ {body} }}") } else { body };
        let _ = parse_networks(&src);
    }

    #[test]
    fn random_layer_lists_never_panic_and_agree(
        input in (size(), size(), size()),
        layers in prop::collection::vec(layer(), 0..8),
    ) {
        let src = format!("pub struct N {{ input({}, {}, {}) {} }}", input.0, input.1, input.2, layers.join(" "));
        verify(&src);
    }

    #[test]
    fn small_valid_networks_are_accepted_when_the_arithmetic_fits(
        c in 1usize..4, h in 1usize..20, w in 1usize..20,
        k in 1usize..5, f in 1usize..6, s in 1usize..4, p in 0usize..3,
    ) {
        let src = format!("struct N {{ input({c}, {h}, {w}) conv({k}, {f}, s = {s}, p = {p}) relu }}");
        let fits = |len: usize| len + 2 * p >= f && (len + 2 * p - f).is_multiple_of(s);
        let accepted = parse_networks(&src).is_ok();
        prop_assert_eq!(accepted, fits(h) && fits(w), "{}", src);
        verify(&src);
    }

    /// Layers that fit, with sizes and paddings up to 2^40 and strides up
    /// to 2^64 − 1: the arithmetic of an accepted network must not overflow
    /// anywhere.
    #[test]
    fn large_fitting_windows_never_panic(
        c in huge(), h in huge(), w in huge(), k in huge(),
        f in (huge(), huge()), p in (huge(), huge()), outs in (1u64..4, 1u64..4),
        free in prop_oneof![huge(), (32u32..64).prop_map(|e| 1u64 << e), any::<u64>()],
        pool in any::<bool>(), tail in prop::sample::select(vec!["", "relu", "fc(3)", "pool(1, 7)"]),
    ) {
        // The stride that gives `out` outputs when the span divides, and any
        // stride when the filter covers the padded input.
        let stride = |len: u64, f: u64, p: u64, out: u64| {
            let span = (len + 2 * p).saturating_sub(f);
            if span == 0 { free } else { (span / out).max(1) }
        };
        let (fh, fw) = (f.0.min(h + 2 * p.0), f.1.min(w + 2 * p.1));
        let src = if pool {
            let (fh, fw) = (f.0.min(h), f.1.min(w));
            let (sh, sw) = (stride(h, fh, 0, outs.0), stride(w, fw, 0, outs.1));
            format!("struct N {{ input({c}, {h}, {w}) pool(({fh}, {fw}), ({sh}, {sw})) {tail} }}")
        } else {
            let (sh, sw) = (stride(h, fh, p.0, outs.0), stride(w, fw, p.1, outs.1));
            format!(
                "struct N {{ input({c}, {h}, {w}) conv({k}, ({fh}, {fw}), s = ({sh}, {sw}), p = ({}, {})) {tail} }}",
                p.0, p.1
            )
        };
        verify(&src);
    }
}

/// Sizes from 1 to 2^40, most of them small or near a power of two.
fn huge() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 1u64..8,
        1 => (0u32..41).prop_map(|e| 1u64 << e),
        1 => 1u64..(1 << 40),
    ]
}

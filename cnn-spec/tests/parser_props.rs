//! Property tests of the parser and the checks.
//!
//! Generated networks are structured layers ([`Layer`]) written out as DSL
//! text, so that an independent oracle in 128-bit integers ([`oracle`])
//! sees exactly what the parser sees. The library accepts a network exactly
//! when the oracle does; an accepted network has the oracle's volumes,
//! kinds, parameter and MAC counts and workspace, and renders to non-empty
//! text; a rejected one has non-empty error messages.
//!
//! Random token sequences, and generated networks with a few tokens edited,
//! give networks whose layers chain and that plan, or errors that each have
//! a message and a span inside the source.

use std::fmt;

use cnn_spec::check::MAX_VOLUME;
use cnn_spec::{parse_networks, plan, render, Activation, LayerKind, Network, Pair, Volume};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// A size argument as written: `n` or `(h, w)`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arg {
    One(u64),
    Two(u64, u64),
}

/// A padding argument: a size or `same`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pad {
    Size(Arg),
    Same,
}

/// A layer after `input`, its arguments as written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layer {
    /// `conv(K, F, s = S, p = P)`, `s` and `p` optional, `p` first when
    /// `p_first`.
    Conv {
        k: Arg,
        f: Arg,
        s: Option<Arg>,
        p: Option<Pad>,
        p_first: bool,
    },
    /// `pool(F, S)`, or `avgpool(F, S)` when `avg`; `S` optional.
    Pool {
        avg: bool,
        f: Arg,
        s: Option<Arg>,
    },
    Fc(u64),
    Activation(Activation),
    Flatten,
    Softmax,
}

/// A network: `input(C, H, W)` and its layers.
#[derive(Debug, Clone, PartialEq)]
struct Net {
    input: [u64; 3],
    layers: Vec<Layer>,
}

impl fmt::Display for Arg {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::One(n) => write!(out, "{n}"),
            Arg::Two(h, w) => write!(out, "({h}, {w})"),
        }
    }
}

impl fmt::Display for Pad {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pad::Size(arg) => write!(out, "{arg}"),
            Pad::Same => out.write_str("same"),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Layer::Conv {
                k,
                f,
                s,
                p,
                p_first,
            } => {
                let s = s.map(|s| format!(", s = {s}")).unwrap_or_default();
                let p = p.map(|p| format!(", p = {p}")).unwrap_or_default();
                let (a, b) = if p_first { (p, s) } else { (s, p) };
                write!(out, "conv({k}, {f}{a}{b})")
            }
            Layer::Pool { avg, f, s } => {
                let name = if avg { "avgpool" } else { "pool" };
                match s {
                    Some(s) => write!(out, "{name}({f}, {s})"),
                    None => write!(out, "{name}({f})"),
                }
            }
            Layer::Fc(n) => write!(out, "fc({n})"),
            Layer::Activation(Activation::Relu) => out.write_str("relu"),
            Layer::Activation(Activation::Sigmoid) => out.write_str("sigmoid"),
            Layer::Activation(Activation::Tanh) => out.write_str("tanh"),
            Layer::Flatten => out.write_str("flatten"),
            Layer::Softmax => out.write_str("softmax"),
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, h, w] = self.input;
        write!(out, "pub struct N {{ input({c}, {h}, {w})")?;
        for layer in &self.layers {
            write!(out, " {layer}")?;
        }
        out.write_str(" }")
    }
}

// The oracle.

/// What the oracle expects of an accepted network.
#[derive(Debug)]
struct Expected {
    /// The input volume, then each layer's output volume, as C, H, W.
    volumes: Vec<[u128; 3]>,
    /// Each layer's resolved kind, parameters and MACs.
    layers: Vec<(LayerKind, u128, u128)>,
    params: u128,
    macs: u128,
    /// The plan's `arena_len`.
    arena: u128,
}

const USIZE_MAX: u128 = usize::MAX as u128;
const U64_MAX: u128 = u64::MAX as u128;
const MAX: u128 = MAX_VOLUME as u128;

/// A product that saturates: exact when compared with a bound it may
/// exceed, all bounds being far below `u128::MAX`.
fn product(factors: &[u128]) -> u128 {
    factors.iter().fold(1, |acc, &x| acc.saturating_mul(x))
}

/// A number argument: it must fit a usize, and be positive unless
/// `zero_ok` (paddings).
fn number(n: u64, zero_ok: bool) -> Result<u128, String> {
    let n = u128::from(n);
    if n > USIZE_MAX {
        Err(format!("{n} does not fit a usize"))
    } else if n == 0 && !zero_ok {
        Err("a zero size".to_string())
    } else {
        Ok(n)
    }
}

/// An argument that must be a single number.
fn int(arg: Arg, zero_ok: bool) -> Result<u128, String> {
    match arg {
        Arg::One(n) => number(n, zero_ok),
        Arg::Two(..) => Err(format!("a pair {arg} where a number is expected")),
    }
}

/// An argument that may be a pair, as `[h, w]`.
fn pair(arg: Arg, zero_ok: bool) -> Result<[u128; 2], String> {
    match arg {
        Arg::One(n) => number(n, zero_ok).map(|n| [n, n]),
        Arg::Two(h, w) => Ok([number(h, zero_ok)?, number(w, zero_ok)?]),
    }
}

/// One axis of a sliding window: `(len − f + 2p)/s + 1`, when whole.
fn window(len: u128, f: u128, s: u128, p: u128) -> Result<u128, String> {
    let padded = len + 2 * p;
    // The library computes the padded length in usize.
    if padded > USIZE_MAX {
        return Err(format!("the padded length {padded} does not fit a usize"));
    }
    if f > padded {
        return Err(format!("a window of {f} on a padded length of {padded}"));
    }
    if !(padded - f).is_multiple_of(s) {
        return Err(format!("{s} does not divide {}", padded - f));
    }
    Ok((padded - f) / s + 1)
}

fn to_pair([h, w]: [u128; 2]) -> Pair {
    Pair {
        h: h as usize,
        w: w as usize,
    }
}

/// Whether the network must be accepted and, if so, what the library must
/// compute; the reason when it must be rejected.
fn oracle(net: &Net) -> Result<Expected, String> {
    let [c, h, w] = net.input;
    let input = [number(c, false)?, number(h, false)?, number(w, false)?];
    if product(&input) > MAX {
        return Err("the input volume exceeds MAX_VOLUME".to_string());
    }
    if net.layers.is_empty() {
        return Err("no layer after input".to_string());
    }
    let mut volumes = vec![input];
    let mut layers = Vec::new();
    for (i, &layer) in net.layers.iter().enumerate() {
        let [c, h, w] = volumes[i];
        let (kind, output, params, macs) = match layer {
            Layer::Conv { k, f, s, p, .. } => {
                let k = int(k, false)?;
                let f = pair(f, false)?;
                let s = s.map_or(Ok([1, 1]), |s| pair(s, false))?;
                let p = match p {
                    None => [0, 0],
                    Some(Pad::Size(p)) => pair(p, true)?,
                    Some(Pad::Same) if f[0] % 2 == 1 && f[1] % 2 == 1 && s == [1, 1] => {
                        [(f[0] - 1) / 2, (f[1] - 1) / 2]
                    }
                    Some(Pad::Same) => return Err("`same` with an even F or S ≠ 1".to_string()),
                };
                let output = [
                    k,
                    window(h, f[0], s[0], p[0])?,
                    window(w, f[1], s[1], p[1])?,
                ];
                let params = product(&[f[0], f[1], c, k]).saturating_add(k);
                let macs = product(&[k, output[1], output[2], c, f[0], f[1]]);
                if params > USIZE_MAX || macs > U64_MAX {
                    return Err(format!("layer {i}'s parameters or MACs overflow"));
                }
                let kind = LayerKind::Conv {
                    k: k as usize,
                    f: to_pair(f),
                    s: to_pair(s),
                    p: to_pair(p),
                };
                (kind, output, params, macs)
            }
            Layer::Pool { avg, f, s } => {
                let f = pair(f, false)?;
                let s = s.map_or(Ok(f), |s| pair(s, false))?;
                let output = [c, window(h, f[0], s[0], 0)?, window(w, f[1], s[1], 0)?];
                let (f, s) = (to_pair(f), to_pair(s));
                let kind = if avg {
                    LayerKind::AvgPool { f, s }
                } else {
                    LayerKind::MaxPool { f, s }
                };
                (kind, output, 0, 0)
            }
            Layer::Fc(n) => {
                let n = number(n, false)?;
                let macs = c * h * w * n;
                if macs + n > USIZE_MAX || macs > U64_MAX {
                    return Err(format!("layer {i}'s parameters or MACs overflow"));
                }
                (LayerKind::Fc { n: n as usize }, [n, 1, 1], macs + n, macs)
            }
            Layer::Activation(a) => (LayerKind::Activation(a), [c, h, w], 0, 0),
            Layer::Flatten => (LayerKind::Flatten, [c * h * w, 1, 1], 0, 0),
            Layer::Softmax => (LayerKind::Softmax, [c, h, w], 0, 0),
        };
        if product(&output) > MAX {
            return Err(format!("layer {i}'s output exceeds MAX_VOLUME"));
        }
        volumes.push(output);
        layers.push((kind, params, macs));
    }
    let params: u128 = layers.iter().map(|l| l.1).sum();
    let macs: u128 = layers.iter().map(|l| l.2).sum();
    if params > USIZE_MAX || macs > U64_MAX {
        return Err("the total parameters or MACs overflow".to_string());
    }
    let arena = 2 * ping_pong_len(&net.layers, &volumes);
    if arena > MAX {
        return Err(format!("a workspace of {arena} exceeds MAX_VOLUME"));
    }
    Ok(Expected {
        volumes,
        layers,
        params,
        macs,
        arena,
    })
}

/// The length of each of the plan's two ping-pong buffers. The last conv,
/// pool or fc writes the caller's output, and the in-place steps after it
/// work there; every step before it (fused activations, in-place steps and
/// a copy of the input before a first in-place step included, flatten
/// excepted) leaves its volume in a buffer, which is sized by that step's
/// input and output. So the buffers hold the largest volume up to the input
/// of the last conv, pool or fc, or nothing when only flattens precede it.
fn ping_pong_len(layers: &[Layer], volumes: &[[u128; 3]]) -> u128 {
    let computes = |l: &Layer| matches!(l, Layer::Conv { .. } | Layer::Pool { .. } | Layer::Fc(_));
    let Some(last) = layers.iter().rposition(computes) else {
        return 0;
    };
    if layers[..last].iter().all(|l| *l == Layer::Flatten) {
        return 0;
    }
    volumes[..=last]
        .iter()
        .map(|v| product(v))
        .max()
        .unwrap_or(0)
}

// Checking the library against the oracle.

fn dims(volume: Volume) -> [u128; 3] {
    volume.dims().map(|d| d as u128)
}

/// Parses the network's text and checks the library against the oracle;
/// returns whether the network was accepted.
fn agree(net: &Net) -> Result<bool, TestCaseError> {
    let src = net.to_string();
    let result = parse_networks(&src);
    let expected = oracle(net);
    prop_assert_eq!(
        result.is_ok(),
        expected.is_ok(),
        "{}\nlibrary: {:?}\noracle: {:?}",
        src,
        result.as_ref().map_err(ToString::to_string).map(|_| ()),
        expected.as_ref().map(|_| ()),
    );
    match (result, expected) {
        (Ok(networks), Ok(expected)) => {
            prop_assert_eq!(networks.len(), 1, "{}", src);
            check_accepted(&src, &networks[0], &expected)?;
            Ok(true)
        }
        (Err(errors), _) => {
            for error in errors {
                prop_assert!(!error.to_string().is_empty(), "{}", src);
            }
            Ok(false)
        }
        (Ok(_), Err(_)) => unreachable!(),
    }
}

/// An accepted network against the oracle's expectations; planning and
/// rendering it must not panic.
fn check_accepted(src: &str, network: &Network, expected: &Expected) -> Result<(), TestCaseError> {
    prop_assert_eq!(dims(network.input), expected.volumes[0], "{}", src);
    prop_assert_eq!(network.layers.len(), expected.layers.len(), "{}", src);
    for (i, (layer, &(kind, params, macs))) in
        network.layers.iter().zip(&expected.layers).enumerate()
    {
        prop_assert_eq!(layer.index, i, "{}", src);
        prop_assert_eq!(layer.kind, kind, "{}", src);
        prop_assert_eq!(dims(layer.input), expected.volumes[i], "{}", src);
        prop_assert_eq!(dims(layer.output), expected.volumes[i + 1], "{}", src);
        prop_assert_eq!(layer.params as u128, params, "{}", src);
        prop_assert_eq!(u128::from(layer.macs), macs, "{}", src);
    }
    prop_assert_eq!(network.params as u128, expected.params, "{}", src);
    prop_assert_eq!(u128::from(network.macs), expected.macs, "{}", src);
    prop_assert_eq!(
        plan::plan(network).arena_len as u128,
        expected.arena,
        "{}",
        src
    );
    for text in [
        render::summary(network),
        render::json(network),
        render::markdown(network),
        render::svg(network),
        render::rustdoc(network),
    ] {
        prop_assert!(!text.is_empty(), "{}", src);
    }
    Ok(())
}

/// An accepted network's layers chain from its input, and it plans.
fn check_chained(src: &str, network: &Network) -> Result<(), TestCaseError> {
    prop_assert!(!network.layers.is_empty(), "{}", src);
    let mut volume = network.input;
    for layer in &network.layers {
        prop_assert_eq!(layer.input, volume, "{}", src);
        volume = layer.output;
    }
    prop_assert!(plan::plan(network).arena_len <= MAX_VOLUME, "{}", src);
    Ok(())
}

/// An error has a message, and its span starts and ends inside `src`:
/// lines from 1, columns in chars from 0, up to the end of the line.
fn check_located(src: &str, error: &syn::Error) -> Result<(), TestCaseError> {
    prop_assert!(!error.to_string().is_empty(), "{:?}", src);
    let lines: Vec<&str> = src.split('\n').collect();
    let span = error.span();
    for at in [span.start(), span.end()] {
        prop_assert!(
            (1..=lines.len()).contains(&at.line) && at.column <= lines[at.line - 1].chars().count(),
            "{:?} at {}:{} is outside {:?}",
            error.to_string(),
            at.line,
            at.column,
            src,
        );
    }
    Ok(())
}

// Strategies.

/// Tokens the DSL uses, and some it does not; some do not lex.
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
            "é",
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
            "\"×\"",
            "7u8",
            "99999999999999999999999",
            "'c'",
            "×",
            "/*",
        ])
        .prop_map(str::to_string),
    ]
}

/// The tokens of a network's text: punctuation apart, words split at spaces.
fn lex(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for ch in text.chars() {
        if ch.is_whitespace() || "(),={}".contains(ch) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !ch.is_whitespace() {
                tokens.push(ch.to_string());
            }
        } else {
            word.push(ch);
        }
    }
    tokens.extend((!word.is_empty()).then_some(word));
    tokens
}

/// Random tokens, bare or in `struct N { … }`, or a generated network with
/// up to two tokens inserted, replaced or removed.
fn tokens() -> impl Strategy<Value = Vec<String>> {
    let random = (prop::collection::vec(token(), 0..30), any::<bool>()).prop_map(|(body, wrap)| {
        if !wrap {
            return body;
        }
        let mut tokens = lex("struct N {");
        tokens.extend(body);
        tokens.push("}".to_string());
        tokens
    });
    let edits = prop::collection::vec((any::<Index>(), 0..3u8, token()), 0..3);
    let edited = (network(), edits).prop_map(|(net, edits)| {
        let mut tokens = lex(&net.to_string());
        for (at, edit, token) in edits {
            let i = at.index(tokens.len());
            match edit {
                0 => tokens.insert(i, token),
                1 => tokens[i] = token,
                _ => drop(tokens.remove(i)),
            }
        }
        tokens
    });
    prop_oneof![random, edited]
}

/// Sizes of layer arguments: mostly small, some zero, some huge.
fn size() -> BoxedStrategy<u64> {
    prop_oneof![
        8 => 1u64..4,
        4 => 0u64..12,
        1 => any::<u64>(),
        1 => Just(usize::MAX as u64),
    ]
    .boxed()
}

/// Sizes of the input: mostly fitting small windows, some zero, some huge.
fn dim() -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => 1u64..40,
        1 => 0u64..12,
        1 => any::<u64>(),
        1 => Just(usize::MAX as u64),
    ]
}

fn arg(size: BoxedStrategy<u64>) -> impl Strategy<Value = Arg> {
    prop_oneof![
        4 => size.clone().prop_map(Arg::One),
        1 => (size.clone(), size).prop_map(|(h, w)| Arg::Two(h, w)),
    ]
}

/// A layer with plausible syntax and numbers drawn from `size`.
fn layer(size: BoxedStrategy<u64>) -> impl Strategy<Value = Layer> {
    let arg = || arg(size.clone());
    let pad = prop_oneof![arg().prop_map(Pad::Size), Just(Pad::Same)];
    prop_oneof![
        1 => (
            arg(),
            arg(),
            prop::option::of(arg()),
            prop::option::of(pad),
            any::<bool>()
        )
            .prop_map(|(k, f, s, p, p_first)| Layer::Conv {
                k,
                f,
                s,
                p,
                p_first
            }),
        2 => (any::<bool>(), arg(), prop::option::of(arg()))
            .prop_map(|(avg, f, s)| Layer::Pool { avg, f, s }),
        1 => size.clone().prop_map(Layer::Fc),
        1 => prop::sample::select(vec![
            Layer::Activation(Activation::Relu),
            Layer::Activation(Activation::Sigmoid),
            Layer::Activation(Activation::Tanh),
            Layer::Flatten,
            Layer::Softmax,
        ]),
    ]
}

/// A random input and up to seven layers: random ones, most networks
/// rejected, or small ones made to fit, most networks accepted.
fn network() -> impl Strategy<Value = Net> {
    let random = (
        [dim(), dim(), dim()],
        prop::collection::vec(layer(size()), 0..8),
    )
        .prop_map(|(input, layers)| Net { input, layers });
    let fitted = (
        [1u64..40, 1u64..40, 1u64..40],
        prop::collection::vec(layer((1u64..6).boxed()), 1..8),
    )
        .prop_map(|(input, layers)| fit(input, layers));
    prop_oneof![random, fitted]
}

/// Shrinks the windows and strides of small layers so that each fits the
/// volume before it: F at most the padded length, S the largest divisor of
/// the span up to S, F odd for `p = same`. Pairs and missing arguments stay.
fn fit(input: [u64; 3], mut layers: Vec<Layer>) -> Net {
    let axes = |arg: Arg| match arg {
        Arg::One(n) => [n; 2],
        Arg::Two(h, w) => [h, w],
    };
    // A pair when the argument was one or the axes differ.
    let like = |arg: Arg, [h, w]: [u64; 2]| match arg {
        Arg::One(_) if h == w => Arg::One(h),
        _ => Arg::Two(h, w),
    };
    // One axis: the fitted F and S, and the output length.
    let axis = |len: u64, f: u64, s: u64, p: u64| {
        let f = f.min(len + 2 * p);
        let span = len + 2 * p - f;
        let s = (1..=s.min(span.max(1)))
            .rev()
            .find(|&d| span.is_multiple_of(d))
            .unwrap_or(1);
        (f, s, span / s + 1)
    };
    let [mut c, mut h, mut w] = input;
    for layer in &mut layers {
        match layer {
            Layer::Conv { k, f, s, p, .. } => {
                let [fh, fw] = axes(*f);
                let (ph, pw) = match p {
                    Some(Pad::Same) => {
                        // Odd filters, stride 1: the output is the input.
                        *f = like(*f, [fh - 1 + fh % 2, fw - 1 + fw % 2]);
                        *s = s.map(|s| like(s, [1, 1]));
                        c = axes(*k)[0];
                        continue;
                    }
                    Some(Pad::Size(p)) => (axes(*p)[0], axes(*p)[1]),
                    None => (0, 0),
                };
                let [sh, sw] = s.map_or([1, 1], axes);
                let (fh, sh, oh) = axis(h, fh, sh, ph);
                let (fw, sw, ow) = axis(w, fw, sw, pw);
                *f = like(*f, [fh, fw]);
                *s = s.map(|s| like(s, [sh, sw]));
                (c, h, w) = (axes(*k)[0], oh, ow);
            }
            Layer::Pool { f, s, .. } => {
                let [fh, fw] = axes(*f);
                let [sh, sw] = s.map_or([fh, fw], axes);
                let (fh, sh, oh) = axis(h, fh, sh, 0);
                let (fw, sw, ow) = axis(w, fw, sw, 0);
                *f = like(*f, [fh, fw]);
                if s.is_some() || [sh, sw] != [fh, fw] {
                    *s = Some(like(s.unwrap_or(*f), [sh, sw]));
                }
                (h, w) = (oh, ow);
            }
            Layer::Fc(n) => (c, h, w) = (*n, 1, 1),
            Layer::Flatten => (c, h, w) = (c * h * w, 1, 1),
            Layer::Activation(_) | Layer::Softmax => {}
        }
    }
    Net { input, layers }
}

/// Sizes from 1 to 2^40, most of them small or near a power of two.
fn huge() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 1u64..8,
        1 => (0u32..41).prop_map(|e| 1u64 << e),
        1 => 1u64..(1 << 40),
    ]
}

/// A conv, pool or avgpool that fits its input, with sizes and paddings up
/// to 2^40, strides up to 2^64 − 1, and inputs and outputs up to the
/// largest volume and beyond, then maybe a second layer.
fn large_window_network() -> impl Strategy<Value = Net> {
    let free = prop_oneof![huge(), (32u32..64).prop_map(|e| 1u64 << e), any::<u64>()];
    let tail = prop::sample::select(vec![
        None,
        Some(Layer::Activation(Activation::Relu)),
        Some(Layer::Fc(3)),
        Some(Layer::Pool {
            avg: false,
            f: Arg::One(1),
            s: Some(Arg::One(7)),
        }),
    ]);
    // Volumes at the limits of the input (MAX_VOLUME) and of the two
    // buffers that may hold it (MAX_VOLUME / 2).
    let fill = prop::sample::select(vec![MAX / 2, MAX / 2 + 1, MAX, MAX + 1]);
    // Filters up to 2^63: outputs at the limit too.
    let k = prop_oneof![3 => huge(), 1 => (56u32..64).prop_map(|e| 1u64 << e)];
    (
        ([huge(), huge(), huge()], k),
        [huge(), huge(), huge(), huge()],
        (1u64..4, 1u64..4, free),
        (0..3u8, tail, prop::option::of(fill)),
    )
        .prop_map(
            |(([c, h, w], k), [fh, fw, ph, pw], (oh, ow, free), (kind, tail, fill))| {
                // C such that the input's volume is at most `fill`, when given.
                let c = fill.map_or(c, |fill| {
                    (fill / (u128::from(h) * u128::from(w))).max(1) as u64
                });
                // The stride that gives `out` outputs when the span divides, and
                // any stride when the filter covers the padded input.
                let stride = |len: u64, f: u64, p: u64, out: u64| {
                    let span = (len + 2 * p).saturating_sub(f);
                    if span == 0 {
                        free
                    } else {
                        (span / out).max(1)
                    }
                };
                let window = if kind == 0 {
                    let (fh, fw) = (fh.min(h + 2 * ph), fw.min(w + 2 * pw));
                    let (sh, sw) = (stride(h, fh, ph, oh), stride(w, fw, pw, ow));
                    Layer::Conv {
                        k: Arg::One(k),
                        f: Arg::Two(fh, fw),
                        s: Some(Arg::Two(sh, sw)),
                        p: Some(Pad::Size(Arg::Two(ph, pw))),
                        p_first: false,
                    }
                } else {
                    let (fh, fw) = (fh.min(h), fw.min(w));
                    let (sh, sw) = (stride(h, fh, 0, oh), stride(w, fw, 0, ow));
                    Layer::Pool {
                        avg: kind == 2,
                        f: Arg::Two(fh, fw),
                        s: Some(Arg::Two(sh, sw)),
                    }
                };
                Net {
                    input: [c, h, w],
                    layers: [Some(window), tail].into_iter().flatten().collect(),
                }
            },
        )
}

/// Layer separators: spaces, and line breaks so that spans reach later
/// lines.
fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", " ", " ", "\n", "\n\t  "])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn random_tokens_give_chained_networks_or_located_errors(
        tokens in tokens(),
        separators in prop::collection::vec(separator(), 1..6),
    ) {
        let mut src = String::new();
        for (token, separator) in tokens.iter().zip(separators.iter().cycle()) {
            src += token;
            src += separator;
        }
        match parse_networks(&src) {
            Ok(networks) => {
                for network in &networks {
                    check_chained(&src, network)?;
                }
            }
            Err(errors) => {
                for error in errors {
                    check_located(&src, &error)?;
                }
            }
        }
    }

    #[test]
    fn random_layer_lists_never_panic_and_agree(net in network()) {
        agree(&net)?;
    }

    #[test]
    fn small_valid_networks_are_accepted_when_the_arithmetic_fits(
        c in 1u64..4, h in 1u64..20, w in 1u64..20,
        k in 1u64..5, f in 1u64..6, s in 1u64..4, p in 0u64..3,
    ) {
        let net = Net {
            input: [c, h, w],
            layers: vec![
                Layer::Conv {
                    k: Arg::One(k),
                    f: Arg::One(f),
                    s: Some(Arg::One(s)),
                    p: Some(Pad::Size(Arg::One(p))),
                    p_first: false,
                },
                Layer::Activation(Activation::Relu),
            ],
        };
        // The oracle against the formula, the library against the oracle.
        let fits = |len: u64| len + 2 * p >= f && (len + 2 * p - f).is_multiple_of(s);
        prop_assert_eq!(agree(&net)?, fits(h) && fits(w), "{}", net);
    }

    /// The arithmetic of a network whose layers fit but whose sizes reach
    /// the limits of usize, u64 and MAX_VOLUME.
    #[test]
    fn large_fitting_windows_never_panic(net in large_window_network()) {
        agree(&net)?;
    }
}

/// Networks at the limits, with the oracle's verdict pinned.
#[test]
fn edge_cases_agree() {
    let relu = Layer::Activation(Activation::Relu);
    let big = 1u64 << 30;
    let huge_conv = Layer::Conv {
        k: Arg::One(1),
        f: Arg::Two((1 << 32) + 1, (1 << 31) + 1),
        s: None,
        p: Some(Pad::Size(Arg::Two(1 << 31, 1 << 30))),
        p_first: false,
    };
    let cases = [
        // 2^60 values: buffers of 2^61 exceed MAX_VOLUME = 2^61 − 1 when
        // the input goes through them, not when the fc reads it directly.
        (
            Net {
                input: [1, big, big],
                layers: vec![relu, Layer::Fc(1)],
            },
            false,
        ),
        (
            Net {
                input: [1, big, big],
                layers: vec![Layer::Fc(1), relu],
            },
            true,
        ),
        (
            Net {
                input: [1, big - 1, big],
                layers: vec![relu, Layer::Fc(1)],
            },
            true,
        ),
        (
            Net {
                input: [1, big, big],
                layers: vec![Layer::Flatten, Layer::Fc(1)],
            },
            true,
        ),
        // Any stride divides a zero span (the case in the regressions file).
        (
            Net {
                input: [1, 1, 1],
                layers: vec![Layer::Conv {
                    k: Arg::One(1),
                    f: Arg::One(1),
                    s: Some(Arg::Two(3074457345618258603, 6)),
                    p: None,
                    p_first: false,
                }],
            },
            true,
        ),
        // The padded length 2^64 + 1 overflows usize, though the output
        // (1×2×1), parameters (2^63) and MACs (2^64 − 2) would fit.
        (
            Net {
                input: [1, 1, 1],
                layers: vec![Layer::Conv {
                    k: Arg::One(1),
                    f: Arg::Two((1 << 63) - 1, 1),
                    s: Some(Arg::Two((1 << 63) + 2, 1)),
                    p: Some(Pad::Size(Arg::Two(1 << 63, 0))),
                    p_first: true,
                }],
            },
            false,
        ),
        // MAX_VOLUME = 2^61 − 1 values fit, one more does not.
        (
            Net {
                input: [MAX_VOLUME as u64, 1, 1],
                layers: vec![Layer::Fc(1)],
            },
            true,
        ),
        (
            Net {
                input: [1 << 61, 1, 1],
                layers: vec![Layer::Fc(1)],
            },
            false,
        ),
        // 2^61 outputs, one more than MAX_VOLUME, whose counts fit.
        (
            Net {
                input: [1, 1, 1],
                layers: vec![Layer::Fc((1 << 61) - 1)],
            },
            true,
        ),
        (
            Net {
                input: [1, 1, 1],
                layers: vec![Layer::Fc(1 << 61)],
            },
            false,
        ),
        (
            Net {
                input: [1, 1, 1],
                layers: vec![Layer::Conv {
                    k: Arg::One(1 << 61),
                    f: Arg::One(1),
                    s: None,
                    p: None,
                    p_first: false,
                }],
            },
            false,
        ),
        // Each layer has just under 2^63 + 2^33 parameters and MACs; two
        // overflow the totals.
        (
            Net {
                input: [1, 1, 1],
                layers: vec![huge_conv],
            },
            true,
        ),
        (
            Net {
                input: [1, 1, 1],
                layers: vec![huge_conv, huge_conv],
            },
            false,
        ),
    ];
    for (net, accepted) in cases {
        let agreed = agree(&net).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(agreed, accepted, "{net}");
    }
}

/// The generators are worth running: random layer lists and large windows
/// are accepted and rejected, the latter at the workspace limit too.
#[test]
fn generators_reach_both_outcomes() {
    let mut runner = TestRunner::deterministic();
    let mut outcomes = |strategy: BoxedStrategy<Net>| {
        let verdicts: Vec<Result<Expected, String>> = (0..2000)
            .map(|_| oracle(&strategy.new_tree(&mut runner).unwrap().current()))
            .collect();
        let accepted = verdicts.iter().filter(|v| v.is_ok()).count();
        let workspace = verdicts
            .iter()
            .filter(|v| v.as_ref().is_err_and(|e| e.contains("workspace")))
            .count();
        (accepted, workspace)
    };
    let (accepted, _) = outcomes(network().boxed());
    assert!(
        (200..=1800).contains(&accepted),
        "{accepted} of 2000 accepted"
    );
    let (accepted, workspace) = outcomes(large_window_network().boxed());
    assert!(
        (200..=1800).contains(&accepted),
        "{accepted} of 2000 accepted"
    );
    assert!(
        workspace >= 5,
        "{workspace} of 2000 rejected for their workspace"
    );
}

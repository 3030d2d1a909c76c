//! Property tests of the parser and the checks.
//!
//! Generated networks are structured entries ([`Entry`]: layers, groups and
//! residual blocks, named or not) written out as DSL text, so that an
//! independent oracle in 128-bit integers ([`oracle`]) sees exactly what the
//! parser sees. The oracle follows the contract (SPEC.md §2) and never calls
//! the library's arithmetic: it computes every volume, parameter and
//! multiply-accumulate count, every layer's dotted path and tensors, and
//! decides whether the network is accepted. The library accepts a network
//! exactly when the oracle does; an accepted network has the oracle's
//! numbers, paths and structure, and renders to non-empty text; a rejected
//! one has non-empty messages, and those the contract describes say what it
//! asks (a window that does not fit names `floor` and the size it gives, a
//! residual whose volumes differ shows both).
//!
//! Random token sequences, and generated networks with a few tokens edited,
//! give networks whose structure is consistent and that plan, or errors
//! that each have a message and a span inside the source.

// The oracle's rejections carry what they found, for the failure message.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::fmt;

use cnn_spec::check::MAX_VOLUME;
use cnn_spec::model::{self, Float, TensorRole};
use cnn_spec::{parse_networks, plan, render, Activation, LayerKind, Network, Pair, Volume};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

// The DSL as written.

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

/// A float argument as written: a float literal (with its sign), or an
/// integer where a float is expected.
#[derive(Debug, Clone, PartialEq)]
enum Num {
    Float(String),
    Int(u64),
}

/// A named argument of `conv`.
#[derive(Debug, Clone, PartialEq)]
enum Opt {
    S(Arg),
    P(Pad),
    D(Arg),
    G(u64),
    Bias(bool),
}

/// An element-wise activation.
#[derive(Debug, Clone, PartialEq)]
enum Act {
    Relu,
    Relu6,
    LeakyRelu(Option<Num>),
    Sigmoid,
    Tanh,
    Silu,
    Gelu,
    HardSwish,
}

/// A layer after `input`, its arguments as written.
#[derive(Debug, Clone, PartialEq)]
enum Layer {
    /// `conv(K, F, …)` with its named arguments in the order written, then
    /// `floor`.
    Conv {
        k: Arg,
        f: Arg,
        opts: Vec<Opt>,
        floor: bool,
    },
    /// `pool(F, S, p = P, floor)`, or `avgpool` when `avg`; S, P and floor
    /// optional.
    Pool {
        avg: bool,
        f: Arg,
        s: Option<Arg>,
        p: Option<Arg>,
        floor: bool,
    },
    GlobalAvgPool,
    /// `bn` or `bn(eps = E)`.
    Bn(Option<Num>),
    Act(Act),
    Dropout(Num),
    Flatten,
    Fc(u64),
    Softmax,
}

/// What an entry of a sequence is.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Layer(Layer),
    /// `{ … }`.
    Group(Vec<Entry>),
    /// `residual(ACT) { MAIN } shortcut { SC }`; ACT may be any layer, so
    /// that a wrong one is tried too.
    Residual {
        act: Option<Layer>,
        main: Vec<Entry>,
        shortcut: Option<Vec<Entry>>,
    },
}

/// An entry, maybe named: `name: item`.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    label: Option<String>,
    item: Item,
}

/// A network: `input(C, H, W)` and its entries.
#[derive(Debug, Clone, PartialEq)]
struct Net {
    input: [u64; 3],
    body: Vec<Entry>,
}

impl Opt {
    fn name(&self) -> &'static str {
        match self {
            Opt::S(_) => "s",
            Opt::P(_) => "p",
            Opt::D(_) => "d",
            Opt::G(_) => "g",
            Opt::Bias(_) => "bias",
        }
    }
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

impl fmt::Display for Num {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Float(text) => out.write_str(text),
            Num::Int(n) => write!(out, "{n}"),
        }
    }
}

impl fmt::Display for Opt {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opt::S(arg) | Opt::D(arg) => write!(out, "{} = {arg}", self.name()),
            Opt::P(pad) => write!(out, "p = {pad}"),
            Opt::G(g) => write!(out, "g = {g}"),
            Opt::Bias(bias) => write!(out, "bias = {bias}"),
        }
    }
}

impl fmt::Display for Act {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(match self {
            Act::Relu => "relu",
            Act::Relu6 => "relu6",
            Act::LeakyRelu(None) => "leaky_relu",
            Act::LeakyRelu(Some(slope)) => return write!(out, "leaky_relu({slope})"),
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
            Act::Silu => "silu",
            Act::Gelu => "gelu",
            Act::HardSwish => "hardswish",
        })
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Conv { k, f, opts, floor } => {
                let mut args = vec![k.to_string(), f.to_string()];
                args.extend(opts.iter().map(Opt::to_string));
                args.extend(floor.then(|| "floor".to_string()));
                write!(out, "conv({})", args.join(", "))
            }
            Layer::Pool {
                avg,
                f,
                s,
                p,
                floor,
            } => {
                let mut args = vec![f.to_string()];
                args.extend(s.map(|s| s.to_string()));
                args.extend(p.map(|p| format!("p = {p}")));
                args.extend(floor.then(|| "floor".to_string()));
                let name = if *avg { "avgpool" } else { "pool" };
                write!(out, "{name}({})", args.join(", "))
            }
            Layer::GlobalAvgPool => out.write_str("global_avgpool"),
            Layer::Bn(None) => out.write_str("bn"),
            Layer::Bn(Some(eps)) => write!(out, "bn(eps = {eps})"),
            Layer::Act(act) => write!(out, "{act}"),
            Layer::Dropout(p) => write!(out, "dropout({p})"),
            Layer::Flatten => out.write_str("flatten"),
            Layer::Fc(n) => write!(out, "fc({n})"),
            Layer::Softmax => out.write_str("softmax"),
        }
    }
}

fn write_entries(out: &mut fmt::Formatter<'_>, entries: &[Entry]) -> fmt::Result {
    out.write_str("{")?;
    for entry in entries {
        write!(out, " {entry}")?;
    }
    out.write_str(" }")
}

impl fmt::Display for Entry {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(label) = &self.label {
            write!(out, "{label}: ")?;
        }
        match &self.item {
            Item::Layer(layer) => write!(out, "{layer}"),
            Item::Group(entries) => write_entries(out, entries),
            Item::Residual {
                act,
                main,
                shortcut,
            } => {
                out.write_str("residual")?;
                if let Some(act) = act {
                    write!(out, "({act})")?;
                }
                out.write_str(" ")?;
                write_entries(out, main)?;
                if let Some(shortcut) = shortcut {
                    out.write_str(" shortcut ")?;
                    write_entries(out, shortcut)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, h, w] = self.input;
        write!(out, "pub struct N {{ input({c}, {h}, {w})")?;
        for entry in &self.body {
            write!(out, " {entry}")?;
        }
        out.write_str(" }")
    }
}

// The oracle.

/// Why the oracle rejects a network: the first error in execution order.
#[derive(Debug, Clone, PartialEq)]
enum Reason {
    /// A malformed argument: a zero, a pair where a number goes, an integer
    /// where a float goes, a float out of range, a repeated named argument.
    Argument,
    /// No entry after `input`.
    Empty,
    /// `p = same` with D·(F − 1) odd or a stride other than 1.
    Same,
    /// Groups that do not divide the channels or the filters.
    Groups,
    /// Pool padding over half the window.
    PoolPadding,
    /// A window larger than the padded input.
    TooLarge,
    /// A stride that does not divide the span, without `floor`, which
    /// would give `h`×`w`.
    Misfit { h: u128, w: u128 },
    /// A count or a padded length that does not fit in 64 bits.
    Overflow,
    /// A volume over `MAX_VOLUME`.
    Volume,
    /// A residual whose MAIN gives `main` where the shortcut (or the input)
    /// gives `other`.
    Residual { main: [u128; 3], other: [u128; 3] },
    /// `residual(ACT)` with a layer that is not an activation.
    ResidualAct,
    /// A name given twice in a sequence.
    Name,
    /// A forward pass whose workspace exceeds `MAX_VOLUME`.
    Workspace,
}

impl Reason {
    fn label(&self) -> &'static str {
        match self {
            Reason::Argument => "argument",
            Reason::Empty => "empty",
            Reason::Same => "same",
            Reason::Groups => "groups",
            Reason::PoolPadding => "pool padding",
            Reason::TooLarge => "too large",
            Reason::Misfit { .. } => "misfit",
            Reason::Overflow => "overflow",
            Reason::Volume => "volume",
            Reason::Residual { .. } => "residual",
            Reason::ResidualAct => "residual act",
            Reason::Name => "name",
            Reason::Workspace => "workspace",
        }
    }
}

#[derive(Debug)]
struct Reject {
    reason: Reason,
    detail: String,
}

fn reject<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Reject> {
    Err(Reject {
        reason,
        detail: detail.into(),
    })
}

/// A tensor: its name after the layer's path, its shape, its role.
type Tensor = (&'static str, Vec<u128>, TensorRole);

/// What the oracle expects of one layer.
#[derive(Debug)]
struct ExpLayer {
    /// The dotted path; `None` for a residual's activation, which has no
    /// tensors and whose name the contract leaves open (it must only be
    /// inside the block's).
    path: Option<String>,
    kind: LayerKind,
    input: [u128; 3],
    output: [u128; 3],
    params: u128,
    macs: u128,
    tensors: Vec<Tensor>,
}

/// What the oracle expects of the structure.
#[derive(Debug)]
enum ExpEntry {
    Layer(usize),
    Group {
        path: String,
        entries: Vec<ExpEntry>,
        input: [u128; 3],
        output: [u128; 3],
        params: u128,
        macs: u128,
    },
    Residual {
        path: String,
        main: Vec<ExpEntry>,
        shortcut: Option<Vec<ExpEntry>>,
        act: Option<usize>,
        input: [u128; 3],
        output: [u128; 3],
        params: u128,
        macs: u128,
    },
}

/// What the oracle expects of an accepted network.
#[derive(Debug)]
struct Expected {
    input: [u128; 3],
    output: [u128; 3],
    /// The leaf layers in execution order.
    layers: Vec<ExpLayer>,
    body: Vec<ExpEntry>,
    params: u128,
    macs: u128,
    /// Whether the network has no residual block.
    chain: bool,
    /// Bounds on the plan's workspace, in values: exact for a chain.
    arena: (u128, u128),
}

impl Expected {
    /// Whether the workspace fits: `None` when the bounds straddle the
    /// limit and either verdict is right.
    fn fits(&self) -> Option<bool> {
        if self.arena.1 <= MAX {
            Some(true)
        } else if self.arena.0 > MAX {
            Some(false)
        } else {
            None
        }
    }
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
fn number(n: u64, zero_ok: bool) -> Result<u128, Reject> {
    let n = u128::from(n);
    if n > USIZE_MAX {
        reject(Reason::Argument, format!("{n} does not fit a usize"))
    } else if n == 0 && !zero_ok {
        reject(Reason::Argument, "a zero size")
    } else {
        Ok(n)
    }
}

/// An argument that must be a single number.
fn int(arg: Arg, zero_ok: bool) -> Result<u128, Reject> {
    match arg {
        Arg::One(n) => number(n, zero_ok),
        Arg::Two(..) => reject(
            Reason::Argument,
            format!("a pair {arg} where a number is expected"),
        ),
    }
}

/// An argument that may be a pair, as `[h, w]`.
fn pair(arg: Arg, zero_ok: bool) -> Result<[u128; 2], Reject> {
    match arg {
        Arg::One(n) => number(n, zero_ok).map(|n| [n, n]),
        Arg::Two(h, w) => Ok([number(h, zero_ok)?, number(w, zero_ok)?]),
    }
}

/// Which floats an argument takes.
#[derive(Debug, Clone, Copy)]
enum Range {
    /// `eps > 0`.
    Positive,
    /// Any finite leaky slope.
    Finite,
    /// A dropout probability, `0 ≤ P < 1`.
    Probability,
}

/// The value of a float literal as written, in f32 (the layers compute in
/// f32, so `1e-50` is an epsilon of 0 and `1e40` an infinite slope).
fn float_value(text: &str) -> f32 {
    let value: f64 = text
        .replace('_', "")
        .parse()
        .unwrap_or_else(|e| panic!("generated float literal {text}: {e}"));
    value as f32
}

fn float_ok(num: &Num, range: Range) -> bool {
    let Num::Float(text) = num else {
        return false;
    };
    let x = float_value(text);
    match range {
        Range::Positive => x > 0.0 && x.is_finite(),
        Range::Finite => x.is_finite(),
        Range::Probability => (0.0..1.0).contains(&x),
    }
}

fn float(num: &Num, range: Range) -> Result<Float, Reject> {
    match num {
        Num::Float(text) if float_ok(num, range) => Ok(Float::new(float_value(text))),
        _ => reject(Reason::Argument, format!("{num} is not a {range:?} float")),
    }
}

fn to_pair([h, w]: [u128; 2]) -> Pair {
    Pair {
        h: h as usize,
        w: w as usize,
    }
}

/// One axis of a sliding window.
#[derive(Clone, Copy)]
enum Fit {
    /// The window's extent or the padded length does not fit a usize.
    Overflow,
    /// The window is larger than the padded input.
    TooLarge,
    /// The stride does not divide the span; the output rounded down.
    Uneven(u128),
    Whole(u128),
}

/// A window of `f` taps `d` apart (extent `d·(f − 1) + 1`), stride `s`, on
/// an axis of `len` padded by `p` on both sides.
fn axis(len: u128, f: u128, s: u128, p: u128, d: u128) -> Fit {
    let extent = d * (f - 1) + 1;
    let padded = len + 2 * p;
    if extent > USIZE_MAX || padded > USIZE_MAX {
        Fit::Overflow
    } else if extent > padded {
        Fit::TooLarge
    } else if !(padded - extent).is_multiple_of(s) {
        Fit::Uneven((padded - extent) / s + 1)
    } else {
        Fit::Whole((padded - extent) / s + 1)
    }
}

/// The output size of a window on both axes, or why there is none.
fn window(axes: [Fit; 2], floor: bool) -> Result<[u128; 2], Reject> {
    if axes.iter().any(|a| matches!(a, Fit::Overflow)) {
        return reject(Reason::Overflow, "a window's extent or padded length");
    }
    if axes.iter().any(|a| matches!(a, Fit::TooLarge)) {
        return reject(Reason::TooLarge, "a window larger than its input");
    }
    let out = axes.map(|a| match a {
        Fit::Uneven(n) | Fit::Whole(n) => n,
        Fit::Overflow | Fit::TooLarge => unreachable!(),
    });
    if !floor && axes.iter().any(|a| matches!(a, Fit::Uneven(_))) {
        let [h, w] = out;
        return reject(Reason::Misfit { h, w }, "a stride that does not divide");
    }
    Ok(out)
}

/// A layer on input `[c, h, w]`, or why it does not fit.
fn expect_layer(
    layer: &Layer,
    path: Option<String>,
    [c, h, w]: [u128; 3],
) -> Result<ExpLayer, Reject> {
    let param = TensorRole::Param;
    let (kind, output, params, macs, tensors) = match layer {
        Layer::Conv { k, f, opts, floor } => {
            let k = int(*k, false)?;
            let f = pair(*f, false)?;
            for (i, opt) in opts.iter().enumerate() {
                if opts[..i].iter().any(|o| o.name() == opt.name()) {
                    return reject(Reason::Argument, format!("`{}` twice", opt.name()));
                }
            }
            let (mut s, mut d, mut g, mut bias, mut pad) = ([1, 1], [1, 1], 1, true, None);
            for opt in opts {
                match *opt {
                    Opt::S(arg) => s = pair(arg, false)?,
                    Opt::D(arg) => d = pair(arg, false)?,
                    Opt::G(n) => g = number(n, false)?,
                    Opt::Bias(b) => bias = b,
                    Opt::P(p) => pad = Some(p),
                }
            }
            let p = match pad {
                None => [0, 0],
                Some(Pad::Size(arg)) => pair(arg, true)?,
                Some(Pad::Same) => {
                    // P = D·(F − 1)/2, which must be whole, at stride 1.
                    let span = [d[0] * (f[0] - 1), d[1] * (f[1] - 1)];
                    if span.iter().any(|x| x % 2 == 1) || s != [1, 1] {
                        return reject(Reason::Same, "`same` with D·(F − 1) odd or S ≠ 1");
                    }
                    span.map(|x| x / 2)
                }
            };
            if c % g != 0 || k % g != 0 {
                return reject(Reason::Groups, format!("{g} groups for {c} → {k}"));
            }
            let [oh, ow] = window(
                [
                    axis(h, f[0], s[0], p[0], d[0]),
                    axis(w, f[1], s[1], p[1], d[1]),
                ],
                *floor,
            )?;
            let per_group = c / g;
            let params =
                product(&[f[0], f[1], per_group, k]).saturating_add(if bias { k } else { 0 });
            let macs = product(&[k, oh, ow, per_group, f[0], f[1]]);
            if params > USIZE_MAX || macs > U64_MAX {
                return reject(Reason::Overflow, "a conv's parameters or MACs");
            }
            let mut tensors = vec![("weight", vec![k, per_group, f[0], f[1]], param)];
            tensors.extend(bias.then(|| ("bias", vec![k], param)));
            let kind = LayerKind::Conv {
                k: k as usize,
                f: to_pair(f),
                s: to_pair(s),
                p: to_pair(p),
                d: to_pair(d),
                g: g as usize,
                bias,
            };
            (kind, [k, oh, ow], params, macs, tensors)
        }
        Layer::Pool {
            avg,
            f,
            s,
            p,
            floor,
        } => {
            let f = pair(*f, false)?;
            let s = s.map_or(Ok(f), |s| pair(s, false))?;
            let p = p.map_or(Ok([0, 0]), |p| pair(p, true))?;
            if p[0] > f[0] / 2 || p[1] > f[1] / 2 {
                return reject(Reason::PoolPadding, "pool padding over F/2");
            }
            let [oh, ow] = window(
                [axis(h, f[0], s[0], p[0], 1), axis(w, f[1], s[1], p[1], 1)],
                *floor,
            )?;
            let (f, s, p) = (to_pair(f), to_pair(s), to_pair(p));
            let kind = if *avg {
                LayerKind::AvgPool { f, s, p }
            } else {
                LayerKind::MaxPool { f, s, p }
            };
            (kind, [c, oh, ow], 0, 0, Vec::new())
        }
        Layer::GlobalAvgPool => (LayerKind::GlobalAvgPool, [c, 1, 1], 0, 0, Vec::new()),
        Layer::Bn(eps) => {
            let eps = match eps {
                None => Float::new(1e-5),
                Some(num) => float(num, Range::Positive)?,
            };
            let tensors = vec![
                ("weight", vec![c], param),
                ("bias", vec![c], param),
                ("running_mean", vec![c], TensorRole::Buffer),
                ("running_var", vec![c], TensorRole::Buffer),
                ("num_batches_tracked", Vec::new(), TensorRole::Counter),
            ];
            (LayerKind::BatchNorm { eps }, [c, h, w], 2 * c, 0, tensors)
        }
        Layer::Act(act) => {
            let act = match act {
                Act::Relu => Activation::Relu,
                Act::Relu6 => Activation::Relu6,
                Act::LeakyRelu(None) => Activation::LeakyRelu(Float::new(0.01)),
                Act::LeakyRelu(Some(slope)) => Activation::LeakyRelu(float(slope, Range::Finite)?),
                Act::Sigmoid => Activation::Sigmoid,
                Act::Tanh => Activation::Tanh,
                Act::Silu => Activation::Silu,
                Act::Gelu => Activation::Gelu,
                Act::HardSwish => Activation::HardSwish,
            };
            (LayerKind::Activation(act), [c, h, w], 0, 0, Vec::new())
        }
        Layer::Dropout(p) => {
            let p = float(p, Range::Probability)?;
            (LayerKind::Dropout { p }, [c, h, w], 0, 0, Vec::new())
        }
        Layer::Flatten => (LayerKind::Flatten, [c * h * w, 1, 1], 0, 0, Vec::new()),
        Layer::Fc(n) => {
            let n = number(*n, false)?;
            let inputs = c * h * w;
            let macs = inputs * n;
            if macs + n > USIZE_MAX || macs > U64_MAX {
                return reject(Reason::Overflow, "an fc's parameters or MACs");
            }
            let tensors = vec![("weight", vec![n, inputs], param), ("bias", vec![n], param)];
            (
                LayerKind::Fc { n: n as usize },
                [n, 1, 1],
                macs + n,
                macs,
                tensors,
            )
        }
        Layer::Softmax => (LayerKind::Softmax, [c, h, w], 0, 0, Vec::new()),
    };
    if product(&output) > MAX {
        return reject(Reason::Volume, format!("{layer} gives {output:?}"));
    }
    Ok(ExpLayer {
        path,
        kind,
        input: [c, h, w],
        output,
        params,
        macs,
        tensors,
    })
}

/// The oracle's walk over a network's entries, collecting its leaf layers
/// in execution order.
struct Walk {
    layers: Vec<ExpLayer>,
}

impl Walk {
    /// A sequence named under `prefix`, its names taken from `names` (a
    /// residual's MAIN and shortcut share one); its entries and output.
    fn sequence(
        &mut self,
        entries: &[Entry],
        prefix: &str,
        names: &mut Vec<String>,
        input: [u128; 3],
    ) -> Result<(Vec<ExpEntry>, [u128; 3]), Reject> {
        let mut volume = input;
        let mut out = Vec::new();
        for entry in entries {
            // An unnamed entry is named by its position, counting every
            // entry of the sequence from 0.
            let name = entry
                .label
                .clone()
                .unwrap_or_else(|| names.len().to_string());
            if names.contains(&name) {
                return reject(Reason::Name, format!("`{name}` twice in `{prefix}`"));
            }
            names.push(name.clone());
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            let (entry, output) = self.item(&entry.item, path, volume)?;
            out.push(entry);
            volume = output;
        }
        Ok((out, volume))
    }

    fn item(
        &mut self,
        item: &Item,
        path: String,
        input: [u128; 3],
    ) -> Result<(ExpEntry, [u128; 3]), Reject> {
        let first = self.layers.len();
        match item {
            Item::Layer(layer) => {
                let layer = expect_layer(layer, Some(path), input)?;
                let output = layer.output;
                self.layers.push(layer);
                Ok((ExpEntry::Layer(first), output))
            }
            Item::Group(entries) => {
                let (entries, output) = self.sequence(entries, &path, &mut Vec::new(), input)?;
                let (params, macs) = self.totals(first);
                let group = ExpEntry::Group {
                    path,
                    entries,
                    input,
                    output,
                    params,
                    macs,
                };
                Ok((group, output))
            }
            Item::Residual {
                act,
                main,
                shortcut,
            } => {
                let mut names = Vec::new();
                let (main, output) = self.sequence(main, &path, &mut names, input)?;
                let (shortcut, other) = match shortcut {
                    Some(entries) => {
                        let (entries, other) = self.sequence(entries, &path, &mut names, input)?;
                        (Some(entries), other)
                    }
                    None => (None, input),
                };
                if other != output {
                    let reason = Reason::Residual {
                        main: output,
                        other,
                    };
                    return reject(reason, format!("residual `{path}`"));
                }
                let act = match act {
                    Some(layer) => {
                        let layer = expect_layer(layer, None, output)?;
                        if !matches!(layer.kind, LayerKind::Activation(_)) {
                            return reject(
                                Reason::ResidualAct,
                                format!("residual({:?})", layer.kind),
                            );
                        }
                        self.layers.push(layer);
                        Some(self.layers.len() - 1)
                    }
                    None => None,
                };
                let (params, macs) = self.totals(first);
                let residual = ExpEntry::Residual {
                    path,
                    main,
                    shortcut,
                    act,
                    input,
                    output,
                    params,
                    macs,
                };
                Ok((residual, output))
            }
        }
    }

    fn totals(&self, first: usize) -> (u128, u128) {
        let layers = &self.layers[first..];
        (
            layers.iter().map(|l| l.params).sum(),
            layers.iter().map(|l| l.macs).sum(),
        )
    }
}

/// Whether the network must be accepted and, if so, what the library must
/// compute; the reason when it must be rejected.
fn oracle(net: &Net) -> Result<Expected, Reject> {
    let [c, h, w] = net.input;
    let input = [number(c, false)?, number(h, false)?, number(w, false)?];
    if product(&input) > MAX {
        return reject(Reason::Volume, "the input volume");
    }
    if net.body.is_empty() {
        return reject(Reason::Empty, "no entry after input");
    }
    let mut walk = Walk { layers: Vec::new() };
    let (body, output) = walk.sequence(&net.body, "", &mut Vec::new(), input)?;
    let layers = walk.layers;
    let params: u128 = layers.iter().map(|l| l.params).sum();
    let macs: u128 = layers.iter().map(|l| l.macs).sum();
    if params > USIZE_MAX || macs > U64_MAX {
        return reject(Reason::Overflow, "the total parameters or MACs");
    }
    let chain = !has_residual(&net.body);
    let arena = if chain {
        let arena = chain_arena(&layers, product(&input));
        (arena, arena)
    } else {
        arena_bounds(&layers, &body, product(&input), product(&output))
    };
    let expected = Expected {
        input,
        output,
        layers,
        body,
        params,
        macs,
        chain,
        arena,
    };
    if expected.fits() == Some(false) {
        return reject(Reason::Workspace, format!("a workspace of {arena:?}"));
    }
    Ok(expected)
}

fn has_residual(entries: &[Entry]) -> bool {
    entries.iter().any(|entry| match &entry.item {
        Item::Layer(_) => false,
        Item::Group(entries) => has_residual(entries),
        Item::Residual { .. } => true,
    })
}

/// How a layer uses the workspace.
enum Use {
    /// Writes a new volume: conv, pools, fc.
    Computes,
    /// Works in place (batch norm, activations, softmax), on a copy when
    /// its input is the caller's.
    InPlace,
    /// Nothing at inference: flatten, dropout.
    Nothing,
}

fn usage(kind: &LayerKind) -> Use {
    match kind {
        LayerKind::Conv { .. }
        | LayerKind::MaxPool { .. }
        | LayerKind::AvgPool { .. }
        | LayerKind::GlobalAvgPool
        | LayerKind::Fc { .. } => Use::Computes,
        LayerKind::BatchNorm { .. } | LayerKind::Activation(_) | LayerKind::Softmax => Use::InPlace,
        LayerKind::Dropout { .. } | LayerKind::Flatten => Use::Nothing,
    }
}

/// Workspace blocks are whole cache lines: 16 f32s.
fn align(len: u128) -> u128 {
    len.div_ceil(16) * 16
}

/// The workspace of a chain (the plan's documented policy: every volume
/// but the caller's input and output in one arena, first fit, while it is
/// live, in blocks of 16 values). In a chain each new volume is written
/// while only the one before it is live: it goes first, below that one,
/// when it fits there, else right after it.
fn chain_arena(layers: &[ExpLayer], input_len: u128) -> u128 {
    let mut values = Vec::new();
    let mut on_input = true;
    for layer in layers {
        match usage(&layer.kind) {
            Use::Computes => values.push(product(&layer.output)),
            Use::InPlace if on_input => values.push(product(&layer.input)),
            Use::InPlace | Use::Nothing => continue,
        }
        on_input = false;
    }
    if on_input {
        // The output is the input, copied.
        values.push(input_len);
    }
    // The last volume is the caller's output.
    values.pop();
    let (mut arena, mut before) = (0, None);
    for len in values {
        let len = align(len);
        let at = match before {
            Some((offset, size)) if len > offset => offset + size,
            _ => 0,
        };
        arena = arena.max(at + len);
        before = Some((at, len));
    }
    arena
}

/// Bounds on the workspace of a network with residual blocks. Every
/// volume a conv, pool or fc writes is in the workspace but the one that
/// is the caller's output (of the output's length), so the workspace holds
/// the largest of the others. At most, it holds every volume that may be
/// written at once: those, a copy for every in-place layer and every add,
/// and a copy of the input.
fn arena_bounds(
    layers: &[ExpLayer],
    body: &[ExpEntry],
    input_len: u128,
    output_len: u128,
) -> (u128, u128) {
    fn residual_lens(entries: &[ExpEntry], out: &mut Vec<u128>) {
        for entry in entries {
            match entry {
                ExpEntry::Layer(_) => {}
                ExpEntry::Group { entries, .. } => residual_lens(entries, out),
                ExpEntry::Residual {
                    main,
                    shortcut,
                    output,
                    ..
                } => {
                    out.push(product(output));
                    residual_lens(main, out);
                    residual_lens(shortcut.as_deref().unwrap_or_default(), out);
                }
            }
        }
    }
    let mut computed: Vec<u128> = Vec::new();
    let mut high = align(input_len);
    for layer in layers {
        match usage(&layer.kind) {
            Use::Computes => computed.push(product(&layer.output)),
            Use::InPlace => high += align(product(&layer.input)),
            Use::Nothing => {}
        }
    }
    let mut adds = Vec::new();
    residual_lens(body, &mut adds);
    high += adds.into_iter().map(align).sum::<u128>();
    high += computed.iter().map(|&len| align(len)).sum::<u128>();
    if let Some(last) = computed.iter().position(|&len| len == output_len) {
        computed.remove(last);
    }
    let low = computed.into_iter().map(align).max().unwrap_or(0);
    (low, high)
}

// Checking the library against the oracle.

fn dims(volume: Volume) -> [u128; 3] {
    volume.dims().map(|d| d as u128)
}

fn volume_text([c, h, w]: [u128; 3]) -> String {
    format!("{c}×{h}×{w}")
}

/// Parses the network's text and checks the library against the oracle;
/// returns the network when it was accepted.
fn agree(net: &Net) -> Result<Option<Network>, TestCaseError> {
    let src = net.to_string();
    let result = parse_networks(&src);
    let expected = oracle(net);
    match (result, expected) {
        (Ok(mut networks), Ok(expected)) => {
            prop_assert_eq!(networks.len(), 1, "{}", src);
            check_accepted(&src, &networks[0], &expected)?;
            Ok(networks.pop())
        }
        (Err(errors), Err(reject)) => {
            check_rejected(&src, errors, &reject)?;
            Ok(None)
        }
        // A workspace that straddles the limit: either verdict is right,
        // and a rejection is for that alone.
        (Err(errors), Ok(expected)) if expected.fits().is_none() => {
            let messages: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
            prop_assert_eq!(messages.len(), 1, "{}\n{:?}", src, messages);
            Ok(None)
        }
        (result, expected) => Err(TestCaseError::fail(format!(
            "{src}\nlibrary: {:?}\noracle: {:?}",
            result.map(|_| ()).map_err(|e| e.to_string()),
            expected.map(|_| ()),
        ))),
    }
}

/// A rejected network's messages: never empty, and those the contract
/// describes say what it asks.
fn check_rejected(src: &str, errors: syn::Error, reject: &Reject) -> Result<(), TestCaseError> {
    let messages: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
    prop_assert!(!messages.is_empty(), "{}", src);
    for message in &messages {
        prop_assert!(!message.is_empty(), "{}", src);
    }
    let any = |pred: &dyn Fn(&str) -> bool| messages.iter().any(|m| pred(m));
    match &reject.reason {
        Reason::Misfit { h, w } => {
            let size = format!("{h}×{w}");
            prop_assert!(
                any(&|m: &str| m.contains("`floor`") && m.contains(&size)),
                "{}\n{}: no message names `floor` and {}: {:?}",
                src,
                reject.detail,
                size,
                messages
            );
        }
        Reason::Residual { main, other } => {
            let (main, other) = (volume_text(*main), volume_text(*other));
            prop_assert!(
                any(&|m: &str| m.contains(&main) && m.contains(&other)),
                "{}\n{}: no message shows {} and {}: {:?}",
                src,
                reject.detail,
                main,
                other,
                messages
            );
        }
        _ => {}
    }
    Ok(())
}

/// An accepted network against the oracle's expectations; planning and
/// rendering it must not panic.
fn check_accepted(src: &str, network: &Network, expected: &Expected) -> Result<(), TestCaseError> {
    prop_assert_eq!(dims(network.input), expected.input, "{}", src);
    prop_assert_eq!(dims(network.output()), expected.output, "{}", src);
    prop_assert_eq!(network.layers.len(), expected.layers.len(), "{}", src);
    for (i, (layer, exp)) in network.layers.iter().zip(&expected.layers).enumerate() {
        prop_assert_eq!(layer.index, i, "{}", src);
        if let Some(path) = &exp.path {
            prop_assert_eq!(&layer.path, path, "{}", src);
        }
        prop_assert_eq!(layer.kind, exp.kind, "{}: {}", src, layer.path);
        prop_assert_eq!(dims(layer.input), exp.input, "{}: {}", src, layer.path);
        prop_assert_eq!(dims(layer.output), exp.output, "{}: {}", src, layer.path);
        prop_assert_eq!(layer.params as u128, exp.params, "{}: {}", src, layer.path);
        prop_assert_eq!(u128::from(layer.macs), exp.macs, "{}: {}", src, layer.path);
        let tensors: Vec<Tensor> = layer
            .tensors()
            .into_iter()
            .map(|t| (t.name, t.shape.iter().map(|&d| d as u128).collect(), t.role))
            .collect();
        prop_assert_eq!(&tensors, &exp.tensors, "{}: {}", src, layer.path);
    }
    prop_assert_eq!(network.params as u128, expected.params, "{}", src);
    prop_assert_eq!(u128::from(network.macs), expected.macs, "{}", src);
    prop_assert_eq!(network.is_chain(), expected.chain, "{}", src);
    structure(src, network, &network.body, &expected.body)?;
    // Every tensor has its own name.
    let mut names = HashSet::new();
    for layer in &network.layers {
        for tensor in layer.tensors() {
            let name = format!("{}.{}", layer.path, tensor.name);
            prop_assert!(names.insert(name.clone()), "{}: {} twice", src, name);
        }
    }
    let arena = plan::plan(network).arena_len as u128;
    let (low, high) = expected.arena;
    prop_assert!(
        (low..=high).contains(&arena) && arena <= MAX,
        "{}: a workspace of {} outside {}..={}",
        src,
        arena,
        low,
        high
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

/// The library's structure (groups, residual blocks, their paths, volumes
/// and totals) against the oracle's.
fn structure(
    src: &str,
    network: &Network,
    got: &[model::Entry],
    expected: &[ExpEntry],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), expected.len(), "{}", src);
    for (got, expected) in got.iter().zip(expected) {
        match (got, expected) {
            (model::Entry::Layer(i), ExpEntry::Layer(j)) => prop_assert_eq!(i, j, "{}", src),
            (
                model::Entry::Group(block),
                ExpEntry::Group {
                    path,
                    entries,
                    input,
                    output,
                    params,
                    macs,
                },
            ) => {
                prop_assert_eq!(&block.path, path, "{}", src);
                prop_assert_eq!(dims(block.input), *input, "{}: {}", src, path);
                prop_assert_eq!(dims(block.output), *output, "{}: {}", src, path);
                prop_assert_eq!(block.params as u128, *params, "{}: {}", src, path);
                prop_assert_eq!(u128::from(block.macs), *macs, "{}: {}", src, path);
                structure(src, network, &block.entries, entries)?;
            }
            (
                model::Entry::Residual(residual),
                ExpEntry::Residual {
                    path,
                    main,
                    shortcut,
                    act,
                    input,
                    output,
                    params,
                    macs,
                },
            ) => {
                prop_assert_eq!(&residual.path, path, "{}", src);
                prop_assert_eq!(dims(residual.input), *input, "{}: {}", src, path);
                prop_assert_eq!(dims(residual.output), *output, "{}: {}", src, path);
                prop_assert_eq!(residual.params as u128, *params, "{}: {}", src, path);
                prop_assert_eq!(u128::from(residual.macs), *macs, "{}: {}", src, path);
                prop_assert_eq!(residual.act, *act, "{}: {}", src, path);
                if let Some(act) = act {
                    let inside = format!("{path}.");
                    prop_assert!(
                        network.layers[*act].path.starts_with(&inside),
                        "{}: the activation of {} is named {}",
                        src,
                        path,
                        network.layers[*act].path
                    );
                }
                structure(src, network, &residual.main, main)?;
                match (&residual.shortcut, shortcut) {
                    (Some(got), Some(expected)) => structure(src, network, got, expected)?,
                    (None, None) => {}
                    _ => prop_assert!(false, "{}: the shortcut of {}", src, path),
                }
            }
            _ => prop_assert!(false, "{}: {:?} where {:?} is expected", src, got, expected),
        }
    }
    Ok(())
}

/// An accepted network of any origin is consistent: every layer appears
/// once in its structure, in execution order (MAIN, shortcut, then the
/// block's activation), volumes chain along it, the totals add up and it
/// plans within the limit.
fn check_consistent(src: &str, network: &Network) -> Result<(), TestCaseError> {
    fn walk(
        src: &str,
        network: &Network,
        entries: &[model::Entry],
        input: Volume,
        next: &mut usize,
    ) -> Result<Volume, TestCaseError> {
        let mut volume = input;
        for entry in entries {
            volume = match entry {
                model::Entry::Layer(i) => {
                    prop_assert_eq!(*i, *next, "{}", src);
                    *next += 1;
                    let layer = &network.layers[*i];
                    prop_assert_eq!(layer.input, volume, "{}: {}", src, layer.path);
                    layer.output
                }
                model::Entry::Group(block) => {
                    prop_assert_eq!(block.input, volume, "{}: {}", src, block.path);
                    let output = walk(src, network, &block.entries, volume, next)?;
                    prop_assert_eq!(block.output, output, "{}: {}", src, block.path);
                    output
                }
                model::Entry::Residual(residual) => {
                    prop_assert_eq!(residual.input, volume, "{}: {}", src, residual.path);
                    let main = walk(src, network, &residual.main, volume, next)?;
                    let other = match &residual.shortcut {
                        Some(entries) => walk(src, network, entries, volume, next)?,
                        None => volume,
                    };
                    prop_assert_eq!(main, other, "{}: {}", src, residual.path);
                    if let Some(act) = residual.act {
                        prop_assert_eq!(act, *next, "{}", src);
                        *next += 1;
                        prop_assert_eq!(network.layers[act].input, main, "{}", src);
                        prop_assert_eq!(network.layers[act].output, main, "{}", src);
                    }
                    prop_assert_eq!(residual.output, main, "{}: {}", src, residual.path);
                    main
                }
            };
        }
        Ok(volume)
    }
    let mut next = 0;
    let output = walk(src, network, &network.body, network.input, &mut next)?;
    prop_assert_eq!(next, network.layers.len(), "{}", src);
    prop_assert_eq!(output, network.output(), "{}", src);
    let params = network
        .layers
        .iter()
        .map(|l| l.params as u128)
        .sum::<u128>();
    let macs = network
        .layers
        .iter()
        .map(|l| u128::from(l.macs))
        .sum::<u128>();
    prop_assert_eq!(params, network.params as u128, "{}", src);
    prop_assert_eq!(macs, u128::from(network.macs), "{}", src);
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
            "global_avgpool",
            "bn",
            "relu",
            "relu6",
            "leaky_relu",
            "sigmoid",
            "tanh",
            "silu",
            "gelu",
            "hardswish",
            "dropout",
            "flatten",
            "fc",
            "softmax",
            "residual",
            "shortcut",
            "floor",
            "covn",
            "same",
            "true",
            "false",
            "s",
            "p",
            "d",
            "g",
            "bias",
            "eps",
            "x",
            "layer1",
            "struct",
            "pub",
            "N",
            "é",
            "#[doc = \"d\"]",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            ",", "=", ";", ":", "::", "-", "(", ")", "{", "}", "[", "]", "."
        ])
        .prop_map(str::to_string),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..40).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "2.5",
            "0.5",
            "-0.1",
            "1e-5",
            "1e400",
            "1.0f32",
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
        if ch.is_whitespace() || "(),=:{}".contains(ch) {
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

/// Float literals: in and out of every range (`1e-50` is 0 in f32, `1e40`
/// infinite), with signs, exponents and underscores.
fn float_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0.5", "0.0", "-0.0", "1e-5", "1e-3", "0.01", "0.1", "-0.25", "0.999", "1.0", "2.5",
            "-1.5", "0.99999999", "1e-50", "-1e-3", "1e40", "1e400", "0.000_01", "1E-5", "6.0",
        ])
        .prop_map(str::to_string),
        1 => (any::<i16>(), 0u8..100, -45i8..45).prop_map(|(m, frac, e)| format!("{m}.{frac}e{e}")),
    ]
}

/// A float argument: mostly a float literal, sometimes an integer.
fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        6 => float_text().prop_map(Num::Float),
        1 => (0u64..3).prop_map(Num::Int),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => prop::sample::select(vec![
            Act::Relu,
            Act::Relu6,
            Act::Sigmoid,
            Act::Tanh,
            Act::Silu,
            Act::Gelu,
            Act::HardSwish,
        ]),
        1 => prop::option::of(num()).prop_map(Act::LeakyRelu),
    ]
}

/// `conv`'s named arguments, each maybe, in any order; one repeated now
/// and then. Dilations are drawn from `dilation`.
fn opts(size: BoxedStrategy<u64>, dilation: BoxedStrategy<u64>) -> impl Strategy<Value = Vec<Opt>> {
    let pad = prop_oneof![3 => arg(size.clone()).prop_map(Pad::Size), 1 => Just(Pad::Same)];
    let groups = prop_oneof![1 => 1u64..5, 1 => size.clone()];
    (
        prop::option::of(arg(size)),
        prop::option::of(pad),
        prop::option::weighted(0.3, arg(dilation)),
        prop::option::weighted(0.4, groups),
        prop::option::of(any::<bool>()),
        0..10u8,
    )
        .prop_flat_map(|(s, p, d, g, bias, repeat)| {
            let mut opts: Vec<Opt> = [
                s.map(Opt::S),
                p.map(Opt::P),
                d.map(Opt::D),
                g.map(Opt::G),
                bias.map(Opt::Bias),
            ]
            .into_iter()
            .flatten()
            .collect();
            if repeat == 0 {
                opts.extend(opts.first().cloned());
            }
            Just(opts).prop_shuffle()
        })
}

/// A layer with plausible syntax and numbers drawn from `size`.
fn layer(size: BoxedStrategy<u64>, dilation: BoxedStrategy<u64>) -> BoxedStrategy<Layer> {
    let arg = || arg(size.clone());
    let floor = || prop::bool::weighted(0.3);
    prop_oneof![
        4 => (arg(), arg(), opts(size.clone(), dilation), floor())
            .prop_map(|(k, f, opts, floor)| Layer::Conv { k, f, opts, floor }),
        3 => (
            any::<bool>(),
            arg(),
            prop::option::of(arg()),
            prop::option::weighted(0.3, arg()),
            floor(),
        )
            .prop_map(|(avg, f, s, p, floor)| Layer::Pool { avg, f, s, p, floor }),
        1 => Just(Layer::GlobalAvgPool),
        2 => prop::option::of(num()).prop_map(Layer::Bn),
        3 => act().prop_map(Layer::Act),
        1 => num().prop_map(Layer::Dropout),
        1 => Just(Layer::Flatten),
        1 => size.clone().prop_map(Layer::Fc),
        1 => Just(Layer::Softmax),
    ]
    .boxed()
}

/// A residual's activation: none, an activation, or now and then a layer
/// that is not one.
fn residual_act() -> impl Strategy<Value = Option<Layer>> {
    prop_oneof![
        2 => Just(None),
        3 => act().prop_map(|act| Some(Layer::Act(act))),
        1 => prop::sample::select(vec![
            Layer::Bn(None),
            Layer::Softmax,
            Layer::Dropout(Num::Float("0.5".to_string())),
            Layer::Flatten,
            Layer::GlobalAvgPool,
        ])
        .prop_map(Some),
    ]
}

/// Names: mostly none; identifiers and integers, some of them the names
/// unnamed entries get by position.
fn label() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(vec![
            "conv1", "bn1", "relu", "downsample", "layer1", "fc", "a", "b", "0", "1", "2", "3", "01",
        ])
        .prop_map(|name| Some(name.to_string())),
    ]
}

fn entries(item: BoxedStrategy<Item>, len: std::ops::Range<usize>) -> BoxedStrategy<Vec<Entry>> {
    prop::collection::vec((label(), item), len)
        .prop_map(|entries| {
            entries
                .into_iter()
                .map(|(label, item)| Entry { label, item })
                .collect()
        })
        .boxed()
}

/// Sequences of `len` entries: layers, and groups and residual blocks of
/// up to four entries, nested up to three deep.
fn body(layer: BoxedStrategy<Layer>, len: std::ops::Range<usize>) -> BoxedStrategy<Vec<Entry>> {
    let item = layer
        .prop_map(Item::Layer)
        .prop_recursive(3, 16, 4, |inner| {
            let inner = entries(inner, 0..4);
            prop_oneof![
                1 => inner.clone().prop_map(Item::Group),
                2 => (residual_act(), inner.clone(), prop::option::of(inner)).prop_map(
                    |(act, main, shortcut)| Item::Residual { act, main, shortcut }
                ),
            ]
        })
        .boxed();
    entries(item, len)
}

/// A random input and up to six entries: random ones, most networks
/// rejected, or small ones made to fit, most networks accepted.
fn network() -> impl Strategy<Value = Net> {
    let random = ([dim(), dim(), dim()], body(layer(size(), size()), 0..7))
        .prop_map(|(input, body)| Net { input, body });
    let small = || (1u64..6).boxed();
    let fitted = (
        [1u64..24, 1u64..24, 1u64..24],
        body(layer(small(), (1u64..3).boxed()), 1..7),
        lax(),
    )
        .prop_map(|(input, body, lax)| fit(input, body, lax));
    prop_oneof![random, fitted]
}

/// The rules [`fit`] leaves alone, each now and then, so that networks
/// fail for that alone.
#[derive(Debug, Clone, Copy)]
struct Lax {
    names: bool,
    args: bool,
    groups: bool,
    residual: bool,
    pool_padding: bool,
    stride: bool,
}

fn lax() -> impl Strategy<Value = Lax> {
    prop::array::uniform6(prop::bool::weighted(0.06)).prop_map(
        |[names, args, groups, residual, pool_padding, stride]| Lax {
            names,
            args,
            groups,
            residual,
            pool_padding,
            stride,
        },
    )
}

/// Makes a network of small layers fit, rule by rule but for those `lax`
/// leaves: names unique (a fresh one for a duplicate), floats in range and
/// named arguments once, K a number, groups dividing C and K, windows at
/// most the padded length, strides dividing the span unless `floor`, pool
/// padding at most half the window, `same` with an odd filter and stride
/// 1, residual activations element-wise, and a shortcut convolution where
/// MAIN's volume is not the shortcut's.
fn fit(input: [u64; 3], mut body: Vec<Entry>, lax: Lax) -> Net {
    fit_entries(&mut body, input, &mut Vec::new(), lax);
    Net { input, body }
}

fn axes(arg: Arg) -> [u64; 2] {
    match arg {
        Arg::One(n) => [n; 2],
        Arg::Two(h, w) => [h, w],
    }
}

/// A pair when the argument was one or the axes differ.
fn like(arg: Arg, [h, w]: [u64; 2]) -> Arg {
    match arg {
        Arg::One(_) if h == w => Arg::One(h),
        _ => Arg::Two(h, w),
    }
}

fn fit_entries(
    entries: &mut [Entry],
    mut volume: [u64; 3],
    names: &mut Vec<String>,
    lax: Lax,
) -> [u64; 3] {
    for entry in entries {
        fit_name(&mut entry.label, names, lax);
        volume = fit_item(&mut entry.item, volume, lax);
    }
    volume
}

fn fit_name(label: &mut Option<String>, names: &mut Vec<String>, lax: Lax) {
    let position = names.len();
    let mut name = label.clone().unwrap_or_else(|| position.to_string());
    if names.contains(&name) && !lax.names {
        name = format!("x{position}");
        *label = Some(name.clone());
    }
    names.push(name);
}

fn fit_item(item: &mut Item, volume: [u64; 3], lax: Lax) -> [u64; 3] {
    match item {
        Item::Layer(layer) => fit_layer(layer, volume, lax),
        Item::Group(entries) => fit_entries(entries, volume, &mut Vec::new(), lax),
        Item::Residual {
            act,
            main,
            shortcut,
        } => {
            let mut names = Vec::new();
            let output = fit_entries(main, volume, &mut names, lax);
            let other = match shortcut {
                Some(entries) => fit_entries(entries, volume, &mut names, lax),
                None => volume,
            };
            if other != output && !lax.residual {
                let mut entry = Entry {
                    label: None,
                    item: Item::Layer(reshape(other, output)),
                };
                fit_name(&mut entry.label, &mut names, lax);
                shortcut.get_or_insert_with(Vec::new).push(entry);
            }
            if let Some(layer) = act {
                if !matches!(layer, Layer::Act(_)) && !lax.residual {
                    *layer = Layer::Act(Act::Relu);
                }
                fit_layer(layer, output, lax);
            }
            output
        }
    }
}

/// A convolution from `[c, h, w]` to `[k, h2, w2]`: stride 1, the filter
/// and padding that give the size.
fn reshape([_, h, w]: [u64; 3], [k, h2, w2]: [u64; 3]) -> Layer {
    let p = [
        h2.saturating_sub(h).div_ceil(2),
        w2.saturating_sub(w).div_ceil(2),
    ];
    let f = [h + 2 * p[0] + 1 - h2, w + 2 * p[1] + 1 - w2];
    let mut opts = Vec::new();
    if p != [0, 0] {
        opts.push(Opt::P(Pad::Size(like(Arg::One(0), p))));
    }
    Layer::Conv {
        k: Arg::One(k),
        f: like(Arg::One(0), f),
        opts,
        floor: false,
    }
}

/// One axis of a window: the largest filter up to `f` whose extent fits
/// the padded length, and unless `any_stride`, the largest stride up to
/// `s` that divides the span; the output length, rounded down.
fn fit_axis(len: u64, f: u64, s: u64, p: u64, d: u64, any_stride: bool) -> (u64, u64, u64) {
    let padded = len + 2 * p;
    let f = f.min((padded - 1) / d + 1);
    let span = padded - (d * (f - 1) + 1);
    let s = if any_stride {
        s
    } else {
        (1..=s).rev().find(|&t| span.is_multiple_of(t)).unwrap_or(1)
    };
    (f, s, span / s + 1)
}

fn fit_num(num: &mut Num, range: Range, lax: Lax) {
    if !lax.args && !float_ok(num, range) {
        *num = Num::Float("0.5".to_string());
    }
}

fn fit_layer(layer: &mut Layer, [c, h, w]: [u64; 3], lax: Lax) -> [u64; 3] {
    match layer {
        Layer::Conv { k, f, opts, floor } => {
            if !lax.args {
                let mut seen = Vec::new();
                opts.retain(|o| {
                    let fresh = !seen.contains(&o.name());
                    seen.push(o.name());
                    fresh
                });
            }
            let mut filters = axes(*k)[0];
            for opt in opts.iter_mut() {
                if let Opt::G(g) = opt {
                    if !lax.groups {
                        *g = (1..=*g).rev().find(|t| c.is_multiple_of(*t)).unwrap_or(1);
                        filters = filters.div_ceil(*g) * *g;
                    }
                }
            }
            *k = Arg::One(filters);
            let find = |name| opts.iter().find(|o| o.name() == name).cloned();
            let d = match find("d") {
                Some(Opt::D(d)) => axes(d),
                _ => [1, 1],
            };
            let [fh, fw] = axes(*f);
            if let Some(Opt::P(Pad::Same)) = find("p") {
                // D·(F − 1) even, stride 1: the output is the input.
                let odd = |f: u64, d: u64| {
                    if d % 2 == 1 && f.is_multiple_of(2) {
                        f - 1
                    } else {
                        f
                    }
                };
                *f = like(*f, [odd(fh, d[0]), odd(fw, d[1])]);
                for opt in opts.iter_mut() {
                    if let Opt::S(s) = opt {
                        *s = like(*s, [1, 1]);
                    }
                }
                return [filters, h, w];
            }
            let p = match find("p") {
                Some(Opt::P(Pad::Size(p))) => axes(p),
                _ => [0, 0],
            };
            let s = match find("s") {
                Some(Opt::S(s)) => axes(s),
                _ => [1, 1],
            };
            let any_stride = *floor || lax.stride;
            let (fh, sh, oh) = fit_axis(h, fh, s[0], p[0], d[0], any_stride);
            let (fw, sw, ow) = fit_axis(w, fw, s[1], p[1], d[1], any_stride);
            *f = like(*f, [fh, fw]);
            for opt in opts.iter_mut() {
                if let Opt::S(s) = opt {
                    *s = like(*s, [sh, sw]);
                }
            }
            [filters, oh, ow]
        }
        Layer::Pool { f, s, p, floor, .. } => {
            let [mut fh, mut fw] = axes(*f);
            let [mut ph, mut pw] = p.map_or([0, 0], axes);
            if !lax.pool_padding {
                (ph, pw) = (ph.min(fh / 2), pw.min(fw / 2));
            }
            (fh, fw) = (fh.min(h + 2 * ph), fw.min(w + 2 * pw));
            let [sh, sw] = s.map_or([fh, fw], axes);
            let any_stride = *floor || lax.stride;
            let (fh, sh, oh) = fit_axis(h, fh, sh, ph, 1, any_stride);
            let (fw, sw, ow) = fit_axis(w, fw, sw, pw, 1, any_stride);
            *f = like(*f, [fh, fw]);
            *p = p.map(|p| like(p, [ph, pw]));
            if s.is_some() || [sh, sw] != [fh, fw] {
                *s = Some(like(s.unwrap_or(*f), [sh, sw]));
            }
            [c, oh, ow]
        }
        Layer::GlobalAvgPool => [c, 1, 1],
        Layer::Bn(eps) => {
            if let Some(eps) = eps {
                fit_num(eps, Range::Positive, lax);
            }
            [c, h, w]
        }
        Layer::Act(Act::LeakyRelu(Some(slope))) => {
            fit_num(slope, Range::Finite, lax);
            [c, h, w]
        }
        Layer::Dropout(p) => {
            fit_num(p, Range::Probability, lax);
            [c, h, w]
        }
        Layer::Fc(n) => [*n, 1, 1],
        Layer::Flatten => [c * h * w, 1, 1],
        Layer::Act(_) | Layer::Softmax => [c, h, w],
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

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn unnamed(item: Item) -> Entry {
    Entry { label: None, item }
}

fn leaf(layer: Layer) -> Entry {
    unnamed(Item::Layer(layer))
}

fn relu() -> Layer {
    Layer::Act(Act::Relu)
}

/// `pool(f, s)` or `avgpool(f, s)`.
fn pool(avg: bool, f: u64, s: Option<u64>) -> Layer {
    Layer::Pool {
        avg,
        f: Arg::One(f),
        s: s.map(Arg::One),
        p: None,
        floor: false,
    }
}

/// A conv, pool or avgpool that fits its input (or, without `floor`, has a
/// stride that may not divide), with sizes and paddings up to 2^40, strides
/// up to 2^64 − 1, dilations and groups, inputs and outputs up to the
/// largest volume and beyond; maybe an in-place layer before it (a copy of
/// the input in the workspace) and up to two entries after it.
fn large_window_network() -> impl Strategy<Value = Net> {
    let free = prop_oneof![huge(), (32u32..64).prop_map(|e| 1u64 << e), any::<u64>()];
    let head = prop::sample::select(vec![
        None,
        Some(relu()),
        Some(Layer::Bn(None)),
        Some(pool(true, 1, None)),
    ]);
    let tail = prop::collection::vec(
        prop::sample::select(vec![
            Item::Layer(relu()),
            Item::Layer(Layer::Bn(None)),
            Item::Layer(Layer::Fc(3)),
            Item::Layer(pool(false, 1, Some(7))),
            Item::Layer(pool(true, 1, None)),
            Item::Layer(Layer::GlobalAvgPool),
            Item::Residual {
                act: Some(relu()),
                main: vec![leaf(relu())],
                shortcut: None,
            },
            Item::Residual {
                act: None,
                main: vec![],
                shortcut: Some(vec![leaf(Layer::Bn(None))]),
            },
        ]),
        0..3,
    );
    // Volumes at the limits of the input (MAX_VOLUME) and of two volumes
    // in the workspace at once (MAX_VOLUME / 2).
    let fill = prop::sample::select(vec![MAX / 2, MAX / 2 + 1, MAX, MAX + 1]);
    // Filters up to 2^63: outputs at the limit too.
    let k = prop_oneof![3 => huge(), 1 => (56u32..64).prop_map(|e| 1u64 << e)];
    (
        ([huge(), huge(), huge()], k),
        [huge(), huge(), huge(), huge()],
        (1u64..4, 1u64..4, free),
        (0..3u8, head, tail, prop::option::of(fill)),
        (
            prop_oneof![3 => Just(1u64), 1 => 2u64..4],
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                ([c, h, w], k),
                [fh, fw, ph, pw],
                (oh, ow, free),
                (kind, head, tail, fill),
                (d, floor, grouped),
            )| {
                // C such that the input's volume is at most `fill`, when given.
                let c = fill.map_or(c, |fill| {
                    (fill / (u128::from(h) * u128::from(w))).max(1) as u64
                });
                // The stride that gives about `out` outputs, and any stride
                // when the filter covers the padded input.
                let stride =
                    |span: u64, out: u64| if span == 0 { free } else { (span / out).max(1) };
                let window = if kind == 0 {
                    let fit = |len: u64, f: u64, p: u64| f.min((len + 2 * p - 1) / d + 1);
                    let (fh, fw) = (fit(h, fh, ph), fit(w, fw, pw));
                    let span = |len: u64, f: u64, p: u64| len + 2 * p - (d * (f - 1) + 1);
                    let (sh, sw) = (stride(span(h, fh, ph), oh), stride(span(w, fw, pw), ow));
                    let mut opts = vec![
                        Opt::S(Arg::Two(sh, sw)),
                        Opt::P(Pad::Size(Arg::Two(ph, pw))),
                    ];
                    if d > 1 {
                        opts.push(Opt::D(Arg::One(d)));
                    }
                    if grouped {
                        opts.push(Opt::G(gcd(c, k)));
                        opts.push(Opt::Bias(false));
                    }
                    Layer::Conv {
                        k: Arg::One(k),
                        f: Arg::Two(fh, fw),
                        opts,
                        floor,
                    }
                } else {
                    // Padding up to half the window, which fits the input.
                    let (fh, fw) = (fh.min(h), fw.min(w));
                    let (ph, pw) = if grouped { (fh / 2, fw / 2) } else { (0, 0) };
                    let (sh, sw) = (stride(h + 2 * ph - fh, oh), stride(w + 2 * pw - fw, ow));
                    Layer::Pool {
                        avg: kind == 2,
                        f: Arg::Two(fh, fw),
                        s: Some(Arg::Two(sh, sw)),
                        p: grouped.then_some(Arg::Two(ph, pw)),
                        floor,
                    }
                };
                let mut body: Vec<Entry> = head.into_iter().map(leaf).collect();
                body.push(leaf(window));
                body.extend(tail.into_iter().map(unnamed));
                Net {
                    input: [c, h, w],
                    body,
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
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn random_tokens_give_consistent_networks_or_located_errors(
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
                    check_consistent(&src, network)?;
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
    fn random_networks_never_panic_and_agree(net in network()) {
        if let Some(network) = agree(&net)? {
            check_consistent(&net.to_string(), &network)?;
        }
    }

    #[test]
    fn small_valid_networks_are_accepted_when_the_arithmetic_fits(
        c in 1u64..4, h in 1u64..20, w in 1u64..20,
        k in 1u64..5, f in 1u64..6, s in 1u64..4, p in 0u64..3, d in 1u64..3,
        floor in any::<bool>(),
    ) {
        let net = Net {
            input: [c, h, w],
            body: vec![
                leaf(Layer::Conv {
                    k: Arg::One(k),
                    f: Arg::One(f),
                    opts: vec![
                        Opt::S(Arg::One(s)),
                        Opt::P(Pad::Size(Arg::One(p))),
                        Opt::D(Arg::One(d)),
                    ],
                    floor,
                }),
                leaf(relu()),
            ],
        };
        // The oracle against the formula, the library against the oracle.
        let extent = d * (f - 1) + 1;
        let fits = |len: u64| {
            len + 2 * p >= extent && (floor || (len + 2 * p - extent).is_multiple_of(s))
        };
        prop_assert_eq!(agree(&net)?.is_some(), fits(h) && fits(w), "{}", net);
    }

    /// The arithmetic of a network whose layers fit but whose sizes reach
    /// the limits of usize, u64 and MAX_VOLUME.
    #[test]
    fn large_fitting_windows_never_panic(net in large_window_network()) {
        agree(&net)?;
    }
}

/// A chain from `input` through `layers`.
fn chain(input: [u64; 3], layers: Vec<Layer>) -> Net {
    Net {
        input,
        body: layers.into_iter().map(leaf).collect(),
    }
}

fn named(label: &str, item: Item) -> Entry {
    Entry {
        label: Some(label.to_string()),
        item,
    }
}

/// `conv(k, f, opts…)`.
fn conv(k: u64, f: u64, opts: Vec<Opt>) -> Layer {
    Layer::Conv {
        k: Arg::One(k),
        f: Arg::One(f),
        opts,
        floor: false,
    }
}

fn floored(mut layer: Layer) -> Layer {
    if let Layer::Conv { floor, .. } | Layer::Pool { floor, .. } = &mut layer {
        *floor = true;
    }
    layer
}

fn s(n: u64) -> Opt {
    Opt::S(Arg::One(n))
}

fn p(n: u64) -> Opt {
    Opt::P(Pad::Size(Arg::One(n)))
}

/// Checks a network against the oracle and pins the verdict.
fn pinned(net: &Net, accepted: bool) -> Option<Network> {
    let network = agree(net).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(network.is_some(), accepted, "{net}");
    network
}

/// Networks at the limits, with the oracle's verdict pinned.
#[test]
fn edge_cases_agree() {
    let big = 1u64 << 30;
    let huge_conv = Layer::Conv {
        k: Arg::One(1),
        f: Arg::Two((1 << 32) + 1, (1 << 31) + 1),
        opts: vec![Opt::P(Pad::Size(Arg::Two(1 << 31, 1 << 30)))],
        floor: false,
    };
    let cases = [
        // 2^60 values: one copy of the input fits the workspace, two
        // volumes of 2^60 live at once do not, two of 2^60 − 2^30 do.
        (chain([1, big, big], vec![relu(), Layer::Fc(1)]), true),
        (
            chain(
                [1, big, big],
                vec![conv(1, 1, vec![]), pool(true, 1, None), Layer::Fc(1)],
            ),
            false,
        ),
        (
            chain(
                [1, big - 1, big],
                vec![conv(1, 1, vec![]), pool(true, 1, None), Layer::Fc(1)],
            ),
            true,
        ),
        (
            chain([1, big, big], vec![Layer::Flatten, Layer::Fc(1)]),
            true,
        ),
        // MAX_VOLUME = 2^61 − 1 values fit, but not a copy of them in
        // whole cache lines (2^61 values).
        (chain([MAX_VOLUME as u64, 1, 1], vec![Layer::Fc(1)]), true),
        (
            chain([MAX_VOLUME as u64, 1, 1], vec![relu(), Layer::Fc(1)]),
            false,
        ),
        (chain([1 << 61, 1, 1], vec![Layer::Fc(1)]), false),
        // Any stride divides a zero span (the case in the regressions file).
        (
            chain(
                [1, 1, 1],
                vec![conv(1, 1, vec![Opt::S(Arg::Two(3074457345618258603, 6))])],
            ),
            true,
        ),
        // The padded length 2^64 + 1 overflows usize, though the output
        // (1×2×1), parameters (2^63) and MACs (2^64 − 2) would fit.
        (
            chain(
                [1, 1, 1],
                vec![Layer::Conv {
                    k: Arg::One(1),
                    f: Arg::Two((1 << 63) - 1, 1),
                    opts: vec![
                        Opt::P(Pad::Size(Arg::Two(1 << 63, 0))),
                        Opt::S(Arg::Two((1 << 63) + 2, 1)),
                    ],
                    floor: false,
                }],
            ),
            false,
        ),
        // 2^61 outputs, one more than MAX_VOLUME, whose counts fit.
        (chain([1, 1, 1], vec![Layer::Fc((1 << 61) - 1)]), true),
        (chain([1, 1, 1], vec![Layer::Fc(1 << 61)]), false),
        (chain([1, 1, 1], vec![conv(1 << 61, 1, vec![])]), false),
        // Each layer has just under 2^63 + 2^33 parameters and MACs; two
        // overflow the totals.
        (chain([1, 1, 1], vec![huge_conv.clone()]), true),
        (chain([1, 1, 1], vec![huge_conv.clone(), huge_conv]), false),
        // A dilation whose extent D·(F − 1) + 1 overflows.
        (
            chain(
                [1, 4, 4],
                vec![conv(1, 3, vec![Opt::D(Arg::One(1 << 63)), p(1 << 62)])],
            ),
            false,
        ),
        // Stride 2 on an even size: PyTorch's floor, else a misfit.
        (
            chain([3, 224, 224], vec![conv(64, 7, vec![s(2), p(3)])]),
            false,
        ),
        (
            chain([3, 224, 224], vec![floored(conv(64, 7, vec![s(2), p(3)]))]),
            true,
        ),
        // Pool padding up to half the window.
        (
            chain(
                [1, 8, 8],
                vec![floored(Layer::Pool {
                    avg: false,
                    f: Arg::One(3),
                    s: Some(Arg::One(2)),
                    p: Some(Arg::One(1)),
                    floor: false,
                })],
            ),
            true,
        ),
        (
            chain(
                [1, 8, 8],
                vec![Layer::Pool {
                    avg: true,
                    f: Arg::One(3),
                    s: Some(Arg::One(1)),
                    p: Some(Arg::One(2)),
                    floor: false,
                }],
            ),
            false,
        ),
        (
            chain(
                [1, 8, 8],
                vec![Layer::Pool {
                    avg: true,
                    f: Arg::One(2),
                    s: None,
                    p: Some(Arg::One(1)),
                    floor: false,
                }],
            ),
            true,
        ),
        // Groups divide C and K; depthwise with a multiplier.
        (chain([4, 5, 5], vec![conv(6, 3, vec![Opt::G(2)])]), true),
        (chain([4, 5, 5], vec![conv(6, 3, vec![Opt::G(3)])]), false),
        (chain([4, 5, 5], vec![conv(6, 3, vec![Opt::G(4)])]), false),
        (
            chain(
                [4, 5, 5],
                vec![conv(8, 3, vec![Opt::G(4), Opt::Bias(false)])],
            ),
            true,
        ),
        // `same` with dilation: D·(F − 1) even.
        (
            chain(
                [1, 5, 5],
                vec![conv(1, 4, vec![Opt::D(Arg::One(2)), Opt::P(Pad::Same)])],
            ),
            true,
        ),
        (
            chain([1, 5, 5], vec![conv(1, 4, vec![Opt::P(Pad::Same)])]),
            false,
        ),
        (
            chain([1, 5, 5], vec![conv(1, 3, vec![Opt::P(Pad::Same), s(2)])]),
            false,
        ),
        // Floats as f32: an epsilon that rounds to 0, a probability that
        // rounds to 1, a slope that overflows; -0.0 is a probability of 0.
        (
            chain([1, 2, 2], vec![Layer::Bn(Some(Num::Float("1e-50".into())))]),
            false,
        ),
        (
            chain(
                [1, 2, 2],
                vec![Layer::Dropout(Num::Float("0.99999999".into()))],
            ),
            false,
        ),
        (
            chain([1, 2, 2], vec![Layer::Dropout(Num::Float("-0.0".into()))]),
            true,
        ),
        (
            chain(
                [1, 2, 2],
                vec![Layer::Act(Act::LeakyRelu(Some(Num::Float("1e40".into()))))],
            ),
            false,
        ),
        (
            chain(
                [1, 2, 2],
                vec![Layer::Act(Act::LeakyRelu(Some(Num::Float("-1e30".into()))))],
            ),
            true,
        ),
        (chain([1, 2, 2], vec![Layer::Bn(Some(Num::Int(1)))]), false),
        // Names: an unnamed entry is named by its position.
        (
            Net {
                input: [1, 2, 2],
                body: vec![named("1", Item::Layer(relu())), leaf(relu())],
            },
            false,
        ),
        (
            Net {
                input: [1, 2, 2],
                body: vec![leaf(relu()), named("0", Item::Layer(relu()))],
            },
            false,
        ),
        (
            Net {
                input: [1, 2, 2],
                body: vec![
                    named("1", Item::Layer(relu())),
                    named("0", Item::Layer(relu())),
                ],
            },
            true,
        ),
    ];
    for (net, accepted) in cases {
        pinned(&net, accepted);
    }
}

/// A residual's MAIN and shortcut are one sequence: names are unique
/// across both and positions count on from MAIN into the shortcut.
#[test]
fn residual_names_span_main_and_shortcut() {
    let block = |main: Vec<Entry>, shortcut: Vec<Entry>| Net {
        input: [2, 4, 4],
        body: vec![named(
            "block",
            Item::Residual {
                act: Some(relu()),
                main,
                shortcut: Some(shortcut),
            },
        )],
    };
    let network = pinned(
        &block(
            vec![leaf(conv(2, 3, vec![p(1)])), leaf(Layer::Bn(None))],
            vec![
                leaf(conv(2, 1, vec![])),
                named("down", Item::Group(vec![leaf(Layer::Bn(None))])),
            ],
        ),
        true,
    )
    .expect("accepted");
    let paths: Vec<&str> = network.layers.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(
        &paths[..4],
        ["block.0", "block.1", "block.2", "block.down.0"]
    );
    let a = || named("a", Item::Layer(conv(2, 1, vec![])));
    pinned(&block(vec![a()], vec![a()]), false);
    pinned(
        &block(
            vec![a(), leaf(relu())],
            vec![named("1", Item::Layer(relu()))],
        ),
        false,
    );
}

/// The spec's ResNet-18, with torchvision's names: the oracle and the
/// library agree on every layer, and on torchvision's parameter count.
#[test]
fn resnet18_has_torchvision_names_and_count() {
    let conv = |k: u64, f: u64, stride: u64, pad: u64| {
        let mut opts = Vec::new();
        if stride != 1 {
            opts.push(s(stride));
        }
        if pad != 0 {
            opts.push(p(pad));
        }
        opts.push(Opt::Bias(false));
        let layer = conv(k, f, opts);
        if stride != 1 {
            floored(layer)
        } else {
            layer
        }
    };
    let bn = || Item::Layer(Layer::Bn(None));
    let block = |k: u64, stride: u64| Item::Residual {
        act: Some(relu()),
        main: vec![
            named("conv1", Item::Layer(conv(k, 3, stride, 1))),
            named("bn1", bn()),
            leaf(relu()),
            named("conv2", Item::Layer(conv(k, 3, 1, 1))),
            named("bn2", bn()),
        ],
        shortcut: (stride != 1).then(|| {
            vec![named(
                "downsample",
                Item::Group(vec![leaf(conv(k, 1, stride, 0)), unnamed(bn())]),
            )]
        }),
    };
    let stage =
        |k: u64, stride: u64| Item::Group(vec![unnamed(block(k, stride)), unnamed(block(k, 1))]);
    let net = Net {
        input: [3, 224, 224],
        body: vec![
            named("conv1", Item::Layer(conv(64, 7, 2, 3))),
            named("bn1", bn()),
            leaf(relu()),
            named(
                "maxpool",
                Item::Layer(floored(Layer::Pool {
                    avg: false,
                    f: Arg::One(3),
                    s: Some(Arg::One(2)),
                    p: Some(Arg::One(1)),
                    floor: false,
                })),
            ),
            named("layer1", stage(64, 1)),
            named("layer2", stage(128, 2)),
            named("layer3", stage(256, 2)),
            named("layer4", stage(512, 2)),
            named("avgpool", Item::Layer(Layer::GlobalAvgPool)),
            named("fc", Item::Layer(Layer::Fc(1000))),
        ],
    };
    let expected = oracle(&net).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(expected.params, 11_689_512, "torchvision's count");
    let network = pinned(&net, true).expect("accepted");
    assert_eq!(network.params, 11_689_512);
    assert_eq!(network.output().dims(), [1000, 1, 1]);
    let tensors: HashSet<String> = network
        .layers
        .iter()
        .flat_map(|l| {
            l.tensors()
                .into_iter()
                .map(|t| format!("{}.{}", l.path, t.name))
        })
        .collect();
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.num_batches_tracked",
        "layer2.0.bn1.running_var",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(tensors.contains(name), "no tensor {name}");
    }
    // 20 convolutions, 20 batch norms (5 tensors each), one fc.
    assert_eq!(tensors.len(), 20 + 20 * 5 + 2);
}

/// A residual's activation that is `input(…)` is not an activation: the
/// block, and what follows it, must not silently disappear.
#[test]
fn residual_input_activation_is_rejected() {
    let src = "struct N { input(1, 2, 2) residual(input(1, 2, 2)) { } fc(3) }";
    match parse_networks(src) {
        Ok(networks) => panic!(
            "accepted with {} layers and output {}",
            networks[0].layers.len(),
            networks[0].output()
        ),
        Err(errors) => assert!(!errors.to_string().is_empty()),
    }
}

/// What generated networks contain, for the coverage check.
#[derive(Debug, Default)]
struct Features {
    floor: usize,
    dilation: usize,
    groups: usize,
    pool_padding: usize,
    same: usize,
    bn: usize,
    leaky: usize,
    dropout: usize,
    global: usize,
    label: usize,
    group: usize,
    residual: usize,
    shortcut: usize,
    act: usize,
}

impl Features {
    fn add(&mut self, entries: &[Entry]) {
        for entry in entries {
            self.label += usize::from(entry.label.is_some());
            match &entry.item {
                Item::Layer(layer) => self.layer(layer),
                Item::Group(entries) => {
                    self.group += 1;
                    self.add(entries);
                }
                Item::Residual {
                    act,
                    main,
                    shortcut,
                } => {
                    self.residual += 1;
                    self.act += usize::from(act.is_some());
                    self.add(main);
                    if let Some(shortcut) = shortcut {
                        self.shortcut += 1;
                        self.add(shortcut);
                    }
                }
            }
        }
    }

    fn layer(&mut self, layer: &Layer) {
        match layer {
            Layer::Conv { opts, floor, .. } => {
                self.floor += usize::from(*floor);
                for opt in opts {
                    match opt {
                        Opt::D(arg) if axes(*arg) != [1, 1] => self.dilation += 1,
                        Opt::G(g) if *g > 1 => self.groups += 1,
                        Opt::P(Pad::Same) => self.same += 1,
                        _ => {}
                    }
                }
            }
            Layer::Pool { p, floor, .. } => {
                self.floor += usize::from(*floor);
                self.pool_padding += usize::from(p.is_some_and(|p| axes(p) != [0, 0]));
            }
            Layer::Bn(_) => self.bn += 1,
            Layer::Act(Act::LeakyRelu(Some(_))) => self.leaky += 1,
            Layer::Dropout(_) => self.dropout += 1,
            Layer::GlobalAvgPool => self.global += 1,
            _ => {}
        }
    }
}

/// The generators are worth running: random networks are accepted and
/// rejected, for every reason the oracle knows; accepted ones use every
/// feature of the grammar; large windows are accepted and rejected, at
/// the workspace limit too.
#[test]
fn generators_reach_both_outcomes() {
    let mut runner = TestRunner::deterministic();
    let mut sample = |strategy: BoxedStrategy<Net>| -> Vec<(Net, Result<Expected, Reject>)> {
        (0..2000)
            .map(|_| {
                let net = strategy.new_tree(&mut runner).unwrap().current();
                let verdict = oracle(&net);
                (net, verdict)
            })
            .collect()
    };
    let reasons = |verdicts: &[(Net, Result<Expected, Reject>)], label: &str| {
        verdicts
            .iter()
            .filter(|(_, v)| v.as_ref().is_err_and(|e| e.reason.label() == label))
            .count()
    };

    let verdicts = sample(network().boxed());
    let accepted: Vec<&Net> = verdicts
        .iter()
        .filter(|(_, v)| v.is_ok())
        .map(|(net, _)| net)
        .collect();
    assert!(
        (400..=1600).contains(&accepted.len()),
        "{} of 2000 accepted",
        accepted.len()
    );
    for label in [
        "argument",
        "empty",
        "same",
        "groups",
        "pool padding",
        "too large",
        "misfit",
        "overflow",
        "residual",
        "residual act",
        "name",
    ] {
        let n = reasons(&verdicts, label);
        assert!(n >= 5, "{n} of 2000 rejected for {label}");
    }
    let mut features = Features::default();
    for net in &accepted {
        features.add(&net.body);
    }
    let counts = format!("{features:?}");
    for (name, n) in [
        ("floor", features.floor),
        ("dilation", features.dilation),
        ("groups", features.groups),
        ("pool padding", features.pool_padding),
        ("same", features.same),
        ("bn", features.bn),
        ("leaky", features.leaky),
        ("dropout", features.dropout),
        ("global", features.global),
        ("label", features.label),
        ("group", features.group),
        ("residual", features.residual),
        ("shortcut", features.shortcut),
        ("act", features.act),
    ] {
        assert!(n >= 30, "{n} accepted networks with {name}: {counts}");
    }

    let verdicts = sample(large_window_network().boxed());
    let accepted = verdicts.iter().filter(|(_, v)| v.is_ok()).count();
    assert!(
        (200..=1800).contains(&accepted),
        "{accepted} of 2000 accepted"
    );
    for label in ["workspace", "volume", "overflow", "misfit"] {
        let n = reasons(&verdicts, label);
        assert!(n >= 5, "{n} of 2000 large networks rejected for {label}");
    }
}

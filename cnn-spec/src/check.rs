//! From syntax to the checked model: argument validation and shape checking,
//! with every error collected and spanned on the smallest offending token.

use syn::Ident;

use crate::arith::{self, WindowError};
use crate::diagnostic as msg;
use crate::keywords::{self, LayerSyntax};
use crate::model::{Activation, Layer, LayerKind, Network, Pair, Volume};
use crate::report::Errors;
use crate::syntax::{ArgDef, LayerDef, NetworkDef, SpanRange, Value};

/// The largest volume, in values, that a network may hold: its bytes must
/// fit an allocation (`isize::MAX`).
pub const MAX_VOLUME: usize = isize::MAX as usize / std::mem::size_of::<f32>();

/// Checks one network definition: every argument, every volume, every count.
///
/// Returns the checked model, or every independent error combined.
pub fn check_network(def: &NetworkDef) -> syn::Result<Network> {
    let mut errors = Errors::default();
    let name = def.ident.to_string();
    let Some(first) = def.layers.first() else {
        errors.push(syn::Error::new(def.ident.span(), msg::empty_network(&name)));
        return errors.finish(unreachable_network());
    };

    let (mut current, rest) = if first.name == "input" {
        let volume = check_input(first, &mut errors);
        if def.layers.len() == 1 {
            errors.push(spanned(first.span, msg::input_only(&name)));
        }
        (volume, &def.layers[1..])
    } else {
        errors.push(spanned(
            first.span,
            msg::missing_input(&name, &first.name.to_string()),
        ));
        (None, &def.layers[..])
    };
    let input = current;

    let mut layers = Vec::new();
    for (index, layer) in rest.iter().enumerate() {
        if layer.name == "input" {
            errors.push(spanned(layer.span, msg::repeated_input()));
            continue;
        }
        let checked = check_layer(index, layer, current, &mut errors);
        current = checked.as_ref().map(|layer| layer.output);
        layers.extend(checked);
    }

    let params = layers
        .iter()
        .try_fold(0usize, |sum, l| sum.checked_add(l.params));
    let macs = layers
        .iter()
        .try_fold(0u64, |sum, l| sum.checked_add(l.macs));
    let (Some(params), Some(macs)) = (params, macs) else {
        errors.push(syn::Error::new(
            def.ident.span(),
            msg::total_overflow(&name),
        ));
        return errors.finish(unreachable_network());
    };
    let network = match input {
        Some(input) if errors.is_empty() => Network {
            name,
            input,
            layers,
            params,
            macs,
        },
        _ => return errors.finish(unreachable_network()),
    };
    let workspace = crate::plan::plan(&network).arena_len;
    if workspace > MAX_VOLUME {
        let message = msg::workspace_too_large(&network.name, workspace);
        return Err(syn::Error::new(def.ident.span(), message));
    }
    Ok(network)
}

/// A placeholder returned alongside errors; `Errors::finish` discards it.
fn unreachable_network() -> Network {
    Network {
        name: String::new(),
        input: Volume { c: 0, h: 0, w: 0 },
        layers: Vec::new(),
        params: 0,
        macs: 0,
    }
}

fn spanned(span: SpanRange, message: String) -> syn::Error {
    syn::Error::new_spanned(span, message)
}

/// The arguments of a layer, sorted into positional and named, after the
/// checks that need no value.
struct Args<'a> {
    positional: Vec<&'a Value>,
    named: Vec<(&'a Ident, &'a Value)>,
}

impl<'a> Args<'a> {
    fn named(&self, name: &str) -> Option<&'a Value> {
        self.named.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

/// Validates argument counts and names against the keyword table.
fn sort_args<'a>(
    syntax: &LayerSyntax,
    layer: &'a LayerDef,
    errors: &mut Errors,
) -> Option<Args<'a>> {
    let mut args = Args {
        positional: Vec::new(),
        named: Vec::new(),
    };
    let mut ok = true;
    for arg in layer.args.iter().flatten() {
        match arg {
            ArgDef::Positional(value) => {
                if let Some((name, _)) = args.named.first() {
                    errors.push(spanned(
                        value.span(),
                        msg::positional_after_named(&name.to_string()),
                    ));
                    ok = false;
                }
                args.positional.push(value);
            }
            ArgDef::Named { name, value, span } => {
                let text = name.to_string();
                if !syntax.named.contains(&text.as_str()) {
                    errors.push(spanned(*span, msg::unknown_named(syntax, &text)));
                    ok = false;
                } else if args.named.iter().any(|(n, _)| **n == text) {
                    errors.push(spanned(*span, msg::repeated_named(&text)));
                    ok = false;
                } else {
                    args.named.push((name, value));
                }
            }
        }
    }
    let found = args.positional.len();
    let max = syntax.required.len() + syntax.optional.len();
    if found < syntax.required.len() || found > max {
        errors.push(spanned(layer.span, msg::arg_count(syntax, found)));
        ok = false;
    }
    ok.then_some(args)
}

/// The meaning of a size argument, for messages.
#[derive(Clone, Copy)]
enum Role {
    Channels,
    Height,
    Width,
    Filters,
    FilterSize,
    Window,
    Stride,
    Padding,
    Outputs,
}

impl Role {
    fn describe(self) -> &'static str {
        match self {
            Role::Channels => "the number of channels C",
            Role::Height => "the height H",
            Role::Width => "the width W",
            Role::Filters => "the number of filters K",
            Role::FilterSize => "the filter size F",
            Role::Window => "the window size F",
            Role::Stride => "the stride S",
            Role::Padding => "the padding P",
            Role::Outputs => "the number of outputs N",
        }
    }

    fn may_be_zero(self) -> bool {
        matches!(self, Role::Padding)
    }
}

/// Reads one integer argument, reporting a non-integer, a suffix, an
/// overflow or a forbidden zero.
fn int(value: &Value, role: Role, errors: &mut Errors) -> Option<usize> {
    match value {
        Value::Int(lit) => {
            if !lit.suffix().is_empty() {
                errors.push(syn::Error::new(
                    lit.span(),
                    msg::suffixed(lit.base10_digits(), lit.suffix()),
                ));
                return None;
            }
            let Ok(number) = lit.base10_parse::<usize>() else {
                errors.push(syn::Error::new(
                    lit.span(),
                    msg::too_large(lit.base10_digits(), role.describe()),
                ));
                return None;
            };
            if number == 0 && !role.may_be_zero() {
                errors.push(syn::Error::new(lit.span(), msg::zero(role.describe())));
                return None;
            }
            Some(number)
        }
        Value::Pair { span, .. } => {
            errors.push(spanned(*span, msg::pair_not_allowed(role.describe())));
            None
        }
        Value::Same(ident) => {
            errors.push(syn::Error::new(
                ident.span(),
                msg::same_not_allowed(role.describe()),
            ));
            None
        }
        Value::Invalid { text, span, what } => {
            errors.push(spanned(
                *span,
                msg::not_an_integer(text, what, role.describe()),
            ));
            None
        }
    }
}

/// Reads a size that may be a pair `(h, w)`.
fn pair(value: &Value, role: Role, errors: &mut Errors) -> Option<Pair> {
    match value {
        Value::Pair { h, w, .. } => {
            let h = int(h, role, errors);
            let w = int(w, role, errors);
            Some(Pair { h: h?, w: w? })
        }
        other => int(other, role, errors).map(Pair::square),
    }
}

fn check_input(layer: &LayerDef, errors: &mut Errors) -> Option<Volume> {
    let syntax = keywords::lookup("input")?;
    let args = sort_args(syntax, layer, errors)?;
    let c = int(args.positional[0], Role::Channels, errors);
    let h = int(args.positional[1], Role::Height, errors);
    let w = int(args.positional[2], Role::Width, errors);
    let volume = Volume {
        c: c?,
        h: h?,
        w: w?,
    };
    if arith::volume_len(volume.c, volume.h, volume.w).is_none_or(|len| len > MAX_VOLUME) {
        errors.push(spanned(
            layer.span,
            msg::volume_too_large(&normalised_name(layer), None),
        ));
        return None;
    }
    Some(volume)
}

/// The layer as written, with whitespace and integers normalised.
pub fn normalised_name(layer: &LayerDef) -> String {
    let name = layer.name.to_string();
    let Some(args) = &layer.args else { return name };
    if args.is_empty() {
        return name;
    }
    let args: Vec<String> = args
        .iter()
        .map(|arg| match arg {
            ArgDef::Positional(value) => value_text(value),
            ArgDef::Named { name, value, .. } => format!("{name} = {}", value_text(value)),
        })
        .collect();
    format!("{name}({})", args.join(", "))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Int(lit) => lit.base10_digits().to_string(),
        Value::Pair { h, w, .. } => format!("({}, {})", value_text(h), value_text(w)),
        other => other.to_string(),
    }
}

/// Checks one layer after `input`. Returns `None` when it has an error or
/// when its input volume is unknown because of an earlier error; in the
/// latter case only the checks that need no volume run.
fn check_layer(
    index: usize,
    layer: &LayerDef,
    input: Option<Volume>,
    errors: &mut Errors,
) -> Option<Layer> {
    let word = layer.name.to_string();
    let Some(syntax) = keywords::lookup(&word) else {
        errors.push(syn::Error::new(
            layer.name.span(),
            msg::unknown_layer(&word),
        ));
        return None;
    };
    let args = sort_args(syntax, layer, errors)?;
    let name = normalised_name(layer);
    let kind = match word.as_str() {
        "conv" => conv_kind(layer, &args, errors)?,
        "pool" | "avgpool" => {
            let f = pair(args.positional[0], Role::Window, errors);
            let s = match args.positional.get(1) {
                Some(value) => pair(value, Role::Stride, errors),
                None => f,
            };
            let (f, s) = (f?, s?);
            if word == "pool" {
                LayerKind::MaxPool { f, s }
            } else {
                LayerKind::AvgPool { f, s }
            }
        }
        "fc" => LayerKind::Fc {
            n: int(args.positional[0], Role::Outputs, errors)?,
        },
        "relu" => LayerKind::Activation(Activation::Relu),
        "sigmoid" => LayerKind::Activation(Activation::Sigmoid),
        "tanh" => LayerKind::Activation(Activation::Tanh),
        "flatten" => LayerKind::Flatten,
        "softmax" => LayerKind::Softmax,
        _ => return None,
    };
    let input = input?;
    let (output, params, macs) = shape(&kind, &name, input, layer, &args, errors)?;
    if output.len() > MAX_VOLUME {
        errors.push(spanned(
            layer.span,
            msg::volume_too_large(&name, Some(input)),
        ));
        return None;
    }
    Some(Layer {
        index,
        name,
        kind,
        input,
        output,
        params,
        macs,
    })
}

/// Resolves a convolution's arguments, `p = same` included.
fn conv_kind(layer: &LayerDef, args: &Args<'_>, errors: &mut Errors) -> Option<LayerKind> {
    let k = int(args.positional[0], Role::Filters, errors);
    let f = pair(args.positional[1], Role::FilterSize, errors);
    let s = match args.named("s") {
        Some(value) => pair(value, Role::Stride, errors),
        None => Some(Pair::square(1)),
    };
    let p = match args.named("p") {
        Some(Value::Same(ident)) => {
            let (f, s) = (f?, s?);
            let mut ok = true;
            if f.h % 2 == 0 || f.w % 2 == 0 {
                errors.push(syn::Error::new(ident.span(), msg::same_even_filter(f)));
                ok = false;
            }
            if s != Pair::square(1) {
                let span = args.named("s").map_or(layer.span, Value::span);
                errors.push(spanned(span, msg::same_with_stride(s)));
                ok = false;
            }
            ok.then(|| Pair {
                h: (f.h - 1) / 2,
                w: (f.w - 1) / 2,
            })
        }
        Some(value) => pair(value, Role::Padding, errors),
        None => Some(Pair::square(0)),
    };
    Some(LayerKind::Conv {
        k: k?,
        f: f?,
        s: s?,
        p: p?,
    })
}

/// One axis of a sliding window, for checks and messages.
#[derive(Clone, Copy)]
pub(crate) struct Axis {
    pub(crate) len: usize,
    pub(crate) f: usize,
    pub(crate) s: usize,
    pub(crate) p: usize,
}

/// A sliding-window layer (conv, pool, avgpool) with its resolved sizes.
struct Window {
    conv: bool,
    k: usize,
    f: Pair,
    s: Pair,
    p: Pair,
}

/// Computes a layer's output volume, parameters and MACs, or reports why
/// the layer does not fit its input.
fn shape(
    kind: &LayerKind,
    name: &str,
    input: Volume,
    layer: &LayerDef,
    args: &Args<'_>,
    errors: &mut Errors,
) -> Option<(Volume, usize, u64)> {
    let window = match *kind {
        LayerKind::Conv { k, f, s, p } => Window {
            conv: true,
            k,
            f,
            s,
            p,
        },
        LayerKind::MaxPool { f, s } | LayerKind::AvgPool { f, s } => Window {
            conv: false,
            k: input.c,
            f,
            s,
            p: Pair::square(0),
        },
        LayerKind::Fc { n } => {
            let inputs = input.len();
            return match (arith::fc_params(inputs, n), arith::fc_macs(inputs, n)) {
                (Some(params), Some(macs)) => Some((Volume { c: n, h: 1, w: 1 }, params, macs)),
                _ => {
                    errors.push(spanned(layer.span, msg::overflow(name, input)));
                    None
                }
            };
        }
        LayerKind::Flatten => {
            return Some((
                Volume {
                    c: input.len(),
                    h: 1,
                    w: 1,
                },
                0,
                0,
            ))
        }
        LayerKind::Activation(_) | LayerKind::Softmax => return Some((input, 0, 0)),
    };
    let Window { conv, k, f, s, p } = window;
    let axes = [
        Axis {
            len: input.h,
            f: f.h,
            s: s.h,
            p: p.h,
        },
        Axis {
            len: input.w,
            f: f.w,
            s: s.w,
            p: p.w,
        },
    ];
    let outs = axes.map(|a| arith::window_out(a.len, a.f, a.s, a.p));
    if let [Ok(oh), Ok(ow)] = outs {
        let output = Volume { c: k, h: oh, w: ow };
        if !conv {
            return Some((output, 0, 0));
        }
        let params = arith::conv_params(input.c, k, f.h, f.w);
        let macs = arith::conv_macs(input.c, k, f.h, f.w, oh, ow);
        if let (Some(params), Some(macs)) = (params, macs) {
            return Some((output, params, macs));
        }
    }
    if !matches!(outs, [Ok(_), Ok(_)]) && !outs.contains(&Err(WindowError::Overflow)) {
        let fix = msg::WindowFix {
            keyword: kind.keyword(),
            conv,
            name,
            axes,
            outs,
        };
        let (message, target) = msg::window_does_not_fit(&fix, input);
        let span = match target {
            msg::Target::Stride if conv => args.named("s"),
            msg::Target::Stride => args.positional.get(1).copied(),
            msg::Target::Filter => args.positional.get(usize::from(conv)).copied(),
        };
        errors.push(spanned(span.map_or(layer.span, Value::span), message));
    } else {
        errors.push(spanned(layer.span, msg::overflow(name, input)));
    }
    None
}

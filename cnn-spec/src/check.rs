//! From syntax to the checked model: argument validation and shape checking,
//! with every error collected and spanned on the smallest offending token.

use syn::Ident;

use crate::arith::{self, WindowError};
use crate::diagnostic as msg;
use crate::keywords::{self, LayerSyntax};
use crate::model::{
    Activation, Block, Entry, Float, Layer, LayerKind, Network, Pair, Residual, Volume, BN_EPS,
    LEAKY_SLOPE,
};
use crate::report::Errors;
use crate::syntax::{
    ArgDef, EntryDef, ItemDef, LayerDef, NetworkDef, ResidualDef, SpanRange, Value,
};

/// The largest volume, in values, that a network may hold: its bytes must
/// fit an allocation (`isize::MAX`).
pub const MAX_VOLUME: usize = isize::MAX as usize / std::mem::size_of::<f32>();

/// Checks one network definition: every argument, every volume, every count,
/// every name.
///
/// Returns the checked model, or every independent error combined.
pub fn check_network(def: &NetworkDef) -> syn::Result<Network> {
    let mut errors = Errors::default();
    let name = def.ident.to_string();
    let Some(first) = def.entries.first() else {
        errors.push(syn::Error::new(def.ident.span(), msg::empty_network(&name)));
        return errors.finish(unreachable_network());
    };

    let (input, rest) = match &first.item {
        ItemDef::Layer(layer) if layer.name == "input" => {
            if let Some(label) = &first.label {
                errors.push(syn::Error::new(label.span, msg::named_input()));
            }
            let volume = check_input(layer, &mut errors);
            if def.entries.len() == 1 {
                errors.push(spanned(layer.span, msg::input_only(&name)));
            }
            (volume, &def.entries[1..])
        }
        item => {
            let first_word = match item {
                ItemDef::Layer(layer) => layer.name.to_string(),
                ItemDef::Group(_) => "{".to_string(),
                ItemDef::Residual(_) => "residual".to_string(),
            };
            errors.push(spanned(item.span(), msg::missing_input(&name, &first_word)));
            (None, &def.entries[..])
        }
    };

    let mut walker = Walker {
        errors: &mut errors,
        layers: Vec::new(),
    };
    let mut names = Names::default();
    let (body, _) = walker.sequence(rest, "", &mut names, input);
    let layers = walker.layers;

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
    if errors.is_empty() {
        check_tensor_names(&layers, &mut errors);
    }
    let network = match input {
        Some(input) if errors.is_empty() => Network {
            name,
            input,
            layers,
            body,
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

/// The names given in one sequence, to find a name given twice.
#[derive(Default)]
struct Names {
    taken: Vec<(String, proc_macro2::Span)>,
}

/// Walks the entries of a network, checking each layer in turn and
/// collecting them in execution order.
struct Walker<'e> {
    errors: &'e mut Errors,
    layers: Vec<Layer>,
}

impl Walker<'_> {
    /// Checks a sequence of entries that starts with `input` (unknown after
    /// an error) and whose names are taken from `names` (a residual's MAIN
    /// and shortcut share one); returns the entries and their output.
    fn sequence(
        &mut self,
        entries: &[EntryDef],
        prefix: &str,
        names: &mut Names,
        input: Option<Volume>,
    ) -> (Vec<Entry>, Option<Volume>) {
        let mut current = input;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let position = names.taken.len();
            let (name, span) = match &entry.label {
                Some(label) => (label.text.clone(), label.span),
                None => (position.to_string(), entry.item.span().start),
            };
            if let Some((_, first)) = names.taken.iter().find(|(n, _)| *n == name) {
                let mut error = syn::Error::new(span, msg::duplicate_name(&name, prefix));
                error.combine(syn::Error::new(*first, msg::first_named(&name)));
                self.errors.push(error);
            }
            names.taken.push((name.clone(), span));
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            let (checked, output) = self.item(&entry.item, path, current);
            current = output;
            out.extend(checked);
        }
        (out, current)
    }

    /// Checks one entry named `path` on input `input`.
    fn item(
        &mut self,
        item: &ItemDef,
        path: String,
        input: Option<Volume>,
    ) -> (Option<Entry>, Option<Volume>) {
        match item {
            ItemDef::Layer(layer) => {
                if layer.name == "input" {
                    self.errors.push(spanned(layer.span, msg::repeated_input()));
                    return (None, input);
                }
                let index = self.layers.len();
                match check_layer(index, path, layer, input, self.errors) {
                    Some(checked) => {
                        let output = checked.output;
                        self.layers.push(checked);
                        (Some(Entry::Layer(index)), Some(output))
                    }
                    None => (None, None),
                }
            }
            ItemDef::Group(group) => {
                let first = self.layers.len();
                let mut names = Names::default();
                let (entries, output) = self.sequence(&group.entries, &path, &mut names, input);
                let block = input.zip(output).map(|(input, output)| {
                    let (params, macs) = self.totals(first);
                    Entry::Group(Block {
                        path,
                        entries,
                        input,
                        output,
                        params,
                        macs,
                    })
                });
                (block, output)
            }
            ItemDef::Residual(residual) => self.residual(residual, path, input),
        }
    }

    /// Parameters and MACs of the layers checked from `first` on.
    fn totals(&self, first: usize) -> (usize, u64) {
        let layers = &self.layers[first..];
        let params = layers
            .iter()
            .fold(0usize, |sum, l| sum.saturating_add(l.params));
        let macs = layers
            .iter()
            .fold(0u64, |sum, l| sum.saturating_add(l.macs));
        (params, macs)
    }

    /// Checks a residual block: MAIN and the shortcut on the same input,
    /// their outputs equal (MAIN's and the input's without a shortcut),
    /// then the activation.
    fn residual(
        &mut self,
        def: &ResidualDef,
        path: String,
        input: Option<Volume>,
    ) -> (Option<Entry>, Option<Volume>) {
        let first = self.layers.len();
        let mut names = Names::default();
        let (main, main_out) = self.sequence(&def.main.entries, &path, &mut names, input);
        let shortcut = def
            .shortcut
            .as_ref()
            .map(|(_, group)| self.sequence(&group.entries, &path, &mut names, input));
        let mut fits = true;
        if let (Some(input), Some(main_out)) = (input, main_out) {
            match (&shortcut, &def.shortcut) {
                (None, _) if main_out != input => {
                    let message = msg::residual_changes_volume(&path, input, main_out);
                    self.errors
                        .push(syn::Error::new(def.keyword.span(), message));
                    fits = false;
                }
                (Some((_, Some(sc_out))), Some((keyword, _))) if *sc_out != main_out => {
                    let message = msg::residual_branches_differ(&path, input, main_out, *sc_out);
                    self.errors.push(syn::Error::new(keyword.span(), message));
                    fits = false;
                }
                _ => {}
            }
        }
        let shortcut_ok = shortcut.as_ref().is_none_or(|(_, out)| out.is_some());
        let output = main_out.filter(|_| fits && shortcut_ok && input.is_some());
        let act = def.act.as_ref().and_then(|act| {
            let index = self.layers.len();
            let act_path = format!("{path}.{}", act.name);
            let layer = check_layer(index, act_path, act, output, self.errors)?;
            if !matches!(layer.kind, LayerKind::Activation(_)) {
                self.errors
                    .push(spanned(act.span, msg::residual_act(&layer.name)));
                return None;
            }
            self.layers.push(layer);
            Some(index)
        });
        if def.act.is_some() && act.is_none() {
            return (None, None);
        }
        let entry = input.zip(output).map(|(input, output)| {
            let (params, macs) = self.totals(first);
            Entry::Residual(Residual {
                path,
                main,
                shortcut: shortcut.map(|(entries, _)| entries),
                act,
                input,
                output,
                params,
                macs,
            })
        });
        (entry, output)
    }
}

/// Reports two tensors with one name: which cannot happen when every
/// sequence's names are unique, but a tensor's name is what weights files
/// match, so it is checked where they are made.
fn check_tensor_names(layers: &[Layer], errors: &mut Errors) {
    let mut seen: Vec<(String, &Layer)> = Vec::new();
    for layer in layers {
        for tensor in layer.tensors() {
            let name = format!("{}.{}", layer.path, tensor.name);
            if let Some((_, other)) = seen.iter().find(|(n, _)| *n == name) {
                errors.push(syn::Error::new(
                    proc_macro2::Span::call_site(),
                    msg::duplicate_tensor(&name, &other.name, &layer.name),
                ));
            }
            seen.push((name, layer));
        }
    }
}

/// A placeholder returned alongside errors; `Errors::finish` discards it.
fn unreachable_network() -> Network {
    Network {
        name: String::new(),
        input: Volume { c: 0, h: 0, w: 0 },
        layers: Vec::new(),
        body: Vec::new(),
        params: 0,
        macs: 0,
    }
}

fn spanned(span: SpanRange, message: String) -> syn::Error {
    syn::Error::new_spanned(span, message)
}

/// The arguments of a layer, sorted into positional and named, after the
/// checks that need no value; the `floor` flag apart.
struct Args<'a> {
    positional: Vec<&'a Value>,
    named: Vec<(&'a Ident, &'a Value)>,
    floor: bool,
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
        floor: false,
    };
    let takes_floor = syntax.optional.contains(&keywords::FLOOR);
    let mut ok = true;
    for arg in layer.args.iter().flatten() {
        match arg {
            ArgDef::Positional(Value::Floor(ident)) => {
                if !takes_floor {
                    errors.push(syn::Error::new(
                        ident.span(),
                        msg::floor_not_allowed(syntax.name),
                    ));
                    ok = false;
                } else if args.floor {
                    errors.push(syn::Error::new(
                        ident.span(),
                        msg::repeated_named(keywords::FLOOR),
                    ));
                    ok = false;
                }
                args.floor = true;
            }
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
    let optional = syntax
        .optional
        .iter()
        .filter(|&&o| o != keywords::FLOOR)
        .count();
    let max = syntax.required.len() + optional;
    if found < syntax.required.len() || found > max {
        errors.push(spanned(layer.span, msg::arg_count(syntax, found)));
        ok = false;
    }
    ok.then_some(args)
}

/// The meaning of an argument, for messages.
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
    Dilation,
    Groups,
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
            Role::Dilation => "the dilation D",
            Role::Groups => "the number of groups G",
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
        Value::Float { text, span, .. } => {
            errors.push(spanned(
                *span,
                msg::not_an_integer(text, "a fractional number", role.describe()),
            ));
            None
        }
        Value::Bool(ident) | Value::Floor(ident) => {
            errors.push(syn::Error::new(
                ident.span(),
                msg::not_an_integer(&ident.to_string(), "a word", role.describe()),
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

/// Which floats an argument accepts.
#[derive(Clone, Copy)]
enum FloatRange {
    /// Greater than 0 (batch norm's epsilon).
    Positive,
    /// Any finite value (a leaky slope).
    Finite,
    /// 0 ≤ P < 1 (a dropout probability).
    Probability,
}

/// Reads a float literal argument within `range`.
fn float(value: &Value, what: &str, range: FloatRange, errors: &mut Errors) -> Option<Float> {
    let (number, text, span) = match value {
        Value::Float { value, text, span } => (*value, text.clone(), *span),
        other => {
            errors.push(spanned(
                other.span(),
                msg::not_a_float(what, &other.to_string()),
            ));
            return None;
        }
    };
    let single = number as f32;
    let fits = match range {
        FloatRange::Positive => single > 0.0 && single.is_finite(),
        FloatRange::Finite => single.is_finite(),
        FloatRange::Probability => (0.0..1.0).contains(&single),
    };
    if !fits {
        errors.push(spanned(
            span,
            msg::float_out_of_range(what, &text, range_text(range)),
        ));
        return None;
    }
    Some(Float::new(single))
}

fn range_text(range: FloatRange) -> &'static str {
    match range {
        FloatRange::Positive => "a positive number",
        FloatRange::Finite => "a finite number",
        FloatRange::Probability => "at least 0 and below 1",
    }
}

/// Reads `bias = true` or `bias = false`.
fn boolean(value: &Value, what: &str, errors: &mut Errors) -> Option<bool> {
    match value {
        Value::Bool(ident) => Some(ident == "true"),
        other => {
            errors.push(spanned(
                other.span(),
                msg::not_a_bool(what, &other.to_string()),
            ));
            None
        }
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

/// Checks one layer, named `path`. Returns `None` when it has an error or
/// when its input volume is unknown because of an earlier error; in the
/// latter case only the checks that need no volume run.
fn check_layer(
    index: usize,
    path: String,
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
        "conv" => conv_kind(layer, &args, input, errors)?,
        "pool" | "avgpool" => {
            let f = pair(args.positional[0], Role::Window, errors);
            let s = match args.positional.get(1) {
                Some(value) => pair(value, Role::Stride, errors),
                None => f,
            };
            let p = match args.named("p") {
                Some(value) => pair(value, Role::Padding, errors),
                None => Some(Pair::square(0)),
            };
            let (f, s, p) = (f?, s?, p?);
            if p.h > f.h / 2 || p.w > f.w / 2 {
                let span = args.named("p").map_or(layer.span, Value::span);
                errors.push(spanned(span, msg::pool_padding(&word, f, p)));
                return None;
            }
            if word == "pool" {
                LayerKind::MaxPool { f, s, p }
            } else {
                LayerKind::AvgPool { f, s, p }
            }
        }
        "global_avgpool" => LayerKind::GlobalAvgPool,
        "bn" => {
            let eps = match args.named("eps") {
                Some(value) => float(value, "the epsilon `eps`", FloatRange::Positive, errors)?,
                None => Float::new(BN_EPS),
            };
            LayerKind::BatchNorm { eps }
        }
        "fc" => LayerKind::Fc {
            n: int(args.positional[0], Role::Outputs, errors)?,
        },
        "relu" => LayerKind::Activation(Activation::Relu),
        "relu6" => LayerKind::Activation(Activation::Relu6),
        "leaky_relu" => {
            let slope = match args.positional.first() {
                Some(value) => float(value, "the slope A", FloatRange::Finite, errors)?,
                None => Float::new(LEAKY_SLOPE),
            };
            LayerKind::Activation(Activation::LeakyRelu(slope))
        }
        "sigmoid" => LayerKind::Activation(Activation::Sigmoid),
        "tanh" => LayerKind::Activation(Activation::Tanh),
        "silu" => LayerKind::Activation(Activation::Silu),
        "gelu" => LayerKind::Activation(Activation::Gelu),
        "hardswish" => LayerKind::Activation(Activation::HardSwish),
        "dropout" => LayerKind::Dropout {
            p: float(
                args.positional[0],
                "the probability P",
                FloatRange::Probability,
                errors,
            )?,
        },
        "flatten" => LayerKind::Flatten,
        "softmax" => LayerKind::Softmax,
        // `input`, the only other keyword: a sequence's first entry is
        // taken before any layer is checked.
        _ => {
            errors.push(spanned(layer.span, msg::repeated_input()));
            return None;
        }
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
        path,
        name,
        kind,
        input,
        output,
        params,
        macs,
    })
}

/// Resolves a convolution's arguments, `p = same` included, and checks
/// that its groups divide its channels and filters.
fn conv_kind(
    layer: &LayerDef,
    args: &Args<'_>,
    input: Option<Volume>,
    errors: &mut Errors,
) -> Option<LayerKind> {
    let k = int(args.positional[0], Role::Filters, errors);
    let f = pair(args.positional[1], Role::FilterSize, errors);
    let s = match args.named("s") {
        Some(value) => pair(value, Role::Stride, errors),
        None => Some(Pair::square(1)),
    };
    let d = match args.named("d") {
        Some(value) => pair(value, Role::Dilation, errors),
        None => Some(Pair::square(1)),
    };
    let g = match args.named("g") {
        Some(value) => int(value, Role::Groups, errors),
        None => Some(1),
    };
    let bias = match args.named("bias") {
        Some(value) => boolean(value, "`bias`", errors),
        None => Some(true),
    };
    let p = match args.named("p") {
        Some(Value::Same(ident)) => {
            let (f, s, d) = (f?, s?, d?);
            let mut ok = true;
            // D·(F − 1) must be even for the padding to centre the filter.
            let span_h = d.h.saturating_mul(f.h - 1);
            let span_w = d.w.saturating_mul(f.w - 1);
            if span_h % 2 == 1 || span_w % 2 == 1 {
                errors.push(syn::Error::new(ident.span(), msg::same_even_filter(f)));
                ok = false;
            }
            if s != Pair::square(1) {
                let span = args.named("s").map_or(layer.span, Value::span);
                errors.push(spanned(span, msg::same_with_stride(s)));
                ok = false;
            }
            ok.then_some(Pair {
                h: span_h / 2,
                w: span_w / 2,
            })
        }
        Some(value) => pair(value, Role::Padding, errors),
        None => Some(Pair::square(0)),
    };
    let (k, g) = (k?, g?);
    if let Some(input) = input {
        if input.c % g != 0 || k % g != 0 {
            let span = args.named("g").map_or(layer.span, Value::span);
            errors.push(spanned(span, msg::groups_do_not_divide(g, input, k)));
            return None;
        }
    }
    Some(LayerKind::Conv {
        k,
        f: f?,
        s: s?,
        p: p?,
        d: d?,
        g,
        bias: bias?,
    })
}

/// One axis of a sliding window, for checks and messages: `f` is the
/// window's size, `d` the spacing of its taps (1 but for dilated
/// convolutions).
#[derive(Clone, Copy)]
pub(crate) struct Axis {
    pub(crate) len: usize,
    pub(crate) f: usize,
    pub(crate) s: usize,
    pub(crate) p: usize,
    pub(crate) d: usize,
}

impl Axis {
    /// The input span of the window, `d·(f − 1) + 1` (saturating).
    pub(crate) fn extent(self) -> usize {
        arith::extent(self.f, self.d).unwrap_or(usize::MAX)
    }

    /// The output length, exact or rounded down.
    pub(crate) fn out(self, floor: bool) -> Result<usize, WindowError> {
        let extent = arith::extent(self.f, self.d).ok_or(WindowError::Overflow)?;
        if floor {
            arith::window_out_floor(self.len, extent, self.s, self.p)
        } else {
            arith::window_out(self.len, extent, self.s, self.p)
        }
    }
}

/// A sliding-window layer (conv, pool, avgpool) with its resolved sizes.
struct Window {
    conv: bool,
    k: usize,
    f: Pair,
    s: Pair,
    p: Pair,
    d: Pair,
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
        LayerKind::Conv { k, f, s, p, d, .. } => Window {
            conv: true,
            k,
            f,
            s,
            p,
            d,
        },
        LayerKind::MaxPool { f, s, p } | LayerKind::AvgPool { f, s, p } => Window {
            conv: false,
            k: input.c,
            f,
            s,
            p,
            d: Pair::square(1),
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
        LayerKind::GlobalAvgPool => {
            return Some((
                Volume {
                    c: input.c,
                    h: 1,
                    w: 1,
                },
                0,
                0,
            ))
        }
        LayerKind::BatchNorm { .. } => return Some((input, input.c.saturating_mul(2), 0)),
        LayerKind::Activation(_) | LayerKind::Softmax | LayerKind::Dropout { .. } => {
            return Some((input, 0, 0))
        }
    };
    let Window {
        conv,
        k,
        f,
        s,
        p,
        d,
    } = window;
    let axes = [
        Axis {
            len: input.h,
            f: f.h,
            s: s.h,
            p: p.h,
            d: d.h,
        },
        Axis {
            len: input.w,
            f: f.w,
            s: s.w,
            p: p.w,
            d: d.w,
        },
    ];
    let outs = axes.map(|a| a.out(args.floor));
    if let [Ok(oh), Ok(ow)] = outs {
        let output = Volume { c: k, h: oh, w: ow };
        let LayerKind::Conv { g, bias, .. } = *kind else {
            return Some((output, 0, 0));
        };
        let channels = input.c / g;
        let params = arith::conv_params(channels, k, f.h, f.w, bias);
        let macs = arith::conv_macs(channels, k, f.h, f.w, oh, ow);
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

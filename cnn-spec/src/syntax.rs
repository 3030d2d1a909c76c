//! The DSL's syntax tree, parsed with syn from a token stream.
//!
//! Parsing is lenient inside a network's braces: a malformed layer or
//! argument becomes an error that is collected, and parsing goes on, so that
//! independent mistakes are reported together. Only the outer structure
//! (`struct Name { … }`) stops the parse.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, LitInt, Token, Visibility};

use crate::report::Errors;

/// The input of one `network!` invocation: one or more network definitions.
pub struct NetworksDef {
    /// The definitions, in source order.
    pub networks: Vec<NetworkDef>,
    /// Errors found inside the definitions' bodies, reported with the checks.
    pub errors: Errors,
}

/// One `struct Name { layers… }` definition as written.
pub struct NetworkDef {
    /// Outer attributes (doc comments, derives, lints) for the struct.
    pub attrs: Vec<Attribute>,
    /// The struct's visibility.
    pub vis: Visibility,
    /// The struct's name.
    pub ident: Ident,
    /// The entries, in order, as written: `input(…)` first, then layers,
    /// groups and residual blocks.
    pub entries: Vec<EntryDef>,
    /// The span of the closing brace, where "missing layer" errors point.
    pub body_span: Span,
}

/// One entry of a sequence: a layer, a group or a residual block, with
/// the name it is given (`conv1: conv(…)`), if any.
#[derive(Clone)]
pub struct EntryDef {
    /// The name written before a `:`.
    pub label: Option<Label>,
    /// What the entry is.
    pub item: ItemDef,
}

/// A name given to an entry: an identifier or an unsuffixed integer.
#[derive(Clone)]
pub struct Label {
    /// The name as written.
    pub text: String,
    /// Where it is.
    pub span: Span,
}

/// What an entry is.
#[derive(Clone)]
pub enum ItemDef {
    /// A layer.
    Layer(LayerDef),
    /// A group `{ … }`: a nested sequence, for naming.
    Group(GroupDef),
    /// `residual(ACT) { MAIN } shortcut { SC }`, ACT and SC optional.
    Residual(ResidualDef),
}

/// A braced sequence of entries.
#[derive(Clone)]
pub struct GroupDef {
    /// The entries, in order.
    pub entries: Vec<EntryDef>,
    /// From the opening to the closing brace.
    pub span: SpanRange,
}

/// A residual block as written.
#[derive(Clone)]
pub struct ResidualDef {
    /// The `residual` keyword.
    pub keyword: Ident,
    /// The activation after the add, `residual(relu)`, if any.
    pub act: Option<LayerDef>,
    /// MAIN, the block's layers.
    pub main: GroupDef,
    /// SC, the shortcut's layers, after the `shortcut` keyword.
    pub shortcut: Option<(Ident, GroupDef)>,
}

impl ItemDef {
    /// Where the entry is, for messages about it as a whole.
    pub fn span(&self) -> SpanRange {
        match self {
            ItemDef::Layer(layer) => layer.span,
            ItemDef::Group(group) => group.span,
            ItemDef::Residual(residual) => SpanRange {
                start: residual.keyword.span(),
                end: residual
                    .shortcut
                    .as_ref()
                    .map_or(residual.main.span.end, |(_, group)| group.span.end),
            },
        }
    }
}

/// One layer as written: a name and an optional parenthesised argument list.
#[derive(Clone)]
pub struct LayerDef {
    /// The layer name (`conv`, `pool`, …), possibly unknown.
    pub name: Ident,
    /// The arguments, `None` when the layer has no parentheses.
    pub args: Option<Vec<ArgDef>>,
    /// Span of the whole layer, name through closing parenthesis.
    pub span: SpanRange,
}

/// One argument: positional or `name = value`.
#[derive(Clone)]
pub enum ArgDef {
    /// A positional argument.
    Positional(Value),
    /// A named argument such as `s = 2`.
    Named {
        /// The argument's name.
        name: Ident,
        /// Its value.
        value: Value,
        /// Span of `name = value`.
        span: SpanRange,
    },
}

/// The `what` of a named argument written `name: value`.
pub const COLON: &str = "a named argument written with `:`";

/// An argument value.
#[derive(Clone)]
pub enum Value {
    /// An integer literal.
    Int(LitInt),
    /// A pair `(h, w)`.
    Pair {
        /// The height component.
        h: Box<Value>,
        /// The width component.
        w: Box<Value>,
        /// Span of the parenthesised pair.
        span: SpanRange,
    },
    /// The keyword `same` (only meaningful for padding).
    Same(Ident),
    /// A float literal, possibly negative.
    Float {
        /// Its value.
        value: f64,
        /// The literal as written (with its sign).
        text: String,
        /// Where it is.
        span: SpanRange,
    },
    /// `true` or `false`.
    Bool(Ident),
    /// The flag `floor`.
    Floor(Ident),
    /// Something that is not a value: kept for its span and text.
    Invalid {
        /// The tokens as written.
        text: String,
        /// Where they are.
        span: SpanRange,
        /// What kind of thing it is (`a float`, `a string`, …), for messages.
        what: &'static str,
    },
}

/// A span from a first to a last token, so that errors underline a whole
/// layer or argument on stable Rust (where `Span::join` is unavailable).
#[derive(Clone, Copy)]
pub struct SpanRange {
    /// The first token's span.
    pub start: Span,
    /// The last token's span.
    pub end: Span,
}

impl SpanRange {
    /// A range covering a single span.
    pub fn single(span: Span) -> SpanRange {
        SpanRange {
            start: span,
            end: span,
        }
    }
}

impl ToTokens for SpanRange {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        // Two tokens carrying the two spans: syn::Error::new_spanned uses the
        // first and last token of what it is given.
        tokens.extend([
            TokenTree::Ident(Ident::new("start", self.start)),
            TokenTree::Ident(Ident::new("end", self.end)),
        ]);
    }
}

impl Value {
    /// The value's span.
    pub fn span(&self) -> SpanRange {
        match self {
            Value::Int(lit) => SpanRange::single(lit.span()),
            Value::Pair { span, .. } | Value::Invalid { span, .. } | Value::Float { span, .. } => {
                *span
            }
            Value::Same(ident) | Value::Bool(ident) | Value::Floor(ident) => {
                SpanRange::single(ident.span())
            }
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(lit) => write!(f, "{lit}"),
            Value::Pair { h, w, .. } => write!(f, "({h}, {w})"),
            Value::Same(_) => f.write_str("same"),
            Value::Float { text, .. } | Value::Invalid { text, .. } => f.write_str(text),
            Value::Bool(ident) | Value::Floor(ident) => write!(f, "{ident}"),
        }
    }
}

impl Parse for NetworksDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut networks = Vec::new();
        let mut errors = Errors::default();
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "network! expects one or more `struct Name { input(C, H, W) … }` definitions",
            ));
        }
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            let vis: Visibility = input.parse()?;
            let lookahead = input.lookahead1();
            if !lookahead.peek(Token![struct]) {
                return Err(syn::Error::new(
                    input.span(),
                    "expected `struct`: a network is written `struct Name { input(C, H, W) … }`",
                ));
            }
            input.parse::<Token![struct]>()?;
            let ident: Ident = input.parse()?;
            let content;
            let brace = syn::braced!(content in input);
            let body: TokenStream = content.parse()?;
            let entries = parse_entries(body, &mut errors);
            networks.push(NetworkDef {
                attrs,
                vis,
                ident,
                entries,
                body_span: brace.span.close(),
            });
        }
        Ok(NetworksDef { networks, errors })
    }
}

type Tokens = std::iter::Peekable<proc_macro2::token_stream::IntoIter>;

/// Splits a sequence (a network's body or a group's) into entries,
/// collecting errors for stray tokens.
fn parse_entries(body: TokenStream, errors: &mut Errors) -> Vec<EntryDef> {
    let mut entries = Vec::new();
    let mut tokens: Tokens = body.into_iter().peekable();
    while let Some(token) = tokens.next() {
        // `name:` before an entry (but not `::`).
        let label = match (&token, tokens.peek()) {
            (TokenTree::Ident(_) | TokenTree::Literal(_), Some(TokenTree::Punct(colon)))
                if colon.as_char() == ':' && colon.spacing() == proc_macro2::Spacing::Alone =>
            {
                let label = label(&token, errors);
                tokens.next();
                match tokens.next() {
                    Some(next) => Some((label, next)),
                    None => {
                        errors.push(syn::Error::new(
                            token.span(),
                            format!("`{token}:` names nothing: write the layer, group or residual block after it"),
                        ));
                        break;
                    }
                }
            }
            _ => None,
        };
        let (label, token) = match label {
            Some((label, next)) => (label, next),
            None => (None, token),
        };
        if let Some(item) = parse_item(token, &mut tokens, errors) {
            entries.push(EntryDef { label, item });
        }
    }
    entries
}

/// The label a token spells: an identifier or an unsuffixed integer.
fn label(token: &TokenTree, errors: &mut Errors) -> Option<Label> {
    let text = token.to_string();
    let ok = match token {
        TokenTree::Ident(_) => true,
        TokenTree::Literal(_) => !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    };
    if ok {
        Some(Label {
            text,
            span: token.span(),
        })
    } else {
        errors.push(syn::Error::new(
            token.span(),
            format!("`{text}` is not a name: a layer's name is an identifier or an unsuffixed integer, such as `conv1` or `0`"),
        ));
        None
    }
}

/// One item from its first token: a layer, a group or a residual block.
fn parse_item(token: TokenTree, tokens: &mut Tokens, errors: &mut Errors) -> Option<ItemDef> {
    match token {
        TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => {
            Some(ItemDef::Group(group_def(&group, errors)))
        }
        TokenTree::Ident(name) if name == "residual" => residual(name, tokens, errors),
        TokenTree::Ident(name) if name == "shortcut" => {
            errors.push(syn::Error::new(
                name.span(),
                "`shortcut { … }` must follow a `residual { … }` block",
            ));
            if matches!(tokens.peek(), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace)
            {
                tokens.next();
            }
            None
        }
        TokenTree::Ident(name) => Some(ItemDef::Layer(layer_def(name, tokens, errors))),
        TokenTree::Punct(p) if matches!(p.as_char(), ',' | ';') => {
            errors.push(syn::Error::new(
                p.span(),
                format!(
                    "layers are separated by whitespace alone: remove this `{}`",
                    p.as_char()
                ),
            ));
            None
        }
        other => {
            errors.push(syn::Error::new_spanned(
                &other,
                format!("expected a layer such as `conv(8, 3)` or `relu`, found `{other}`"),
            ));
            None
        }
    }
}

/// A layer: its name and, if parentheses follow, its arguments.
fn layer_def(name: Ident, tokens: &mut Tokens, errors: &mut Errors) -> LayerDef {
    let args = match tokens.peek() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => Some(g.clone()),
        _ => None,
    };
    let span = match &args {
        Some(group) => {
            tokens.next();
            SpanRange {
                start: name.span(),
                end: group.span_close(),
            }
        }
        None => SpanRange::single(name.span()),
    };
    let args = args.map(|group| parse_args(group.stream(), errors));
    LayerDef { name, args, span }
}

/// The entries of a braced group.
fn group_def(group: &proc_macro2::Group, errors: &mut Errors) -> GroupDef {
    GroupDef {
        entries: parse_entries(group.stream(), errors),
        span: SpanRange {
            start: group.span_open(),
            end: group.span_close(),
        },
    }
}

/// `residual(ACT) { MAIN } shortcut { SC }` after its keyword.
fn residual(keyword: Ident, tokens: &mut Tokens, errors: &mut Errors) -> Option<ItemDef> {
    let act = match tokens.peek() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
            let g = g.clone();
            tokens.next();
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            match inner.as_slice() {
                [TokenTree::Ident(name), rest @ ..] => {
                    let mut rest: Tokens = rest
                        .iter()
                        .cloned()
                        .collect::<TokenStream>()
                        .into_iter()
                        .peekable();
                    let act = layer_def(name.clone(), &mut rest, errors);
                    if let Some(extra) = rest.next() {
                        errors.push(syn::Error::new(
                            extra.span(),
                            "`residual(ACT)` takes one activation, such as `residual(relu)`",
                        ));
                    }
                    Some(act)
                }
                _ => {
                    errors.push(syn::Error::new(
                        g.span(),
                        "`residual(ACT)` takes one activation, such as `residual(relu)`",
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let main = match tokens.peek() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
            let g = g.clone();
            tokens.next();
            group_def(&g, errors)
        }
        _ => {
            errors.push(syn::Error::new(
                keyword.span(),
                "`residual` is followed by its layers in braces: `residual { conv(64, 3, p = 1) bn relu conv(64, 3, p = 1) bn }`",
            ));
            return None;
        }
    };
    let shortcut = match tokens.peek() {
        Some(TokenTree::Ident(name)) if name == "shortcut" => {
            let name = name.clone();
            tokens.next();
            match tokens.peek() {
                Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                    let g = g.clone();
                    tokens.next();
                    Some((name, group_def(&g, errors)))
                }
                _ => {
                    errors.push(syn::Error::new(
                        name.span(),
                        "`shortcut` is followed by its layers in braces: `shortcut { conv(128, 1, s = 2) bn }`",
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    Some(ItemDef::Residual(ResidualDef {
        keyword,
        act,
        main,
        shortcut,
    }))
}

/// Splits an argument list at top-level commas and reads each argument.
fn parse_args(stream: TokenStream, errors: &mut Errors) -> Vec<ArgDef> {
    let mut args = Vec::new();
    let mut chunk: Vec<TokenTree> = Vec::new();
    for token in stream {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                if chunk.is_empty() {
                    errors.push(syn::Error::new(p.span(), "expected an argument before `,`"));
                } else {
                    args.push(parse_arg(std::mem::take(&mut chunk)));
                }
            }
            _ => chunk.push(token),
        }
    }
    if !chunk.is_empty() {
        args.push(parse_arg(chunk));
    }
    args
}

fn range_of(tokens: &[TokenTree]) -> SpanRange {
    let start = tokens.first().map_or_else(Span::call_site, TokenTree::span);
    let end = tokens.last().map_or(start, TokenTree::span);
    SpanRange { start, end }
}

fn parse_arg(tokens: Vec<TokenTree>) -> ArgDef {
    if let [TokenTree::Ident(name), TokenTree::Punct(eq), rest @ ..] = tokens.as_slice() {
        if eq.as_char() == '=' && eq.spacing() == proc_macro2::Spacing::Alone {
            let value = if rest.is_empty() {
                Value::Invalid {
                    text: String::new(),
                    span: SpanRange::single(eq.span()),
                    what: "nothing",
                }
            } else {
                parse_value(rest)
            };
            return ArgDef::Named {
                name: name.clone(),
                value,
                span: range_of(&tokens),
            };
        }
    }
    if let [TokenTree::Ident(name), TokenTree::Punct(colon), ..] = tokens.as_slice() {
        if colon.as_char() == ':' {
            // `s: 2`: a named argument with the wrong separator, reported
            // when its value is read.
            return ArgDef::Named {
                name: name.clone(),
                value: Value::Invalid {
                    text: tokens_text(&tokens),
                    span: range_of(&tokens),
                    what: COLON,
                },
                span: range_of(&tokens),
            };
        }
    }
    ArgDef::Positional(parse_value(&tokens))
}

fn tokens_text(tokens: &[TokenTree]) -> String {
    tokens.iter().cloned().collect::<TokenStream>().to_string()
}

fn parse_value(tokens: &[TokenTree]) -> Value {
    let span = range_of(tokens);
    match tokens {
        [TokenTree::Literal(lit)] => {
            match syn::parse2::<syn::Lit>(TokenTree::Literal(lit.clone()).into()) {
                Ok(syn::Lit::Int(int)) => Value::Int(int),
                Ok(syn::Lit::Float(float)) => float_value(&float, false, span),
                Ok(syn::Lit::Str(_)) => invalid(tokens, "a string"),
                _ => invalid(tokens, "not an integer"),
            }
        }
        [TokenTree::Ident(ident)] if ident == "same" => Value::Same(ident.clone()),
        [TokenTree::Ident(ident)] if ident == "true" || ident == "false" => {
            Value::Bool(ident.clone())
        }
        [TokenTree::Ident(ident)] if ident == crate::keywords::FLOOR => Value::Floor(ident.clone()),
        [TokenTree::Group(g)] if g.delimiter() == Delimiter::Parenthesis => {
            let parts: Vec<Vec<TokenTree>> = split_commas(g.stream());
            match parts.as_slice() {
                [h, w] if !h.is_empty() && !w.is_empty() => Value::Pair {
                    h: Box::new(parse_value(h)),
                    w: Box::new(parse_value(w)),
                    span,
                },
                _ => invalid(tokens, "not a pair `(h, w)`"),
            }
        }
        [TokenTree::Punct(p), TokenTree::Literal(lit)] if p.as_char() == '-' => {
            match syn::parse2::<syn::Lit>(TokenTree::Literal(lit.clone()).into()) {
                Ok(syn::Lit::Float(float)) => float_value(&float, true, span),
                _ => Value::Invalid {
                    text: format!("-{lit}"),
                    span,
                    what: "a negative number",
                },
            }
        }
        [TokenTree::Punct(p), rest @ ..] if p.as_char() == '-' => Value::Invalid {
            text: format!("-{}", tokens_text(rest)),
            span,
            what: "a negative number",
        },
        _ => invalid(tokens, "not an integer"),
    }
}

/// A float literal's value; a suffix or an unreadable literal is invalid.
fn float_value(float: &syn::LitFloat, negative: bool, span: SpanRange) -> Value {
    let sign = if negative { "-" } else { "" };
    let text = format!("{sign}{}", float.base10_digits());
    if !float.suffix().is_empty() {
        return Value::Invalid {
            text: format!("{sign}{float}"),
            span,
            what: "a suffixed number",
        };
    }
    match text.parse::<f64>() {
        Ok(value) => Value::Float { value, text, span },
        Err(_) => Value::Invalid {
            text,
            span,
            what: "not a number",
        },
    }
}

fn split_commas(stream: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut parts = vec![Vec::new()];
    for token in stream {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => parts.push(Vec::new()),
            _ => {
                if let Some(last) = parts.last_mut() {
                    last.push(token);
                }
            }
        }
    }
    if parts.len() > 1 && parts.last().is_some_and(Vec::is_empty) {
        parts.pop();
    }
    parts
}

fn invalid(tokens: &[TokenTree], what: &'static str) -> Value {
    Value::Invalid {
        text: tokens_text(tokens),
        span: range_of(tokens),
        what,
    }
}

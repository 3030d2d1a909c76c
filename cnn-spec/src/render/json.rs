//! The shape table as JSON, for tools in other languages.
//!
//! # Schema (version 1)
//!
//! One network is one object:
//!
//! ```json
//! {
//!   "schema": "cnn-shapes",
//!   "version": 1,
//!   "name": "SeedNet",
//!   "input": [3, 32, 32],
//!   "output": [10, 1, 1],
//!   "params": 26370,
//!   "macs": 793600,
//!   "activation_bytes": 104488,
//!   "layers": [
//!     {
//!       "index": 0,
//!       "name": "conv(10, 5, s = 1, p = 2)",
//!       "kind": "conv",
//!       "args": { "k": 10, "f": [5, 5], "s": [1, 1], "p": [2, 2] },
//!       "input": [3, 32, 32],
//!       "output": [10, 32, 32],
//!       "params": 760,
//!       "macs": 768000,
//!       "activation_bytes": 40960
//!     }
//!   ]
//! }
//! ```
//!
//! - `schema` is always `"cnn-shapes"`; `version` changes only when a field
//!   changes meaning or disappears (new fields may be added).
//! - Volumes (`input`, `output`) are `[C, H, W]`; a flat vector of N is
//!   `[N, 1, 1]`.
//! - `params` counts learnable values (weights and biases); `macs` counts
//!   multiply-accumulates per image, biases excluded; `activation_bytes` is
//!   the size of the layer's output as f32 (for the network: every volume
//!   of one image, the input included).
//! - `layers` lists the layers after `input`, in order; `index` is the `i`
//!   of the `{i}.weight` and `{i}.bias` tensor names.
//! - `kind` is the DSL keyword (`conv`, `pool`, `avgpool`, `relu`,
//!   `sigmoid`, `tanh`, `flatten`, `fc`, `softmax`) and `args` its resolved
//!   arguments: `conv` has `k` (filters) and the `[h, w]` pairs `f` (filter),
//!   `s` (stride) and `p` (padding, `p = same` resolved to numbers); `pool`
//!   and `avgpool` have `f` and `s`; `fc` has `n`; the others `{}`.
//! - Every number is a non-negative integer, written exactly. Counts above
//!   2⁵³ lose precision in readers that hold numbers as doubles
//!   (JavaScript).
//!
//! A list of networks (`cnn-shapes --json`) is a JSON array of such objects.

use std::fmt::Write;

use super::{activation_bytes, total_activation_bytes};
use crate::model::{LayerKind, Network, Pair, Volume};

/// The network's shape table as a JSON object, in the schema of the
/// [module documentation](self).
///
/// ```
/// let nets = cnn_spec::parse_networks("struct N { input(1, 4, 4) fc(3) }").unwrap();
/// let json = cnn_spec::render::json(&nets[0]);
/// assert!(json.contains("\"output\": [3, 1, 1]"));
/// ```
pub fn json(network: &Network) -> String {
    let mut out = String::new();
    write_network(&mut out, network, "");
    out.push('\n');
    out
}

/// Several networks as one JSON array of objects in the schema of the
/// [module documentation](self).
pub fn json_list<'a>(networks: impl IntoIterator<Item = &'a Network>) -> String {
    let mut out = String::from("[");
    let mut first = true;
    for network in networks {
        out.push_str(if first { "\n  " } else { ",\n  " });
        first = false;
        write_network(&mut out, network, "  ");
    }
    out.push_str(if first { "]\n" } else { "\n]\n" });
    out
}

/// Writes one network object; `indent` prefixes every line but the first.
fn write_network(out: &mut String, network: &Network, indent: &str) {
    let _ = write!(
        out,
        "{{\n{indent}  \"schema\": \"cnn-shapes\",\n{indent}  \"version\": 1,\n{indent}  \"name\": {},\n{indent}  \"input\": {},\n{indent}  \"output\": {},\n{indent}  \"params\": {},\n{indent}  \"macs\": {},\n{indent}  \"activation_bytes\": {},\n{indent}  \"layers\": [",
        string(&network.name),
        volume(network.input),
        volume(network.output()),
        network.params,
        network.macs,
        total_activation_bytes(network),
    );
    for (i, layer) in network.layers.iter().enumerate() {
        let separator = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            "{separator}\n{indent}    {{\n{indent}      \"index\": {},\n{indent}      \"name\": {},\n{indent}      \"kind\": {},\n{indent}      \"args\": {},\n{indent}      \"input\": {},\n{indent}      \"output\": {},\n{indent}      \"params\": {},\n{indent}      \"macs\": {},\n{indent}      \"activation_bytes\": {}\n{indent}    }}",
            layer.index,
            string(&layer.name),
            string(layer.kind.keyword()),
            args(&layer.kind),
            volume(layer.input),
            volume(layer.output),
            layer.params,
            layer.macs,
            activation_bytes(layer.output),
        );
    }
    let close = if network.layers.is_empty() { "" } else { "\n" };
    let _ = write!(out, "{close}{indent}  ]\n{indent}}}");
}

/// The `args` object of a layer kind.
fn args(kind: &LayerKind) -> String {
    match *kind {
        LayerKind::Conv { k, f, s, p } => format!(
            "{{ \"k\": {k}, \"f\": {}, \"s\": {}, \"p\": {} }}",
            pair(f),
            pair(s),
            pair(p)
        ),
        LayerKind::MaxPool { f, s } | LayerKind::AvgPool { f, s } => {
            format!("{{ \"f\": {}, \"s\": {} }}", pair(f), pair(s))
        }
        LayerKind::Fc { n } => format!("{{ \"n\": {n} }}"),
        LayerKind::Activation(_) | LayerKind::Flatten | LayerKind::Softmax => "{}".to_string(),
    }
}

fn volume(v: Volume) -> String {
    format!("[{}, {}, {}]", v.c, v.h, v.w)
}

fn pair(p: Pair) -> String {
    format!("[{}, {}]", p.h, p.w)
}

/// A JSON string literal: quotes, backslashes and control characters
/// escaped, everything else (UTF-8) kept.
pub(crate) fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            super::string("a\"b\\c\n\u{1}é"),
            "\"a\\\"b\\\\c\\n\\u0001é\""
        );
    }
}

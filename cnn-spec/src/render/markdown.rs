//! The shape table as Markdown (GitHub and rustdoc flavours).

use std::fmt::Write;

use super::table::{self, add_text, Label};
use super::{thousands, total_activation_bytes};
use crate::model::Network;

/// Indentation of one level of nesting: two em spaces, which Markdown
/// keeps at the start of a table cell (it trims ASCII spaces only) and
/// HTML does not collapse.
const INDENT: &str = "\u{2003}\u{2003}";

/// The network's shape table as Markdown: the input first, then one row per
/// layer (output volume C×H×W, learnable parameters, multiply-accumulates
/// per image, activation memory of its output in bytes of f32), the totals
/// last.
///
/// When the network names its layers, a layer's cell reads
/// ``conv1: `conv(64, 7, s = 2, p = 3, bias = false, floor)` ``; a group
/// (in bold) or a residual block is a row of its own with its output and
/// totals, its entries indented beneath it. A residual block lists its
/// MAIN, then its *shortcut*, then its *add* and the activation after it.
///
/// ```
/// let nets = cnn_spec::parse_networks("struct N { input(1, 4, 4) conv(2, 3) relu }").unwrap();
/// let table = cnn_spec::render::markdown(&nets[0]);
/// assert!(table.contains("| 0 | `conv(2, 3)` | 2×2×2 | 20 | 72 | 32 B |"));
/// ```
pub fn markdown(network: &Network) -> String {
    let mut out = String::new();
    out.push_str("| # | layer | output C×H×W | parameters | MACs per image | activations |\n");
    out.push_str("|--:|:------|-------------:|-----------:|---------------:|------------:|\n");
    let bytes = |value: u128| thousands(value) + " B";
    for row in table::rows(network) {
        let indent = INDENT.repeat(row.depth);
        let (index, cell) = match &row.label {
            Label::Input => (String::new(), "input".to_string()),
            Label::Layer {
                index,
                name: Some(name),
                text,
            } => (
                index.to_string(),
                format!("{indent}{}: `{text}`", name.text),
            ),
            Label::Layer {
                index,
                name: None,
                text,
            } => (index.to_string(), format!("{indent}`{text}`")),
            Label::Group { name } => (String::new(), format!("{indent}**{name}**")),
            Label::Residual { name, text } => (
                String::new(),
                format!("{indent}**{}**: `{text}`", name.text),
            ),
            Label::Shortcut => (String::new(), format!("{indent}*shortcut*")),
            Label::Add { shortcut } => {
                (String::new(), format!("{indent}*{}*", add_text(*shortcut)))
            }
        };
        let cells = [
            index,
            cell,
            row.output.to_string(),
            row.params
                .map_or_else(String::new, |p| thousands(p as u128)),
            row.macs.map_or_else(String::new, thousands),
            row.activations.map_or_else(String::new, bytes),
        ];
        out.push('|');
        for cell in cells {
            if !cell.is_empty() {
                out.push(' ');
                out.push_str(&cell);
            }
            out.push_str(" |");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "| | **total** | | **{}** | **{}** | **{}** |",
        thousands(network.params as u128),
        thousands(network.macs),
        bytes(total_activation_bytes(network)),
    );
    out
}

//! The shape table as Markdown (GitHub and rustdoc flavours).

use std::fmt::Write;

use super::{activation_bytes, thousands, total_activation_bytes};
use crate::model::Network;

/// The network's shape table as Markdown: the input first, then one row per
/// layer (output volume C×H×W, learnable parameters, multiply-accumulates
/// per image, activation memory of its output in bytes of f32), the totals
/// last.
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
    let _ = writeln!(
        out,
        "| | input | {} | | | {} |",
        network.input,
        bytes(activation_bytes(network.input)),
    );
    for layer in &network.layers {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            layer.index,
            layer.name,
            layer.output,
            thousands(layer.params as u128),
            thousands(layer.macs),
            bytes(activation_bytes(layer.output)),
        );
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

use std::fmt::Write;

use super::thousands;
use crate::model::Network;

/// The network's shape table as Markdown: one row per layer (output volume
/// C×H×W, parameters, multiply-accumulates per image, activation memory in
/// bytes for f32), the input first and the totals last.
pub fn markdown(network: &Network) -> String {
    let mut out = String::new();
    out.push_str("| # | layer | output C×H×W | parameters | MACs | activations |\n");
    out.push_str("|--:|:------|-------------:|-----------:|-----:|------------:|\n");
    let bytes = |len: usize| thousands(len as u128 * 4) + " B";
    let _ = writeln!(
        out,
        "|   | input | {} | | | {} |",
        network.input,
        bytes(network.input.len())
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
            bytes(layer.output.len()),
        );
    }
    let activations: u128 = network
        .layers
        .iter()
        .map(|l| l.output.len() as u128)
        .sum::<u128>()
        + network.input.len() as u128;
    let _ = writeln!(
        out,
        "| | **total** | | **{}** | **{}** | **{} B** |",
        thousands(network.params as u128),
        thousands(network.macs),
        thousands(activations * 4),
    );
    out
}

//! Shape documentation renderers, each from the same checked model:
//! Markdown ([`markdown`]), JSON ([`fn@json`], schema in [`mod@json`]), SVG
//! ([`svg`]), plain text for a terminal ([`summary`]) and the section the
//! `network!` macro appends to a generated struct's docs ([`rustdoc`]).
//!
//! A build script can write them next to the code:
//!
//! ```
//! let nets = cnn_spec::parse_networks(
//!     "struct SeedNet { input(3, 32, 32) conv(10, 5, s = 1, p = 2) relu pool(2, 2) fc(10) }",
//! )
//! .unwrap();
//! let dir = std::env::temp_dir();
//! std::fs::write(dir.join("SeedNet.md"), cnn_spec::render::markdown(&nets[0])).unwrap();
//! std::fs::write(dir.join("SeedNet.svg"), cnn_spec::render::svg(&nets[0])).unwrap();
//! ```

pub mod json;
mod markdown;
mod number;
mod svg;
mod table;
mod text;

pub use json::{json, json_list};
pub use markdown::markdown;
pub use number::thousands;
pub use svg::svg;
pub use text::summary;

use crate::model::{Network, Volume};

/// Bytes of a volume held as f32.
pub(crate) fn activation_bytes(volume: Volume) -> u128 {
    volume.len() as u128 * 4
}

/// Bytes of every volume of one image (the input and each layer's output)
/// held as f32.
pub(crate) fn total_activation_bytes(network: &Network) -> u128 {
    network
        .layers
        .iter()
        .map(|layer| activation_bytes(layer.output))
        .sum::<u128>()
        + activation_bytes(network.input)
}

/// The generated section of a network struct's rustdoc: a `Shapes` heading,
/// the totals, the Markdown shape table and an inline SVG picture of the
/// volumes.
///
/// The picture is one HTML block for rustdoc's Markdown: it starts on its
/// own line after a blank one, has no blank line inside and no indentation,
/// so it reaches the page as is.
pub fn rustdoc(network: &Network) -> String {
    format!(
        "\n# Shapes\n\nInput {}, output {}: {} parameters, {} multiply-accumulates per image.\n\n{}\n{}\n",
        network.input,
        network.output(),
        thousands(network.params as u128),
        thousands(network.macs),
        markdown(network),
        svg::svg_inline(network),
    )
}

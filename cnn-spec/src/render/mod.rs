//! Shape documentation renderers, each from the same checked model.

mod markdown;
mod number;
mod text;

pub use markdown::markdown;
pub use number::thousands;

use crate::model::Network;

/// The generated section of a network struct's rustdoc: the shape table,
/// the totals and a picture of the volumes.
pub fn rustdoc(network: &Network) -> String {
    format!(
        "\n# Shapes\n\n{}\n\nInput {}, output {}; {} parameters, {} multiply-accumulates per image.",
        markdown(network),
        network.input,
        network.output(),
        thousands(network.params as u128),
        thousands(network.macs),
    )
}
pub use text::summary;

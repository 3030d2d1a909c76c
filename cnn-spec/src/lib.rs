//! The `cnn` network DSL as a plain library: grammar, layer model, shape
//! arithmetic, diagnostics, execution plan and shape-documentation
//! renderers.
//!
//! The `network!` macro, build scripts and the `cnn-shapes` tool all go
//! through this crate, so they agree on every shape and every message.
//!
//! ```
//! let networks = cnn_spec::parse_networks(
//!     "pub struct SeedNet { input(3, 32, 32) conv(10, 5, s = 1, p = 2) relu pool(2, 2) fc(10) }",
//! )
//! .unwrap();
//! let seed = &networks[0];
//! assert_eq!(seed.layers[0].output.dims(), [10, 32, 32]);
//! assert_eq!(seed.layers[0].params, 760);
//! assert_eq!(seed.output().dims(), [10, 1, 1]);
//! ```
//!
//! Errors carry spans and read the same as the macro's:
//!
//! ```
//! let err = cnn_spec::parse_networks("struct N { input(3, 32, 32) conv(10, 5, s = 2) }")
//!     .unwrap_err();
//! assert!(err.to_string().contains("(32 − 5 + 2·0)/2 + 1 = 14.5 is not a whole number"));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arith;
pub mod check;
mod diagnostic;
pub mod keywords;
pub mod model;
pub mod plan;
pub mod render;
pub mod report;
pub mod scan;
pub mod syntax;

pub use model::{Activation, Layer, LayerKind, Network, Pair, Volume};

use proc_macro2::TokenStream;
use syntax::NetworksDef;

/// A network definition together with the result of checking it.
pub struct Analyzed {
    /// The definition as written (attributes, visibility, name, layers).
    pub def: syntax::NetworkDef,
    /// The checked model, or every error found in it.
    pub network: syn::Result<Network>,
}

/// Parses the body of a `network!` invocation (one or more
/// `struct Name { … }` definitions) and checks each network.
///
/// The outer `Err` is a structural error that stops the parse; errors inside
/// a network are in its [`Analyzed::network`], and errors in the body that
/// belong to no single network (a stray token) are in the returned list.
pub fn analyze(tokens: TokenStream) -> syn::Result<(Vec<Analyzed>, report::Errors)> {
    let NetworksDef { networks, errors } = syn::parse2(tokens)?;
    let analyzed = networks
        .into_iter()
        .map(|def| {
            let network = check::check_network(&def);
            Analyzed { def, network }
        })
        .collect();
    Ok((analyzed, errors))
}

/// Parses and checks networks written in the DSL, from a string holding the
/// body of a `network!` invocation.
///
/// Every error of every network is returned together, each with the span
/// (line and column in `src`) of the offending token.
pub fn parse_networks(src: &str) -> syn::Result<Vec<Network>> {
    let tokens: TokenStream = src.parse().map_err(|e: proc_macro2::LexError| {
        syn::Error::new(e.span(), format!("not valid Rust tokens: {e}"))
    })?;
    let (analyzed, mut errors) = analyze(tokens)?;
    let mut networks = Vec::new();
    for item in analyzed {
        match item.network {
            Ok(network) => networks.push(network),
            Err(error) => errors.push(error),
        }
    }
    errors.finish(networks)
}

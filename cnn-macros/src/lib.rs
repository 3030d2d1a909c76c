//! The `network!` procedural macro of the `cnn` crate. Use it through `cnn`:
//! the generated code names `::cnn::…` only.
//!
//! The macro is a pipeline: parse and check with `cnn_spec`, then expand.

mod expand;
mod train;

use proc_macro::TokenStream;

/// Declares one or more convolutional networks, checked at compile time.
///
/// See the `cnn` crate for the DSL and the generated API.
#[proc_macro]
pub fn network(input: TokenStream) -> TokenStream {
    cnn_spec::analyze(input.into())
        .map(|(networks, errors)| expand::expand(networks, errors))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

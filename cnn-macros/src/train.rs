//! Code generation for training: the specialised backward pass.

use cnn_spec::Network;
use proc_macro2::TokenStream;
use syn::Ident;

/// Training items for a network (none yet); `network` is `None` for a stub.
pub fn items(ident: &Ident, network: Option<&Network>) -> TokenStream {
    let _ = (ident, network);
    TokenStream::new()
}

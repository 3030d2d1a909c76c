//! Code generation for training: `impl Trainable`, whose training pass the
//! runtime runs from the network's layers, and the inherent `train_step`
//! and `gradients`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

/// Training items for a network (a network with errors gets them too, so
/// that uses of it compile).
pub fn items(ident: &Ident) -> TokenStream {
    quote! {
        #[automatically_derived]
        impl ::cnn::__private::train::Trainable for #ident {}

        #[automatically_derived]
        impl #ident {
            /// One step of training on a batch `N×C×H×W`: forward, softmax
            /// cross-entropy against `labels` (class indices), backward
            /// through every layer, and an update of the parameters by
            /// `opt` (`cnn::Sgd`, `cnn::AdamW` or any `cnn::Optimizer`).
            /// Returns the batch's mean loss, before the update.
            ///
            /// A network ending in `softmax` is trained on the softmax's
            /// input (fused softmax cross-entropy); otherwise the output is
            /// taken as the logits. The batch is spread over rayon's global
            /// pool; the result does not depend on the number of threads.
            ///
            /// # Errors
            /// The images' shape is not [`Self::INPUT`], the batch is empty,
            /// the number of labels differs from the number of images, or a
            /// label is not below the number of outputs; the parameters are
            /// unchanged then.
            pub fn train_step(
                &mut self,
                x: ::cnn::__private::ArrayView4<'_, f32>,
                labels: &[usize],
                opt: &mut dyn ::cnn::__private::train::Optimizer,
            ) -> ::core::result::Result<f32, ::cnn::__private::Error> {
                <Self as ::cnn::__private::train::Trainable>::train_step(self, x, labels, opt)
            }

            /// The batch's mean softmax cross-entropy and its gradient with
            /// respect to every parameter, by name (`"0.weight"`, …), without
            /// changing the network.
            ///
            /// # Errors
            /// As [`Self::train_step`].
            pub fn gradients(
                &self,
                x: ::cnn::__private::ArrayView4<'_, f32>,
                labels: &[usize],
            ) -> ::core::result::Result<(f32, ::cnn::__private::train::Gradients), ::cnn::__private::Error> {
                <Self as ::cnn::__private::train::Trainable>::gradients(self, x, labels)
            }
        }
    }
}

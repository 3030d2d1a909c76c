//! Code generation for training: the specialised backward pass.
//!
//! For every network this emits `impl Trainable` with a `backward_raw` that
//! runs the layers forward on a chunk of images, keeping every output in a
//! workspace whose layout is fixed here, computes the softmax cross-entropy
//! (fused with a final `softmax`), then runs the layers backward, each a call
//! to a const-generic kernel of `::cnn::__private::train::kernels` with the
//! layer's shapes; and the inherent `train_step` and `gradients`.

use cnn_spec::{Activation, Layer, LayerKind, Network};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

/// Training items for a network; `network` is `None` for a stub, which gets
/// a `Trainable` impl that does nothing so that uses of it compile.
pub fn items(ident: &Ident, network: Option<&Network>) -> TokenStream {
    let (body, error) = match network.map(backward_raw) {
        Some(Ok(body)) => (body, None),
        Some(Err(message)) => (stub(), Some(syn::Error::new(ident.span(), message))),
        None => (stub(), None),
    };
    let error = error.map(syn::Error::into_compile_error);
    quote! {
        #error

        #[automatically_derived]
        impl ::cnn::__private::train::Trainable for #ident {
            #body
        }

        #[automatically_derived]
        impl #ident {
            /// One step of training on a batch `N×C×H×W`: forward, softmax
            /// cross-entropy against `labels` (class indices), backward
            /// through every layer, and an update of the parameters by
            /// `opt`. Returns the batch's mean loss, before the update.
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
                opt: &mut ::cnn::__private::train::Sgd,
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

/// The `Trainable` items of a network with errors.
fn stub() -> TokenStream {
    quote! {
        const TRAIN_WORKSPACE: usize = 0;

        fn backward_raw(
            &self,
            _images: usize,
            _x: &[f32],
            _labels: &[usize],
            _scale: f32,
            _grads: &mut [f32],
            _scratch: &mut [f32],
        ) -> f64 {
            0.0
        }
    }
}

fn lit(value: usize) -> Literal {
    Literal::usize_unsuffixed(value)
}

fn act(activation: Activation) -> TokenStream {
    let variant = match activation {
        Activation::Relu => quote!(Relu),
        Activation::Sigmoid => quote!(Sigmoid),
        Activation::Tanh => quote!(Tanh),
    };
    quote!(::cnn::__private::kernels::Act::#variant)
}

/// The const generics of a conv or pooling layer's window, `C, H, W, FH, FW,
/// SH, SW` (and `K` after `W`, and `PH, PW`, for a conv).
fn window_generics(layer: &Layer) -> TokenStream {
    let [c, h, w] = layer.input.dims().map(lit);
    match layer.kind {
        LayerKind::Conv { k, f, s, p } => {
            let [k, fh, fw, sh, sw, ph, pw] = [k, f.h, f.w, s.h, s.w, p.h, p.w].map(lit);
            quote!(#c, #h, #w, #k, #fh, #fw, #sh, #sw, #ph, #pw)
        }
        LayerKind::MaxPool { f, s } | LayerKind::AvgPool { f, s } => {
            let [fh, fw, sh, sw] = [f.h, f.w, s.h, s.w].map(lit);
            quote!(#c, #h, #w, #fh, #fw, #sh, #sw)
        }
        _ => quote!(),
    }
}

const OVERFLOW: &str = "the training workspace of this network does not fit in memory";

/// The `Trainable` items of a checked network.
fn backward_raw(network: &Network) -> Result<TokenStream, &'static str> {
    let layers = &network.layers;
    let kernels = quote!(::cnn::__private::train::kernels);
    let chunk = quote!(::cnn::__private::train::CHUNK);

    // A final softmax is fused into the loss: the layers before it run.
    let computed = match layers.last() {
        Some(layer) if layer.kind == LayerKind::Softmax => layers.len() - 1,
        _ => layers.len(),
    };
    let classes = lit(network.output().len());

    // Parameter tensors: slot of each layer's weight, and its gradient's
    // bindings, in the layout order of `Parameters`.
    let mut slots = vec![None; layers.len()];
    let mut grad_splits = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        if let Some(shape) = layer.weight_shape() {
            slots[i] = Some(grad_splits.len());
            let weight_len = lit(shape.iter().product());
            let bias_len = lit(shape.first().copied().unwrap_or(0));
            let (gw, gb) = (
                format_ident!("grad_{}_weight", i),
                format_ident!("grad_{}_bias", i),
            );
            grad_splits.push(quote! {
                let (#gw, grads) = grads.split_at_mut(#weight_len);
                let (#gb, grads) = grads.split_at_mut(#bias_len);
            });
        }
    }

    // Workspace per image: every computed layer's output and two gradient
    // buffers as large as the largest volume; plus one image's im2col.
    let grad_len = network.max_volume();
    let mut per_image = grad_len.checked_mul(2).ok_or(OVERFLOW)?;
    let mut cols_len = 0usize;
    let mut act_splits = Vec::new();
    for (i, layer) in layers.iter().enumerate().take(computed) {
        let len = layer.output.len();
        per_image = per_image.checked_add(len).ok_or(OVERFLOW)?;
        let name = format_ident!("act_{}", i);
        let len = lit(len);
        act_splits.push(quote! { let (#name, rest) = rest.split_at_mut(#chunk * #len); });
        if let LayerKind::Conv { f, .. } = layer.kind {
            let cols = [layer.input.c, f.h, f.w, layer.output.h, layer.output.w]
                .into_iter()
                .try_fold(1usize, usize::checked_mul)
                .ok_or(OVERFLOW)?;
            cols_len = cols_len.max(cols);
        }
    }
    let per_image_lit = lit(per_image);
    let grad_len = lit(grad_len);
    let cols_lit = lit(cols_len);

    let input_of = |i: usize| {
        if i == 0 {
            quote!(x)
        } else {
            let prev = format_ident!("act_{}", i - 1);
            quote!(&#prev[..])
        }
    };
    let params_of = |i: usize| {
        let slot = slots[i].unwrap_or(0) * 2;
        let (w, b) = (lit(slot), lit(slot + 1));
        let (gw, gb) = (
            format_ident!("grad_{}_weight", i),
            format_ident!("grad_{}_bias", i),
        );
        (
            quote!(self.params.slot(#w)),
            quote!(self.params.slot(#b)),
            quote!(&mut #gw[..]),
            quote!(&mut #gb[..]),
        )
    };

    let forward = layers.iter().enumerate().take(computed).map(|(i, layer)| {
        let src = input_of(i);
        let out = format_ident!("act_{}", i);
        let dst = quote!(&mut #out[..]);
        let generics = window_generics(layer);
        let len = lit(layer.output.len());
        let (weight, bias, _, _) = params_of(i);
        match layer.kind {
            LayerKind::Conv { .. } => quote! {
                #kernels::conv_forward::<#generics>(images, #src, #weight, #bias, #dst, &mut cols[..]);
            },
            LayerKind::MaxPool { .. } => quote! {
                #kernels::max_pool_forward::<#generics>(images, #src, #dst);
            },
            LayerKind::AvgPool { .. } => quote! {
                #kernels::avg_pool_forward::<#generics>(images, #src, #dst);
            },
            LayerKind::Activation(a) => {
                let a = act(a);
                quote! { #kernels::activate::<#len>(images, #a, #src, #dst); }
            }
            LayerKind::Flatten => quote! {
                #out[..images * #len].copy_from_slice(&(#src)[..images * #len]);
            },
            LayerKind::Fc { n } => {
                let (inputs, n) = (lit(layer.input.len()), lit(n));
                quote! { #kernels::fc_forward::<#inputs, #n>(images, #src, #weight, #bias, #dst); }
            }
            LayerKind::Softmax => quote! {
                #kernels::softmax::<#len>(images, #src, #dst);
            },
        }
    });

    let logits = input_of(computed);

    // Backward from the last computed layer down to the first layer with
    // parameters; gradients ping-pong between `grad_a` and `grad_b`.
    let first_param = layers.iter().position(|l| l.kind.has_params());
    let backward = first_param.map_or_else(Vec::new, |first| {
        (first..computed)
            .rev()
            .enumerate()
            .map(|(r, i)| {
                let layer = &layers[i];
                let (dy, dx) = if r % 2 == 0 {
                    (quote!(&grad_a[..]), quote!(&mut grad_b[..]))
                } else {
                    (quote!(&grad_b[..]), quote!(&mut grad_a[..]))
                };
                let dx_opt = if i > first {
                    quote!(::core::option::Option::Some(#dx))
                } else {
                    quote!(::core::option::Option::None)
                };
                let src = input_of(i);
                let out = format_ident!("act_{}", i);
                let generics = window_generics(layer);
                let len = lit(layer.output.len());
                let (weight, _, gw, gb) = params_of(i);
                match layer.kind {
                    LayerKind::Conv { .. } => quote! {
                        #kernels::conv_backward::<#generics>(images, #src, #dy, #weight, #gw, #gb, #dx_opt, &mut cols[..]);
                    },
                    LayerKind::Fc { n } => {
                        let (inputs, n) = (lit(layer.input.len()), lit(n));
                        quote! {
                            #kernels::fc_backward::<#inputs, #n>(images, #src, #dy, #weight, #gw, #gb, #dx_opt);
                        }
                    }
                    LayerKind::MaxPool { .. } => quote! {
                        #kernels::max_pool_backward::<#generics>(images, #src, #dy, #dx);
                    },
                    LayerKind::AvgPool { .. } => quote! {
                        #kernels::avg_pool_backward::<#generics>(images, #dy, #dx);
                    },
                    LayerKind::Activation(a) => {
                        let a = act(a);
                        quote! { #kernels::activate_backward::<#len>(images, #a, &#out[..], #dy, #dx); }
                    }
                    LayerKind::Flatten => quote! {
                        (#dx)[..images * #len].copy_from_slice(&(#dy)[..images * #len]);
                    },
                    LayerKind::Softmax => quote! {
                        #kernels::softmax_backward::<#len>(images, &#out[..], #dy, #dx);
                    },
                }
            })
            .collect()
    });

    Ok(quote! {
        const TRAIN_WORKSPACE: usize = #per_image_lit * #chunk + #cols_lit;

        #[inline]
        #[allow(clippy::too_many_lines)]
        fn backward_raw(
            &self,
            images: usize,
            x: &[f32],
            labels: &[usize],
            scale: f32,
            grads: &mut [f32],
            scratch: &mut [f32],
        ) -> f64 {
            let rest = scratch;
            #(#act_splits)*
            let (grad_a, rest) = rest.split_at_mut(#chunk * #grad_len);
            let (grad_b, cols) = rest.split_at_mut(#chunk * #grad_len);
            #(#grad_splits)*
            let _ = (&cols, &grad_b, &grads);

            #(#forward)*

            let loss = ::cnn::__private::train::loss::softmax_cross_entropy::<#classes>(
                images, #logits, labels, scale, &mut grad_a[..],
            );

            #(#backward)*

            loss
        }
    })
}

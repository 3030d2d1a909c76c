//! Code generation: mechanical `quote!` from the checked model and its plan.

use cnn_spec::plan::{self, Buffer, ConvKernel, Op, Plan};
use cnn_spec::report::Errors;
use cnn_spec::{Activation, Analyzed, LayerKind, Network};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// Expands every network; a network with errors becomes a stub beside its
/// `compile_error!`s, so that uses of it elsewhere raise no further errors.
pub fn expand(networks: Vec<Analyzed>, mut errors: Errors) -> TokenStream {
    let mut out = TokenStream::new();
    for Analyzed { def, network } in networks {
        match network {
            Ok(network) => out.extend(network_items(&def, Some(&network))),
            Err(error) => {
                errors.push(error);
                out.extend(network_items(&def, None));
            }
        }
    }
    if let Err(error) = errors.finish(()) {
        out.extend(error.into_compile_error());
    }
    out
}

fn usize_lit(value: usize) -> Literal {
    Literal::usize_unsuffixed(value)
}

fn dims(dims: [usize; 3]) -> TokenStream {
    let [c, h, w] = dims.map(usize_lit);
    quote!([#c, #h, #w])
}

/// The struct, its constants and its impls; `network` is `None` for a stub.
fn network_items(def: &cnn_spec::syntax::NetworkDef, network: Option<&Network>) -> TokenStream {
    let attrs = &def.attrs;
    let vis = &def.vis;
    let ident = &def.ident;
    let name = ident.to_string();

    let train = crate::train::items(ident, network);
    let (doc, consts, forward, batch) = match network {
        Some(network) => {
            let plan = plan::plan(network);
            let doc = cnn_spec::render::rustdoc(network);
            let consts = constants(network, &plan);
            (
                doc,
                consts,
                forward_raw(network, &plan),
                forward_raw_batch(network, &plan),
            )
        }
        None => (
            String::new(),
            quote! {
                const INPUT: [usize; 3] = [0, 0, 0];
                const OUTPUT: [usize; 3] = [0, 0, 0];
                const PARAMS: usize = 0;
                const MACS: u64 = 0;
                const LAYERS: &'static [::cnn::__private::LayerInfo] = &[];
                const SUMMARY: &'static str = "";
                const WORKSPACE: usize = 0;
            },
            quote! { let _ = (x, out, scratch); },
            TokenStream::new(),
        ),
    };

    quote! {
        #(#attrs)*
        #[doc = #doc]
        #vis struct #ident {
            params: ::cnn::__private::Parameters,
        }

        const _: () = {
            use ::cnn::__private::{
                Array3, Array4, ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4, Error,
                LayerInfo, Network, Parameters, Workspace,
            };

            #[automatically_derived]
            impl Network for #ident {
                const NAME: &'static str = #name;
                #consts

                fn from_checked(params: Parameters) -> Self {
                    Self { params }
                }

                fn parameters(&self) -> &Parameters {
                    &self.params
                }

                fn parameters_mut(&mut self) -> &mut Parameters {
                    &mut self.params
                }

                #[inline]
                fn forward_raw(&self, x: &[f32], out: &mut [f32], scratch: &mut [f32]) {
                    #forward
                }

                #batch
            }

            #train

            #[automatically_derived]
            impl #ident {
                /// The input volume, `[C, H, W]`.
                pub const INPUT: [usize; 3] = <Self as Network>::INPUT;
                /// The output volume, `[C, H, W]`.
                pub const OUTPUT: [usize; 3] = <Self as Network>::OUTPUT;
                /// Total learnable parameters.
                pub const PARAMS: usize = <Self as Network>::PARAMS;
                /// Multiply-accumulates per image, biases excluded.
                pub const MACS: u64 = <Self as Network>::MACS;
                /// Every layer after `input`, in order.
                pub const LAYERS: &'static [LayerInfo] = <Self as Network>::LAYERS;

                /// A network with PyTorch's default initialisation,
                /// deterministic given the seed.
                #[must_use]
                pub fn init(seed: u64) -> Self {
                    <Self as Network>::init(seed)
                }

                /// A network whose parameters are all zero.
                #[must_use]
                pub fn zeros() -> Self {
                    <Self as Network>::zeros()
                }

                /// A network with the given parameters, checked by name and shape.
                ///
                /// # Errors
                /// A missing, extra or mis-shaped tensor.
                pub fn from_parameters(params: Parameters) -> Result<Self, Error> {
                    <Self as Network>::from_parameters(params)
                }

                /// The network's parameters, by name (`"0.weight"`, `"0.bias"`, …).
                #[must_use]
                pub fn parameters(&self) -> &Parameters {
                    &self.params
                }

                /// The network's parameters, mutable (shapes stay fixed).
                pub fn parameters_mut(&mut self) -> &mut Parameters {
                    &mut self.params
                }

                /// One image, `C×H×W`, to the output volume.
                ///
                /// # Errors
                /// The input's shape is not [`Self::INPUT`].
                pub fn forward(&self, x: ArrayView3<f32>) -> Result<Array3<f32>, Error> {
                    <Self as Network>::forward(self, x)
                }

                /// One image into `out`, with a reusable workspace: allocates
                /// nothing when `ws` is `Workspace::new::<Self>()`.
                ///
                /// # Errors
                /// The input's or the output's shape is wrong.
                pub fn forward_into(&self, x: ArrayView3<f32>, out: ArrayViewMut3<f32>, ws: &mut Workspace) -> Result<(), Error> {
                    <Self as Network>::forward_into(self, x, out, ws)
                }

                /// A batch `N×C×H×W` to `N×OUTPUT`, on rayon's global pool (fc
                /// layers that end the pass run once per chunk of images).
                ///
                /// # Errors
                /// The images' shape is not [`Self::INPUT`].
                pub fn forward_batch(&self, x: ArrayView4<f32>) -> Result<Array4<f32>, Error> {
                    <Self as Network>::forward_batch(self, x)
                }

                /// A batch into `out` (`N×OUTPUT`), on rayon's global pool:
                /// a loop over batches can reuse one output.
                ///
                /// # Errors
                /// The images' shape is not [`Self::INPUT`], or `out`'s is not
                /// `N×OUTPUT`.
                pub fn forward_batch_into(&self, x: ArrayView4<f32>, out: ArrayViewMut4<f32>) -> Result<(), Error> {
                    <Self as Network>::forward_batch_into(self, x, out)
                }

                /// Loads weights from a safetensors file (PyTorch names and layouts).
                ///
                /// # Errors
                /// The file cannot be read, or its tensors do not match the network.
                pub fn load_safetensors(path: impl AsRef<::std::path::Path>) -> Result<Self, Error> {
                    <Self as Network>::load_safetensors(path)
                }

                /// Reads weights from safetensors bytes.
                ///
                /// # Errors
                /// The bytes are not safetensors, or their tensors do not match the network.
                pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self, Error> {
                    <Self as Network>::from_safetensors_bytes(bytes)
                }

                /// Writes the weights as a safetensors file.
                ///
                /// # Errors
                /// The file cannot be written.
                pub fn save_safetensors(&self, path: impl AsRef<::std::path::Path>) -> Result<(), Error> {
                    <Self as Network>::save_safetensors(self, path)
                }

                /// The network and its weights as an ONNX model.
                #[must_use]
                pub fn to_onnx_bytes(&self) -> Vec<u8> {
                    <Self as Network>::to_onnx_bytes(self)
                }

                /// Writes the network and its weights as an ONNX model file.
                ///
                /// # Errors
                /// The file cannot be written.
                pub fn save_onnx(&self, path: impl AsRef<::std::path::Path>) -> Result<(), Error> {
                    <Self as Network>::save_onnx(self, path)
                }
            }
        };
    }
}

/// The `Network` constants of a checked network.
fn constants(network: &Network, plan: &Plan) -> TokenStream {
    let input = dims(network.input.dims());
    let output = dims(network.output().dims());
    let params = usize_lit(network.params);
    let macs = Literal::u64_unsuffixed(network.macs);
    let summary = cnn_spec::render::summary(network);
    let workspace = usize_lit(plan.workspace_len());
    let layers = network.layers.iter().map(|layer| {
        let name = &layer.name;
        let pair = |p: cnn_spec::Pair| {
            let (h, w) = (usize_lit(p.h), usize_lit(p.w));
            quote!([#h, #w])
        };
        let kind = match layer.kind {
            LayerKind::Conv { k, f, s, p } => {
                let (k, f, s, p) = (usize_lit(k), pair(f), pair(s), pair(p));
                quote!(Conv { k: #k, f: #f, s: #s, p: #p })
            }
            LayerKind::MaxPool { f, s } => {
                let (f, s) = (pair(f), pair(s));
                quote!(MaxPool { f: #f, s: #s })
            }
            LayerKind::AvgPool { f, s } => {
                let (f, s) = (pair(f), pair(s));
                quote!(AvgPool { f: #f, s: #s })
            }
            LayerKind::Activation(Activation::Relu) => quote!(Relu),
            LayerKind::Activation(Activation::Sigmoid) => quote!(Sigmoid),
            LayerKind::Activation(Activation::Tanh) => quote!(Tanh),
            LayerKind::Flatten => quote!(Flatten),
            LayerKind::Fc { n } => {
                let n = usize_lit(n);
                quote!(Fc { n: #n })
            }
            LayerKind::Softmax => quote!(Softmax),
        };
        let input = dims(layer.input.dims());
        let output = dims(layer.output.dims());
        let params = usize_lit(layer.params);
        let macs = Literal::u64_unsuffixed(layer.macs);
        let weight = layer
            .weight_shape()
            .unwrap_or_default()
            .into_iter()
            .map(usize_lit);
        quote! {
            LayerInfo {
                name: #name,
                kind: ::cnn::__private::LayerKind::#kind,
                input: #input,
                output: #output,
                params: #params,
                macs: #macs,
                weight_shape: &[#(#weight),*],
            }
        }
    });
    quote! {
        const INPUT: [usize; 3] = #input;
        const OUTPUT: [usize; 3] = #output;
        const PARAMS: usize = #params;
        const MACS: u64 = #macs;
        const LAYERS: &'static [LayerInfo] = &[#(#layers),*];
        const SUMMARY: &'static str = #summary;
        const WORKSPACE: usize = #workspace;
    }
}

fn act_tokens(act: Option<Activation>) -> TokenStream {
    match act {
        None => quote!(::cnn::__private::kernels::Act::Identity),
        Some(Activation::Relu) => quote!(::cnn::__private::kernels::Act::Relu),
        Some(Activation::Sigmoid) => quote!(::cnn::__private::kernels::Act::Sigmoid),
        Some(Activation::Tanh) => quote!(::cnn::__private::kernels::Act::Tanh),
    }
}

/// Position of each layer's weight in the parameter list (its bias follows).
fn weight_slots(network: &Network) -> Vec<usize> {
    let mut slots = Vec::new();
    let mut next = 0;
    for layer in &network.layers {
        slots.push(next);
        if layer.kind.has_params() {
            next += 2;
        }
    }
    slots
}

/// The kernel call of one step. With `batch`, the step runs over `n` images
/// at once, its buffers `n` volumes long: `x` and `out` the batch's, `p` and
/// `q` standing for A and B.
fn step_call(network: &Network, step: &plan::Step, slot: usize, batch: bool) -> TokenStream {
    let layer = &network.layers[step.layer];
    let (in_len, out_len) = (usize_lit(step.in_len), usize_lit(step.out_len));
    let (in_len, out_len) = if batch {
        (quote!(n * #in_len), quote!(n * #out_len))
    } else {
        (quote!(#in_len), quote!(#out_len))
    };
    let (a, b) = if batch {
        (quote!(p), quote!(q))
    } else {
        (quote!(a), quote!(b))
    };
    let src = match step.src {
        Buffer::Input => quote!(&x[..#in_len]),
        Buffer::A => quote!(&#a[..#in_len]),
        Buffer::B => quote!(&#b[..#in_len]),
        Buffer::Out => quote!(&out[..#in_len]),
    };
    let dst = match step.dst {
        Buffer::Input => quote!(&mut [][..]),
        Buffer::A => quote!(&mut #a[..#out_len]),
        Buffer::B => quote!(&mut #b[..#out_len]),
        Buffer::Out => quote!(&mut out[..#out_len]),
    };
    let weight = usize_lit(slot);
    let bias = usize_lit(slot + 1);
    let act = act_tokens(step.fused);
    let [c, h, w] = layer.input.dims().map(usize_lit);
    let [oh, ow] = [layer.output.h, layer.output.w].map(usize_lit);
    let k = usize_lit(layer.output.c);
    let kernels = quote!(::cnn::__private::kernels);
    match (step.op, layer.kind) {
        (Op::Conv(kernel), LayerKind::Conv { f, s, p, .. }) => {
            let [fh, fw, sh, sw, ph, pw] = [f.h, f.w, s.h, s.w, p.h, p.w].map(usize_lit);
            let args = quote!(#src, self.params.slot(#weight), self.params.slot(#bias), #dst, #act);
            match kernel {
                ConvKernel::Direct => quote! {
                    #kernels::conv_direct::<#c, #h, #w, #k, #fh, #fw, #sh, #sw, #ph, #pw, #oh, #ow>(#args);
                },
                ConvKernel::Gemm => quote! {
                    #kernels::conv_gemm::<#c, #h, #w, #k, #fh, #fw, #sh, #sw, #ph, #pw, #oh, #ow>(#args, &mut *tmp);
                },
                ConvKernel::Pointwise => {
                    let hw = usize_lit(layer.input.h * layer.input.w);
                    quote! { #kernels::conv_pointwise::<#c, #hw, #k>(#args); }
                }
            }
        }
        (Op::MaxPool | Op::AvgPool, LayerKind::MaxPool { f, s } | LayerKind::AvgPool { f, s }) => {
            let [fh, fw, sh, sw] = [f.h, f.w, s.h, s.w].map(usize_lit);
            let function = if step.op == Op::MaxPool {
                quote!(max_pool)
            } else {
                quote!(avg_pool)
            };
            quote! { #kernels::#function::<#c, #h, #w, #fh, #fw, #sh, #sw, #oh, #ow>(#src, #dst); }
        }
        (Op::Fc, LayerKind::Fc { n: units }) => {
            let inputs = usize_lit(layer.input.len());
            let units = usize_lit(units);
            let args = quote!(#src, self.params.slot(#weight), self.params.slot(#bias), #dst, #act);
            if batch {
                quote! { #kernels::fc_batch::<#inputs, #units>(n, #args); }
            } else {
                quote! { #kernels::fc::<#inputs, #units>(#args); }
            }
        }
        (Op::Activate(a), _) => {
            let act = act_tokens(Some(a));
            quote! { #kernels::activate(#act, #dst); }
        }
        // Softmax is per image; an empty volume has nothing to normalise.
        (Op::Softmax, _) if batch && step.out_len > 0 => {
            let len = usize_lit(step.out_len);
            quote! {
                for image in (#dst).chunks_exact_mut(#len) {
                    #kernels::softmax(image);
                }
            }
        }
        (Op::Softmax, _) if !batch => quote! { #kernels::softmax(#dst); },
        (Op::Copy, _) => quote! { (#dst).copy_from_slice(#src); },
        _ => quote! {},
    }
}

/// The body of `forward_raw`: one kernel call per step of the plan.
fn forward_raw(network: &Network, plan: &Plan) -> TokenStream {
    let act_len = usize_lit(plan.act_len);
    let slots = weight_slots(network);
    let steps = plan
        .steps
        .iter()
        .map(|step| step_call(network, step, slots[step.layer], false));
    quote! {
        let (a, rest) = scratch.split_at_mut(#act_len);
        let (b, tmp) = rest.split_at_mut(#act_len);
        let _ = (&a, &b, &tmp);
        #(#steps)*
    }
}

/// `BATCH_ROWS` and `forward_raw_batch` for a pass that ends in fc layers:
/// the steps before the tail run image by image, each image's volume is
/// gathered into the tail's buffer, and the tail runs once for the batch.
fn forward_raw_batch(network: &Network, plan: &Plan) -> TokenStream {
    let Some(tail) = plan.tail else {
        return TokenStream::new();
    };
    let act_len = usize_lit(plan.act_len);
    let rows = usize_lit(tail.act_len);
    let input = usize_lit(network.input.len());
    let slots = weight_slots(network);
    let (head, rest) = plan.steps.split_at(tail.start);
    let head = head
        .iter()
        .map(|step| step_call(network, step, slots[step.layer], false));
    let first = &rest[0];
    let len = usize_lit(first.in_len);
    let gather = match first.src {
        Buffer::A => quote!(p[i * #len..(i + 1) * #len].copy_from_slice(&a[..#len]);),
        Buffer::B => quote!(q[i * #len..(i + 1) * #len].copy_from_slice(&b[..#len]);),
        // The tail reads the batch's input as it is.
        Buffer::Input | Buffer::Out => quote!(),
    };
    let tail_steps = rest
        .iter()
        .map(|step| step_call(network, step, slots[step.layer], true));
    quote! {
        const BATCH_ROWS: usize = #rows;

        fn forward_raw_batch(&self, n: usize, x: &[f32], out: &mut [f32], scratch: &mut [f32], rows: &mut [f32]) {
            let (a, rest) = scratch.split_at_mut(#act_len);
            let (b, tmp) = rest.split_at_mut(#act_len);
            let (p, rest) = rows.split_at_mut(n * #rows);
            let q = &mut rest[..n * #rows];
            let _ = (&a, &b, &tmp, &p, &q);
            for i in 0..n {
                let x = &x[i * #input..(i + 1) * #input];
                let _ = x;
                #(#head)*
                #gather
            }
            #(#tail_steps)*
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    fn expand(tokens: proc_macro2::TokenStream) -> syn::File {
        let (networks, errors) = cnn_spec::analyze(tokens).expect("parses");
        syn::parse2(super::expand(networks, errors)).expect("the expansion is valid Rust")
    }

    fn item_names(file: &syn::File) -> Vec<String> {
        file.items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Struct(s) => Some(format!("struct {}", s.ident)),
                syn::Item::Const(c) => Some(format!("const {}", c.ident)),
                syn::Item::Macro(m) => m.mac.path.segments.last().map(|i| format!("{}!", i.ident)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn valid_networks_expand_to_structs_and_impls() {
        let file = expand(quote! {
            /// Doc.
            pub struct A { input(3, 32, 32) conv(10, 5, s = 1, p = 2) relu pool(2, 2) fc(10) }
            struct B { input(1, 4, 4) flatten softmax }
        });
        assert_eq!(
            item_names(&file),
            ["struct A", "const _", "struct B", "const _"]
        );
        let text = quote!(#file).to_string();
        assert!(
            text.contains("conv_gemm :: < 3 , 32 , 32 , 10 , 5 , 5 , 1 , 1 , 2 , 2 , 32 , 32 >")
        );
        assert!(text.contains("const PARAMS : usize = 26370"));
    }

    #[test]
    fn invalid_networks_expand_to_stubs_and_errors() {
        let file = expand(quote! {
            struct Bad { input(3, 32, 32) conv(10, 5, s = 2) }
            struct Good { input(1, 4, 4) fc(2) }
        });
        assert_eq!(
            item_names(&file),
            [
                "struct Bad",
                "const _",
                "struct Good",
                "const _",
                "compile_error!"
            ]
        );
    }
}

//! Code generation: mechanical `quote!` from the checked model and its plan.

use cnn_spec::model::{Entry, TensorRole};
use cnn_spec::plan::{self, Buffer, Op, Plan, Step};
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

    let train = crate::train::items(ident);
    let (doc, model) = match network {
        Some(network) => (cnn_spec::render::rustdoc(network), model(network)),
        None => (String::new(), stub_model(&name)),
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
                Model, Network, Parameters, Workspace,
            };

            #[automatically_derived]
            impl Network for #ident {
                const MODEL: &'static Model = &#model;

                fn from_checked(params: Parameters) -> Self {
                    Self { params }
                }

                fn parameters(&self) -> &Parameters {
                    &self.params
                }

                fn parameters_mut(&mut self) -> &mut Parameters {
                    &mut self.params
                }
            }

            // Checked when the crate compiles: the workspace, whose kernel
            // scratch the runtime's `const fn`s size, fits an allocation.
            const _: () = ::core::assert!(
                <#ident as Network>::WORKSPACE <= ::cnn::__private::MAX_WORKSPACE,
                "the forward pass of this network needs more scratch memory than can be allocated",
            );

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
                pub const LAYERS: &'static [::cnn::__private::LayerInfo] = <Self as Network>::LAYERS;

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

/// The `Model` of a network with errors: nothing, so that uses of it
/// compile.
fn stub_model(name: &str) -> TokenStream {
    quote! {
        ::cnn::__private::Model::new(
            #name,
            [0, 0, 0],
            [0, 0, 0],
            0,
            0,
            &[],
            &[],
            "",
            ::cnn::__private::plan::Plan {
                steps: &[],
                arena: 0,
                tail: ::core::option::Option::None,
            },
        )
    }
}

/// The `Model` of a checked network: its volumes, layers and plan.
fn model(network: &Network) -> TokenStream {
    let name = &network.name;
    let input = dims(network.input.dims());
    let output = dims(network.output().dims());
    let params = usize_lit(network.params);
    let macs = Literal::u64_unsuffixed(network.macs);
    let summary = cnn_spec::render::summary(network);
    let layers = network.layers.iter().map(layer_info);
    let mut nodes = Vec::new();
    graph(&network.body, &mut nodes);
    let plan = plan_tokens(network, &plan::plan(network));
    quote! {
        ::cnn::__private::Model::new(
            #name,
            #input,
            #output,
            #params,
            #macs,
            &[#(#layers),*],
            &[#(#nodes),*],
            #summary,
            #plan,
        )
    }
}

/// The runtime's `Node`s of a network's structure, in order.
fn graph(entries: &[Entry], nodes: &mut Vec<TokenStream>) {
    let node = quote!(::cnn::__private::Node);
    for entry in entries {
        match entry {
            Entry::Layer(i) => {
                let i = usize_lit(*i);
                nodes.push(quote!(#node::Layer(#i)));
            }
            Entry::Group(block) => graph(&block.entries, nodes),
            Entry::Residual(residual) => {
                nodes.push(quote!(#node::Fork));
                graph(&residual.main, nodes);
                if let Some(shortcut) = &residual.shortcut {
                    nodes.push(quote!(#node::Shortcut));
                    graph(shortcut, nodes);
                }
                nodes.push(quote!(#node::Join));
                if let Some(act) = residual.act {
                    let act = usize_lit(act);
                    nodes.push(quote!(#node::Layer(#act)));
                }
            }
        }
    }
}

fn pair(p: cnn_spec::Pair) -> TokenStream {
    let (h, w) = (usize_lit(p.h), usize_lit(p.w));
    quote!([#h, #w])
}

/// A layer's `LayerInfo`.
fn layer_info(layer: &cnn_spec::Layer) -> TokenStream {
    let name = &layer.name;
    let path = &layer.path;
    let kind = match layer.kind {
        LayerKind::Conv {
            k,
            f,
            s,
            p,
            d,
            g,
            bias,
        } => {
            let (k, f, s, p, d, g) = (
                usize_lit(k),
                pair(f),
                pair(s),
                pair(p),
                pair(d),
                usize_lit(g),
            );
            quote!(Conv { k: #k, f: #f, s: #s, p: #p, d: #d, g: #g, bias: #bias })
        }
        LayerKind::MaxPool { f, s, p } => {
            let (f, s, p) = (pair(f), pair(s), pair(p));
            quote!(MaxPool { f: #f, s: #s, p: #p })
        }
        LayerKind::AvgPool { f, s, p } => {
            let (f, s, p) = (pair(f), pair(s), pair(p));
            quote!(AvgPool { f: #f, s: #s, p: #p })
        }
        LayerKind::GlobalAvgPool => quote!(GlobalAvgPool),
        LayerKind::BatchNorm { eps } => {
            let eps = Literal::f32_suffixed(eps.get());
            quote!(BatchNorm { eps: #eps })
        }
        LayerKind::Activation(a) => {
            let act = act_tokens(Some(a));
            quote!(Activation(#act))
        }
        LayerKind::Dropout { p } => {
            let p = Literal::f32_suffixed(p.get());
            quote!(Dropout { p: #p })
        }
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
    let tensors = layer.tensors().into_iter().map(|t| {
        let name = t.name;
        let shape = t.shape.into_iter().map(usize_lit);
        let role = match t.role {
            TensorRole::Param => quote!(Param),
            TensorRole::Buffer => quote!(Buffer),
            TensorRole::Counter => quote!(Counter),
        };
        quote! {
            ::cnn::__private::TensorInfo {
                name: #name,
                shape: &[#(#shape),*],
                role: ::cnn::__private::TensorRole::#role,
            }
        }
    });
    quote! {
        ::cnn::__private::LayerInfo {
            name: #name,
            path: #path,
            kind: ::cnn::__private::LayerKind::#kind,
            input: #input,
            output: #output,
            params: #params,
            macs: #macs,
            tensors: &[#(#tensors),*],
        }
    }
}

fn act_tokens(act: Option<Activation>) -> TokenStream {
    let variant = match act {
        None => quote!(Identity),
        Some(Activation::Relu) => quote!(Relu),
        Some(Activation::Relu6) => quote!(Relu6),
        Some(Activation::LeakyRelu(slope)) => {
            let slope = Literal::f32_suffixed(slope.get());
            quote!(LeakyRelu(#slope))
        }
        Some(Activation::Sigmoid) => quote!(Sigmoid),
        Some(Activation::Tanh) => quote!(Tanh),
        Some(Activation::Silu) => quote!(Silu),
        Some(Activation::Gelu) => quote!(Gelu),
        Some(Activation::HardSwish) => quote!(HardSwish),
    };
    quote!(::cnn::__private::kernels::Act::#variant)
}

fn buffer(buffer: Buffer) -> TokenStream {
    match buffer {
        Buffer::Input => quote!(::cnn::__private::plan::Buf::Input),
        Buffer::Out => quote!(::cnn::__private::plan::Buf::Output),
        Buffer::Arena(at) => {
            let at = usize_lit(at);
            quote!(::cnn::__private::plan::Buf::Arena(#at))
        }
    }
}

/// The runtime's `Plan` for the checked plan of a network.
fn plan_tokens(network: &Network, plan: &Plan) -> TokenStream {
    let steps = plan.steps.iter().map(|step| step_tokens(network, step));
    let arena = usize_lit(plan.arena_len);
    let tail = match &plan.tail {
        Some(tail) => {
            let start = usize_lit(tail.start);
            let from = buffer(tail.from);
            let steps = tail.steps.iter().map(|step| step_tokens(network, step));
            let rows = usize_lit(tail.rows);
            quote! {
                ::core::option::Option::Some(::cnn::__private::plan::Tail {
                    start: #start,
                    from: #from,
                    steps: &[#(#steps),*],
                    rows: #rows,
                })
            }
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        ::cnn::__private::plan::Plan {
            steps: &[#(#steps),*],
            arena: #arena,
            tail: #tail,
        }
    }
}

/// One step of a plan, as the runtime's `Step`.
fn step_tokens(network: &Network, step: &Step) -> TokenStream {
    let layer = &network.layers[step.layer];
    let index = usize_lit(step.layer);
    let act = act_tokens(step.fused);
    let [c, h, w] = layer.input.dims().map(usize_lit);
    let o = {
        let [oh, ow] = [layer.output.h, layer.output.w].map(usize_lit);
        quote!([#oh, #ow])
    };
    let private = quote!(::cnn::__private);
    let op = match (step.op, layer.kind) {
        (
            Op::Conv { bn },
            LayerKind::Conv {
                k, f, s, p, d, g, ..
            },
        ) => {
            let (k, f, s, p, d, g) = (
                usize_lit(k),
                pair(f),
                pair(s),
                pair(p),
                pair(d),
                usize_lit(g),
            );
            let bn = match bn {
                Some(bn) => {
                    let bn = usize_lit(bn);
                    quote!(::core::option::Option::Some(#bn))
                }
                None => quote!(::core::option::Option::None),
            };
            quote! {
                Conv {
                    layer: #index,
                    bn: #bn,
                    shape: #private::kernels::ConvShape {
                        c: #c, h: #h, w: #w, k: #k, f: #f, s: #s, p: #p, d: #d, g: #g, o: #o,
                    },
                    act: #act,
                }
            }
        }
        (
            Op::MaxPool | Op::AvgPool,
            LayerKind::MaxPool { f, s, p } | LayerKind::AvgPool { f, s, p },
        ) => {
            let (f, s, p) = (pair(f), pair(s), pair(p));
            let variant = if step.op == Op::MaxPool {
                quote!(MaxPool)
            } else {
                quote!(AvgPool)
            };
            quote! {
                #variant(#private::kernels::Window {
                    c: #c, h: #h, w: #w, f: #f, s: #s, p: #p, o: #o,
                })
            }
        }
        (Op::GlobalAvgPool, _) => {
            let hw = usize_lit(layer.input.h * layer.input.w);
            quote!(GlobalAvgPool { c: #c, hw: #hw })
        }
        (Op::BatchNorm, _) => {
            let hw = usize_lit(layer.input.h * layer.input.w);
            quote!(BatchNorm { layer: #index, c: #c, hw: #hw, act: #act })
        }
        (Op::Add, _) => {
            let len = usize_lit(step.out_len);
            quote!(Add { len: #len, act: #act })
        }
        (Op::Fc, LayerKind::Fc { n }) => {
            let (inputs, units) = (usize_lit(layer.input.len()), usize_lit(n));
            quote!(Fc { layer: #index, inputs: #inputs, units: #units, act: #act })
        }
        (Op::Activate(a), _) => {
            let (act, len) = (act_tokens(Some(a)), usize_lit(step.out_len));
            quote!(Activate { act: #act, len: #len })
        }
        (Op::Softmax, _) => {
            let len = usize_lit(step.out_len);
            quote!(Softmax { len: #len })
        }
        // Copy, and (never planned) a step whose op and layer disagree.
        _ => {
            let len = usize_lit(step.in_len);
            quote!(Copy { len: #len })
        }
    };
    let (src, dst) = (buffer(step.src), buffer(step.dst));
    quote! {
        #private::plan::Step { op: #private::plan::Op::#op, src: #src, dst: #dst }
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
        // The plan as data: the conv with its sizes and fused ReLU, from the
        // input into the first buffer; the model's parameter count.
        let conv = "c : 3 , h : 32 , w : 32 , k : 10 , f : [5 , 5] , s : [1 , 1] , p : [2 , 2] , d : [1 , 1] , g : 1 , o : [32 , 32]";
        assert!(text.contains(conv), "{text}");
        assert!(text.contains("Act :: Relu"));
        assert!(text.contains("src : :: cnn :: __private :: plan :: Buf :: Input , dst : :: cnn :: __private :: plan :: Buf :: Arena (0)"));
        assert!(text.contains("26370"));
        // Nothing generic over the layer's sizes is left for the user's crate.
        assert!(!text.contains(":: <"), "{text}");
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

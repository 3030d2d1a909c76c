//! ONNX export: the network as an opset-14 graph with its weights (and
//! batch norm's running statistics) as initializers.
//!
//! The graph takes `input` of shape `[batch, C, H, W]` (batch symbolic) and
//! gives `output` of shape `[batch, C, H, W]` of the output volume, as
//! `forward_batch` does. Layers map one to one onto ONNX operators, but for
//! a few that ONNX spells otherwise: relu6 is `Clip(x, 0, 6)`, silu
//! `x·Sigmoid(x)`, gelu `x·(1 + Erf(x/√2))·0.5` (the pattern onnxruntime
//! fuses back into one Gelu), dropout nothing at all, and a residual
//! block's sum an `Add` after its branches. The only other additions are
//! the reshapes between the two ranks a value can have: `Flatten` (axis 1,
//! C·H·W in that order) before `Gemm` and `Softmax` when the value is still
//! a volume, and `Reshape` back to `[batch, C, H, W]` before a layer or an
//! `Add` that needs a volume, and at the end.
//!
//! Values are named after the layer's index and the operator
//! (`"3.conv"`), the sum of the n-th residual block `"add{n}"`, the scalar
//! constants of Clip and gelu by what they are (`"six"`); tensors keep
//! their state-dict names (`"layer1.0.bn1.running_var"`), which always
//! end in a dot and the tensor's own name, so the three never meet.

mod proto;

use prost::Message;

use self::proto::{
    AttributeProto, DimensionProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};
use crate::kernels::Act;
use crate::{LayerInfo, LayerKind, Node, Parameters};

/// The opset the graph is written for (14: the first with `HardSwish`).
const OPSET: i64 = 14;
/// The IR version of opset 14 (ONNX 1.9), so that older runtimes that
/// know the opset also accept the file.
const IR_VERSION: i64 = 7;
/// The name of the symbolic batch dimension.
const BATCH: &str = "batch";

/// The network (its `layers` in the structure `nodes`) as an ONNX model
/// (serialised `ModelProto`).
pub fn export(
    name: &str,
    input: [usize; 3],
    layers: &[LayerInfo],
    nodes: &[Node],
    params: &Parameters,
) -> Vec<u8> {
    let mut graph = Graph::default();
    let mut value = Value {
        name: "input".to_string(),
        flat: false,
        volume: input,
    };
    // The values residual blocks keep while a branch runs: the block's
    // input, then (after `Shortcut`) MAIN's output.
    let mut kept: Vec<Value> = Vec::new();
    let mut residuals = 0;
    for node in nodes {
        match *node {
            Node::Layer(i) => {
                debug_assert!(i < layers.len(), "node of layer {i} of {}", layers.len());
                if let Some(layer) = layers.get(i) {
                    value = graph.layer(i, layer, value);
                }
            }
            Node::Fork => kept.push(value.clone()),
            Node::Shortcut => {
                if let Some(input) = kept.pop() {
                    kept.push(std::mem::replace(&mut value, input));
                }
            }
            Node::Join => {
                if let Some(other) = kept.pop() {
                    residuals += 1;
                    value = graph.add(&format!("add{residuals}"), value, other);
                }
            }
        }
    }
    debug_assert!(kept.is_empty(), "{} residual blocks left open", kept.len());
    let output = value.volume;
    graph.finish(value);

    let initializer = params
        .iter()
        .map(|t| TensorProto {
            dims: t.shape().iter().map(|&d| dim(d)).collect(),
            data_type: Some(proto::DATA_FLOAT),
            name: t.name().to_string(),
            raw_data: Some(t.data().iter().flat_map(|v| v.to_le_bytes()).collect()),
        })
        .chain(graph.constants)
        .collect();

    let model = ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: Some(OPSET),
        }],
        producer_name: "cnn".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: layers.iter().map(|l| l.name).collect::<Vec<_>>().join(" "),
        graph: Some(GraphProto {
            node: graph.nodes,
            name: name.to_string(),
            initializer,
            input: vec![batch_value("input", input)],
            output: vec![batch_value("output", output)],
        }),
    };
    model.encode_to_vec()
}

/// A value of the graph: `[batch, C, H, W]`, or `[batch, C·H·W]` when flat.
#[derive(Clone)]
struct Value {
    name: String,
    flat: bool,
    volume: [usize; 3],
}

/// Nodes and the constants they need, built layer by layer.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    constants: Vec<TensorProto>,
}

impl Graph {
    /// Adds the nodes of layer `i`, which takes `x`; returns its output.
    fn layer(&mut self, i: usize, layer: &LayerInfo, x: Value) -> Value {
        let weight = layer.tensor_name("weight");
        let bias = layer.tensor_name("bias");
        let output = |name: String, flat: bool| Value {
            name,
            flat,
            volume: layer.output,
        };
        match layer.kind {
            LayerKind::Conv {
                f,
                s,
                p,
                d,
                g,
                bias: has_bias,
                ..
            } => {
                let x = self.volume(&format!("{i}.reshape"), x);
                let attrs = vec![
                    ints("kernel_shape", &f),
                    ints("strides", &s),
                    ints("pads", &pads(p)),
                    ints("dilations", &d),
                    int("group", dim(g)),
                ];
                let mut inputs = vec![x.name, weight];
                if has_bias {
                    inputs.push(bias);
                }
                let y = self.node(format!("{i}.conv"), "Conv", inputs, attrs);
                output(y, false)
            }
            LayerKind::MaxPool { f, s, p } => {
                let x = self.volume(&format!("{i}.reshape"), x);
                // ONNX pads a max pool with −∞, as PyTorch does.
                let attrs = vec![
                    ints("kernel_shape", &f),
                    ints("strides", &s),
                    ints("pads", &pads(p)),
                ];
                let y = self.node(format!("{i}.max_pool"), "MaxPool", vec![x.name], attrs);
                output(y, false)
            }
            LayerKind::AvgPool { f, s, p } => {
                let x = self.volume(&format!("{i}.reshape"), x);
                let attrs = vec![
                    ints("kernel_shape", &f),
                    ints("strides", &s),
                    ints("pads", &pads(p)),
                    // The zero padding counts in the divisor (ONNX's default
                    // leaves it out).
                    int("count_include_pad", 1),
                ];
                let y = self.node(format!("{i}.avg_pool"), "AveragePool", vec![x.name], attrs);
                output(y, false)
            }
            LayerKind::GlobalAvgPool => {
                let x = self.volume(&format!("{i}.reshape"), x);
                let y = self.node(
                    format!("{i}.global_avg_pool"),
                    "GlobalAveragePool",
                    vec![x.name],
                    Vec::new(),
                );
                output(y, false)
            }
            LayerKind::BatchNorm { eps } => {
                let x = self.volume(&format!("{i}.reshape"), x);
                let inputs = vec![
                    x.name,
                    weight,
                    bias,
                    layer.tensor_name("running_mean"),
                    layer.tensor_name("running_var"),
                ];
                let attrs = vec![float("epsilon", eps)];
                let y = self.node(
                    format!("{i}.batch_norm"),
                    "BatchNormalization",
                    inputs,
                    attrs,
                );
                output(y, false)
            }
            LayerKind::Activation(act) => {
                let flat = x.flat;
                let y = self.activation(i, act, x.name);
                output(y, flat)
            }
            LayerKind::Dropout { .. } => x,
            LayerKind::Flatten => {
                let x = self.flat(&format!("{i}.flatten"), x);
                output(x.name, true)
            }
            LayerKind::Fc { .. } => {
                let x = self.flat(&format!("{i}.flatten"), x);
                let attrs = vec![int("transB", 1)];
                let y = self.node(
                    format!("{i}.gemm"),
                    "Gemm",
                    vec![x.name, weight, bias],
                    attrs,
                );
                output(y, true)
            }
            LayerKind::Softmax => {
                let x = self.flat(&format!("{i}.flatten"), x);
                let attrs = vec![int("axis", 1)];
                let y = self.node(format!("{i}.softmax"), "Softmax", vec![x.name], attrs);
                output(y, true)
            }
        }
    }

    /// The nodes of layer `i`'s activation of `x`; returns the name of its
    /// output.
    fn activation(&mut self, i: usize, act: Act, x: String) -> String {
        let unary = |graph: &mut Graph, node: &str, op: &str, x: String| {
            graph.node(format!("{i}.{node}"), op, vec![x], Vec::new())
        };
        match act {
            Act::Identity => x,
            Act::Relu => unary(self, "relu", "Relu", x),
            Act::Sigmoid => unary(self, "sigmoid", "Sigmoid", x),
            Act::Tanh => unary(self, "tanh", "Tanh", x),
            // x·max(0, min(1, x/6 + 1/2)), the same function as PyTorch's
            // x·relu6(x + 3)/6.
            Act::HardSwish => unary(self, "hardswish", "HardSwish", x),
            Act::LeakyRelu(slope) => self.node(
                format!("{i}.leaky_relu"),
                "LeakyRelu",
                vec![x],
                vec![float("alpha", slope)],
            ),
            Act::Relu6 => {
                let (low, high) = (self.scalar("zero", 0.0), self.scalar("six", 6.0));
                self.node(format!("{i}.clip"), "Clip", vec![x, low, high], Vec::new())
            }
            Act::Silu => {
                let sigmoid = unary(self, "sigmoid", "Sigmoid", x.clone());
                self.node(format!("{i}.silu"), "Mul", vec![x, sigmoid], Vec::new())
            }
            Act::Gelu => {
                let root2 = self.scalar("sqrt2", std::f32::consts::SQRT_2);
                let one = self.scalar("one", 1.0);
                let half = self.scalar("half", 0.5);
                let scaled = self.node(
                    format!("{i}.div"),
                    "Div",
                    vec![x.clone(), root2],
                    Vec::new(),
                );
                let erf = unary(self, "erf", "Erf", scaled);
                let plus = self.node(format!("{i}.add"), "Add", vec![erf, one], Vec::new());
                let times = self.node(format!("{i}.mul"), "Mul", vec![x, plus], Vec::new());
                self.node(format!("{i}.gelu"), "Mul", vec![times, half], Vec::new())
            }
        }
    }

    /// The sum of a residual block's two branches, `a` and `b`, which have
    /// one volume (either may be flat), as the value `name`.
    fn add(&mut self, name: &str, a: Value, b: Value) -> Value {
        debug_assert_eq!(a.volume, b.volume, "the branches of `{name}`");
        let a = self.volume(&format!("{name}.reshape_a"), a);
        let b = self.volume(&format!("{name}.reshape_b"), b);
        let volume = a.volume;
        let name = self.node(name.to_string(), "Add", vec![a.name, b.name], Vec::new());
        Value {
            name,
            flat: false,
            volume,
        }
    }

    /// The float scalar constant `name` (one for the whole graph, however
    /// many nodes take it).
    fn scalar(&mut self, name: &str, value: f32) -> String {
        if !self.constants.iter().any(|c| c.name == name) {
            self.constants.push(TensorProto {
                dims: Vec::new(),
                data_type: Some(proto::DATA_FLOAT),
                name: name.to_string(),
                raw_data: Some(value.to_le_bytes().to_vec()),
            });
        }
        name.to_string()
    }

    /// Names the last value `output`, reshaping it back to a volume first
    /// when it is flat.
    fn finish(&mut self, x: Value) {
        if x.flat {
            self.reshape("output", "output".to_string(), x);
            return;
        }
        match self.nodes.last_mut() {
            Some(last) if last.output.first() == Some(&x.name) => {
                last.output = vec!["output".to_string()];
            }
            _ => {
                self.node("output".to_string(), "Identity", vec![x.name], Vec::new());
            }
        }
    }

    /// `x` as `[batch, C·H·W]`.
    fn flat(&mut self, node: &str, x: Value) -> Value {
        if x.flat {
            return x;
        }
        let name = self.node(
            node.to_string(),
            "Flatten",
            vec![x.name],
            vec![int("axis", 1)],
        );
        Value {
            name,
            flat: true,
            volume: x.volume,
        }
    }

    /// `x` as `[batch, C, H, W]`.
    fn volume(&mut self, node: &str, x: Value) -> Value {
        if !x.flat {
            return x;
        }
        let volume = x.volume;
        let name = self.reshape(node, node.to_string(), x);
        Value {
            name,
            flat: false,
            volume,
        }
    }

    /// A `Reshape` of `x` to `[batch, C, H, W]` (0 copies the batch size),
    /// writing the value `out`.
    fn reshape(&mut self, node: &str, out: String, x: Value) -> String {
        let shape = format!("{node}.shape");
        let [c, h, w] = x.volume;
        let dims = [0, dim(c), dim(h), dim(w)];
        self.constants.push(TensorProto {
            dims: vec![4],
            data_type: Some(proto::DATA_INT64),
            name: shape.clone(),
            raw_data: Some(dims.iter().flat_map(|d| d.to_le_bytes()).collect()),
        });
        self.nodes.push(NodeProto {
            input: vec![x.name, shape],
            output: vec![out.clone()],
            name: node.to_string(),
            op_type: "Reshape".to_string(),
            attribute: Vec::new(),
        });
        out
    }

    /// Adds a node whose one output is named after the node; returns that
    /// name.
    fn node(
        &mut self,
        name: String,
        op: &str,
        input: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input,
            output: vec![name.clone()],
            name: name.clone(),
            op_type: op.to_string(),
            attribute,
        });
        name
    }
}

/// A size as ONNX's int64. Sizes come from a checked network and are far
/// below `i64::MAX`; saturating keeps this total anyway.
fn dim(d: usize) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// ONNX's `pads` of a padding `[h, w]` on each side: the starts of the
/// axes, then their ends.
fn pads([h, w]: [usize; 2]) -> [usize; 4] {
    [h, w, h, w]
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(proto::ATTRIBUTE_INT),
        i: Some(value),
        ints: Vec::new(),
        f: None,
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(proto::ATTRIBUTE_INTS),
        i: None,
        ints: values.iter().map(|&v| dim(v)).collect(),
        f: None,
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(proto::ATTRIBUTE_FLOAT),
        i: None,
        ints: Vec::new(),
        f: Some(value),
    }
}

/// A float tensor value `[batch, C, H, W]`.
fn batch_value(name: &str, [c, h, w]: [usize; 3]) -> ValueInfoProto {
    let fixed = |d: usize| DimensionProto {
        dim_value: Some(dim(d)),
        dim_param: None,
    };
    let batch = DimensionProto {
        dim_value: None,
        dim_param: Some(BATCH.to_string()),
    };
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: Some(proto::DATA_FLOAT),
                shape: Some(TensorShapeProto {
                    dim: vec![batch, fixed(c), fixed(h), fixed(w)],
                }),
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TensorInfo, TensorRole};

    const fn param(name: &'static str, shape: &'static [usize]) -> TensorInfo {
        TensorInfo {
            name,
            shape,
            role: TensorRole::Param,
        }
    }

    const LAYERS: &[LayerInfo] = &[
        LayerInfo {
            name: "conv(2, 3, p = 1)",
            path: "0",
            kind: LayerKind::Conv {
                k: 2,
                f: [3, 3],
                s: [1, 1],
                p: [1, 1],
                d: [1, 1],
                g: 1,
                bias: true,
            },
            input: [1, 4, 4],
            output: [2, 4, 4],
            params: 20,
            macs: 288,
            tensors: &[param("weight", &[2, 1, 3, 3]), param("bias", &[2])],
        },
        LayerInfo {
            name: "fc(3)",
            path: "1",
            kind: LayerKind::Fc { n: 3 },
            input: [2, 4, 4],
            output: [3, 1, 1],
            params: 99,
            macs: 96,
            tensors: &[param("weight", &[3, 32]), param("bias", &[3])],
        },
        LayerInfo {
            name: "conv(2, 1)",
            path: "2",
            kind: LayerKind::Conv {
                k: 2,
                f: [1, 1],
                s: [1, 1],
                p: [0, 0],
                d: [1, 1],
                g: 1,
                bias: true,
            },
            input: [3, 1, 1],
            output: [2, 1, 1],
            params: 8,
            macs: 6,
            tensors: &[param("weight", &[2, 3, 1, 1]), param("bias", &[2])],
        },
        LayerInfo {
            name: "softmax",
            path: "3",
            kind: LayerKind::Softmax,
            input: [2, 1, 1],
            output: [2, 1, 1],
            params: 0,
            macs: 0,
            tensors: &[],
        },
    ];

    fn model() -> ModelProto {
        let params = Parameters::init(LAYERS, 0);
        let graph = [0, 1, 2, 3].map(Node::Layer);
        let bytes = export("Net", [1, 4, 4], LAYERS, &graph, &params);
        ModelProto::decode(bytes.as_slice()).unwrap()
    }

    #[test]
    fn graph_has_the_layers_and_the_reshapes_between_ranks() {
        let model = model();
        assert_eq!(model.ir_version, Some(IR_VERSION));
        assert_eq!(model.opset_import[0].version, Some(OPSET));
        let graph = model.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            ["Conv", "Flatten", "Gemm", "Reshape", "Conv", "Flatten", "Softmax", "Reshape"]
        );
        let gemm = &graph.node[2];
        assert_eq!(gemm.input, ["1.flatten", "1.weight", "1.bias"]);
        assert_eq!(gemm.attribute[0].name, "transB");
        assert_eq!(gemm.attribute[0].i, Some(1));
        let conv = &graph.node[0];
        assert_eq!(conv.attribute[2].ints, [1, 1, 1, 1]);
        assert_eq!(graph.node.last().unwrap().output, ["output"]);
    }

    #[test]
    fn weights_are_initializers_and_batch_is_symbolic() {
        let graph = model().graph.unwrap();
        let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "2.weight",
                "2.bias",
                "2.reshape.shape",
                "output.shape"
            ]
        );
        assert_eq!(graph.initializer[2].dims, [3, 32]);
        assert_eq!(
            graph.initializer[2].raw_data.as_ref().unwrap().len(),
            3 * 32 * 4
        );
        for (value, dims) in [(&graph.input[0], [1, 4, 4]), (&graph.output[0], [2, 1, 1])] {
            let shape = value.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
            let shape = &shape.shape.as_ref().unwrap().dim;
            assert_eq!(shape[0].dim_param.as_deref(), Some(BATCH));
            assert_eq!(shape[0].dim_value, None);
            let fixed: Vec<i64> = shape[1..].iter().map(|d| d.dim_value.unwrap()).collect();
            assert_eq!(fixed, dims);
        }
        assert_eq!(graph.input[0].name, "input");
        assert_eq!(graph.output[0].name, "output");
    }

    const BN_TENSORS: &[TensorInfo] = &[
        param("weight", &[2]),
        param("bias", &[2]),
        TensorInfo {
            name: "running_mean",
            shape: &[2],
            role: TensorRole::Buffer,
        },
        TensorInfo {
            name: "running_var",
            shape: &[2],
            role: TensorRole::Buffer,
        },
        TensorInfo {
            name: "num_batches_tracked",
            shape: &[],
            role: TensorRole::Counter,
        },
    ];

    /// A layer for the tests below, which look at the graph only.
    fn layer(
        path: &'static str,
        kind: LayerKind,
        input: [usize; 3],
        output: [usize; 3],
        tensors: &'static [TensorInfo],
    ) -> LayerInfo {
        LayerInfo {
            name: "",
            path,
            kind,
            input,
            output,
            params: 0,
            macs: 0,
            tensors,
        }
    }

    fn conv(k: usize, f: usize, p: usize, d: usize, g: usize, bias: bool) -> LayerKind {
        LayerKind::Conv {
            k,
            f: [f, f],
            s: [1, 1],
            p: [p, p],
            d: [d, d],
            g,
            bias,
        }
    }

    fn graph_of(input: [usize; 3], layers: &[LayerInfo], nodes: &[Node]) -> GraphProto {
        let params = Parameters::zeros(layers);
        let bytes = export("Net", input, layers, nodes, &params);
        ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap()
    }

    fn ops(graph: &GraphProto) -> Vec<&str> {
        graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    fn attribute<'a>(node: &'a NodeProto, name: &str) -> &'a AttributeProto {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{} has no `{name}`", node.name))
    }

    #[test]
    fn residual_branches_meet_in_an_add_before_the_activation() {
        const W: &[TensorInfo] = &[param("weight", &[2, 2, 1, 1])];
        const WB: &[TensorInfo] = &[param("weight", &[2, 2, 3, 3]), param("bias", &[2])];
        let v = [2, 4, 4];
        let layers = [
            layer("0.conv1", conv(2, 3, 1, 1, 1, true), v, v, WB),
            layer(
                "0.bn1",
                LayerKind::BatchNorm { eps: 1e-3 },
                v,
                v,
                BN_TENSORS,
            ),
            layer("0.downsample", conv(2, 1, 0, 1, 1, false), v, v, W),
            layer("0.2", LayerKind::Activation(Act::Relu), v, v, &[]),
        ];
        let nodes = [
            Node::Fork,
            Node::Layer(0),
            Node::Layer(1),
            Node::Shortcut,
            Node::Layer(2),
            Node::Join,
            Node::Layer(3),
        ];
        let graph = graph_of(v, &layers, &nodes);
        assert_eq!(
            ops(&graph),
            ["Conv", "BatchNormalization", "Conv", "Add", "Relu"]
        );
        let [conv1, bn, shortcut, add, relu] = &graph.node[..] else {
            unreachable!()
        };
        assert_eq!(conv1.input, ["input", "0.conv1.weight", "0.conv1.bias"]);
        assert_eq!(
            bn.input,
            [
                "0.conv",
                "0.bn1.weight",
                "0.bn1.bias",
                "0.bn1.running_mean",
                "0.bn1.running_var"
            ]
        );
        assert_eq!(attribute(bn, "epsilon").f, Some(1e-3));
        // No bias: two inputs. The shortcut starts from the block's input.
        assert_eq!(shortcut.input, ["input", "0.downsample.weight"]);
        assert_eq!(add.input, ["2.conv", "1.batch_norm"]);
        assert_eq!(relu.input, ["add1"]);
        assert_eq!(relu.output, ["output"]);
        // Running statistics are initializers; the counter is not.
        let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&"0.bn1.running_var"));
        assert!(!names.iter().any(|n| n.contains("num_batches_tracked")));
    }

    #[test]
    fn flat_branches_are_reshaped_to_volumes_before_the_add() {
        const FC: &[TensorInfo] = &[param("weight", &[3, 3]), param("bias", &[3])];
        let v = [3, 1, 1];
        let layers = [layer("0.0", LayerKind::Fc { n: 3 }, v, v, FC)];
        let nodes = [Node::Fork, Node::Layer(0), Node::Join];
        let graph = graph_of(v, &layers, &nodes);
        assert_eq!(ops(&graph), ["Flatten", "Gemm", "Reshape", "Add"]);
        assert_eq!(graph.node[2].input, ["0.gemm", "add1.reshape_a.shape"]);
        assert_eq!(graph.node[3].input, ["add1.reshape_a", "input"]);
        assert_eq!(graph.node[3].output, ["output"]);
    }

    #[test]
    fn activations_map_onto_their_operators_and_share_constants() {
        let v = [1, 2, 2];
        let acts = [
            Act::Relu,
            Act::Relu6,
            Act::LeakyRelu(0.25),
            Act::Sigmoid,
            Act::Tanh,
            Act::Silu,
            Act::Gelu,
            Act::HardSwish,
            Act::Relu6,
            Act::Gelu,
        ];
        let layers = acts.map(|act| layer("", LayerKind::Activation(act), v, v, &[]));
        let nodes: Vec<Node> = (0..layers.len()).map(Node::Layer).collect();
        let graph = graph_of(v, &layers, &nodes);
        let gelu = ["Div", "Erf", "Add", "Mul", "Mul"];
        let want: Vec<&str> = [
            &[
                "Relu",
                "Clip",
                "LeakyRelu",
                "Sigmoid",
                "Tanh",
                "Sigmoid",
                "Mul",
            ][..],
            &gelu,
            &["HardSwish", "Clip"],
            &gelu,
        ]
        .concat();
        assert_eq!(ops(&graph), want);
        let clip = &graph.node[1];
        assert_eq!(clip.input, ["0.relu", "zero", "six"]);
        assert_eq!(attribute(&graph.node[2], "alpha").f, Some(0.25));
        // silu: x·sigmoid(x).
        assert_eq!(graph.node[6].input, ["4.tanh", "5.sigmoid"]);
        // gelu: x/√2, erf, + 1, x·, ·0.5.
        assert_eq!(graph.node[7].input, ["5.silu", "sqrt2"]);
        assert_eq!(graph.node[9].input, ["6.erf", "one"]);
        assert_eq!(graph.node[10].input, ["5.silu", "6.add"]);
        assert_eq!(graph.node[11].input, ["6.mul", "half"]);
        assert_eq!(graph.node.last().unwrap().output, ["output"]);
        let constants: Vec<(&str, f32)> = graph
            .initializer
            .iter()
            .filter(|t| t.dims.is_empty())
            .map(|t| {
                let bytes = t.raw_data.as_deref().unwrap().try_into().unwrap();
                (t.name.as_str(), f32::from_le_bytes(bytes))
            })
            .collect();
        assert_eq!(
            constants,
            [
                ("zero", 0.0),
                ("six", 6.0),
                ("sqrt2", std::f32::consts::SQRT_2),
                ("one", 1.0),
                ("half", 0.5)
            ]
        );
    }

    #[test]
    fn convolution_and_pooling_options_become_attributes() {
        const DW: &[TensorInfo] = &[param("weight", &[4, 1, 3, 3])];
        let layers = [
            layer("0", conv(4, 3, 2, 2, 4, false), [4, 6, 6], [4, 6, 6], DW),
            layer(
                "1",
                LayerKind::MaxPool {
                    f: [3, 3],
                    s: [2, 2],
                    p: [1, 1],
                },
                [4, 6, 6],
                [4, 3, 3],
                &[],
            ),
            layer(
                "2",
                LayerKind::AvgPool {
                    f: [3, 2],
                    s: [1, 1],
                    p: [1, 0],
                },
                [4, 3, 3],
                [4, 3, 2],
                &[],
            ),
            layer(
                "3",
                LayerKind::Dropout { p: 0.5 },
                [4, 3, 2],
                [4, 3, 2],
                &[],
            ),
            layer("4", LayerKind::GlobalAvgPool, [4, 3, 2], [4, 1, 1], &[]),
        ];
        let nodes: Vec<Node> = (0..layers.len()).map(Node::Layer).collect();
        let graph = graph_of([4, 6, 6], &layers, &nodes);
        assert_eq!(
            ops(&graph),
            ["Conv", "MaxPool", "AveragePool", "GlobalAveragePool"]
        );
        let [conv, max, avg, global] = &graph.node[..] else {
            unreachable!()
        };
        assert_eq!(conv.input, ["input", "0.weight"]);
        assert_eq!(attribute(conv, "group").i, Some(4));
        assert_eq!(attribute(conv, "dilations").ints, [2, 2]);
        assert_eq!(attribute(conv, "pads").ints, [2, 2, 2, 2]);
        assert_eq!(attribute(max, "pads").ints, [1, 1, 1, 1]);
        assert_eq!(attribute(max, "strides").ints, [2, 2]);
        assert_eq!(attribute(avg, "kernel_shape").ints, [3, 2]);
        assert_eq!(attribute(avg, "pads").ints, [1, 0, 1, 0]);
        assert_eq!(attribute(avg, "count_include_pad").i, Some(1));
        // Dropout is no node: the global pool reads the average pool.
        assert_eq!(global.input, ["2.avg_pool"]);
        assert_eq!(global.output, ["output"]);
    }

    #[test]
    fn a_network_without_nodes_passes_its_input_through() {
        let v = [2, 3, 3];
        let layers = [layer("0", LayerKind::Dropout { p: 0.1 }, v, v, &[])];
        let graph = graph_of(v, &layers, &[Node::Layer(0)]);
        assert_eq!(ops(&graph), ["Identity"]);
        assert_eq!(graph.node[0].input, ["input"]);
        assert_eq!(graph.node[0].output, ["output"]);
    }
}

//! ONNX export: the network as an opset-13 graph with its weights as
//! initializers.
//!
//! The graph takes `input` of shape `[batch, C, H, W]` (batch symbolic) and
//! gives `output` of shape `[batch, C, H, W]` of the output volume, as
//! `forward_batch` does. Layers map one to one onto ONNX operators; the
//! only additions are the reshapes between the two ranks a value can have:
//! `Flatten` (axis 1, C·H·W in that order) before `Gemm` and `Softmax` when
//! the value is still a volume, and `Reshape` back to `[batch, C, H, W]`
//! before a layer that needs a volume and at the end.

mod proto;

use prost::Message;

use self::proto::{
    AttributeProto, DimensionProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};
use crate::{LayerInfo, LayerKind, Parameters};

/// The opset the graph is written for.
const OPSET: i64 = 13;
/// The IR version that goes with opset 13.
const IR_VERSION: i64 = 7;
/// The name of the symbolic batch dimension.
const BATCH: &str = "batch";

/// The network as an ONNX model (serialised `ModelProto`).
pub fn export(name: &str, input: [usize; 3], layers: &[LayerInfo], params: &Parameters) -> Vec<u8> {
    let mut graph = Graph::default();
    let mut value = Value {
        name: "input".to_string(),
        flat: false,
        volume: input,
    };
    for (i, layer) in layers.iter().enumerate() {
        value = graph.layer(i, layer, value);
    }
    let output = layers.last().map_or(input, |l| l.output);
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
            LayerKind::Conv { f, s, p, .. } => {
                let x = self.volume(&format!("{i}.reshape"), x);
                let attrs = vec![
                    ints("kernel_shape", &f),
                    ints("strides", &s),
                    ints("pads", &[p[0], p[1], p[0], p[1]]),
                ];
                let y = self.node(
                    format!("{i}.conv"),
                    "Conv",
                    vec![x.name, weight, bias],
                    attrs,
                );
                output(y, false)
            }
            LayerKind::MaxPool { f, s } | LayerKind::AvgPool { f, s } => {
                let x = self.volume(&format!("{i}.reshape"), x);
                let (node, op) = match layer.kind {
                    LayerKind::MaxPool { .. } => ("max_pool", "MaxPool"),
                    _ => ("avg_pool", "AveragePool"),
                };
                let attrs = vec![ints("kernel_shape", &f), ints("strides", &s)];
                let y = self.node(format!("{i}.{node}"), op, vec![x.name], attrs);
                output(y, false)
            }
            LayerKind::Relu | LayerKind::Sigmoid | LayerKind::Tanh => {
                let (node, op) = match layer.kind {
                    LayerKind::Relu => ("relu", "Relu"),
                    LayerKind::Sigmoid => ("sigmoid", "Sigmoid"),
                    _ => ("tanh", "Tanh"),
                };
                let y = self.node(format!("{i}.{node}"), op, vec![x.name], Vec::new());
                output(y, x.flat)
            }
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

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(proto::ATTRIBUTE_INT),
        i: Some(value),
        ints: Vec::new(),
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(proto::ATTRIBUTE_INTS),
        i: None,
        ints: values.iter().map(|&v| dim(v)).collect(),
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

    const LAYERS: &[LayerInfo] = &[
        LayerInfo {
            name: "conv(2, 3, p = 1)",
            path: "0",
            kind: LayerKind::Conv {
                k: 2,
                f: [3, 3],
                s: [1, 1],
                p: [1, 1],
            },
            input: [1, 4, 4],
            output: [2, 4, 4],
            params: 20,
            macs: 288,
            weight_shape: &[2, 1, 3, 3],
        },
        LayerInfo {
            name: "fc(3)",
            path: "1",
            kind: LayerKind::Fc { n: 3 },
            input: [2, 4, 4],
            output: [3, 1, 1],
            params: 99,
            macs: 96,
            weight_shape: &[3, 32],
        },
        LayerInfo {
            name: "conv(2, 1)",
            path: "2",
            kind: LayerKind::Conv {
                k: 2,
                f: [1, 1],
                s: [1, 1],
                p: [0, 0],
            },
            input: [3, 1, 1],
            output: [2, 1, 1],
            params: 8,
            macs: 6,
            weight_shape: &[2, 3, 1, 1],
        },
        LayerInfo {
            name: "softmax",
            path: "3",
            kind: LayerKind::Softmax,
            input: [2, 1, 1],
            output: [2, 1, 1],
            params: 0,
            macs: 0,
            weight_shape: &[],
        },
    ];

    fn model() -> ModelProto {
        let params = Parameters::init(LAYERS, 0);
        let bytes = export("Net", [1, 4, 4], LAYERS, &params);
        ModelProto::decode(bytes.as_slice()).unwrap()
    }

    #[test]
    fn graph_has_the_layers_and_the_reshapes_between_ranks() {
        let model = model();
        assert_eq!(model.ir_version, Some(IR_VERSION));
        assert_eq!(model.opset_import[0].version, Some(13));
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
}

//! The shape table as JSON, for tools in other languages.
//!
//! # Schema (version 1)
//!
//! One network is one object: its totals, its layers as a flat list in
//! execution order, and its structure as written (`body`), a tree of
//! layers, groups and residual blocks:
//!
//! ```json
//! {
//!   "schema": "cnn-shapes",
//!   "version": 1,
//!   "name": "SeedNet",
//!   "input": [3, 32, 32],
//!   "output": [10, 1, 1],
//!   "params": 26370,
//!   "macs": 793600,
//!   "activation_bytes": 104488,
//!   "layers": [
//!     {
//!       "index": 0,
//!       "path": "0",
//!       "name": "conv(10, 5, s = 1, p = 2)",
//!       "kind": "conv",
//!       "args": { "k": 10, "f": [5, 5], "s": [1, 1], "p": [2, 2], "d": [1, 1], "g": 1, "bias": true },
//!       "input": [3, 32, 32],
//!       "output": [10, 32, 32],
//!       "params": 760,
//!       "macs": 768000,
//!       "activation_bytes": 40960
//!     }
//!   ],
//!   "body": [
//!     { "type": "layer", "index": 0, "path": "0" }
//!   ]
//! }
//! ```
//!
//! (`cnn-shapes` and [`fn@json`] print it indented, one value a line.)
//!
//! - `schema` is always `"cnn-shapes"`; `version` changes only when a field
//!   changes meaning or disappears (new fields may be added).
//! - Volumes (`input`, `output`) are `[C, H, W]`; a flat vector of N is
//!   `[N, 1, 1]`.
//! - `params` counts learnable values (weights and biases); `macs` counts
//!   multiply-accumulates per image, biases excluded; `activation_bytes` is
//!   the size of the layer's output as f32 (for the network: every volume
//!   of one image, the input included).
//! - `layers` lists the layers after `input`, in execution order (a
//!   residual block's MAIN, then its shortcut, then the activation after
//!   its add), the leaves of `body`; `index` is the layer's position in
//!   it, and `path` its dotted name (`"layer2.0.downsample.0"`), which its
//!   tensors are named after (`"{path}.weight"`). In a plain chain of
//!   unnamed layers the path is the index.
//! - `kind` is the DSL keyword (`conv`, `pool`, `avgpool`,
//!   `global_avgpool`, `bn`, `relu`, `relu6`, `leaky_relu`, `sigmoid`,
//!   `tanh`, `silu`, `gelu`, `hardswish`, `dropout`, `flatten`, `fc`,
//!   `softmax`) and `args` its resolved arguments: `conv` has `k`
//!   (filters), the `[h, w]` pairs `f` (filter), `s` (stride), `p` (padding,
//!   `p = same` resolved to numbers) and `d` (dilation), `g` (groups) and
//!   `bias` (a boolean); `pool` and `avgpool` have `f`, `s` and `p`; `fc`
//!   has `n`; `bn` has `eps`, `dropout` `p` and `leaky_relu` `slope` (the
//!   only numbers that are not integers); the others `{}`.
//! - `body` is the network as written. Each entry has a `type`:
//!   - `"layer"`: `index` (into `layers`) and `path`;
//!   - `"group"`: `path`, `input`, `output`, `params` and `macs` (its
//!     layers' totals) and its `entries`;
//!   - `"residual"`: `path`, `input`, `output`, `params`, `macs`, its
//!     `main` entries, its `shortcut` entries (`null` for the identity:
//!     the block computes `main(x) + x`) and `act`, the index of the
//!     activation applied after the add (or `null`).
//! - Integers are written exactly. Counts above 2⁵³ lose precision in
//!   readers that hold numbers as doubles (JavaScript).
//!
//! A list of networks (`cnn-shapes --json`) is a JSON array of such objects.

use serde::Serialize;

use super::{activation_bytes, total_activation_bytes};
use crate::model::{Activation, Entry, Layer, LayerKind, Network, Pair, Volume};

/// The network's shape table as a JSON object, in the schema of the
/// [module documentation](self).
///
/// ```
/// let nets = cnn_spec::parse_networks("struct N { input(1, 4, 4) fc(3) }").unwrap();
/// let json: serde_json::Value = serde_json::from_str(&cnn_spec::render::json(&nets[0])).unwrap();
/// assert_eq!(json["output"], serde_json::json!([3, 1, 1]));
/// assert_eq!(json["body"][0], serde_json::json!({ "type": "layer", "index": 0, "path": "0" }));
/// ```
pub fn json(network: &Network) -> String {
    pretty(&Doc::new(network))
}

/// Several networks as one JSON array of objects in the schema of the
/// [module documentation](self).
pub fn json_list<'a>(networks: impl IntoIterator<Item = &'a Network>) -> String {
    let docs: Vec<Doc> = networks.into_iter().map(Doc::new).collect();
    pretty(&docs)
}

/// `value` as indented JSON, with a final newline.
fn pretty(value: &impl Serialize) -> String {
    // The documents are structs of strings and numbers, which always
    // serialise: no map with non-string keys, no float that is not finite
    // (the checker accepts finite float arguments only).
    let mut text = serde_json::to_string_pretty(value)
        .expect("a shape document is plain data and always serialises");
    text.push('\n');
    text
}

/// One network.
#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    version: u32,
    name: &'a str,
    input: [usize; 3],
    output: [usize; 3],
    params: usize,
    macs: u64,
    activation_bytes: u128,
    layers: Vec<LayerDoc<'a>>,
    body: Vec<EntryDoc<'a>>,
}

impl<'a> Doc<'a> {
    fn new(network: &'a Network) -> Doc<'a> {
        Doc {
            schema: "cnn-shapes",
            version: 1,
            name: &network.name,
            input: network.input.dims(),
            output: network.output().dims(),
            params: network.params,
            macs: network.macs,
            activation_bytes: total_activation_bytes(network),
            layers: network.layers.iter().map(LayerDoc::new).collect(),
            body: entries(&network.body, network),
        }
    }
}

/// One layer of the flat `layers` list.
#[derive(Serialize)]
struct LayerDoc<'a> {
    index: usize,
    path: &'a str,
    name: &'a str,
    kind: &'static str,
    args: Args,
    input: [usize; 3],
    output: [usize; 3],
    params: usize,
    macs: u64,
    activation_bytes: u128,
}

impl<'a> LayerDoc<'a> {
    fn new(layer: &'a Layer) -> LayerDoc<'a> {
        LayerDoc {
            index: layer.index,
            path: &layer.path,
            name: &layer.name,
            kind: layer.kind.keyword(),
            args: Args::new(&layer.kind),
            input: layer.input.dims(),
            output: layer.output.dims(),
            params: layer.params,
            macs: layer.macs,
            activation_bytes: activation_bytes(layer.output),
        }
    }
}

/// A layer's resolved arguments, an object whose fields depend on its kind.
#[derive(Serialize)]
#[serde(untagged)]
enum Args {
    Conv {
        k: usize,
        f: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        d: [usize; 2],
        g: usize,
        bias: bool,
    },
    Pool {
        f: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
    },
    Fc {
        n: usize,
    },
    BatchNorm {
        eps: f32,
    },
    Dropout {
        p: f32,
    },
    LeakyRelu {
        slope: f32,
    },
    None {},
}

impl Args {
    fn new(kind: &LayerKind) -> Args {
        let pair = |p: Pair| [p.h, p.w];
        match *kind {
            LayerKind::Conv {
                k,
                f,
                s,
                p,
                d,
                g,
                bias,
            } => Args::Conv {
                k,
                f: pair(f),
                s: pair(s),
                p: pair(p),
                d: pair(d),
                g,
                bias,
            },
            LayerKind::MaxPool { f, s, p } | LayerKind::AvgPool { f, s, p } => Args::Pool {
                f: pair(f),
                s: pair(s),
                p: pair(p),
            },
            LayerKind::Fc { n } => Args::Fc { n },
            LayerKind::BatchNorm { eps } => Args::BatchNorm { eps: eps.get() },
            LayerKind::Dropout { p } => Args::Dropout { p: p.get() },
            LayerKind::Activation(Activation::LeakyRelu(slope)) => {
                Args::LeakyRelu { slope: slope.get() }
            }
            LayerKind::Activation(_)
            | LayerKind::GlobalAvgPool
            | LayerKind::Flatten
            | LayerKind::Softmax => Args::None {},
        }
    }
}

/// One entry of the `body` tree.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum EntryDoc<'a> {
    Layer {
        index: usize,
        path: &'a str,
    },
    Group {
        path: &'a str,
        input: [usize; 3],
        output: [usize; 3],
        params: usize,
        macs: u64,
        entries: Vec<EntryDoc<'a>>,
    },
    Residual {
        path: &'a str,
        input: [usize; 3],
        output: [usize; 3],
        params: usize,
        macs: u64,
        main: Vec<EntryDoc<'a>>,
        shortcut: Option<Vec<EntryDoc<'a>>>,
        act: Option<usize>,
    },
}

fn entries<'a>(entries: &'a [Entry], network: &'a Network) -> Vec<EntryDoc<'a>> {
    let dims = Volume::dims;
    entries
        .iter()
        .map(|entry| match entry {
            Entry::Layer(i) => EntryDoc::Layer {
                index: *i,
                path: &network.layers[*i].path,
            },
            Entry::Group(block) => EntryDoc::Group {
                path: &block.path,
                input: dims(block.input),
                output: dims(block.output),
                params: block.params,
                macs: block.macs,
                entries: self::entries(&block.entries, network),
            },
            Entry::Residual(residual) => EntryDoc::Residual {
                path: &residual.path,
                input: dims(residual.input),
                output: dims(residual.output),
                params: residual.params,
                macs: residual.macs,
                main: self::entries(&residual.main, network),
                shortcut: residual
                    .shortcut
                    .as_deref()
                    .map(|sc| self::entries(sc, network)),
                act: residual.act,
            },
        })
        .collect()
}

//! The validated layer model: every volume, parameter count and
//! multiply-accumulate count of a network, computed once, and its structure
//! (groups and residual blocks) with every layer's name.

use std::fmt;

/// A C×H×W volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Volume {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Volume {
    /// The volume as `[C, H, W]`.
    pub fn dims(self) -> [usize; 3] {
        [self.c, self.h, self.w]
    }

    /// Number of values, `C·H·W` (checked when the model was built).
    pub fn len(self) -> usize {
        self.c * self.h * self.w
    }

    /// Whether the volume holds no value (never true in a checked model).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}×{}", self.c, self.h, self.w)
    }
}

/// A size given per axis: height and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair {
    /// Along the height.
    pub h: usize,
    /// Along the width.
    pub w: usize,
}

impl Pair {
    /// The same value on both axes.
    pub fn square(v: usize) -> Pair {
        Pair { h: v, w: v }
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.h == self.w {
            write!(f, "{}", self.h)
        } else {
            write!(f, "({}, {})", self.h, self.w)
        }
    }
}

/// An f32 argument (a slope, an epsilon, a probability), comparable and
/// hashable by its bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Float(u32);

impl Float {
    /// The value.
    pub fn new(value: f32) -> Float {
        Float(value.to_bits())
    }

    /// Its value.
    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.get();
        // Rust's shortest round-trip form, with a `.0` on whole numbers so
        // that the text reads as a float literal.
        let text = format!("{value:?}");
        f.write_str(&text)
    }
}

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `min(max(0, x), 6)`.
    Relu6,
    /// `x`, or `slope·x` below 0.
    LeakyRelu(Float),
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x · sigmoid(x)`.
    Silu,
    /// `x · Φ(x)`, the exact form.
    Gelu,
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
}

impl Activation {
    /// The activation's DSL name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::HardSwish => "hardswish",
        }
    }
}

/// The default slope of `leaky_relu`, PyTorch's.
pub const LEAKY_SLOPE: f32 = 0.01;

/// The default epsilon of `bn`, PyTorch's.
pub const BN_EPS: f32 = 1e-5;

/// What a layer computes, with its resolved arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `conv(K, F, s = S, p = P, d = D, g = G, bias = B)`; `p = same` is
    /// resolved to numbers.
    Conv {
        /// Number of filters.
        k: usize,
        /// Filter size.
        f: Pair,
        /// Stride.
        s: Pair,
        /// Zero padding on each side.
        p: Pair,
        /// Dilation.
        d: Pair,
        /// Groups.
        g: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `pool(F, S, p = P)`: max pooling, padded with −∞.
    MaxPool {
        /// Window size.
        f: Pair,
        /// Stride.
        s: Pair,
        /// Padding on each side.
        p: Pair,
    },
    /// `avgpool(F, S, p = P)`: average pooling, the zero padding counted in
    /// the divisor.
    AvgPool {
        /// Window size.
        f: Pair,
        /// Stride.
        s: Pair,
        /// Padding on each side.
        p: Pair,
    },
    /// `global_avgpool`: the mean of each channel.
    GlobalAvgPool,
    /// `bn(eps = E)`: batch normalisation per channel.
    BatchNorm {
        /// Added to the variance.
        eps: Float,
    },
    /// An element-wise activation.
    Activation(Activation),
    /// `dropout(P)`: the identity at inference.
    Dropout {
        /// The probability of dropping a value in training.
        p: Float,
    },
    /// `flatten`.
    Flatten,
    /// `fc(N)`.
    Fc {
        /// Number of outputs.
        n: usize,
    },
    /// `softmax` over all values.
    Softmax,
}

impl LayerKind {
    /// The DSL keyword of this kind.
    pub fn keyword(&self) -> &'static str {
        match self {
            LayerKind::Conv { .. } => "conv",
            LayerKind::MaxPool { .. } => "pool",
            LayerKind::AvgPool { .. } => "avgpool",
            LayerKind::GlobalAvgPool => "global_avgpool",
            LayerKind::BatchNorm { .. } => "bn",
            LayerKind::Activation(a) => a.name(),
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Flatten => "flatten",
            LayerKind::Fc { .. } => "fc",
            LayerKind::Softmax => "softmax",
        }
    }

    /// Whether the layer has learnable parameters or buffers (tensors in
    /// the state dict).
    pub fn has_params(&self) -> bool {
        matches!(
            self,
            LayerKind::Conv { .. } | LayerKind::Fc { .. } | LayerKind::BatchNorm { .. }
        )
    }

    /// Whether the layer maps each value to one value in place.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            LayerKind::Activation(_) | LayerKind::Dropout { .. } | LayerKind::BatchNorm { .. }
        )
    }
}

/// What a tensor of a layer is, in PyTorch's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorRole {
    /// A learnable parameter, counted in `PARAMS` and trained.
    Param,
    /// A buffer: state kept with the parameters (batch norm's running
    /// statistics), not learned by gradient.
    Buffer,
    /// An integer counter (batch norm's `num_batches_tracked`: I64, shape
    /// `[]`).
    Counter,
}

/// One tensor of a layer: its name after the layer's path, its shape and
/// its role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// `"weight"`, `"bias"`, `"running_mean"`, …
    pub name: &'static str,
    /// Its shape, PyTorch's layout.
    pub shape: Vec<usize>,
    /// What it is.
    pub role: TensorRole,
}

/// One checked layer: what it computes, its name, shapes and costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Position among the network's layers in execution order, from 0.
    pub index: usize,
    /// Its name in the network: the dotted path of names from the top
    /// (`"layer2.0.downsample.0"`; `"3"` for the fourth entry of a plain
    /// chain), which its tensors are named after.
    pub path: String,
    /// The layer as written, normalised: `conv(10, 5, s = 1, p = 2)`.
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Its input volume.
    pub input: Volume,
    /// Its output volume.
    pub output: Volume,
    /// Learnable parameters.
    pub params: usize,
    /// Multiply-accumulates per image, biases excluded.
    pub macs: u64,
}

impl Layer {
    /// The layer's tensors, in the order of PyTorch's state dict: conv
    /// `weight` `[K, C/G, FH, FW]` and `bias` `[K]` (if it has one); fc
    /// `weight` `[N, C·H·W]` and `bias` `[N]`; batch norm `weight`, `bias`,
    /// `running_mean`, `running_var` `[C]` and `num_batches_tracked` `[]`.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let spec = |name, shape, role| TensorSpec { name, shape, role };
        match self.kind {
            LayerKind::Conv { k, f, g, bias, .. } => {
                let mut tensors = vec![spec(
                    "weight",
                    vec![k, self.input.c / g.max(1), f.h, f.w],
                    TensorRole::Param,
                )];
                if bias {
                    tensors.push(spec("bias", vec![k], TensorRole::Param));
                }
                tensors
            }
            LayerKind::Fc { n } => vec![
                spec("weight", vec![n, self.input.len()], TensorRole::Param),
                spec("bias", vec![n], TensorRole::Param),
            ],
            LayerKind::BatchNorm { .. } => {
                let c = self.input.c;
                vec![
                    spec("weight", vec![c], TensorRole::Param),
                    spec("bias", vec![c], TensorRole::Param),
                    spec("running_mean", vec![c], TensorRole::Buffer),
                    spec("running_var", vec![c], TensorRole::Buffer),
                    spec("num_batches_tracked", Vec::new(), TensorRole::Counter),
                ]
            }
            _ => Vec::new(),
        }
    }
}

/// One entry of a network's structure, as written: a layer, a group or a
/// residual block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A layer: its position in [`Network::layers`].
    Layer(usize),
    /// A group `{ … }`.
    Group(Block),
    /// A residual block.
    Residual(Residual),
}

/// A group's entries with its name and its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Its dotted path.
    pub path: String,
    /// Its entries.
    pub entries: Vec<Entry>,
    /// Its input volume.
    pub input: Volume,
    /// Its output volume (its last entry's).
    pub output: Volume,
    /// Learnable parameters of its layers.
    pub params: usize,
    /// Multiply-accumulates of its layers.
    pub macs: u64,
}

/// A residual block: `y = ACT(MAIN(x) + SC(x))`, SC the identity when
/// absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residual {
    /// Its dotted path.
    pub path: String,
    /// MAIN's entries.
    pub main: Vec<Entry>,
    /// SC's entries, if it has a shortcut.
    pub shortcut: Option<Vec<Entry>>,
    /// The activation after the add: its position in [`Network::layers`].
    pub act: Option<usize>,
    /// Its input volume.
    pub input: Volume,
    /// Its output volume.
    pub output: Volume,
    /// Learnable parameters of its layers.
    pub params: usize,
    /// Multiply-accumulates of its layers.
    pub macs: u64,
}

/// A checked network: its name, input, layers and structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The struct's name.
    pub name: String,
    /// The input volume.
    pub input: Volume,
    /// Every layer, in execution order: a residual block's MAIN, then its
    /// shortcut, then its activation (never empty).
    pub layers: Vec<Layer>,
    /// The network as written: layers, groups and residual blocks.
    pub body: Vec<Entry>,
    /// Total learnable parameters.
    pub params: usize,
    /// Total multiply-accumulates per image.
    pub macs: u64,
}

impl Network {
    /// The output volume of the last layer.
    pub fn output(&self) -> Volume {
        entries_output(&self.body, self).unwrap_or(self.input)
    }

    /// The largest volume anywhere in the network, input included, in values.
    pub fn max_volume(&self) -> usize {
        self.layers
            .iter()
            .map(|layer| layer.output.len())
            .fold(self.input.len(), usize::max)
    }

    /// Whether the network is a plain chain: no residual block (groups only
    /// name their layers).
    pub fn is_chain(&self) -> bool {
        fn chain(entries: &[Entry]) -> bool {
            entries.iter().all(|entry| match entry {
                Entry::Layer(_) => true,
                Entry::Group(block) => chain(&block.entries),
                Entry::Residual(_) => false,
            })
        }
        chain(&self.body)
    }
}

/// The output of a sequence of entries (`None` for an empty one).
fn entries_output(entries: &[Entry], network: &Network) -> Option<Volume> {
    entries.last().map(|entry| match entry {
        Entry::Layer(i) => network.layers[*i].output,
        Entry::Group(block) => block.output,
        Entry::Residual(residual) => residual.output,
    })
}

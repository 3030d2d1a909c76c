//! The validated layer model: every volume, parameter count and
//! multiply-accumulate count of a network, computed once.

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

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// The activation's DSL name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

/// What a layer computes, with its resolved arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `conv(K, F, s = S, p = P)`; `p = same` is resolved to numbers.
    Conv {
        /// Number of filters.
        k: usize,
        /// Filter size.
        f: Pair,
        /// Stride.
        s: Pair,
        /// Zero padding on each side.
        p: Pair,
    },
    /// `pool(F, S)`: max pooling.
    MaxPool {
        /// Window size.
        f: Pair,
        /// Stride.
        s: Pair,
    },
    /// `avgpool(F, S)`: average pooling.
    AvgPool {
        /// Window size.
        f: Pair,
        /// Stride.
        s: Pair,
    },
    /// An element-wise activation.
    Activation(Activation),
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
            LayerKind::Activation(a) => a.name(),
            LayerKind::Flatten => "flatten",
            LayerKind::Fc { .. } => "fc",
            LayerKind::Softmax => "softmax",
        }
    }

    /// Whether the layer has a weight and a bias.
    pub fn has_params(&self) -> bool {
        matches!(self, LayerKind::Conv { .. } | LayerKind::Fc { .. })
    }
}

/// One checked layer: what it computes and its shapes and costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Position among the layers after `input`, from 0 (the `i` of the
    /// `{i}.weight` tensor names).
    pub index: usize,
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
    /// Shape of the weight tensor in PyTorch's layout, when the layer has
    /// parameters: conv `[K, C, FH, FW]`, fc `[N, C·H·W]`. The bias is
    /// `[K]` or `[N]`.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        match self.kind {
            LayerKind::Conv { k, f, .. } => Some(vec![k, self.input.c, f.h, f.w]),
            LayerKind::Fc { n } => Some(vec![n, self.input.len()]),
            _ => None,
        }
    }
}

/// A checked network: its name, input and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The struct's name.
    pub name: String,
    /// The input volume.
    pub input: Volume,
    /// The layers after `input`, in order (never empty).
    pub layers: Vec<Layer>,
    /// Total learnable parameters.
    pub params: usize,
    /// Total multiply-accumulates per image.
    pub macs: u64,
}

impl Network {
    /// The output volume of the last layer.
    pub fn output(&self) -> Volume {
        self.layers.last().map_or(self.input, |layer| layer.output)
    }

    /// The largest volume anywhere in the network, input included, in values.
    pub fn max_volume(&self) -> usize {
        self.layers
            .iter()
            .map(|layer| layer.output.len())
            .fold(self.input.len(), usize::max)
    }
}

//! What the runtime knows of a layer: a description emitted by the macro.

/// What a layer computes, with its resolved arguments. Pairs are
/// `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Convolution with `k` filters of `f`, stride `s`, zero padding `p`.
    Conv {
        /// Number of filters.
        k: usize,
        /// Filter size.
        f: [usize; 2],
        /// Stride.
        s: [usize; 2],
        /// Padding on each side.
        p: [usize; 2],
    },
    /// Max pooling.
    MaxPool {
        /// Window size.
        f: [usize; 2],
        /// Stride.
        s: [usize; 2],
    },
    /// Average pooling.
    AvgPool {
        /// Window size.
        f: [usize; 2],
        /// Stride.
        s: [usize; 2],
    },
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// C×H×W → (C·H·W)×1×1.
    Flatten,
    /// Fully connected to `n` outputs.
    Fc {
        /// Number of outputs.
        n: usize,
    },
    /// Softmax over all values.
    Softmax,
}

/// One layer of a network, after `input`, as the macro computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer as written, normalised: `"conv(10, 5, s = 1, p = 2)"`.
    pub name: &'static str,
    /// Its name in the network: the dotted path its tensors are named by
    /// (`"3"` for the fourth layer after `input`, whose weight is
    /// `"3.weight"`).
    pub path: &'static str,
    /// What it computes.
    pub kind: LayerKind,
    /// Input volume, C×H×W.
    pub input: [usize; 3],
    /// Output volume, C×H×W.
    pub output: [usize; 3],
    /// Learnable parameters.
    pub params: usize,
    /// Multiply-accumulates per image, biases excluded.
    pub macs: u64,
    /// Shape of the weight tensor in PyTorch's layout (`[K, C, FH, FW]` or
    /// `[N, C·H·W]`); empty when the layer has no parameters. The bias has
    /// one value per output channel.
    pub weight_shape: &'static [usize],
}

impl LayerInfo {
    /// The name of one of the layer's tensors: `"{path}.{what}"`, as
    /// PyTorch's state dict names it (`"3.weight"`).
    pub fn tensor_name(&self, what: &str) -> String {
        format!("{}.{what}", self.path)
    }

    /// Whether the layer has a weight and a bias.
    pub fn has_params(&self) -> bool {
        !self.weight_shape.is_empty()
    }

    /// Length of the bias: the first dimension of the weight (0 when none).
    pub fn bias_len(&self) -> usize {
        self.weight_shape.first().copied().unwrap_or(0)
    }

    /// Inputs feeding each output (the `fan_in` of PyTorch's
    /// initialisation): the product of the weight's trailing dimensions.
    pub fn fan_in(&self) -> usize {
        self.weight_shape.iter().skip(1).product()
    }
}

//! What the runtime knows of a layer and of a network's structure: a
//! description emitted by the macro.

use crate::kernels::Act;

/// What a layer computes, with its resolved arguments. Pairs are
/// `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerKind {
    /// Convolution with `k` filters of `f`, stride `s`, zero padding `p`,
    /// dilation `d`, in `g` groups, with or without a bias.
    Conv {
        /// Number of filters.
        k: usize,
        /// Filter size.
        f: [usize; 2],
        /// Stride.
        s: [usize; 2],
        /// Padding on each side.
        p: [usize; 2],
        /// Dilation: the spacing of the filter's taps.
        d: [usize; 2],
        /// Groups: each filter sees `C/g` channels.
        g: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Max pooling, padded with −∞.
    MaxPool {
        /// Window size.
        f: [usize; 2],
        /// Stride.
        s: [usize; 2],
        /// Padding on each side.
        p: [usize; 2],
    },
    /// Average pooling, the zero padding counted in the divisor.
    AvgPool {
        /// Window size.
        f: [usize; 2],
        /// Stride.
        s: [usize; 2],
        /// Padding on each side.
        p: [usize; 2],
    },
    /// The mean of each channel: C×H×W → C×1×1.
    GlobalAvgPool,
    /// Batch normalisation per channel, with running statistics.
    BatchNorm {
        /// Added to the variance.
        eps: f32,
    },
    /// An element-wise activation.
    Activation(Act),
    /// The identity at inference; drops values with probability `p` in
    /// training.
    Dropout {
        /// The probability of dropping a value.
        p: f32,
    },
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

/// What a tensor of a layer is, in PyTorch's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// A learnable parameter (`parameters()` in PyTorch).
    Param,
    /// A buffer of f32s: state kept with the parameters, not learned by
    /// gradient (batch norm's running statistics).
    Buffer,
    /// An integer counter, I64 with shape `[]` (batch norm's
    /// `num_batches_tracked`): read if present, 0 if absent.
    Counter,
}

/// One tensor of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name after the layer's path: `"weight"`, `"running_mean"`, ….
    pub name: &'static str,
    /// Its shape, in PyTorch's layout.
    pub shape: &'static [usize],
    /// What it is.
    pub role: TensorRole,
}

/// One layer of a network, after `input`, as the macro computed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerInfo {
    /// The layer as written, normalised: `"conv(10, 5, s = 1, p = 2)"`.
    pub name: &'static str,
    /// Its name in the network: the dotted path its tensors are named by
    /// (`"3"` for the fourth entry of a plain chain, whose weight is
    /// `"3.weight"`; `"layer2.0.conv1"` in a named ResNet).
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
    /// Its tensors, in the order of PyTorch's state dict.
    pub tensors: &'static [TensorInfo],
}

impl LayerInfo {
    /// The name of one of the layer's tensors: `"{path}.{what}"`, as
    /// PyTorch's state dict names it (`"3.weight"`).
    pub fn tensor_name(&self, what: &str) -> String {
        format!("{}.{what}", self.path)
    }

    /// Whether the layer has tensors.
    pub fn has_params(&self) -> bool {
        !self.tensors.is_empty()
    }

    /// The tensor named `what`, if the layer has one.
    pub fn tensor(&self, what: &str) -> Option<&'static TensorInfo> {
        self.tensors.iter().find(|t| t.name == what)
    }

    /// Inputs feeding each output (the `fan_in` of PyTorch's
    /// initialisation): the product of the weight's trailing dimensions, 0
    /// without a weight.
    pub fn fan_in(&self) -> usize {
        self.tensor("weight")
            .map_or(0, |t| t.shape.iter().skip(1).product())
    }
}

/// One node of a network's structure, read in order with a stack: the
/// layers between a [`Node::Fork`] and its [`Node::Join`] are a residual
/// block's MAIN, and those after a [`Node::Shortcut`], its shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// Layer `i` of the network's layers on the current volume.
    Layer(usize),
    /// A residual block starts: its input is kept.
    Fork,
    /// MAIN ends: its output is kept, and the shortcut starts again from
    /// the block's input.
    Shortcut,
    /// The block ends: the current volume plus the one kept (the block's
    /// input without a shortcut, MAIN's output with one).
    Join,
}

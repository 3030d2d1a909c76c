//! The training pass of a batch, run from a network's layers and its
//! structure ([`Node`]s): a forward pass that keeps every value the
//! backward pass needs, the softmax cross-entropy of the logits, and the
//! backward pass in reverse, each layer a kernel of [`super::kernels`].
//!
//! The network's structure becomes a list of [`Op`]s over *values*: value
//! 0 is the batch, and each layer or residual add writes a new one. A
//! residual block keeps its input (a value read twice: by MAIN's first
//! layer and by the shortcut or the add), and the backward pass sums the
//! gradients that reach a value in the reverse order of the ops, so the
//! two branches' gradients add up at the fork.
//!
//! The batch is cut into chunks of [`CHUNK`] images, spread over rayon's
//! pool: each chunk runs the ops on its own images, keeping its own part of
//! every value, and the chunks meet only where batch norm needs the whole
//! batch — before its forward pass, for the batch's statistics (batch
//! norm normalises with them, as in training mode, and the pass returns
//! them for the running statistics), and before its backward pass, for the
//! means of its gradients. What sums over images — parameter gradients,
//! those statistics and means, the loss — is summed per chunk, then over
//! the chunks in chunk order, so the result does not depend on the number
//! of threads. A network without batch norm runs in one parallel region,
//! each chunk forward and backward, as a plain chain did.

use std::borrow::Cow;

use rayon::prelude::*;

use super::kernels::{
    activate_backward_with, activate_with, avg_pool_backward_with, avg_pool_forward_with,
    batch_norm_backward_with, batch_norm_forward_with, batch_norm_sums_with, channel_moments_with,
    conv_backward_with, conv_cols_len, conv_forward_with, fc_backward_with, fc_forward_with,
    global_avg_pool_backward_with, global_avg_pool_forward_with, max_pool_backward_with,
    max_pool_forward_with, softmax_backward_with, softmax_with, ConvShape, Dropout, Window,
};
use super::loss::softmax_cross_entropy_with;
use super::{with_scratch, CHUNK};
use crate::{Error, LayerInfo, LayerKind, Model, Node, Parameters, TensorRole};

/// One step of the pass over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Layer `layer` reads value `src` and writes value `dst`.
    Layer {
        layer: usize,
        src: usize,
        dst: usize,
    },
    /// A residual block's add: `dst = a + b`.
    Add { a: usize, b: usize, dst: usize },
}

/// A network's structure as ops over values.
#[derive(Debug, Clone)]
struct Program {
    ops: Vec<Op>,
    /// f32s of each value per image.
    lens: Vec<usize>,
    /// The value that holds the logits: the last one, or the input of a
    /// final softmax (which the loss takes in).
    logits: usize,
    /// Whether a value depends on a learnable tensor, so that its gradient
    /// is needed.
    needs_grad: Vec<bool>,
}

const fn volume(dims: [usize; 3]) -> usize {
    dims[0].saturating_mul(dims[1]).saturating_mul(dims[2])
}

fn plan_error(message: String) -> Error {
    Error::Plan { message }
}

/// Whether the layer has learnable tensors.
fn learns(layer: &LayerInfo) -> bool {
    layer.tensors.iter().any(|t| t.role == TensorRole::Param)
}

/// The convolution of a conv layer.
fn conv_shape(layer: &LayerInfo) -> Option<ConvShape> {
    let LayerKind::Conv {
        k, f, s, p, d, g, ..
    } = layer.kind
    else {
        return None;
    };
    let [c, h, w] = layer.input;
    let o = [layer.output[1], layer.output[2]];
    Some(ConvShape {
        d,
        g,
        ..ConvShape::plain(c, [h, w], k, f, s, p, o)
    })
}

/// The window of a pooling layer.
fn pool_window(layer: &LayerInfo) -> Option<Window> {
    let (LayerKind::MaxPool { f, s, p } | LayerKind::AvgPool { f, s, p }) = layer.kind else {
        return None;
    };
    let [c, h, w] = layer.input;
    let o = [layer.output[1], layer.output[2]];
    Some(Window {
        c,
        h,
        w,
        f,
        s,
        p,
        o,
    })
}

/// Checks that a layer's shapes are ones its kernels can run: what
/// `network!` guarantees, checked again for a model made by hand.
fn check_layer(i: usize, layer: &LayerInfo) -> Result<(), Error> {
    let [c, h, w] = layer.input;
    let fits = match layer.kind {
        LayerKind::Conv { k, .. } => conv_shape(layer)
            .is_some_and(|shape| shape.fits() && layer.output == [k, shape.o[0], shape.o[1]]),
        LayerKind::MaxPool { .. } | LayerKind::AvgPool { .. } => pool_window(layer)
            .is_some_and(|win| win.fits() && layer.output == [c, win.o[0], win.o[1]]),
        LayerKind::GlobalAvgPool => layer.output == [c, 1, 1] && h * w > 0,
        LayerKind::Fc { n } => layer.output == [n, 1, 1],
        LayerKind::Flatten => layer.output == [c * h * w, 1, 1],
        LayerKind::Dropout { p } => (0.0..1.0).contains(&p) && layer.output == layer.input,
        LayerKind::BatchNorm { eps } => eps > 0.0 && layer.output == layer.input,
        LayerKind::Activation(_) | LayerKind::Softmax => layer.output == layer.input,
    };
    if fits && volume(layer.input) > 0 && volume(layer.output) > 0 {
        Ok(())
    } else {
        Err(plan_error(format!(
            "layer {i} `{}` (`{}`) has shapes its training kernels cannot run: {:?} → {:?}",
            layer.path, layer.name, layer.input, layer.output
        )))
    }
}

/// The ops of `model`'s structure, checked: every layer index in range,
/// every volume matching, every residual block closed.
fn program(model: &Model) -> Result<Program, Error> {
    let shape = (model.name, model.input, model.output_len());
    program_of(shape, model.layers, model.graph)
}

/// [`program`] of a network named `name`, with this input volume and
/// output length.
fn program_of(
    (name, input, output_len): (&str, [usize; 3], usize),
    layers: &[LayerInfo],
    graph: &[Node],
) -> Result<Program, Error> {
    let mut ops = Vec::new();
    let mut lens = vec![volume(input)];
    let mut needs_grad = vec![false];
    let mut current = 0;
    let mut kept = Vec::new();
    for (at, node) in graph.iter().enumerate() {
        let broken = |what: &str| plan_error(format!("node {at} of `{}`: {what}", name));
        match *node {
            Node::Layer(i) => {
                let layer = layers
                    .get(i)
                    .ok_or_else(|| broken("a layer out of range"))?;
                if volume(layer.input) != lens[current] {
                    return Err(broken("the layer's input is not the current volume"));
                }
                check_layer(i, layer)?;
                let dst = lens.len();
                lens.push(volume(layer.output));
                needs_grad.push(needs_grad[current] || learns(layer));
                ops.push(Op::Layer {
                    layer: i,
                    src: current,
                    dst,
                });
                current = dst;
            }
            Node::Fork => kept.push(current),
            Node::Shortcut => {
                let input = kept
                    .pop()
                    .ok_or_else(|| broken("a shortcut outside a block"))?;
                kept.push(current);
                current = input;
            }
            Node::Join => {
                let other = kept.pop().ok_or_else(|| broken("a join outside a block"))?;
                if lens[other] != lens[current] {
                    return Err(broken("a residual adds different volumes"));
                }
                let dst = lens.len();
                lens.push(lens[current]);
                needs_grad.push(needs_grad[current] || needs_grad[other]);
                ops.push(Op::Add {
                    a: current,
                    b: other,
                    dst,
                });
                current = dst;
            }
        }
    }
    if !kept.is_empty() {
        return Err(plan_error(format!(
            "`{}` has a residual block that does not end",
            name
        )));
    }
    // A final softmax is fused into the loss: the logits are its input.
    let mut logits = current;
    if let Some(&Op::Layer { layer, src, dst }) = ops.last() {
        if dst == current && layers[layer].kind == LayerKind::Softmax {
            ops.pop();
            lens.pop();
            needs_grad.pop();
            logits = src;
        }
    }
    if lens[logits] != output_len || lens[logits] == 0 {
        return Err(plan_error(format!(
            "`{}` computes {} logits, but its output has {}",
            name, lens[logits], output_len
        )));
    }
    Ok(Program {
        ops,
        lens,
        logits,
        needs_grad,
    })
}

/// Checks that `model` can be trained: every layer kind has a backward
/// pass here (convolutions with any stride, padding, dilation, groups and
/// with or without a bias; padded max and average pooling; global average
/// pooling; batch norm in training mode; dropout; every activation;
/// flatten, fc and softmax; residual blocks with or without a shortcut),
/// so what remains to check is that the structure and the shapes are
/// sound.
pub(crate) fn trainable(model: &Model) -> Result<(), Error> {
    program(model).map(drop)
}

/// f32s of scratch one thread of a training pass needs: the largest
/// im2col matrix of one group of one image. The values the pass keeps are
/// allocated per batch.
pub const fn scratch_len(layers: &[LayerInfo]) -> usize {
    let mut cols = 0;
    let mut i = 0;
    while i < layers.len() {
        if let LayerKind::Conv {
            k, f, s, p, d, g, ..
        } = layers[i].kind
        {
            let [c, h, w] = layers[i].input;
            let o = [layers[i].output[1], layers[i].output[2]];
            let shape = ConvShape {
                d,
                g,
                ..ConvShape::plain(c, [h, w], k, f, s, p, o)
            };
            let need = conv_cols_len(&shape);
            if need > cols {
                cols = need;
            }
        }
        i += 1;
    }
    cols
}

/// A layer's learnable tensors and where their gradients go in the
/// concatenated gradients.
#[derive(Debug, Clone, Copy, Default)]
struct Learnable<'a> {
    weight: Option<(&'a [f32], usize)>,
    bias: Option<(&'a [f32], usize)>,
}

impl<'a> Learnable<'a> {
    /// The range of the layer's gradients: its weight's then its bias's.
    fn range(&self) -> std::ops::Range<usize> {
        let start = self.weight.or(self.bias).map_or(0, |(_, at)| at);
        let len = self.weight.map_or(0, |(w, _)| w.len()) + self.bias.map_or(0, |(b, _)| b.len());
        start..start + len
    }

    fn weight(&self, i: usize) -> Result<&'a [f32], Error> {
        self.weight
            .map(|(w, _)| w)
            .ok_or_else(|| plan_error(format!("layer {i} has no weight")))
    }
}

/// Each layer's learnable tensors in `params`, checked against the
/// layers: the gradients are laid out as the learnable tensors, in layer
/// order. Returns them and the gradients' length.
fn learnables<'a>(
    layers: &[LayerInfo],
    params: &'a Parameters,
) -> Result<(Vec<Learnable<'a>>, usize), Error> {
    let mut offset = 0;
    let mut all = Vec::with_capacity(layers.len());
    for layer in layers {
        let mut learnable = Learnable::default();
        for info in layer.tensors.iter().filter(|t| t.role == TensorRole::Param) {
            let name = layer.tensor_name(info.name);
            let expected: usize = info.shape.iter().product();
            let data = match params.get(&name) {
                Some(t) if t.data().len() == expected && t.role() == TensorRole::Param => t.data(),
                _ => {
                    return Err(plan_error(format!(
                        "the parameters have no learnable tensor `{name}` of {expected} values"
                    )))
                }
            };
            let slot = Some((data, offset));
            match info.name {
                "weight" if learnable.weight.is_none() && learnable.bias.is_none() => {
                    learnable.weight = slot;
                }
                "bias" if learnable.bias.is_none() => learnable.bias = slot,
                _ => {
                    return Err(plan_error(format!(
                        "layer `{}` has a learnable tensor `{}` training does not know",
                        layer.path, info.name
                    )))
                }
            }
            offset += expected;
        }
        all.push(learnable);
    }
    Ok((all, offset))
}

/// Batch norm's statistics of one layer over the batch.
#[derive(Debug, Clone)]
struct Stats {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// The unbiased variance, for the running variance.
    var: Vec<f32>,
}

/// What batch norm's backward pass takes from the whole batch: the means
/// of `dy` and of `dy · x̂` over its N·H·W values per channel.
#[derive(Debug, Clone)]
struct Means {
    dy: Vec<f32>,
    dy_xhat: Vec<f32>,
}

/// What a batch norm layer's statistics were in a pass: its mean and its
/// unbiased variance per channel, for its running statistics.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchStats {
    /// The layer's index.
    pub layer: usize,
    /// The batch mean of each channel.
    pub mean: Vec<f32>,
    /// The batch's unbiased variance of each channel, `var · m/(m − 1)`
    /// for `m` = N·H·W values.
    pub var: Vec<f32>,
}

/// The result of a pass over a batch.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The summed loss of the images (unscaled).
    pub loss: f64,
    /// `scale ·` the gradient of the summed loss, learnable tensors
    /// concatenated in layer order.
    pub grads: Vec<f32>,
    /// The statistics of every batch norm layer, in the order they ran.
    pub stats: Vec<BatchStats>,
}

/// What the ops of one pass read: the program, the layers and their
/// tensors, and what batch norm took from the whole batch so far.
struct Pass<'a> {
    program: Program,
    layers: &'a [LayerInfo],
    learnables: Vec<Learnable<'a>>,
    /// Images in the batch.
    n: usize,
    /// The seed of dropout's masks.
    seed: u64,
    /// Batch norm's statistics, by layer, once gathered.
    stats: Vec<Option<Stats>>,
    /// Batch norm's means of its gradients, by layer, once gathered.
    means: Vec<Option<Means>>,
}

/// One chunk of the batch through the pass: its images, the values it
/// has computed, the gradients that have reached them, and its share of
/// the parameter gradients and of the loss.
struct ChunkState<'x> {
    /// The index of its first image in the batch.
    first: usize,
    /// Its number of images.
    m: usize,
    /// Its part of each value computed so far, in value order.
    values: Vec<Cow<'x, [f32]>>,
    /// Its part of each value's gradient, once one has reached it.
    dvalues: Vec<Option<Vec<f32>>>,
    /// Its parameter gradients, the learnable tensors concatenated.
    grads: Vec<f32>,
    /// Its summed loss.
    loss: f64,
}

/// Adds `grad` into the gradient `slot` of a value (or makes it the
/// gradient, when none has reached the value yet).
fn add_grad(slot: &mut Option<Vec<f32>>, grad: Cow<'_, [f32]>) {
    match slot {
        Some(sum) => {
            for (s, g) in sum.iter_mut().zip(grad.iter()) {
                *s += g;
            }
        }
        None => *slot = Some(grad.into_owned()),
    }
}

/// One piece of a pass's work on a chunk.
#[derive(Debug, Clone, Copy)]
enum Work {
    Forward(Op),
    Loss,
    Backward(Op),
}

/// The layer a batch norm op normalises, if the op is one.
fn norm_layer(layers: &[LayerInfo], op: Op) -> Option<usize> {
    match op {
        Op::Layer { layer, .. } if matches!(layers[layer].kind, LayerKind::BatchNorm { .. }) => {
            Some(layer)
        }
        _ => None,
    }
}

/// The pass over a batch of `n` images `x` (contiguous, `n ×` the input
/// volume) with their `labels` (checked by the caller): forward, softmax
/// cross-entropy, backward. Dropout's masks are drawn from `seed`. The
/// gradients are `scale ·` those of the summed loss.
///
/// The batch is cut into chunks of [`CHUNK`] images, which run the ops in
/// parallel, each its own images, from one batch norm to the next: there
/// the chunks' sums are gathered (in chunk order) into the batch's
/// statistics, or, going backward, into the means of the gradients.
///
/// # Errors
/// The model's structure or shapes are unsound (`Error::Plan`), the
/// parameters do not hold its learnable tensors, or a batch norm layer
/// would normalise a single value per channel (a batch of one image
/// before an fc).
pub(crate) fn run(
    model: &Model,
    params: &Parameters,
    x: &[f32],
    labels: &[usize],
    scale: f32,
    seed: u64,
) -> Result<Outcome, Error> {
    let program = program(model)?;
    let n = labels.len();
    let in_len = volume(model.input);
    let x = x
        .get(..n * in_len)
        .ok_or_else(|| plan_error("the images are too short".into()))?;
    let (learnables, params_len) = learnables(model.layers, params)?;
    let mut pass = Pass {
        program,
        layers: model.layers,
        learnables,
        n,
        seed,
        stats: vec![None; model.layers.len()],
        means: vec![None; model.layers.len()],
    };
    let values = pass.program.lens.len();
    let mut chunks: Vec<ChunkState<'_>> = x
        .chunks(CHUNK * in_len)
        .enumerate()
        .map(|(ci, images)| {
            let mut state = ChunkState {
                first: ci * CHUNK,
                m: images.len() / in_len,
                values: Vec::with_capacity(values),
                dvalues: vec![None; values],
                grads: Vec::new(),
                loss: 0.0,
            };
            state.values.push(Cow::Borrowed(images));
            state
        })
        .collect();
    let ops = pass.program.ops.clone();

    // The work in order: every op forward, the loss, every op backward.
    // The chunks run it in parallel, each its own images, and meet where
    // a batch norm needs the whole batch: before its forward pass (the
    // batch's statistics) and before its backward pass (the means of its
    // gradients, and its parameters' gradients). A network without batch
    // norm runs in one parallel region.
    let work: Vec<Work> = (ops.iter().map(|&op| Work::Forward(op)))
        .chain([Work::Loss])
        .chain(ops.iter().rev().map(|&op| Work::Backward(op)))
        .collect();
    let meets = |w: &Work| match *w {
        Work::Forward(op) | Work::Backward(op) => norm_layer(pass.layers, op).is_some(),
        Work::Loss => false,
    };
    let logits = pass.program.logits;
    let mut norm_grads = vec![0.0f32; params_len];
    let mut start = 0;
    while start < work.len() {
        match work[start] {
            Work::Forward(op) => {
                if let Some(layer) = norm_layer(pass.layers, op) {
                    pass.gather_stats(layer, op, &chunks)?;
                }
            }
            Work::Backward(op) => {
                if let Some(layer) = norm_layer(pass.layers, op) {
                    pass.gather_means(layer, op, &chunks, &mut norm_grads)?;
                }
            }
            Work::Loss => {}
        }
        let end = (start + 1..work.len())
            .find(|&i| meets(&work[i]))
            .unwrap_or(work.len());
        let stage = &work[start..end];
        chunks.par_iter_mut().try_for_each(|chunk| {
            stage.iter().try_for_each(|w| match *w {
                Work::Forward(op) => pass.forward(op, chunk),
                Work::Backward(op) => pass.backward(op, chunk),
                Work::Loss => {
                    let classes = pass.program.lens[logits];
                    let (first, m) = (chunk.first, chunk.m);
                    let mut dlogits = vec![0.0f32; m * classes];
                    let z = &chunk.values[logits];
                    let labels = &labels[first..first + m];
                    chunk.loss =
                        softmax_cross_entropy_with(classes, m, z, labels, scale, &mut dlogits);
                    chunk.dvalues[logits] = Some(dlogits);
                    chunk.grads = vec![0.0; params_len];
                    Ok(())
                }
            })
        })?;
        start = end;
    }

    // The chunks' sums, in chunk order.
    let mut loss = 0.0;
    let mut grads = vec![0.0f32; params_len];
    for chunk in &chunks {
        loss += chunk.loss;
        for (g, c) in grads.iter_mut().zip(&chunk.grads) {
            *g += c;
        }
    }
    for (g, b) in grads.iter_mut().zip(&norm_grads) {
        *g += b;
    }
    let stats = ops
        .iter()
        .filter_map(|&op| {
            let layer = norm_layer(pass.layers, op)?;
            let s = pass.stats[layer].take()?;
            Some(BatchStats {
                layer,
                mean: s.mean,
                var: s.var,
            })
        })
        .collect();
    Ok(Outcome { loss, grads, stats })
}

impl Pass<'_> {
    /// One op's forward pass over one chunk.
    fn forward(&self, op: Op, chunk: &mut ChunkState<'_>) -> Result<(), Error> {
        let (first, m) = (chunk.first, chunk.m);
        let out = match op {
            Op::Layer { layer, src, dst } => {
                let mut out = vec![0.0f32; m * self.program.lens[dst]];
                self.forward_chunk(layer, first, m, &chunk.values[src], &mut out)?;
                out
            }
            Op::Add { a, b, .. } => {
                let (a, b) = (&chunk.values[a], &chunk.values[b]);
                a.iter().zip(b.iter()).map(|(a, b)| a + b).collect()
            }
        };
        chunk.values.push(Cow::Owned(out));
        Ok(())
    }

    /// Layer `i`'s forward pass over images `first .. first + m`.
    fn forward_chunk(
        &self,
        i: usize,
        first: usize,
        m: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), Error> {
        let layer = &self.layers[i];
        let params = self.learnables[i];
        let len = volume(layer.output);
        match layer.kind {
            LayerKind::Conv { .. } => {
                let shape = conv_shape(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                let (weight, bias) = (params.weight(i)?, params.bias.map(|(b, _)| b));
                with_scratch(conv_cols_len(&shape), |cols| {
                    conv_forward_with(shape, m, x, weight, bias, y, cols);
                });
            }
            LayerKind::MaxPool { .. } | LayerKind::AvgPool { .. } => {
                let win = pool_window(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                if matches!(layer.kind, LayerKind::MaxPool { .. }) {
                    max_pool_forward_with(win, m, x, y);
                } else {
                    avg_pool_forward_with(win, m, x, y);
                }
            }
            LayerKind::GlobalAvgPool => {
                let [c, h, w] = layer.input;
                global_avg_pool_forward_with(c, h * w, m, x, y);
            }
            LayerKind::BatchNorm { .. } => {
                let [c, h, w] = layer.input;
                let stats = self.stats(i)?;
                let (gamma, beta) = self.affine(i, c)?;
                let norm = (&stats.mean[..], &stats.inv_std[..]);
                batch_norm_forward_with(c, h * w, m, x, norm, (gamma, beta), y);
            }
            LayerKind::Activation(act) => activate_with(m * len, act, x, y),
            LayerKind::Dropout { p } => self.dropout(i, p).apply_with(len, first, m, x, y),
            LayerKind::Flatten => y[..m * len].copy_from_slice(&x[..m * len]),
            LayerKind::Fc { n: units } => {
                let bias = params
                    .bias
                    .ok_or_else(|| plan_error(format!("layer {i} has no bias")))?
                    .0;
                fc_forward_with(volume(layer.input), units, m, x, params.weight(i)?, bias, y);
            }
            LayerKind::Softmax => softmax_with(len, m, x, y),
        }
        Ok(())
    }

    /// Layer `i`'s dropout in this pass.
    fn dropout(&self, i: usize, p: f32) -> Dropout {
        Dropout {
            p,
            seed: self.seed,
            layer: i,
        }
    }

    /// Batch norm layer `i`'s statistics, once gathered.
    fn stats(&self, i: usize) -> Result<&Stats, Error> {
        self.stats[i]
            .as_ref()
            .ok_or_else(|| plan_error(format!("layer {i} has no batch statistics")))
    }

    /// Batch norm layer `i`'s γ and β, `c` each.
    fn affine(&self, i: usize, c: usize) -> Result<(&[f32], &[f32]), Error> {
        match self.learnables[i] {
            Learnable {
                weight: Some((gamma, _)),
                bias: Some((beta, _)),
            } if gamma.len() == c && beta.len() == c => Ok((gamma, beta)),
            _ => Err(plan_error(format!(
                "layer {i} has no {c} weights and biases"
            ))),
        }
    }

    /// The channels, values per channel and number of values per channel
    /// in the batch of batch norm layer `i`.
    fn norm_sizes(&self, i: usize) -> Result<(usize, usize, usize), Error> {
        let [c, h, w] = self.layers[i].input;
        let count = self.n * h * w;
        if count < 2 {
            return Err(Error::Shape {
                what: "input batch (batch norm in training needs 2 or more values per channel)",
                expected: [2].iter().chain(&self.layers[0].input).copied().collect(),
                got: [self.n]
                    .iter()
                    .chain(&self.layers[0].input)
                    .copied()
                    .collect(),
            });
        }
        Ok((c, h * w, count))
    }

    /// The statistics of batch norm layer `i` (op `op`) over the whole
    /// batch: each chunk's sums in parallel, added in chunk order.
    fn gather_stats(&mut self, i: usize, op: Op, chunks: &[ChunkState<'_>]) -> Result<(), Error> {
        let Op::Layer { src, .. } = op else {
            return Err(plan_error(format!("op of layer {i}")));
        };
        let LayerKind::BatchNorm { eps } = self.layers[i].kind else {
            return Err(plan_error(format!("layer {i} is not a batch norm")));
        };
        let (c, hw, count) = self.norm_sizes(i)?;
        let parts: Vec<Vec<f64>> = chunks
            .par_iter()
            .map(|chunk| {
                let mut sums = vec![0.0; 2 * c];
                channel_moments_with(c, hw, chunk.m, &chunk.values[src], &mut sums);
                sums
            })
            .collect();
        let sums = sum_parts(&parts, 2 * c);
        let count = count as f64;
        let mean: Vec<f64> = sums[..c].iter().map(|s| s / count).collect();
        let var: Vec<f64> = sums[c..]
            .iter()
            .zip(&mean)
            .map(|(s, m)| (s / count - m * m).max(0.0))
            .collect();
        self.stats[i] = Some(Stats {
            mean: mean.iter().map(|&m| m as f32).collect(),
            inv_std: var
                .iter()
                .map(|&v| (1.0 / (v + f64::from(eps)).sqrt()) as f32)
                .collect(),
            var: var
                .iter()
                .map(|&v| (v * count / (count - 1.0)) as f32)
                .collect(),
        });
        Ok(())
    }

    /// The means of batch norm layer `i`'s (op `op`) output gradient and
    /// of its product with x̂, over the whole batch (each chunk's sums in
    /// parallel, added in chunk order), and its γ and β gradients, which
    /// these sums are, added into `grads`.
    fn gather_means(
        &mut self,
        i: usize,
        op: Op,
        chunks: &[ChunkState<'_>],
        grads: &mut [f32],
    ) -> Result<(), Error> {
        let Op::Layer { src, dst, .. } = op else {
            return Err(plan_error(format!("op of layer {i}")));
        };
        let (c, hw, count) = self.norm_sizes(i)?;
        if !self.program.needs_grad[dst] {
            return Ok(());
        }
        let stats = self.stats(i)?;
        let norm = (&stats.mean[..], &stats.inv_std[..]);
        let parts: Vec<Vec<f64>> = chunks
            .par_iter()
            .map(|chunk| {
                let mut sums = vec![0.0; 2 * c];
                if let Some(dy) = &chunk.dvalues[dst] {
                    let x = &chunk.values[src];
                    batch_norm_sums_with(c, hw, chunk.m, x, dy, norm, &mut sums);
                }
                sums
            })
            .collect();
        let sums = sum_parts(&parts, 2 * c);
        let (sum_dy, sum_dy_xhat) = sums.split_at(c);
        let (Some((_, gamma_at)), Some((_, beta_at))) =
            (self.learnables[i].weight, self.learnables[i].bias)
        else {
            return Err(plan_error(format!("layer {i} has no weight and bias")));
        };
        for ch in 0..c {
            grads[gamma_at + ch] += sum_dy_xhat[ch] as f32;
            grads[beta_at + ch] += sum_dy[ch] as f32;
        }
        let mean =
            |s: &[f64]| -> Vec<f32> { s.iter().map(|&v| (v / count as f64) as f32).collect() };
        self.means[i] = Some(Means {
            dy: mean(sum_dy),
            dy_xhat: mean(sum_dy_xhat),
        });
        Ok(())
    }

    /// One op's backward pass over one chunk: the gradients of its
    /// output added into its inputs' (where needed) and its parameters'
    /// into the chunk's.
    fn backward(&self, op: Op, chunk: &mut ChunkState<'_>) -> Result<(), Error> {
        let needs = &self.program.needs_grad;
        match op {
            Op::Add { a, b, dst } => {
                let Some(dy) = chunk.dvalues[dst].take() else {
                    return Ok(());
                };
                match (needs[a], needs[b]) {
                    (true, true) => {
                        add_grad(&mut chunk.dvalues[a], Cow::Borrowed(&dy));
                        add_grad(&mut chunk.dvalues[b], Cow::Owned(dy));
                    }
                    (true, false) => add_grad(&mut chunk.dvalues[a], Cow::Owned(dy)),
                    (false, true) => add_grad(&mut chunk.dvalues[b], Cow::Owned(dy)),
                    (false, false) => {}
                }
            }
            Op::Layer { layer, src, dst } => {
                if !needs[dst] {
                    return Ok(());
                }
                let Some(dy) = chunk.dvalues[dst].take() else {
                    return Ok(());
                };
                let mut dx = needs[src].then(|| vec![0.0f32; chunk.m * self.program.lens[src]]);
                let range = self.learnables[layer].range();
                let io = Io {
                    first: chunk.first,
                    m: chunk.m,
                    x: &chunk.values[src],
                    y: &chunk.values[dst],
                    dy: &dy,
                };
                let dparams = &mut chunk.grads[range];
                self.backward_chunk(layer, io, dparams, dx.as_deref_mut())?;
                if let Some(dx) = dx {
                    add_grad(&mut chunk.dvalues[src], Cow::Owned(dx));
                }
            }
        }
        Ok(())
    }

    /// Layer `i`'s backward pass over one chunk: adds its parameters'
    /// gradients into `dparams` (weight, then bias; batch norm's are
    /// gathered over the batch instead) and writes its input's gradient
    /// into `dx` when asked.
    fn backward_chunk(
        &self,
        i: usize,
        Io { first, m, x, y, dy }: Io<'_>,
        dparams: &mut [f32],
        dx: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        let layer = &self.layers[i];
        let len = volume(layer.output);
        // Layers without parameters need an input gradient to have one.
        let Some(dx) = dx else {
            return match layer.kind {
                LayerKind::Conv { .. } | LayerKind::Fc { .. } => {
                    self.params_backward(i, m, x, dy, dparams, None)
                }
                _ => Ok(()),
            };
        };
        match layer.kind {
            LayerKind::Conv { .. } | LayerKind::Fc { .. } => {
                self.params_backward(i, m, x, dy, dparams, Some(dx))?;
            }
            LayerKind::MaxPool { .. } => {
                let win = pool_window(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                max_pool_backward_with(win, m, x, dy, dx);
            }
            LayerKind::AvgPool { .. } => {
                let win = pool_window(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                avg_pool_backward_with(win, m, dy, dx);
            }
            LayerKind::GlobalAvgPool => {
                let [c, h, w] = layer.input;
                global_avg_pool_backward_with(c, h * w, m, dy, dx);
            }
            LayerKind::BatchNorm { .. } => {
                let [c, h, w] = layer.input;
                let (stats, (gamma, _)) = (self.stats(i)?, self.affine(i, c)?);
                let means = self.means[i]
                    .as_ref()
                    .ok_or_else(|| plan_error(format!("layer {i} has no gradient means")))?;
                let norm = (&stats.mean[..], &stats.inv_std[..]);
                let means = (&means.dy[..], &means.dy_xhat[..]);
                batch_norm_backward_with(c, h * w, m, x, dy, norm, gamma, means, dx);
            }
            LayerKind::Activation(act) => activate_backward_with(m * len, act, (x, y), dy, dx),
            // The same mask, scaled the same: dx = dy · mask / (1 − p).
            LayerKind::Dropout { p } => self.dropout(i, p).apply_with(len, first, m, dy, dx),
            LayerKind::Flatten => dx[..m * len].copy_from_slice(&dy[..m * len]),
            LayerKind::Softmax => softmax_backward_with(len, m, y, dy, dx),
        }
        Ok(())
    }

    /// A conv or fc layer's backward pass over `m` images.
    fn params_backward(
        &self,
        i: usize,
        m: usize,
        x: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        dx: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        let layer = &self.layers[i];
        let params = self.learnables[i];
        let weight = params.weight(i)?;
        let (dweight, dbias) = dparams.split_at_mut(weight.len());
        let dbias = params.bias.map(|(b, _)| &mut dbias[..b.len()]);
        match layer.kind {
            LayerKind::Conv { .. } => {
                let shape = conv_shape(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                with_scratch(conv_cols_len(&shape), |cols| {
                    conv_backward_with(shape, m, x, dy, weight, dweight, dbias, dx, cols);
                });
            }
            LayerKind::Fc { n: units } => {
                let dbias = dbias.ok_or_else(|| plan_error(format!("layer {i} has no bias")))?;
                let inputs = volume(layer.input);
                fc_backward_with(inputs, units, m, x, dy, weight, dweight, dbias, dx);
            }
            _ => return Err(plan_error(format!("layer {i} has no weights"))),
        }
        Ok(())
    }
}

/// The sum of `parts`, in order, in f64.
fn sum_parts(parts: &[Vec<f64>], len: usize) -> Vec<f64> {
    let mut total = vec![0.0; len];
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    total
}

/// What a layer's backward pass over one chunk reads: the chunk's first
/// image's index in the batch, its number of images, and their input,
/// output and output gradient.
struct Io<'a> {
    first: usize,
    m: usize,
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Act;
    use crate::TensorInfo;

    const FC: &[TensorInfo] = &[
        TensorInfo {
            name: "weight",
            shape: &[4, 4],
            role: TensorRole::Param,
        },
        TensorInfo {
            name: "bias",
            shape: &[4],
            role: TensorRole::Param,
        },
    ];

    const fn layer(kind: LayerKind, tensors: &'static [TensorInfo]) -> LayerInfo {
        LayerInfo {
            name: "",
            path: "",
            kind,
            input: [4, 1, 1],
            output: [4, 1, 1],
            params: 0,
            macs: 0,
            tensors,
        }
    }

    /// relu, fc, tanh, softmax on 4 values.
    const LAYERS: &[LayerInfo] = &[
        layer(LayerKind::Activation(Act::Relu), &[]),
        layer(LayerKind::Fc { n: 4 }, FC),
        layer(LayerKind::Activation(Act::Tanh), &[]),
        layer(LayerKind::Softmax, &[]),
    ];

    fn of(graph: &[Node]) -> Result<Program, Error> {
        program_of(("Net", [4, 1, 1], 4), LAYERS, graph)
    }

    #[test]
    fn residual_blocks_keep_their_input_and_a_final_softmax_is_the_loss() {
        use Node::{Fork, Join, Layer, Shortcut};
        // relu, then a block: MAIN fc, shortcut tanh; then softmax.
        let graph = [Layer(0), Fork, Layer(1), Shortcut, Layer(2), Join, Layer(3)];
        let program = of(&graph).unwrap();
        let layer = |layer, src, dst| Op::Layer { layer, src, dst };
        assert_eq!(
            program.ops,
            [
                layer(0, 0, 1),
                layer(1, 1, 2),
                layer(2, 1, 3),
                Op::Add { a: 3, b: 2, dst: 4 }
            ]
        );
        assert_eq!(program.logits, 4);
        // Only what depends on the fc's parameters needs a gradient.
        assert_eq!(program.needs_grad, [false, false, true, false, true]);
        // An identity block adds its input.
        let program = of(&[Fork, Layer(1), Join]).unwrap();
        assert_eq!(program.ops[1], Op::Add { a: 1, b: 0, dst: 2 });
    }

    #[test]
    fn malformed_structures_are_plan_errors() {
        use Node::{Fork, Join, Layer, Shortcut};
        for graph in [
            &[Fork, Layer(1)][..],
            &[Join][..],
            &[Shortcut, Layer(1)][..],
            &[Layer(9)][..],
        ] {
            assert!(matches!(of(graph), Err(Error::Plan { .. })), "{graph:?}");
        }
        // A layer whose input is not the current volume.
        let wide = [LayerInfo {
            input: [5, 1, 1],
            ..LAYERS[0]
        }];
        let program = program_of(("Net", [4, 1, 1], 4), &wide, &[Layer(0)]);
        assert!(matches!(program, Err(Error::Plan { .. })));
    }
}

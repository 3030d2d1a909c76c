//! The training pass of a chunk of images, run from a network's layers: a
//! forward pass that keeps every layer's output, the softmax cross-entropy
//! of the logits, and the backward pass through the layers in reverse,
//! each a kernel of [`super::kernels`].

use super::kernels::{
    activate_backward_with, activate_with, avg_pool_backward_with, avg_pool_forward_with,
    conv_backward_with, conv_cols_len, conv_forward_with, fc_backward_with, fc_forward_with,
    max_pool_backward_with, max_pool_forward_with, softmax_backward_with, softmax_with, Window,
};
use super::loss::softmax_cross_entropy_with;
use super::CHUNK;
use crate::kernels::Act;
use crate::{Error, LayerInfo, LayerKind, Model, Node, Parameters};

/// Checks that every layer of `model` has a backward pass here: a plain
/// chain of convolutions with a bias and no dilation or groups, unpadded
/// pools, activations, flatten, fc and softmax.
pub(crate) fn trainable(model: &Model) -> Result<(), Error> {
    if model
        .graph
        .iter()
        .any(|node| !matches!(node, Node::Layer(_)))
    {
        return Err(Error::Unsupported {
            message: format!(
                "`{}` has residual blocks, which training does not support yet",
                model.name
            ),
        });
    }
    for layer in model.layers {
        let supported = match layer.kind {
            LayerKind::Conv { d, g, bias, .. } => d == [1, 1] && g == 1 && bias,
            LayerKind::MaxPool { p, .. } | LayerKind::AvgPool { p, .. } => p == [0, 0],
            LayerKind::Activation(_)
            | LayerKind::Flatten
            | LayerKind::Fc { .. }
            | LayerKind::Softmax => true,
            LayerKind::GlobalAvgPool | LayerKind::BatchNorm { .. } | LayerKind::Dropout { .. } => {
                false
            }
        };
        if !supported {
            return Err(Error::Unsupported {
                message: format!(
                    "layer `{}` (`{}`) has no backward pass yet",
                    layer.path, layer.name
                ),
            });
        }
    }
    Ok(())
}

/// The layers a pass computes: all but a final softmax, which the loss
/// takes in (fused softmax cross-entropy).
const fn computed(layers: &[LayerInfo]) -> usize {
    match layers.last() {
        Some(LayerInfo {
            kind: LayerKind::Softmax,
            ..
        }) => layers.len() - 1,
        _ => layers.len(),
    }
}

const fn volume(dims: [usize; 3]) -> usize {
    dims[0].saturating_mul(dims[1]).saturating_mul(dims[2])
}

/// The sliding window of a conv or pooling layer.
const fn window(layer: &LayerInfo) -> Option<Window> {
    let [c, h, w] = layer.input;
    let o = [layer.output[1], layer.output[2]];
    match layer.kind {
        LayerKind::Conv { f, s, p, .. } => Some(Window {
            c,
            h,
            w,
            f,
            s,
            p,
            o,
        }),
        LayerKind::MaxPool { f, s, p } | LayerKind::AvgPool { f, s, p } => Some(Window {
            c,
            h,
            w,
            f,
            s,
            p,
            o,
        }),
        _ => None,
    }
}

/// f32s of scratch the pass over a chunk of [`CHUNK`] images needs, from
/// the network's input volume and layers: every computed layer's output
/// and two gradient buffers as large as the largest volume, per image, and
/// one image's im2col matrix. Saturates at `usize::MAX`.
pub const fn workspace_len(input: [usize; 3], layers: &[LayerInfo]) -> usize {
    let mut largest = volume(input);
    let mut outputs = 0usize;
    let mut cols = 0;
    let mut i = 0;
    while i < layers.len() {
        let len = volume(layers[i].output);
        if len > largest {
            largest = len;
        }
        if i < computed(layers) {
            outputs = outputs.saturating_add(len);
        }
        if let (LayerKind::Conv { .. }, Some(win)) = (layers[i].kind, window(&layers[i])) {
            let need = conv_cols_len(&win);
            if need > cols {
                cols = need;
            }
        }
        i += 1;
    }
    let per_image = largest.saturating_mul(2).saturating_add(outputs);
    per_image.saturating_mul(CHUNK).saturating_add(cols)
}

fn plan_error(message: String) -> Error {
    Error::Plan { message }
}

/// The activation of an activation layer.
fn act(kind: LayerKind) -> Option<Act> {
    match kind {
        LayerKind::Activation(act) => Some(act),
        _ => None,
    }
}

/// The pass over `n ≤ CHUNK` contiguous images `x` of `input`'s volume:
/// forward, softmax cross-entropy against `labels` (checked), backward.
/// Adds `scale ·` the gradient of the summed loss into `grads` (every
/// parameter, concatenated in the order of [`Parameters::layout`]) and
/// returns the summed loss. `scratch` holds at least [`workspace_len`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    input: [usize; 3],
    layers: &[LayerInfo],
    params: &Parameters,
    n: usize,
    x: &[f32],
    labels: &[usize],
    scale: f32,
    grads: &mut [f32],
    scratch: &mut [f32],
) -> Result<f64, Error> {
    let computed = computed(layers);
    if n > CHUNK || scratch.len() < workspace_len(input, layers) {
        return Err(plan_error("the training workspace is too small".into()));
    }
    let x = x
        .get(..n * volume(input))
        .ok_or_else(|| plan_error("the images are too short".into()))?;

    // Each layer's parameters and its gradients' place in `grads`.
    let mut tensors = params.iter();
    let mut offset = 0;
    let mut slots = Vec::with_capacity(layers.len());
    for layer in layers {
        if !layer.has_params() {
            slots.push(None);
            continue;
        }
        let (Some(weight), Some(bias)) = (tensors.next(), tensors.next()) else {
            return Err(plan_error("the parameters do not match the layers".into()));
        };
        let (wlen, blen) = (weight.data().len(), bias.data().len());
        slots.push(Some((weight.data(), bias.data(), offset, offset + wlen)));
        offset += wlen + blen;
    }
    if grads.len() < offset {
        return Err(plan_error("the gradients are too short".into()));
    }

    // Scratch: every computed layer's output, then two gradient buffers,
    // then the im2col matrix.
    let largest = layers
        .iter()
        .map(|l| volume(l.output))
        .fold(volume(input), usize::max);
    let mut rest = scratch;
    let mut acts = Vec::with_capacity(computed);
    for layer in &layers[..computed] {
        let (act, tail) = rest.split_at_mut(CHUNK * volume(layer.output));
        acts.push(act);
        rest = tail;
    }
    let (grad_a, rest) = rest.split_at_mut(CHUNK * largest);
    let (grad_b, cols) = rest.split_at_mut(CHUNK * largest);

    // Forward, keeping every output.
    for i in 0..computed {
        let (before, after) = acts.split_at_mut(i);
        let src: &[f32] = if i == 0 { x } else { &before[i - 1][..] };
        let dst = &mut after[0][..];
        let layer = &layers[i];
        let len = volume(layer.output);
        match layer.kind {
            LayerKind::Conv { k, .. } => {
                let (win, Some((weight, bias, _, _))) = (window(layer), slots[i]) else {
                    return Err(plan_error(format!("layer {i} is not a convolution")));
                };
                let win = win.ok_or_else(|| plan_error(format!("layer {i} has no window")))?;
                conv_forward_with(win, k, n, src, weight, bias, dst, cols);
            }
            LayerKind::MaxPool { .. } | LayerKind::AvgPool { .. } => {
                let win = window(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                if matches!(layer.kind, LayerKind::MaxPool { .. }) {
                    max_pool_forward_with(win, n, src, dst);
                } else {
                    avg_pool_forward_with(win, n, src, dst);
                }
            }
            LayerKind::Activation(_) => {
                let a = act(layer.kind).unwrap_or(Act::Identity);
                activate_with(n * len, a, src, dst);
            }
            LayerKind::Flatten => dst[..n * len].copy_from_slice(&src[..n * len]),
            LayerKind::GlobalAvgPool | LayerKind::BatchNorm { .. } | LayerKind::Dropout { .. } => {
                return Err(plan_error(format!("layer {i} has no backward pass")));
            }
            LayerKind::Fc { n: units } => {
                let Some((weight, bias, _, _)) = slots[i] else {
                    return Err(plan_error(format!("layer {i} has no parameters")));
                };
                fc_forward_with(volume(layer.input), units, n, src, weight, bias, dst);
            }
            LayerKind::Softmax => softmax_with(len, n, src, dst),
        }
    }

    let logits: &[f32] = if computed == 0 {
        x
    } else {
        &acts[computed - 1][..]
    };
    let classes = layers.last().map_or(volume(input), |l| volume(l.output));
    let loss = softmax_cross_entropy_with(classes, n, logits, labels, scale, grad_a);

    // Backward from the last computed layer to the first with parameters;
    // the gradients ping-pong between the two buffers.
    let Some(first) = layers.iter().position(LayerInfo::has_params) else {
        return Ok(loss);
    };
    let (mut dy, mut dx) = (grad_a, grad_b);
    for i in (first..computed).rev() {
        let layer = &layers[i];
        let src: &[f32] = if i == 0 { x } else { &acts[i - 1][..] };
        let out = &acts[i][..];
        let len = volume(layer.output);
        let want_dx = i > first;
        match layer.kind {
            LayerKind::Conv { k, .. } => {
                let (Some(win), Some((weight, _, w_at, b_at))) = (window(layer), slots[i]) else {
                    return Err(plan_error(format!("layer {i} is not a convolution")));
                };
                let (gw, gb) = grads[w_at..].split_at_mut(b_at - w_at);
                let dx = want_dx.then_some(&mut dx[..]);
                conv_backward_with(win, k, n, src, dy, weight, gw, &mut gb[..k], dx, cols);
            }
            LayerKind::Fc { n: units } => {
                let Some((weight, _, w_at, b_at)) = slots[i] else {
                    return Err(plan_error(format!("layer {i} has no parameters")));
                };
                let (gw, gb) = grads[w_at..].split_at_mut(b_at - w_at);
                let dx = want_dx.then_some(&mut dx[..]);
                let inputs = volume(layer.input);
                fc_backward_with(inputs, units, n, src, dy, weight, gw, &mut gb[..units], dx);
            }
            LayerKind::MaxPool { .. } => {
                let win = window(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                max_pool_backward_with(win, n, src, dy, dx);
            }
            LayerKind::AvgPool { .. } => {
                let win = window(layer).ok_or_else(|| plan_error(format!("layer {i}")))?;
                avg_pool_backward_with(win, n, dy, dx);
            }
            LayerKind::Activation(_) => {
                let a = act(layer.kind).unwrap_or(Act::Identity);
                activate_backward_with(n * len, a, (src, out), dy, dx);
            }
            LayerKind::GlobalAvgPool | LayerKind::BatchNorm { .. } | LayerKind::Dropout { .. } => {
                return Err(plan_error(format!("layer {i} has no backward pass")));
            }
            LayerKind::Flatten => dx[..n * len].copy_from_slice(&dy[..n * len]),
            LayerKind::Softmax => softmax_backward_with(len, n, out, dy, dx),
        }
        std::mem::swap(&mut dy, &mut dx);
    }
    Ok(loss)
}

//! A plain interpreter of a whole network: the independent truth the tests
//! compare the generated forward pass against.
//!
//! It reads nothing but the [`LayerInfo`]s, the network's structure
//! ([`Node`]s) and the parameters, runs every layer on its own (no fusion,
//! no folding, no plan, no workspace) with the reference kernels of
//! [`crate::kernels::reference`], and allocates freely. Slow and plain on
//! purpose.

use crate::kernels::reference::{self, Window};
use crate::kernels::{Act, ConvShape};
use crate::{LayerInfo, LayerKind, Node, Parameters};

/// The forward pass of one image `x` (the first layer's input volume, C×H×W
/// row-major) through `graph` over `layers`, returning the output volume
/// (the input itself when there is no layer).
///
/// # Panics
/// If `x` or a parameter tensor does not have the length the layers imply,
/// a parameter is missing, or the graph is malformed: `params` must be
/// checked against `layers` (as every `Parameters` a network holds is), and
/// `graph` made by `network!`.
pub fn forward(layers: &[LayerInfo], graph: &[Node], params: &Parameters, x: &[f32]) -> Vec<f32> {
    let mut volume = x.to_vec();
    // What each open residual block keeps: its input, then MAIN's output.
    let mut kept: Vec<Vec<f32>> = Vec::new();
    for node in graph {
        match *node {
            Node::Layer(i) => volume = layer(i, &layers[i], params, &volume),
            Node::Fork => kept.push(volume.clone()),
            Node::Shortcut => {
                let input = kept.pop().expect("a shortcut inside a residual block");
                kept.push(std::mem::replace(&mut volume, input));
            }
            Node::Join => {
                let other = kept.pop().expect("a join inside a residual block");
                assert_eq!(other.len(), volume.len(), "a residual adds equal volumes");
                reference::add(&other, &mut volume, Act::Identity);
            }
        }
    }
    volume
}

/// Layer `i` on `volume`.
fn layer(i: usize, layer: &LayerInfo, params: &Parameters, volume: &[f32]) -> Vec<f32> {
    let [c, h, w] = layer.input;
    let o = [layer.output[1], layer.output[2]];
    assert_eq!(
        volume.len(),
        c * h * w,
        "layer {i} `{}` needs a {c}×{h}×{w} input",
        layer.name
    );
    let mut out = vec![0.0; layer.output.iter().product()];
    let tensor = |what: &str| -> &[f32] {
        let name = layer.tensor_name(what);
        match params.get(&name) {
            Some(tensor) => tensor.data(),
            None => panic!("the parameters have no tensor `{name}`"),
        }
    };
    let window = |f, s, p| Window {
        c,
        h,
        w,
        f,
        s,
        p,
        o,
    };
    match layer.kind {
        LayerKind::Conv {
            k,
            f,
            s,
            p,
            d,
            g,
            bias,
        } => {
            let shape = ConvShape {
                d,
                g,
                ..window(f, s, p).conv(k)
            };
            let bias = bias.then(|| tensor("bias"));
            reference::conv2d(
                shape,
                volume,
                tensor("weight"),
                bias,
                &mut out,
                Act::Identity,
            );
        }
        LayerKind::MaxPool { f, s, p } => reference::max_pool(window(f, s, p), volume, &mut out),
        LayerKind::AvgPool { f, s, p } => reference::avg_pool(window(f, s, p), volume, &mut out),
        LayerKind::GlobalAvgPool => reference::global_avg_pool(c, h * w, volume, &mut out),
        LayerKind::BatchNorm { eps } => {
            let (gamma, beta) = (tensor("weight"), tensor("bias"));
            let (mean, var) = (tensor("running_mean"), tensor("running_var"));
            for (ch, (x, y)) in volume
                .chunks_exact(h * w)
                .zip(out.chunks_exact_mut(h * w))
                .enumerate()
            {
                let sd = (f64::from(var[ch]) + f64::from(eps)).sqrt();
                for (&x, y) in x.iter().zip(y) {
                    let normed = (f64::from(x) - f64::from(mean[ch])) / sd;
                    *y = (normed * f64::from(gamma[ch]) + f64::from(beta[ch])) as f32;
                }
            }
        }
        LayerKind::Fc { .. } => {
            reference::fc(
                volume,
                tensor("weight"),
                tensor("bias"),
                &mut out,
                Act::Identity,
            );
        }
        LayerKind::Activation(act) => {
            out.copy_from_slice(volume);
            reference::activate(act, &mut out);
        }
        LayerKind::Softmax => {
            out.copy_from_slice(volume);
            reference::softmax(&mut out);
        }
        LayerKind::Flatten | LayerKind::Dropout { .. } => out.copy_from_slice(volume),
    }
    out
}

//! A plain interpreter of a whole network: the independent truth the tests
//! compare the generated forward pass against.
//!
//! It reads nothing but the [`LayerInfo`]s and the parameters, runs every
//! layer on its own (no fusion, no plan, no workspace) with the reference
//! kernels of [`crate::kernels::reference`], and allocates freely. Slow and
//! plain on purpose.

use crate::kernels::reference::{self, Window};
use crate::kernels::Act;
use crate::{LayerInfo, LayerKind, Parameters};

/// The forward pass of one image `x` (the first layer's input volume, C×H×W
/// row-major) through `layers`, returning the last layer's output volume
/// (the input itself when there is no layer).
///
/// # Panics
/// If `x` or a parameter tensor does not have the length the layers imply,
/// or a parameter is missing: `params` must be checked against `layers`
/// (as every `Parameters` a network holds is).
pub fn forward(layers: &[LayerInfo], params: &Parameters, x: &[f32]) -> Vec<f32> {
    let mut volume = x.to_vec();
    for (i, layer) in layers.iter().enumerate() {
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
        match layer.kind {
            LayerKind::Conv { k, f, s, p } => {
                let win = Window {
                    c,
                    h,
                    w,
                    f,
                    s,
                    p,
                    o,
                };
                let (weight, bias) = (tensor("weight"), tensor("bias"));
                let shape = win.conv(k);
                reference::conv2d(shape, &volume, weight, Some(bias), &mut out, Act::Identity);
            }
            LayerKind::MaxPool { f, s } => {
                let win = Window {
                    c,
                    h,
                    w,
                    f,
                    s,
                    p: [0, 0],
                    o,
                };
                reference::max_pool(win, &volume, &mut out);
            }
            LayerKind::AvgPool { f, s } => {
                let win = Window {
                    c,
                    h,
                    w,
                    f,
                    s,
                    p: [0, 0],
                    o,
                };
                reference::avg_pool(win, &volume, &mut out);
            }
            LayerKind::Fc { .. } => {
                let (weight, bias) = (tensor("weight"), tensor("bias"));
                reference::fc(&volume, weight, bias, &mut out, Act::Identity);
            }
            LayerKind::Relu | LayerKind::Sigmoid | LayerKind::Tanh => {
                let act = match layer.kind {
                    LayerKind::Relu => Act::Relu,
                    LayerKind::Sigmoid => Act::Sigmoid,
                    _ => Act::Tanh,
                };
                out.copy_from_slice(&volume);
                reference::activate(act, &mut out);
            }
            LayerKind::Softmax => {
                out.copy_from_slice(&volume);
                reference::softmax(&mut out);
            }
            LayerKind::Flatten => out.copy_from_slice(&volume),
        }
        volume = out;
    }
    volume
}

//! Training: backward kernels, softmax cross-entropy and SGD with momentum.
//!
//! `network!` implements [`Trainable`] for every network. Its training pass
//! runs from the network's layers (`pass`): a forward pass that keeps every
//! layer's output in a workspace whose size is a constant, the softmax
//! cross-entropy of the logits, and the backward pass through the layers in
//! reverse, each a kernel of [`kernels`] compiled here. A network that ends
//! in `softmax` is trained on the softmax's input with the fused,
//! numerically stable softmax cross-entropy; any other network's output is
//! taken as the logits.
//!
//! A batch is cut into chunks of [`CHUNK`] images, spread over rayon's global
//! pool; each chunk accumulates its gradients in its own buffer and the
//! chunks are summed in order, so the result does not depend on the number
//! of threads.
//!
//! ```ignore
//! cnn::network! {
//!     struct Tiny { input(1, 4, 4) conv(2, 3, p = 1) relu pool(2) fc(3) }
//! }
//!
//! let mut net = Tiny::init(7);
//! let x = ndarray::Array4::<f32>::from_shape_fn((4, 1, 4, 4), |(n, _, h, w)| {
//!     ((n * 16 + h * 4 + w) % 5) as f32 / 5.0
//! });
//! let labels = [0, 1, 2, 1];
//! let mut opt = cnn::Sgd::new(0.1).momentum(0.9);
//! let first = net.train_step(x.view(), &labels, &mut opt)?;
//! for _ in 0..20 {
//!     net.train_step(x.view(), &labels, &mut opt)?;
//! }
//! let (last, grads) = net.gradients(x.view(), &labels)?;
//! assert!(last < first);
//! assert_eq!(grads.get("0.weight").map(<[f32]>::len), Some(2 * 9));
//! # Ok::<(), cnn::Error>(())
//! ```

use std::cell::RefCell;

use ndarray::{s, ArrayView4, Axis};
use rayon::prelude::*;

use crate::{Error, Model, Network, Parameters};

mod gradients;
pub mod kernels;
pub mod loss;
mod pass;
mod sgd;

pub use gradients::Gradients;
pub use sgd::Sgd;

/// Images per unit of parallel work in a training step. Fixed, so that the
/// order in which gradients are summed, and hence the result, does not
/// depend on the number of threads.
pub const CHUNK: usize = 8;

/// A network that can be trained: implemented by `network!` for every
/// network, with a backward pass specialised to its shapes.
///
/// The generated structs also expose [`train_step`](Trainable::train_step)
/// and [`gradients`](Trainable::gradients) as inherent methods; the trait is
/// for generic training code.
pub trait Trainable: Network {
    /// f32s of scratch one chunk of [`CHUNK`] images needs: every layer's
    /// output, two gradient buffers and the im2col scratch.
    #[doc(hidden)]
    const TRAIN_WORKSPACE: usize = pass::workspace_len(Self::MODEL.input, Self::MODEL.layers);

    /// The mean softmax cross-entropy of a batch `N×C×H×W` against its
    /// labels, and its gradient with respect to every parameter, named like
    /// the parameters.
    ///
    /// # Errors
    /// The images' shape is not `INPUT`, the batch is empty, the number of
    /// labels differs from the number of images, or a label is not below the
    /// number of outputs.
    fn gradients(&self, x: ArrayView4<f32>, labels: &[usize]) -> Result<(f32, Gradients), Error> {
        let (loss, grads) = accumulate(Self::MODEL, self.parameters(), x, labels)?;
        Ok((loss, Gradients::new(Self::LAYERS, grads)))
    }

    /// One step of training on a batch: forward, softmax cross-entropy,
    /// backward, and an update by `opt`. Returns the batch's mean loss
    /// (before the update).
    ///
    /// # Errors
    /// As [`gradients`](Trainable::gradients); the parameters are unchanged
    /// then.
    fn train_step(
        &mut self,
        x: ArrayView4<f32>,
        labels: &[usize],
        opt: &mut Sgd,
    ) -> Result<f32, Error> {
        let (loss, grads) = self.gradients(x, labels)?;
        opt.step(self.parameters_mut(), &grads)?;
        Ok(loss)
    }
}

/// Checks a batch and its labels, then runs the generated pass over its
/// chunks in parallel and sums their gradients in chunk order.
fn accumulate(
    model: &Model,
    params: &Parameters,
    x: ArrayView4<f32>,
    labels: &[usize],
) -> Result<(f32, Vec<f32>), Error> {
    pass::trainable(model)?;
    let n = x.len_of(Axis(0));
    if x.shape()[1..] != model.input || n == 0 {
        return Err(Error::Shape {
            what: "input batch",
            expected: [n.max(1)].iter().chain(&model.input).copied().collect(),
            got: x.shape().to_vec(),
        });
    }
    if labels.len() != n {
        return Err(Error::Shape {
            what: "labels",
            expected: vec![n],
            got: vec![labels.len()],
        });
    }
    let classes = model.output_len();
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(Error::Label {
            index,
            label,
            classes,
        });
    }
    let scale = 1.0 / n as f32;
    let workspace = pass::workspace_len(model.input, model.layers);
    let partial: Vec<Result<(f64, Vec<f32>), Error>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let (lo, hi) = (chunk * CHUNK, n.min((chunk + 1) * CHUNK));
            let images = x.slice(s![lo..hi, .., .., ..]);
            let owned: Vec<f32>;
            let x = match images.as_slice() {
                Some(images) => images,
                None => {
                    owned = images.iter().copied().collect();
                    &owned
                }
            };
            let mut grads = vec![0.0; model.params];
            let loss = with_scratch(workspace, |scratch| {
                let (images, labels) = (hi - lo, &labels[lo..hi]);
                let (input, layers) = (model.input, model.layers);
                pass::backward(
                    input, layers, params, images, x, labels, scale, &mut grads, scratch,
                )
            })?;
            Ok((loss, grads))
        })
        .collect();
    let mut loss = 0.0f64;
    let mut grads = vec![0.0f32; model.params];
    for part in partial {
        let (chunk_loss, chunk_grads) = part?;
        loss += chunk_loss;
        for (g, c) in grads.iter_mut().zip(&chunk_grads) {
            *g += c;
        }
    }
    Ok(((loss / n as f64) as f32, grads))
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's training scratch, grown to `len` f32s.
/// Re-entrant use gets a fresh buffer.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

//! Training: backward kernels, softmax cross-entropy, the optimisers
//! ([`Sgd`], [`AdamW`]) and learning-rate [`Schedule`]s.
//!
//! `network!` implements [`Trainable`] for every network. Its training pass
//! runs from the network's layers and structure (`pass`): a forward pass
//! that keeps the values the backward pass needs, the softmax
//! cross-entropy of the logits, and the backward pass through the layers
//! in reverse, each a kernel of [`kernels`] compiled here. A network that
//! ends in `softmax` is trained on the softmax's input with the fused,
//! numerically stable softmax cross-entropy; any other network's output is
//! taken as the logits.
//!
//! Every layer of the DSL trains, as in PyTorch's training mode:
//! convolutions (stride, padding, dilation, groups, with or without a
//! bias), padded max and average pooling, global average pooling, every
//! activation, fc, softmax, residual blocks (the gradients of MAIN and of
//! the shortcut or identity add up at the block's input), batch norm on
//! the batch's statistics (whose running statistics
//! [`train_step`](Trainable::train_step) then updates with momentum 0.1,
//! from the unbiased variance, and counts in `num_batches_tracked`), and
//! dropout (inverted: kept values scaled by `1/(1 − p)`), whose masks are
//! drawn from the parameters' [`steps`](crate::Parameters::steps) count, so
//! that a run is reproducible. Inference (`forward`) stays in evaluation
//! mode: running statistics, no dropout.
//!
//! A batch is cut into chunks of [`CHUNK`] images, spread over rayon's
//! global pool; each chunk runs the layers on its images, and the chunks
//! meet only where batch norm needs the whole batch. What sums over images
//! (parameter gradients, batch statistics, the loss) is summed per chunk,
//! then over the chunks in order, so the result does not depend on the
//! number of threads.
//!
//! An optimiser is anything that implements [`Optimizer`]; a [`Schedule`]
//! sets its learning rate step by step (or epoch by epoch).
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

use ndarray::{ArrayView4, Axis};

use crate::{Error, LayerInfo, Model, Network, Parameters, Tensor, TensorRole};

mod adamw;
mod gradients;
pub mod kernels;
pub mod loss;
mod pass;
mod schedule;
mod sgd;

pub use adamw::AdamW;
pub use gradients::Gradients;
pub use schedule::Schedule;
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
    /// f32s of scratch one thread of a training pass needs (the largest
    /// im2col matrix); the values a pass keeps are allocated per batch.
    #[doc(hidden)]
    const TRAIN_WORKSPACE: usize = pass::scratch_len(Self::MODEL.layers);

    /// The mean softmax cross-entropy of a batch `N×C×H×W` against its
    /// labels, and its gradient with respect to every learnable tensor,
    /// named like the parameters, in training mode (batch norm on the
    /// batch's statistics, dropout drawn from the parameters'
    /// [`steps`](crate::Parameters::steps)). The network is unchanged:
    /// batch norm's running statistics are updated by
    /// [`train_step`](Trainable::train_step) only.
    ///
    /// # Errors
    /// The images' shape is not `INPUT`, the batch is empty, the number of
    /// labels differs from the number of images, a label is not below the
    /// number of outputs, or a batch norm layer would see a single value
    /// per channel (one image, before an fc).
    fn gradients(&self, x: ArrayView4<f32>, labels: &[usize]) -> Result<(f32, Gradients), Error> {
        let (loss, outcome) = accumulate(Self::MODEL, self.parameters(), x, labels)?;
        Ok((loss, Gradients::new(Self::LAYERS, outcome.grads)))
    }

    /// One step of training on a batch: forward, softmax cross-entropy,
    /// backward, and an update by `opt` ([`Sgd`], [`AdamW`], any
    /// [`Optimizer`]); then batch norm's running statistics are updated
    /// (momentum 0.1, PyTorch's: `running_var` from the unbiased batch
    /// variance), its `num_batches_tracked` incremented, and the
    /// parameters' [`steps`](crate::Parameters::steps) count too. Returns
    /// the batch's mean loss (before the update).
    ///
    /// # Errors
    /// As [`gradients`](Trainable::gradients), or the optimiser's; the
    /// parameters are unchanged then.
    fn train_step(
        &mut self,
        x: ArrayView4<f32>,
        labels: &[usize],
        opt: &mut dyn Optimizer,
    ) -> Result<f32, Error> {
        let (loss, outcome) = accumulate(Self::MODEL, self.parameters(), x, labels)?;
        check_running(Self::LAYERS, self.parameters(), &outcome.stats)?;
        let grads = Gradients::new(Self::LAYERS, outcome.grads);
        opt.step(self.parameters_mut(), &grads)?;
        let params = self.parameters_mut();
        update_running(Self::LAYERS, params, &outcome.stats);
        params.set_steps(params.steps().wrapping_add(1));
        Ok(loss)
    }
}

/// PyTorch's default momentum of batch norm's running statistics.
pub const BN_MOMENTUM: f32 = 0.1;

/// Checks that every batch norm layer with statistics has its running
/// statistics in `params`, so that [`update_running`] cannot fail.
fn check_running(
    layers: &[LayerInfo],
    params: &Parameters,
    stats: &[pass::BatchStats],
) -> Result<(), Error> {
    for s in stats {
        let layer = &layers[s.layer];
        for what in ["running_mean", "running_var"] {
            let name = layer.tensor_name(what);
            match params.get(&name) {
                Some(t) if t.data().len() == s.mean.len() => {}
                _ => {
                    return Err(Error::MissingTensor {
                        name,
                        expected: vec![s.mean.len()],
                    })
                }
            }
        }
    }
    Ok(())
}

/// Updates batch norm's running statistics from a pass's batch
/// statistics, as PyTorch does in training mode: `running = (1 − m) ·
/// running + m · batch` with momentum m = [`BN_MOMENTUM`], the variance
/// unbiased, then `num_batches_tracked += 1`. Computed in f64.
fn update_running(layers: &[LayerInfo], params: &mut Parameters, stats: &[pass::BatchStats]) {
    let m = f64::from(BN_MOMENTUM);
    for s in stats {
        let layer = &layers[s.layer];
        for (what, batch) in [("running_mean", &s.mean), ("running_var", &s.var)] {
            if let Some(t) = params.get_mut(&layer.tensor_name(what)) {
                for (r, &b) in t.data_mut().iter_mut().zip(batch.iter()) {
                    *r = ((1.0 - m) * f64::from(*r) + m * f64::from(b)) as f32;
                }
            }
        }
        let counter = layer.tensor_name("num_batches_tracked");
        if let Some(count) = params.counter(&counter) {
            params.set_counter(&counter, count.wrapping_add(1));
        }
    }
}

/// An optimiser: updates a network's learnable tensors from their
/// gradients. Implemented by [`Sgd`] and [`AdamW`]; taken by
/// [`Trainable::train_step`] as `&mut dyn Optimizer`, so either (or a
/// `Box<dyn Optimizer>`) can drive training.
///
/// Optimisers update only the learnable tensors ([`TensorRole::Param`]:
/// weights and biases), never buffers (batch norm's running statistics) or
/// counters.
///
/// ```
/// use cnn_runtime::train::{AdamW, Optimizer, Sgd};
///
/// let mut opts: Vec<Box<dyn Optimizer>> =
///     vec![Box::new(Sgd::new(0.1)), Box::new(AdamW::new(1e-3))];
/// for opt in &mut opts {
///     opt.set_lr(opt.lr() / 2.0);
/// }
/// assert_eq!(opts[0].lr(), 0.05);
/// assert_eq!(opts[1].lr(), 5e-4);
/// ```
pub trait Optimizer {
    /// Updates the learnable tensors of `params` with their gradients.
    ///
    /// # Errors
    /// The gradients do not belong to these parameters: a learnable tensor
    /// is missing, or one has another name or shape, or there is one too
    /// many. Nothing is updated then, the optimiser's state included.
    fn step(&mut self, params: &mut Parameters, grads: &Gradients) -> Result<(), Error>;

    /// The learning rate the next step uses.
    fn lr(&self) -> f32;

    /// Sets the learning rate of the next steps (what a [`Schedule`] does).
    fn set_lr(&mut self, lr: f32);

    /// Forgets the state built up by past steps (momentum, moments, step
    /// count): the next step is like a first one. The hyper-parameters
    /// stay.
    fn reset(&mut self);
}

/// The tensors an optimiser updates: the learnable ones, in layer order.
fn learnable(params: &Parameters) -> impl Iterator<Item = &Tensor> {
    params.iter().filter(|t| t.role() == TensorRole::Param)
}

/// [`learnable`], mutable (which drops what a forward pass derived from
/// the parameters).
fn learnable_mut(params: &mut Parameters) -> impl Iterator<Item = &mut Tensor> {
    params.iter_mut().filter(|t| t.role() == TensorRole::Param)
}

/// Whether per-tensor optimiser state (`state`) no longer fits the
/// learnable tensors of `params`: none yet, or made for another network.
fn state_is_stale(state: &[Vec<f32>], params: &Parameters) -> bool {
    state.len() != learnable(params).count()
        || state
            .iter()
            .zip(learnable(params))
            .any(|(s, p)| s.len() != p.data().len())
}

/// Checks that the gradients name the same tensors, with the same shapes,
/// in the same order as the learnable tensors of the parameters.
fn check_match(params: &Parameters, grads: &Gradients) -> Result<(), Error> {
    let mut grads_iter = grads.iter();
    for tensor in learnable(params) {
        let Some((name, shape, _)) = grads_iter.next() else {
            return Err(Error::MissingTensor {
                name: tensor.name().to_string(),
                expected: tensor.shape().to_vec(),
            });
        };
        if name != tensor.name() {
            return Err(Error::UnexpectedTensor {
                name: name.to_string(),
                shape: shape.to_vec(),
            });
        }
        if shape != tensor.shape() {
            return Err(Error::TensorShape {
                name: name.to_string(),
                expected: tensor.shape().to_vec(),
                got: shape.to_vec(),
            });
        }
    }
    if let Some((name, shape, _)) = grads_iter.next() {
        return Err(Error::UnexpectedTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// Checks a batch and its labels, then runs the training pass over it
/// (in parallel over chunks of images): the mean loss and the pass's
/// outcome (gradients of the mean loss, batch statistics).
fn accumulate(
    model: &Model,
    params: &Parameters,
    x: ArrayView4<f32>,
    labels: &[usize],
) -> Result<(f32, pass::Outcome), Error> {
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
    let owned: Vec<f32>;
    let images = match x.as_slice() {
        Some(images) => images,
        None => {
            owned = x.iter().copied().collect();
            &owned
        }
    };
    let scale = 1.0 / n as f32;
    let outcome = pass::run(model, params, images, labels, scale, params.steps())?;
    Ok(((outcome.loss / n as f64) as f32, outcome))
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

/// Parameters with batch-norm buffers and a counter, and gradients of their
/// learnable tensors, for the optimisers' tests.
#[cfg(test)]
mod fixture {
    use super::Gradients;
    use crate::{LayerInfo, LayerKind, Parameters, TensorInfo, TensorRole};

    const fn tensor(name: &'static str, shape: &'static [usize], role: TensorRole) -> TensorInfo {
        TensorInfo { name, shape, role }
    }

    const fn layer(
        path: &'static str,
        kind: LayerKind,
        tensors: &'static [TensorInfo],
    ) -> LayerInfo {
        LayerInfo {
            name: "",
            path,
            kind,
            input: [2, 1, 1],
            output: [2, 1, 1],
            params: 0,
            macs: 0,
            tensors,
        }
    }

    const FC: &[TensorInfo] = &[
        tensor("weight", &[2, 2], TensorRole::Param),
        tensor("bias", &[2], TensorRole::Param),
    ];
    const BN: &[TensorInfo] = &[
        tensor("weight", &[2], TensorRole::Param),
        tensor("bias", &[2], TensorRole::Param),
        tensor("running_mean", &[2], TensorRole::Buffer),
        tensor("running_var", &[2], TensorRole::Buffer),
        tensor("num_batches_tracked", &[], TensorRole::Counter),
    ];
    const BN_KIND: LayerKind = LayerKind::BatchNorm { eps: 1e-5 };

    /// `fc(2)` then `bn`.
    pub(super) const LAYERS: &[LayerInfo] = &[
        layer("0", LayerKind::Fc { n: 2 }, FC),
        layer("1", BN_KIND, BN),
    ];

    /// The learnable values of [`params`], in order.
    pub(super) const VALUES: [f32; 10] = [0.5, -1.0, 0.25, 2.0, 0.0, -0.3, 1.0, 0.8, 0.1, 0.0];

    /// Parameters of [`LAYERS`]: [`VALUES`], running mean and variance
    /// `[0.2, -0.4]` and `[1.5, 0.7]`, 7 batches tracked.
    pub(super) fn params() -> Parameters {
        let named =
            |name: &str, shape: Vec<usize>, data: &[f32]| (name.to_string(), shape, data.to_vec());
        let tensors = vec![
            named("0.weight", vec![2, 2], &VALUES[..4]),
            named("0.bias", vec![2], &VALUES[4..6]),
            named("1.weight", vec![2], &VALUES[6..8]),
            named("1.bias", vec![2], &VALUES[8..]),
            named("1.running_mean", vec![2], &[0.2, -0.4]),
            named("1.running_var", vec![2], &[1.5, 0.7]),
        ];
        let counters = vec![("1.num_batches_tracked".to_string(), 7)];
        Parameters::from_parts(LAYERS, tensors, counters).expect("the tensors fit the layers")
    }

    /// Gradients of the learnable tensors of [`params`], concatenated.
    pub(super) fn grads(values: [f32; 10]) -> Gradients {
        Gradients::new(LAYERS, values.to_vec())
    }

    /// The learnable values of `params`, concatenated.
    pub(super) fn learnable(params: &Parameters) -> Vec<f32> {
        super::learnable(params)
            .flat_map(|t| t.data().iter().copied())
            .collect()
    }

    /// Asserts that the buffers and the counter of `params` still have
    /// their values from [`params`].
    pub(super) fn assert_buffers_untouched(params: &Parameters) {
        let value = |name: &str| params.get(name).map(|t| t.data().to_vec());
        assert_eq!(value("1.running_mean"), Some(vec![0.2, -0.4]));
        assert_eq!(value("1.running_var"), Some(vec![1.5, 0.7]));
        assert_eq!(params.counter("1.num_batches_tracked"), Some(7));
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{self, assert_buffers_untouched};
    use super::{AdamW, Gradients, Optimizer, Sgd};
    use crate::{Error, Parameters};

    const GRADS: [f32; 10] = [0.1, -0.2, 0.0, 3.0, 1e-3, -0.5, 0.25, -1.5, 0.6, 0.0];

    /// Each optimiser, fresh, with its name.
    fn optimisers() -> [(&'static str, Box<dyn Optimizer>); 2] {
        [
            (
                "sgd",
                Box::new(Sgd::new(0.1).momentum(0.9).weight_decay(0.01)),
            ),
            ("adamw", Box::new(AdamW::new(0.1))),
        ]
    }

    #[test]
    fn optimisers_update_the_learnable_tensors_only() {
        for (name, mut opt) in optimisers() {
            let mut params = fixture::params();
            for _ in 0..3 {
                opt.step(&mut params, &fixture::grads(GRADS)).unwrap();
            }
            assert_buffers_untouched(&params);
            let after = fixture::learnable(&params);
            assert_eq!(after.len(), 10);
            // Every learnable value moved, by its gradient or by decay,
            // except the one with neither.
            for (i, (a, b)) in fixture::VALUES.iter().zip(&after).enumerate() {
                if *a == 0.0 && GRADS[i] == 0.0 {
                    assert_eq!(a, b, "{name}: value {i}");
                } else {
                    assert_ne!(a, b, "{name}: value {i}");
                }
            }
        }
    }

    #[test]
    fn mismatched_gradients_are_errors_and_change_nothing() {
        for ((name, mut opt), (_, mut twin)) in optimisers().into_iter().zip(optimisers()) {
            let mut params = fixture::params();
            let mut other = fixture::params();
            opt.step(&mut params, &fixture::grads(GRADS)).unwrap();
            twin.step(&mut other, &fixture::grads(GRADS)).unwrap();
            // Gradients of the whole layout, buffers and counter included,
            // are not gradients of the learnable tensors.
            let all = Gradients::from_slots(Parameters::layout(fixture::LAYERS), vec![0.5; 15]);
            match opt.step(&mut params, &all) {
                Err(Error::UnexpectedTensor { name, shape }) => {
                    assert_eq!((name.as_str(), shape), ("1.running_mean", vec![2]));
                }
                other => panic!("{name}: {other:?}"),
            }
            // Gradients of the fc alone miss the batch norm's.
            let fc = Gradients::new(&fixture::LAYERS[..1], vec![0.5; 6]);
            match opt.step(&mut params, &fc) {
                Err(Error::MissingTensor { name, expected }) => {
                    assert_eq!((name.as_str(), expected), ("1.weight", vec![2]));
                }
                other => panic!("{name}: {other:?}"),
            }
            assert_eq!(params, other, "{name}");
            // The failed steps left the optimiser's state as it was too.
            opt.step(&mut params, &fixture::grads(GRADS)).unwrap();
            twin.step(&mut other, &fixture::grads(GRADS)).unwrap();
            assert_eq!(params, other, "{name}");
        }
    }

    #[test]
    fn reset_makes_the_next_step_a_first_step() {
        for ((name, mut opt), (_, mut fresh)) in optimisers().into_iter().zip(optimisers()) {
            let mut params = fixture::params();
            for _ in 0..2 {
                opt.step(&mut params, &fixture::grads(GRADS)).unwrap();
            }
            opt.reset();
            let mut other = params.clone();
            opt.step(&mut params, &fixture::grads(GRADS)).unwrap();
            fresh.step(&mut other, &fixture::grads(GRADS)).unwrap();
            assert_eq!(params, other, "{name}");
        }
    }
}

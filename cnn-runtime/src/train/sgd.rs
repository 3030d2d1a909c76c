//! Stochastic gradient descent with momentum and weight decay.

use super::{check_match, learnable, learnable_mut, state_is_stale, Gradients, Optimizer};
use crate::{Error, Parameters};

/// Stochastic gradient descent with momentum and weight decay, with the
/// update rule of PyTorch's `torch.optim.SGD` (no dampening, no Nesterov):
///
/// ```text
/// g ← grad + weight_decay · w
/// v ← momentum · v + g        (v starts at zero)
/// w ← w − lr · v
/// ```
///
/// The velocity buffers are created on the first step, one per learnable
/// tensor; buffers and counters are never touched. The update is
/// [`Optimizer::step`].
///
/// ```
/// use cnn_runtime::train::{Optimizer, Sgd};
///
/// let mut opt = Sgd::new(0.05).momentum(0.9).weight_decay(1e-4);
/// assert_eq!((opt.lr, opt.momentum, opt.weight_decay), (0.05, 0.9, 1e-4));
/// opt.set_lr(0.01);
/// assert_eq!(opt.lr(), 0.01);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 for plain SGD).
    pub momentum: f32,
    /// L2 penalty added to the gradient (0 for none).
    pub weight_decay: f32,
    /// One velocity per learnable tensor, empty until the first step.
    velocity: Vec<Vec<f32>>,
}

impl Sgd {
    /// Plain SGD with this learning rate: no momentum, no weight decay.
    #[must_use]
    pub fn new(lr: f32) -> Sgd {
        Sgd {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            velocity: Vec::new(),
        }
    }

    /// Sets the momentum factor.
    #[must_use]
    pub fn momentum(mut self, momentum: f32) -> Sgd {
        self.momentum = momentum;
        self
    }

    /// Sets the weight decay (L2 penalty).
    #[must_use]
    pub fn weight_decay(mut self, weight_decay: f32) -> Sgd {
        self.weight_decay = weight_decay;
        self
    }
}

impl Optimizer for Sgd {
    /// One step of the update rule above on every learnable tensor.
    ///
    /// # Errors
    /// The gradients do not belong to these parameters (see
    /// [`Optimizer::step`]); nothing is updated then.
    fn step(&mut self, params: &mut Parameters, grads: &Gradients) -> Result<(), Error> {
        check_match(params, grads)?;
        let (lr, momentum, decay) = (self.lr, self.momentum, self.weight_decay);
        if momentum != 0.0 && state_is_stale(&self.velocity, params) {
            self.velocity = learnable(params)
                .map(|p| vec![0.0; p.data().len()])
                .collect();
        }
        let tensors = learnable_mut(params).zip(grads.iter()).enumerate();
        for (index, (tensor, (_, _, grad))) in tensors {
            let velocity = self.velocity.get_mut(index).filter(|_| momentum != 0.0);
            let weights = tensor.data_mut();
            match velocity {
                Some(velocity) => {
                    for ((w, &g), v) in weights.iter_mut().zip(grad).zip(velocity.iter_mut()) {
                        *v = momentum * *v + g + decay * *w;
                        *w -= lr * *v;
                    }
                }
                None => {
                    for (w, &g) in weights.iter_mut().zip(grad) {
                        *w -= lr * (g + decay * *w);
                    }
                }
            }
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// Forgets the velocities: the next step starts from rest.
    fn reset(&mut self) {
        self.velocity.clear();
    }
}

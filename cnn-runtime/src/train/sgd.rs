//! Stochastic gradient descent with momentum and weight decay.

use super::Gradients;
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
/// The velocity buffers are created on the first step, one per tensor.
///
/// ```
/// # use cnn_runtime::train::Sgd;
/// let opt = Sgd::new(0.05).momentum(0.9).weight_decay(1e-4);
/// assert_eq!((opt.lr, opt.momentum, opt.weight_decay), (0.05, 0.9, 1e-4));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 for plain SGD).
    pub momentum: f32,
    /// L2 penalty added to the gradient (0 for none).
    pub weight_decay: f32,
    /// One velocity per parameter tensor, empty until the first step.
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

    /// Forgets the velocities: the next step starts from rest.
    pub fn reset(&mut self) {
        self.velocity.clear();
    }

    /// Updates the parameters with their gradients.
    ///
    /// # Errors
    /// The gradients do not belong to these parameters: a tensor is missing
    /// or has another name or shape. Nothing is updated then.
    pub fn step(&mut self, params: &mut Parameters, grads: &Gradients) -> Result<(), Error> {
        check_match(params, grads)?;
        let fresh = self.velocity.len() != params.len()
            || self
                .velocity
                .iter()
                .zip(params.iter())
                .any(|(v, p)| v.len() != p.data().len());
        if self.momentum != 0.0 && fresh {
            self.velocity = params.iter().map(|p| vec![0.0; p.data().len()]).collect();
        }
        let (lr, momentum, decay) = (self.lr, self.momentum, self.weight_decay);
        for (index, (tensor, (_, _, grad))) in params.iter_mut().zip(grads.iter()).enumerate() {
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
}

/// Checks that the gradients name the same tensors, with the same shapes,
/// in the same order as the parameters.
fn check_match(params: &Parameters, grads: &Gradients) -> Result<(), Error> {
    let mut grads_iter = grads.iter();
    for tensor in params.iter() {
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

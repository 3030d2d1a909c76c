//! Training: backward kernels, softmax cross-entropy and SGD with momentum.

/// Stochastic gradient descent with momentum and weight decay.
#[derive(Debug, Clone)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
}

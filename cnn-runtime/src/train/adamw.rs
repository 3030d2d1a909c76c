//! Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

use super::{check_match, learnable, learnable_mut, state_is_stale, Gradients, Optimizer};
use crate::{Error, Parameters};

/// Adam with decoupled weight decay, with the update rule and the defaults
/// of PyTorch's `torch.optim.AdamW` (without `amsgrad`). At step `t` (from
/// 1), for every learnable value `w` with gradient `g`:
///
/// ```text
/// w ← w − lr · weight_decay · w                 (decoupled decay)
/// m ← β1 · m + (1 − β1) · g                      (m, v start at zero)
/// v ← β2 · v + (1 − β2) · g²
/// w ← w − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
/// ```
///
/// The moments are created on the first step, one pair per learnable
/// tensor; buffers and counters are never touched. The update is
/// [`Optimizer::step`].
///
/// ```
/// use cnn_runtime::train::{AdamW, Optimizer};
///
/// let opt = AdamW::default();
/// assert_eq!((opt.lr, opt.betas, opt.eps, opt.weight_decay), (1e-3, (0.9, 0.999), 1e-8, 1e-2));
/// let mut opt = AdamW::new(3e-4).betas(0.9, 0.95).weight_decay(0.1);
/// opt.set_lr(1e-4);
/// assert_eq!((opt.lr(), opt.betas, opt.weight_decay, opt.steps()), (1e-4, (0.9, 0.95), 0.1, 0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    /// Learning rate (default 1e-3).
    pub lr: f32,
    /// Decay rates of the moments' running averages, `(β1, β2)` (default
    /// `(0.9, 0.999)`).
    pub betas: (f32, f32),
    /// Added to the denominator for numerical stability (default 1e-8).
    pub eps: f32,
    /// Decoupled weight decay: each step shrinks the weights by
    /// `lr · weight_decay` of themselves (default 1e-2).
    pub weight_decay: f32,
    /// Steps taken since the moments were created.
    steps: u64,
    /// First moments, one per learnable tensor, empty until the first step.
    m: Vec<Vec<f32>>,
    /// Second moments, likewise.
    v: Vec<Vec<f32>>,
}

impl Default for AdamW {
    /// PyTorch's defaults: `AdamW::new(1e-3)`.
    fn default() -> AdamW {
        AdamW::new(1e-3)
    }
}

impl AdamW {
    /// AdamW with this learning rate and PyTorch's other defaults: betas
    /// `(0.9, 0.999)`, eps 1e-8, weight decay 1e-2.
    #[must_use]
    pub fn new(lr: f32) -> AdamW {
        AdamW {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            steps: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Sets the moments' decay rates `β1` and `β2`.
    #[must_use]
    pub fn betas(mut self, beta1: f32, beta2: f32) -> AdamW {
        self.betas = (beta1, beta2);
        self
    }

    /// Sets the term added to the denominator.
    #[must_use]
    pub fn eps(mut self, eps: f32) -> AdamW {
        self.eps = eps;
        self
    }

    /// Sets the decoupled weight decay (0 for plain Adam).
    #[must_use]
    pub fn weight_decay(mut self, weight_decay: f32) -> AdamW {
        self.weight_decay = weight_decay;
        self
    }

    /// The number of steps taken since the first one or the last
    /// [`reset`](Optimizer::reset): the `t` of the bias corrections.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

impl Optimizer for AdamW {
    /// One step of the update rule above on every learnable tensor.
    ///
    /// # Errors
    /// The gradients do not belong to these parameters (see
    /// [`Optimizer::step`]); nothing is updated then, the step count
    /// included.
    fn step(&mut self, params: &mut Parameters, grads: &Gradients) -> Result<(), Error> {
        check_match(params, grads)?;
        if state_is_stale(&self.m, params) || state_is_stale(&self.v, params) {
            let zeros = || {
                learnable(params)
                    .map(|p| vec![0.0; p.data().len()])
                    .collect()
            };
            (self.m, self.v, self.steps) = (zeros(), zeros(), 0);
        }
        self.steps = self.steps.saturating_add(1);

        // The scalars in f64, as PyTorch computes them in Python floats.
        let (lr, eps) = (f64::from(self.lr), self.eps);
        let (beta1, beta2) = (f64::from(self.betas.0), f64::from(self.betas.1));
        let t = self.steps as f64;
        let shrink = (1.0 - lr * f64::from(self.weight_decay)) as f32;
        let step_size = (lr / (1.0 - beta1.powf(t))) as f32;
        let correction2_sqrt = (1.0 - beta2.powf(t)).sqrt() as f32;
        let (beta1, beta2) = self.betas;

        let tensors = learnable_mut(params).zip(grads.iter());
        for ((tensor, (_, _, grad)), (m, v)) in tensors.zip(self.m.iter_mut().zip(&mut self.v)) {
            let values = tensor.data_mut().iter_mut().zip(grad);
            for ((w, &g), (m, v)) in values.zip(m.iter_mut().zip(v.iter_mut())) {
                *w *= shrink;
                *m = beta1 * *m + (1.0 - beta1) * g;
                *v = beta2 * *v + (1.0 - beta2) * g * g;
                *w -= step_size * (*m / (v.sqrt() / correction2_sqrt + eps));
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

    /// Forgets the moments and the step count: the next step is a first
    /// step again.
    fn reset(&mut self) {
        (self.m, self.v, self.steps) = (Vec::new(), Vec::new(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::{AdamW, Optimizer};

    /// Three different gradients, one per step: large, tiny, zero and
    /// sign-changing values.
    const GRADS: [[f32; 10]; 3] = [
        [0.1, -0.2, 0.0, 3.0, 1e-3, -0.5, 0.25, -1.5, 0.6, 0.0],
        [0.3, -0.2, 0.0, -1.0, 2e-3, 0.5, 0.0, -1.5, 0.6, 0.0],
        [-0.4, 0.1, 0.0, 0.5, -1e-3, 0.5, 0.25, 2.0, 0.0, 0.0],
    ];

    #[test]
    fn three_steps_follow_pytorchs_rule() {
        let (lr, wd, beta1, beta2, eps) = (0.1f64, 0.05f64, 0.8f64, 0.95f64, 1e-6f64);
        let mut opt = AdamW::new(0.1)
            .weight_decay(0.05)
            .betas(0.8, 0.95)
            .eps(1e-6);
        let mut params = fixture::params();
        // The rule in f64, written out.
        let mut w: Vec<f64> = fixture::VALUES.iter().map(|&v| f64::from(v)).collect();
        let (mut m, mut v) = (vec![0.0f64; 10], vec![0.0f64; 10]);
        for (step, grads) in GRADS.iter().enumerate() {
            opt.step(&mut params, &fixture::grads(*grads)).unwrap();
            let t = (step + 1) as i32;
            for i in 0..10 {
                let g = f64::from(grads[i]);
                w[i] -= lr * wd * w[i];
                m[i] = beta1 * m[i] + (1.0 - beta1) * g;
                v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
                let m_hat = m[i] / (1.0 - beta1.powi(t));
                let v_hat_sqrt = v[i].sqrt() / (1.0 - beta2.powi(t)).sqrt();
                w[i] -= lr * m_hat / (v_hat_sqrt + eps);
            }
            let got = fixture::learnable(&params);
            for i in 0..10 {
                let diff = (f64::from(got[i]) - w[i]).abs();
                assert!(diff < 1e-6, "step {t}, value {i}: {} vs {}", got[i], w[i]);
            }
        }
        assert_eq!(opt.steps(), 3);
        fixture::assert_buffers_untouched(&params);
        // Known values: with zero gradients, 0.weight[2] = 0.25 is only
        // decayed, by 1 − lr·wd a step, and 1.bias[1] = 0 stays 0.
        let got = fixture::learnable(&params);
        assert!((f64::from(got[2]) - 0.25 * 0.995f64.powi(3)).abs() < 1e-7);
        assert_eq!(got[9], 0.0);
    }

    #[test]
    fn a_first_step_moves_each_weight_by_about_lr() {
        // Bias-corrected, the first step is lr · g / (|g| + eps): about
        // ±lr whatever the gradient's scale; without decay, no other
        // change.
        let mut opt = AdamW::new(0.01).weight_decay(0.0);
        let mut params = fixture::params();
        opt.step(&mut params, &fixture::grads(GRADS[0])).unwrap();
        let after = fixture::learnable(&params);
        for (i, &g) in GRADS[0].iter().enumerate() {
            let moved = f64::from(fixture::VALUES[i]) - f64::from(after[i]);
            let expected = 0.01 * f64::from(g).signum() * f64::from(u8::from(g != 0.0));
            assert!((moved - expected).abs() < 1e-6, "value {i}: moved {moved}");
        }
    }

    #[test]
    fn defaults_are_pytorchs() {
        let opt = AdamW::default();
        assert_eq!(opt.lr, 1e-3);
        assert_eq!(opt.betas, (0.9, 0.999));
        assert_eq!(opt.eps, 1e-8);
        assert_eq!(opt.weight_decay, 1e-2);
        assert_eq!((opt.lr(), opt.steps()), (1e-3, 0));
        let mut opt = AdamW::default();
        opt.set_lr(0.5);
        assert_eq!(opt, AdamW::new(0.5));
    }
}

//! Learning-rate schedules in closed form, after PyTorch's `StepLR`,
//! `CosineAnnealingLR` and a `LinearLR` warm-up.

use std::f64::consts::PI;

use super::Optimizer;

/// A learning rate as a function of the step (or epoch) `t`, from 0: a
/// constant, PyTorch's `StepLR` or `CosineAnnealingLR`, optionally after a
/// linear warm-up. Every value is computed in closed form, in f64, from `t`
/// alone, so a schedule can be asked about any `t` in any order; no input
/// panics.
///
/// ```
/// use cnn_runtime::train::{Optimizer, Schedule, Sgd};
///
/// let schedule = Schedule::cosine(0.1, 10).min_lr(0.001).warmup(2);
/// let mut opt = Sgd::new(0.1).momentum(0.9);
/// for epoch in 0..12 {
///     schedule.apply(epoch, &mut opt);
///     // … train an epoch with `opt` …
/// }
/// assert_eq!(opt.lr(), schedule.lr(11));
/// assert!((schedule.lr(0) - 0.1 / 3.0).abs() < 1e-7); // warming up
/// assert_eq!(schedule.lr(2), 0.1); // the cosine's start
/// assert_eq!(schedule.lr(12), 0.001); // the cosine's end
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The learning rate at the schedule's start, after any warm-up.
    base: f32,
    shape: Shape,
    /// Steps of linear warm-up (0 for none).
    warmup: usize,
    /// The fraction of `base` the warm-up starts from.
    start_factor: f32,
}

/// What a schedule does after its warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Constant,
    Step { step_size: usize, gamma: f32 },
    Cosine { t_max: usize, min_lr: f32 },
}

impl Schedule {
    /// The same learning rate at every step (a warm-up can still be
    /// added).
    ///
    /// ```
    /// # use cnn_runtime::train::Schedule;
    /// let schedule = Schedule::constant(0.01).warmup(4);
    /// assert_eq!(schedule.lr(1), 0.01 * 0.5);
    /// assert_eq!(schedule.lr(100), 0.01);
    /// ```
    #[must_use]
    pub fn constant(lr: f32) -> Schedule {
        Schedule {
            base: lr,
            shape: Shape::Constant,
            warmup: 0,
            start_factor: 1.0 / 3.0,
        }
    }

    /// PyTorch's `StepLR(step_size, gamma)`: `base · gamma^⌊t / step_size⌋`,
    /// the rate multiplied by `gamma` every `step_size` steps. A
    /// `step_size` of 0 never decays: the rate stays `base`.
    ///
    /// ```
    /// # use cnn_runtime::train::Schedule;
    /// let schedule = Schedule::step(0.1, 30, 0.5);
    /// assert_eq!(schedule.lr(29), 0.1);
    /// assert_eq!(schedule.lr(30), 0.05);
    /// assert_eq!(schedule.lr(60), 0.025);
    /// ```
    #[must_use]
    pub fn step(base: f32, step_size: usize, gamma: f32) -> Schedule {
        Schedule {
            shape: Shape::Step { step_size, gamma },
            ..Schedule::constant(base)
        }
    }

    /// PyTorch's `CosineAnnealingLR(t_max)` in closed form:
    /// `min_lr + (base − min_lr) · (1 + cos(π · t / t_max)) / 2`, from
    /// `base` at 0 to `min_lr` (0 unless [`min_lr`](Schedule::min_lr)
    /// says otherwise) at `t_max`, and held there after `t_max` (where
    /// PyTorch's would rise again). A `t_max` of 0 anneals nothing: the
    /// rate stays `base`.
    ///
    /// ```
    /// # use cnn_runtime::train::Schedule;
    /// let schedule = Schedule::cosine(0.1, 100);
    /// assert_eq!(schedule.lr(0), 0.1);
    /// assert_eq!(schedule.lr(50), 0.05);
    /// assert_eq!(schedule.lr(100), 0.0);
    /// assert_eq!(schedule.lr(1000), 0.0);
    /// ```
    #[must_use]
    pub fn cosine(base: f32, t_max: usize) -> Schedule {
        Schedule {
            shape: Shape::Cosine { t_max, min_lr: 0.0 },
            ..Schedule::constant(base)
        }
    }

    /// Sets the cosine's final rate, PyTorch's `eta_min` (no effect on
    /// other schedules).
    ///
    /// ```
    /// # use cnn_runtime::train::Schedule;
    /// let schedule = Schedule::cosine(1.0, 10).min_lr(0.25);
    /// assert_eq!(schedule.lr(5), 0.625);
    /// assert_eq!(schedule.lr(10), 0.25);
    /// ```
    #[must_use]
    pub fn min_lr(mut self, min_lr: f32) -> Schedule {
        if let Shape::Cosine { min_lr: old, .. } = &mut self.shape {
            *old = min_lr;
        }
        self
    }

    /// Puts a linear warm-up of `steps` steps first: PyTorch's
    /// `SequentialLR` of `LinearLR(start_factor, 1.0, steps)` and this
    /// schedule, with the milestone `steps`. For `t < steps` the rate
    /// rises from `base · start_factor` (PyTorch's default factor 1/3,
    /// see [`warmup_from`](Schedule::warmup_from)) towards `base`:
    /// `base · (start_factor + (1 − start_factor) · t / steps)`; from
    /// `steps` on it is this schedule at `t − steps`. 0 steps: no warm-up.
    ///
    /// ```
    /// # use cnn_runtime::train::Schedule;
    /// let schedule = Schedule::step(1.0, 10, 0.5).warmup(4).warmup_from(0.0);
    /// assert_eq!(schedule.lr(0), 0.0);
    /// assert_eq!(schedule.lr(3), 0.75);
    /// assert_eq!(schedule.lr(4), 1.0);
    /// assert_eq!(schedule.lr(14), 0.5);
    /// ```
    #[must_use]
    pub fn warmup(mut self, steps: usize) -> Schedule {
        self.warmup = steps;
        self
    }

    /// Sets the fraction of the base rate the warm-up starts from
    /// (PyTorch's `start_factor`, 1/3 unless set).
    ///
    /// ```
    /// # use cnn_runtime::train::Schedule;
    /// let schedule = Schedule::constant(1.0).warmup(2).warmup_from(0.5);
    /// assert_eq!([schedule.lr(0), schedule.lr(1), schedule.lr(2)], [0.5, 0.75, 1.0]);
    /// ```
    #[must_use]
    pub fn warmup_from(mut self, start_factor: f32) -> Schedule {
        self.start_factor = start_factor;
        self
    }

    /// The learning rate at step (or epoch) `t`, from 0.
    #[must_use]
    pub fn lr(&self, t: usize) -> f32 {
        let base = f64::from(self.base);
        if t < self.warmup {
            let start = f64::from(self.start_factor);
            let factor = start + (1.0 - start) * t as f64 / self.warmup as f64;
            return (base * factor) as f32;
        }
        let t = t - self.warmup;
        let lr = match self.shape {
            Shape::Constant | Shape::Step { step_size: 0, .. } | Shape::Cosine { t_max: 0, .. } => {
                base
            }
            Shape::Step { step_size, gamma } => {
                let decays = i32::try_from(t / step_size).unwrap_or(i32::MAX);
                base * f64::from(gamma).powi(decays)
            }
            Shape::Cosine { t_max, min_lr } => {
                let min_lr = f64::from(min_lr);
                let progress = t.min(t_max) as f64 / t_max as f64;
                min_lr + (base - min_lr) * (1.0 + (PI * progress).cos()) / 2.0
            }
        };
        lr as f32
    }

    /// Sets `opt`'s learning rate to [`lr(t)`](Schedule::lr): call it
    /// before the step (or epoch) `t`.
    ///
    /// ```
    /// # use cnn_runtime::train::{AdamW, Optimizer, Schedule};
    /// let mut opt = AdamW::default();
    /// Schedule::step(1e-3, 2, 0.5).apply(2, &mut opt);
    /// assert_eq!(opt.lr(), 5e-4);
    /// ```
    pub fn apply(&self, t: usize, opt: &mut dyn Optimizer) {
        opt.set_lr(self.lr(t));
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    /// `a` is `b` to f32 precision.
    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() <= 1e-7 * b.abs().max(1e-3)
    }

    #[test]
    fn step_decays_at_each_boundary() {
        let schedule = Schedule::step(0.2, 3, 0.5);
        let base = f64::from(0.2f32);
        for t in 0..20 {
            let expected = base * 0.5f64.powi((t / 3) as i32);
            assert!(close(schedule.lr(t), expected), "t = {t}");
        }
        assert_eq!(schedule.lr(2), 0.2);
        assert_eq!(schedule.lr(3), 0.1);
        assert_eq!(schedule.lr(5), 0.1);
        assert_eq!(schedule.lr(6), 0.05);
        // γ^⌊t/s⌋ underflows to 0 for huge t, without panicking.
        assert_eq!(schedule.lr(usize::MAX), 0.0);
    }

    #[test]
    fn cosine_follows_its_closed_form() {
        let (base, min) = (0.1f64, 0.01f64);
        let schedule = Schedule::cosine(0.1, 8).min_lr(0.01);
        let (base, min) = (f64::from(base as f32), f64::from(min as f32));
        for t in 0..=8 {
            let expected =
                min + (base - min) * (1.0 + (std::f64::consts::PI * t as f64 / 8.0).cos()) / 2.0;
            assert!(
                close(schedule.lr(t), expected),
                "t = {t}: {}",
                schedule.lr(t)
            );
        }
        assert_eq!(schedule.lr(0), 0.1);
        assert!(close(schedule.lr(4), (base + min) / 2.0));
        // cos(π/4) = √½: a quarter of the way, base − (base − min)(1 − √½)/2.
        let quarter = base - (base - min) * (1.0 - 0.5f64.sqrt()) / 2.0;
        assert!(close(schedule.lr(2), quarter));
        assert_eq!(schedule.lr(8), 0.01);
        // Held at the minimum after t_max.
        assert_eq!(schedule.lr(9), 0.01);
        assert_eq!(schedule.lr(usize::MAX), 0.01);
        // It falls all the way.
        assert!((0..8).all(|t| schedule.lr(t + 1) < schedule.lr(t)));
    }

    #[test]
    fn warmup_rises_linearly_then_shifts_the_schedule() {
        let cosine = Schedule::cosine(1.0, 10);
        let warm = cosine.warmup(4);
        // PyTorch's default start factor: 1/3.
        for (t, factor) in [(0, 1.0 / 3.0), (1, 0.5), (2, 2.0 / 3.0), (3, 5.0 / 6.0)] {
            assert!(close(warm.lr(t), factor), "t = {t}: {}", warm.lr(t));
        }
        for t in 4..20 {
            assert_eq!(warm.lr(t), cosine.lr(t - 4), "t = {t}");
        }
        let step = Schedule::step(0.4, 2, 0.1).warmup(3).warmup_from(0.25);
        assert!(close(step.lr(0), 0.1));
        assert!(close(step.lr(1), 0.2));
        assert!(close(step.lr(2), 0.3));
        assert_eq!(step.lr(3), 0.4);
        assert_eq!(step.lr(4), 0.4);
        assert!(close(step.lr(5), 0.04));
        // No warm-up: the schedule itself.
        assert_eq!(cosine.warmup(0), cosine);
    }

    #[test]
    fn zero_periods_keep_the_base_rate() {
        for schedule in [
            Schedule::step(0.3, 0, 0.1),
            Schedule::cosine(0.3, 0).min_lr(0.1),
            Schedule::constant(0.3),
        ] {
            for t in [0, 1, 7, usize::MAX] {
                assert_eq!(schedule.lr(t), 0.3, "{schedule:?} at {t}");
            }
        }
        // min_lr does nothing to a schedule that is not a cosine.
        let step = Schedule::step(0.3, 1, 0.5);
        assert_eq!(step.min_lr(0.2), step);
    }

    #[test]
    fn apply_sets_the_optimisers_rate() {
        use crate::train::{AdamW, Optimizer, Sgd};
        let schedule = Schedule::cosine(0.5, 4).warmup(2);
        let mut opts: [Box<dyn Optimizer>; 2] =
            [Box::new(Sgd::new(9.0)), Box::new(AdamW::new(9.0))];
        for opt in &mut opts {
            for t in 0..10 {
                schedule.apply(t, opt.as_mut());
                assert_eq!(opt.lr(), schedule.lr(t));
            }
        }
    }
}

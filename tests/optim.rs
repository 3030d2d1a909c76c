//! The optimisers and learning-rate schedules through the facade: AdamW
//! follows PyTorch's rule (checked against the rule written out in f64),
//! any optimiser drives `train_step`, mismatched gradients are errors, and
//! the schedules give PyTorch's values.

use cnn::{network, AdamW, Error, Optimizer, Parameters, Schedule, Sgd, TensorRole};
use ndarray::{Array4, ArrayView4};

network! {
    /// A linear classifier of 2×2 images into three classes.
    struct Linear {
        input(1, 2, 2)
        fc(3)
    }

    /// Three classes of 6×6 images.
    struct Tiny {
        input(1, 6, 6)
        conv(4, 3) relu pool(2)
        fc(3)
    }
}

use bars::bars;

#[path = "support/bars.rs"]
mod bars;

/// Every learnable value of `params`, in f64, in order.
fn values(params: &Parameters) -> Vec<f64> {
    params
        .iter()
        .filter(|t| t.role() == TensorRole::Param)
        .flat_map(|t| t.data().iter().map(|&v| f64::from(v)))
        .collect()
}

/// AdamW's hyper-parameters, in f64.
struct Hyper {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
}

/// `steps` AdamW steps on `w` with the same gradient `g` each time, by
/// PyTorch's documented algorithm, in f64.
fn adamw_by_hand(w: &[f64], g: &[f64], h: &Hyper, steps: i32) -> Vec<f64> {
    let mut w = w.to_vec();
    let (mut m, mut v) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    for t in 1..=steps {
        for i in 0..w.len() {
            w[i] *= 1.0 - h.lr * h.weight_decay;
            m[i] = h.betas.0 * m[i] + (1.0 - h.betas.0) * g[i];
            v[i] = h.betas.1 * v[i] + (1.0 - h.betas.1) * g[i] * g[i];
            let m_hat = m[i] / (1.0 - h.betas.0.powi(t));
            let v_hat = v[i] / (1.0 - h.betas.1.powi(t));
            w[i] -= h.lr * m_hat / (v_hat.sqrt() + h.eps);
        }
    }
    w
}

fn assert_close(got: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}");
    for (i, (a, b)) in got.iter().zip(expected).enumerate() {
        assert!((a - b).abs() < tolerance, "{what}, value {i}: {a} vs {b}");
    }
}

/// A batch for `Linear`: four 2×2 images.
fn corners() -> (Array4<f32>, [usize; 4]) {
    let x = Array4::from_shape_fn((4, 1, 2, 2), |(n, _, h, w)| {
        if n == h * 2 + w {
            1.0
        } else {
            0.1 * (n + h + w) as f32
        }
    });
    (x, [0, 1, 2, 1])
}

#[test]
fn adamw_three_steps_with_fixed_gradients_follow_pytorchs_rule() {
    let (x, labels) = corners();
    let mut net = Linear::init(11);
    let (_, grads) = net.gradients(x.view(), &labels).unwrap();
    let w0 = values(net.parameters());
    let g: Vec<f64> = grads.as_slice().iter().map(|&v| f64::from(v)).collect();
    assert_eq!(w0.len(), 15);
    assert!(g.iter().all(|v| v.abs() > 1e-4), "{g:?}");

    // Large enough a decay to show, and PyTorch's defaults.
    let cases = [
        (
            AdamW::new(0.05).weight_decay(0.2),
            Hyper {
                lr: 0.05,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: 0.2,
            },
        ),
        (
            AdamW::default(),
            Hyper {
                lr: 1e-3,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: 1e-2,
            },
        ),
        (
            AdamW::new(0.1).betas(0.5, 0.6).eps(0.01).weight_decay(0.0),
            Hyper {
                lr: 0.1,
                betas: (0.5, 0.6),
                eps: 0.01,
                weight_decay: 0.0,
            },
        ),
    ];
    for (mut opt, hyper) in cases {
        let mut params = net.parameters().clone();
        for step in 1..=3 {
            opt.step(&mut params, &grads).unwrap();
            let expected = adamw_by_hand(&w0, &g, &hyper, step);
            assert_close(
                &values(&params),
                &expected,
                1e-6,
                &format!("lr {}, betas {:?}, step {step}", hyper.lr, hyper.betas),
            );
        }
        assert_eq!(opt.steps(), 3);
    }

    // By the rule's algebra, with a fixed gradient and no decay, m̂ = g and
    // √v̂ = |g|: every step moves each weight by lr · g / (|g| + eps).
    let mut opt = AdamW::new(0.01).weight_decay(0.0);
    for _ in 0..3 {
        opt.step(net.parameters_mut(), &grads).unwrap();
    }
    let moved: Vec<f64> = w0
        .iter()
        .zip(g.iter())
        .map(|(w, g)| w - 3.0 * 0.01 * g / (g.abs() + 1e-8))
        .collect();
    assert_close(&values(net.parameters()), &moved, 1e-6, "fixed gradient");
}

#[test]
fn train_step_takes_any_optimiser() {
    let (x, labels) = corners();
    let net = Linear::init(2);
    let (_, grads) = net.gradients(x.view(), &labels).unwrap();
    let mut boxed: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(0.1).momentum(0.9)),
        Box::new(AdamW::new(0.01)),
    ];
    let mut twins: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(0.1).momentum(0.9)),
        Box::new(AdamW::new(0.01)),
    ];
    for (opt, twin) in boxed.iter_mut().zip(&mut twins) {
        let mut trained = Linear::init(2);
        let mut stepped = Linear::init(2);
        trained.train_step(x.view(), &labels, opt.as_mut()).unwrap();
        twin.step(stepped.parameters_mut(), &grads).unwrap();
        assert_eq!(trained.parameters(), stepped.parameters());
        assert_ne!(trained.parameters(), net.parameters());
    }
    // A concrete optimiser, by `&mut`, as before.
    let mut net = Linear::init(2);
    let mut opt = AdamW::default();
    net.train_step(x.view(), &labels, &mut opt).unwrap();
    assert_eq!(opt.steps(), 1);
}

/// The mean softmax cross-entropy of `Tiny`'s outputs, in f64, from
/// `forward_batch`: independent of the training code.
fn mean_loss(net: &Tiny, x: ArrayView4<f32>, labels: &[usize]) -> f64 {
    let out = net.forward_batch(x).unwrap();
    let total: f64 = out
        .outer_iter()
        .zip(labels)
        .map(|(z, &label)| {
            let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - z[label]
        })
        .sum();
    total / labels.len() as f64
}

#[test]
fn adamw_trains_a_network() {
    let (x, labels) = bars(24);
    let mut net = Tiny::init(3);
    let mut opt = AdamW::new(0.02);
    let before = mean_loss(&net, x.view(), &labels);
    assert!((before - 3f64.ln()).abs() < 0.3, "initial loss {before}");
    let mut losses = Vec::new();
    for _ in 0..25 {
        losses.push(net.train_step(x.view(), &labels, &mut opt).unwrap());
    }
    let after = mean_loss(&net, x.view(), &labels);
    assert!(after < 0.3 * before, "loss {before} → {after}: {losses:?}");
    assert!(losses[24] < losses[0], "{losses:?}");
    assert_eq!(opt.steps(), 25);
}

#[test]
fn a_schedule_drives_training() {
    let (x, labels) = bars(24);
    let mut net = Tiny::init(4);
    let mut opt = AdamW::new(0.0);
    let schedule = Schedule::cosine(0.03, 20).min_lr(0.001).warmup(3);
    let before = mean_loss(&net, x.view(), &labels);
    for t in 0..25 {
        schedule.apply(t, &mut opt);
        net.train_step(x.view(), &labels, &mut opt).unwrap();
    }
    assert_eq!(opt.lr(), 0.001);
    let after = mean_loss(&net, x.view(), &labels);
    assert!(after < 0.5 * before, "loss {before} → {after}");
}

#[test]
fn mismatched_gradients_are_errors_and_change_nothing() {
    let (x, labels) = bars(6);
    let mut net = Tiny::init(4);
    let before = net.parameters().clone();
    network! { struct Other { input(1, 6, 6) fc(3) } }
    let (_, foreign) = Other::init(1).gradients(x.view(), &labels).unwrap();
    let mut opt = AdamW::default();
    match opt.step(net.parameters_mut(), &foreign) {
        Err(Error::TensorShape {
            name,
            expected,
            got,
        }) => {
            assert_eq!(name, "0.weight");
            assert_eq!((expected, got), (vec![4, 1, 3, 3], vec![3, 36]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(net.parameters(), &before);
    assert_eq!(opt.steps(), 0);
    // The same for SGD.
    let mut sgd = Sgd::new(0.1).momentum(0.9);
    assert!(sgd.step(net.parameters_mut(), &foreign).is_err());
    assert_eq!(net.parameters(), &before);
}

#[test]
fn step_lr_matches_pytorchs_example() {
    // torch.optim.lr_scheduler.StepLR's documented example: lr = 0.05 for
    // epochs below 30, 0.005 below 60, 0.0005 below 90.
    let schedule = Schedule::step(0.05, 30, 0.1);
    for (t, expected) in [
        (0, 0.05),
        (29, 0.05),
        (30, 0.005),
        (59, 0.005),
        (60, 0.0005),
        (89, 0.0005),
        (90, 0.00005),
    ] {
        let got = f64::from(schedule.lr(t));
        assert!((got - expected).abs() < 2e-7 * expected, "t = {t}: {got}");
    }
}

#[test]
fn cosine_matches_its_closed_form() {
    // CosineAnnealingLR(T_max = 10, eta_min = 0) from 0.1: 0.05 · (1 +
    // cos(π t / 10)), with cos(π/10) = 0.9510565163, cos(π/5) =
    // 0.8090169944, cos(3π/10) = 0.5877852523.
    let schedule = Schedule::cosine(0.1, 10);
    for (t, expected) in [
        (0, 0.1),
        (1, 0.097_552_825_8),
        (2, 0.090_450_849_7),
        (3, 0.079_389_262_6),
        (5, 0.05),
        (7, 0.020_610_737_4),
        (8, 0.009_549_150_3),
        (9, 0.002_447_174_2),
        (10, 0.0),
        (11, 0.0),
    ] {
        let got = f64::from(schedule.lr(t));
        assert!((got - expected).abs() < 1e-8, "t = {t}: {got}");
    }
    // Halfway, (base + η_min)/2.
    let with_min = Schedule::cosine(0.1, 10).min_lr(0.02);
    assert!((f64::from(with_min.lr(5)) - 0.06).abs() < 1e-8);
    assert!((f64::from(with_min.lr(10)) - 0.02).abs() < 1e-9);
}

#[test]
fn warmup_composes_with_either_schedule() {
    // LinearLR(start_factor = 0.1, total_iters = 4) then the schedule.
    let step = Schedule::step(0.5, 2, 0.5).warmup(4).warmup_from(0.1);
    let cosine = Schedule::cosine(0.5, 4).warmup(4).warmup_from(0.1);
    for schedule in [step, cosine] {
        for (t, expected) in [(0, 0.05), (1, 0.1625), (2, 0.275), (3, 0.3875), (4, 0.5)] {
            let got = f64::from(schedule.lr(t));
            assert!((got - expected).abs() < 1e-7, "{schedule:?} at {t}: {got}");
        }
    }
    for (t, expected) in [(5, 0.5), (6, 0.25), (8, 0.125)] {
        assert!((f64::from(step.lr(t)) - expected).abs() < 1e-7, "t = {t}");
    }
    for (t, expected) in [(6, 0.25), (8, 0.0), (100, 0.0)] {
        assert!((f64::from(cosine.lr(t)) - expected).abs() < 1e-7, "t = {t}");
    }
}

#[test]
fn degenerate_schedules_are_constant() {
    for schedule in [
        Schedule::step(0.1, 0, 0.5),
        Schedule::cosine(0.1, 0),
        Schedule::constant(0.1),
    ] {
        for t in [0, 1, 1000, usize::MAX] {
            assert_eq!(schedule.lr(t), 0.1, "{schedule:?} at {t}");
        }
    }
    // A warm-up of 0 steps is none.
    assert_eq!(Schedule::cosine(0.1, 5).warmup(0).lr(0), 0.1);
}

//! Training modern networks through the facade: residual blocks, batch
//! norm in training mode (batch statistics, running statistics updated as
//! PyTorch does), dropout, global average pooling. The loss falls, the
//! running statistics after a step are the ones computed here by hand, the
//! result does not depend on the number of threads, and inference stays in
//! evaluation mode.

use cnn::{network, AdamW, Error, Network, Optimizer, Sgd, TensorRole};
use ndarray::{s, Array4, ArrayView4};

#[path = "support/bars.rs"]
mod bars;

network! {
    /// A tiny residual network with batch norm: a batch norm straight on
    /// the input (whose statistics are the images'), a stem, an identity
    /// block, a block with a shortcut, dropout, global average pooling.
    struct ResBn {
        input(1, 6, 6)
        norm: bn
        stem: conv(4, 3, p = 1, bias = false) stem_bn: bn relu
        residual(relu) { conv(4, 3, p = 1, bias = false) bn relu conv(4, 3, p = 1, bias = false) bn }
        residual(relu) { conv(6, 3, s = 2, p = 1, bias = false, floor) bn relu conv(6, 3, p = 1, bias = false) bn }
            shortcut { conv(6, 1, s = 2, bias = false, floor) bn }
        dropout(0.2)
        global_avgpool
        fc(3)
    }

    /// Batch norm after an fc: one value per channel and image.
    struct FcBn { input(1, 6, 6) fc(4) bn relu fc(3) }
}

/// The bars with an offset, so that the batch's statistics are far from 0
/// and 1.
fn bars(n: usize) -> (ndarray::Array4<f32>, Vec<usize>) {
    bars::bars_with(n, 2.0, 0.5, 0.7)
}

/// The mean softmax cross-entropy of a network's eval-mode outputs, in
/// f64, from `forward_batch`.
fn eval_loss<N: Network>(net: &N, x: ArrayView4<f32>, labels: &[usize]) -> f64 {
    let out = net.forward_batch(x).unwrap();
    let total: f64 = out
        .outer_iter()
        .zip(labels)
        .map(|(z, &label)| {
            let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - z[label]
        })
        .sum();
    total / labels.len() as f64
}

fn values(net: &impl Network, name: &str) -> Vec<f32> {
    net.parameters().get(name).unwrap().data().to_vec()
}

/// Mean and unbiased variance of each channel of `planes` (one `Vec` of
/// `c` planes per image), in f64.
fn batch_stats(planes: &[Vec<Vec<f64>>]) -> (Vec<f64>, Vec<f64>) {
    let c = planes[0].len();
    (0..c)
        .map(|ch| {
            let all: Vec<f64> = planes.iter().flat_map(|p| p[ch].clone()).collect();
            let m = all.len() as f64;
            let mean = all.iter().sum::<f64>() / m;
            let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
            (mean, var)
        })
        .unzip()
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}[{i}]: {g}, by hand {w}"
        );
    }
}

#[test]
fn a_residual_network_with_batch_norm_learns() {
    let (x, labels) = bars(48);
    let mut net = ResBn::init(11);
    let mut opt = AdamW::new(0.01);
    let (train_before, _) = net.gradients(x.view(), &labels).unwrap();
    let eval_before = eval_loss(&net, x.view(), &labels);
    let mut losses = Vec::new();
    for step in 0..30 {
        let batch = (step % 3) * 16..(step % 3 + 1) * 16;
        let images = x.slice(s![batch.clone(), .., .., ..]);
        losses.push(net.train_step(images, &labels[batch], &mut opt).unwrap());
    }
    let (train_after, _) = net.gradients(x.view(), &labels).unwrap();
    let eval_after = eval_loss(&net, x.view(), &labels);
    eprintln!("train {train_before} → {train_after}, eval {eval_before} → {eval_after}");
    assert!(
        train_after < 0.3 * train_before,
        "training-mode loss {train_before} → {train_after} ({losses:?})"
    );
    assert!(
        eval_after < 0.5 * eval_before,
        "eval-mode loss {eval_before} → {eval_after}"
    );
    assert_eq!(net.parameters().steps(), 30);
    assert_eq!(
        net.parameters().counter("norm.num_batches_tracked"),
        Some(30)
    );
}

#[test]
fn running_statistics_after_one_step_are_pytorchs() {
    let (x, labels) = bars(10);
    let mut net = ResBn::init(5);
    let stem = values(&net, "stem.weight");
    let before = net.parameters().clone();
    net.train_step(x.view(), &labels, &mut Sgd::new(0.1))
        .unwrap();
    let params = net.parameters();

    // The first batch norm sees the images themselves.
    let images: Vec<Vec<Vec<f64>>> = x
        .outer_iter()
        .map(|image| vec![image.iter().map(|&v| f64::from(v)).collect()])
        .collect();
    let (mean, var) = batch_stats(&images);
    // PyTorch: running = 0.9 · running + 0.1 · batch, from mean 0, var 1.
    let running = |start: f64, batch: &[f64]| -> Vec<f64> {
        batch.iter().map(|b| 0.9 * start + 0.1 * b).collect()
    };
    assert_close(
        "norm.running_mean",
        &values(&net, "norm.running_mean"),
        &running(0.0, &mean),
    );
    assert_close(
        "norm.running_var",
        &values(&net, "norm.running_var"),
        &running(1.0, &var),
    );

    // The stem's batch norm sees the stem's convolution of the normalised
    // images (weight 1, bias 0 before the step, the biased variance, eps
    // 1e-5), computed here by hand.
    let sd = ((var[0] * 359.0 / 360.0) + 1e-5).sqrt();
    let normed: Vec<Vec<f64>> = images
        .iter()
        .map(|i| i[0].iter().map(|v| (v - mean[0]) / sd).collect())
        .collect();
    let conv: Vec<Vec<Vec<f64>>> = normed
        .iter()
        .map(|img| {
            (0..4)
                .map(|k| {
                    let mut plane = vec![0.0; 36];
                    for oy in 0..6 {
                        for ox in 0..6 {
                            let mut sum = 0.0;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = ((oy + ky) as isize - 1, (ox + kx) as isize - 1);
                                    if (0..6).contains(&iy) && (0..6).contains(&ix) {
                                        sum += img[iy as usize * 6 + ix as usize]
                                            * f64::from(stem[k * 9 + ky * 3 + kx]);
                                    }
                                }
                            }
                            plane[oy * 6 + ox] = sum;
                        }
                    }
                    plane
                })
                .collect()
        })
        .collect();
    let (mean, var) = batch_stats(&conv);
    assert_close(
        "stem_bn.running_mean",
        &values(&net, "stem_bn.running_mean"),
        &running(0.0, &mean),
    );
    assert_close(
        "stem_bn.running_var",
        &values(&net, "stem_bn.running_var"),
        &running(1.0, &var),
    );

    // Every batch norm counted the batch; the other buffers moved.
    let norms: Vec<&str> = ResBn::LAYERS
        .iter()
        .filter(|l| matches!(l.kind, cnn::LayerKind::BatchNorm { .. }))
        .map(|l| l.path)
        .collect();
    assert_eq!(norms.len(), 7);
    for path in norms {
        let name = format!("{path}.num_batches_tracked");
        assert_eq!(params.counter(&name), Some(1), "{name}");
        for what in ["running_mean", "running_var"] {
            let name = format!("{path}.{what}");
            assert_ne!(params.get(&name), before.get(&name), "{name} moved");
        }
    }
    assert_eq!(params.steps(), 1);
}

#[test]
fn gradients_change_nothing_and_name_the_learnable_tensors() {
    let (x, labels) = bars(9);
    let net = ResBn::init(2);
    let before = net.parameters().clone();
    let (loss, grads) = net.gradients(x.view(), &labels).unwrap();
    assert_eq!(net.parameters(), &before);
    assert_eq!(net.parameters().steps(), 0);
    // The same batch, the same masks and statistics: the same result.
    assert_eq!(
        (loss, grads.clone()),
        net.gradients(x.view(), &labels).unwrap()
    );
    let learnable: Vec<&str> = before
        .iter()
        .filter(|t| t.role() == TensorRole::Param)
        .map(|t| t.name())
        .collect();
    let names: Vec<&str> = grads.iter().map(|(name, _, _)| name).collect();
    assert_eq!(names, learnable);
    assert!(grads.get("norm.running_mean").is_none());
    assert_eq!(grads.as_slice().len(), ResBn::PARAMS);
    // Training mode differs from evaluation mode.
    assert!((f64::from(loss) - eval_loss(&net, x.view(), &labels)).abs() > 1e-3);
}

#[test]
fn dropout_draws_new_masks_each_step() {
    network! { struct Drop { input(1, 6, 6) fc(8) dropout(0.5) fc(3) } }
    let (x, labels) = bars(6);
    let mut net = Drop::init(3);
    let (a, _) = net.gradients(x.view(), &labels).unwrap();
    net.parameters_mut().set_steps(1);
    let (b, _) = net.gradients(x.view(), &labels).unwrap();
    net.parameters_mut().set_steps(0);
    let (c, _) = net.gradients(x.view(), &labels).unwrap();
    assert_ne!(a, b);
    assert_eq!(a, c);
    // Inference is the identity: `forward` does not depend on the step.
    let out = net.forward_batch(x.view()).unwrap();
    net.parameters_mut().set_steps(1);
    assert_eq!(out, net.forward_batch(x.view()).unwrap());
}

#[test]
fn one_thread_or_two_give_the_same_parameters() {
    let (x, labels) = bars(21);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = ResBn::init(8);
            let mut opt = AdamW::new(0.01);
            let losses: Vec<f32> = (0..3)
                .map(|_| net.train_step(x.view(), &labels, &mut opt).unwrap())
                .collect();
            (net.parameters().clone(), losses)
        })
    };
    let (one, losses) = run(1);
    let (two, losses2) = run(2);
    assert_eq!(losses, losses2);
    assert_eq!(one, two);
    assert_eq!(one.steps(), two.steps());
    assert_ne!(one, ResBn::init(8).parameters().clone());
    // A non-contiguous view of the same images gives the same gradients.
    let net = ResBn::from_parameters(one).unwrap();
    let mut wide = Array4::<f32>::zeros((21, 1, 6, 12));
    wide.slice_mut(s![.., .., .., ..;2]).assign(&x);
    let strided = wide.slice(s![.., .., .., ..;2]);
    assert_eq!(
        net.gradients(x.view(), &labels).unwrap(),
        net.gradients(strided, &labels).unwrap()
    );
}

#[test]
fn batch_norm_needs_two_values_per_channel() {
    let (x, labels) = bars(2);
    let mut net = FcBn::init(1);
    let before = net.parameters().clone();
    let one = x.slice(s![..1, .., .., ..]);
    match net.train_step(one, &labels[..1], &mut Sgd::new(0.1)) {
        Err(Error::Shape { expected, got, .. }) => {
            assert_eq!((expected, got), (vec![2, 1, 6, 6], vec![1, 1, 6, 6]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(net.parameters(), &before);
    assert_eq!(net.parameters().steps(), 0);
    // Two images do; a batch norm on planes takes one image.
    net.train_step(x.view(), &labels, &mut Sgd::new(0.1))
        .unwrap();
    assert_eq!(net.parameters().counter("1.num_batches_tracked"), Some(1));
    let mut res = ResBn::init(1);
    res.train_step(one, &labels[..1], &mut Sgd::new(0.1))
        .unwrap();
}

#[test]
fn an_optimizer_error_changes_nothing() {
    // An optimiser whose step fails leaves the running statistics too.
    struct Failing;
    impl Optimizer for Failing {
        fn step(&mut self, _: &mut cnn::Parameters, _: &cnn::Gradients) -> Result<(), Error> {
            Err(Error::Unsupported {
                message: "no".into(),
            })
        }
        fn lr(&self) -> f32 {
            0.0
        }
        fn set_lr(&mut self, _: f32) {}
        fn reset(&mut self) {}
    }
    let (x, labels) = bars(4);
    let mut net = ResBn::init(1);
    let before = net.parameters().clone();
    assert!(net.train_step(x.view(), &labels, &mut Failing).is_err());
    assert_eq!(net.parameters(), &before);
    assert_eq!(net.parameters().steps(), 0);
}

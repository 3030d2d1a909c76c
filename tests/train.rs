//! Training through the facade: the loss a step reports is the real loss,
//! the optimiser follows its rule, the loss falls, bad input is an error,
//! and the result does not depend on the number of threads.

use cnn::{network, Error, Optimizer, Sgd};
use ndarray::{s, Array4, ArrayView4};

network! {
    /// Three classes of 6×6 images.
    struct Tiny {
        input(1, 6, 6)
        conv(4, 3) relu pool(2)
        fc(3)
    }

    /// The same as `Tiny` with a final softmax.
    struct TinySoftmax {
        input(1, 6, 6)
        conv(4, 3) relu pool(2)
        fc(3) softmax
    }
}

use bars::bars;

#[path = "support/bars.rs"]
mod bars;

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

fn accuracy(net: &Tiny, x: ArrayView4<f32>, labels: &[usize]) -> f64 {
    let out = net.forward_batch(x).unwrap();
    let right = out
        .outer_iter()
        .zip(labels)
        .filter(|(z, &label)| {
            let best =
                z.iter().enumerate().fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0 == label
        })
        .count();
    right as f64 / labels.len() as f64
}

#[test]
fn the_loss_falls_and_the_reported_loss_is_the_real_one() {
    let (x, labels) = bars(48);
    let mut net = Tiny::init(3);
    let mut opt = Sgd::new(0.1).momentum(0.9);
    let before = mean_loss(&net, x.view(), &labels);
    // Near ln 3 at initialisation: small random weights give near-uniform
    // outputs.
    assert!((before - 3f64.ln()).abs() < 0.3, "initial loss {before}");
    let mut losses = Vec::new();
    for step in 0..40 {
        let batch = s![(step % 3) * 16..(step % 3 + 1) * 16, .., .., ..];
        let expected = mean_loss(&net, x.slice(batch), &labels[(step % 3) * 16..][..16]);
        let loss = net
            .train_step(x.slice(batch), &labels[(step % 3) * 16..][..16], &mut opt)
            .unwrap();
        assert!(
            (f64::from(loss) - expected).abs() < 1e-5 * (1.0 + expected),
            "step {step}: train_step says {loss}, forward_batch gives {expected}"
        );
        losses.push(loss);
    }
    let after = mean_loss(&net, x.view(), &labels);
    assert!(after < 0.2 * before, "loss {before} → {after}");
    assert_eq!(accuracy(&net, x.view(), &labels), 1.0);
}

#[test]
fn sgd_follows_its_update_rule() {
    let (x, labels) = bars(10);
    let (lr, momentum, decay) = (0.05, 0.8, 0.01);
    let mut net = Tiny::init(5);
    let mut opt = Sgd::new(lr).momentum(momentum).weight_decay(decay);
    let w0 = net.parameters().clone();
    let (_, g0) = net.gradients(x.view(), &labels).unwrap();
    net.train_step(x.view(), &labels, &mut opt).unwrap();
    let w1 = net.parameters().clone();
    let (_, g1) = net.gradients(x.view(), &labels).unwrap();
    net.train_step(x.view(), &labels, &mut opt).unwrap();
    let w2 = net.parameters();
    for t0 in w0.iter() {
        let name = t0.name();
        let (a, b, c) = (
            t0.data(),
            w1.get(name).unwrap().data(),
            w2.get(name).unwrap().data(),
        );
        let (ga, gb) = (g0.get(name).unwrap(), g1.get(name).unwrap());
        for i in 0..a.len() {
            let v1 = ga[i] + decay * a[i];
            let e1 = a[i] - lr * v1;
            let v2 = momentum * v1 + gb[i] + decay * b[i];
            let e2 = b[i] - lr * v2;
            assert!(
                (b[i] - e1).abs() < 1e-6,
                "{name}[{i}] step 1: {} vs {e1}",
                b[i]
            );
            assert!(
                (c[i] - e2).abs() < 1e-6,
                "{name}[{i}] step 2: {} vs {e2}",
                c[i]
            );
        }
    }
}

#[test]
fn a_final_softmax_is_fused_into_the_loss() {
    let (x, labels) = bars(12);
    let plain = Tiny::init(9);
    let soft = TinySoftmax::from_parameters(plain.parameters().clone()).unwrap();
    let (loss_a, grads_a) = plain.gradients(x.view(), &labels).unwrap();
    let (loss_b, grads_b) = soft.gradients(x.view(), &labels).unwrap();
    assert_eq!(loss_a, loss_b);
    assert_eq!(grads_a, grads_b);
    // The loss is the cross-entropy of the softmax's output.
    let probs = soft.forward_batch(x.view()).unwrap();
    let expected: f64 = probs
        .outer_iter()
        .zip(&labels)
        .map(|(p, &l)| -f64::from(p[[l, 0, 0]]).ln())
        .sum::<f64>()
        / labels.len() as f64;
    assert!((f64::from(loss_b) - expected).abs() < 1e-5);
}

#[test]
fn gradients_are_named_like_the_parameters() {
    let (x, labels) = bars(4);
    let net = Tiny::init(1);
    let (_, grads) = net.gradients(x.view(), &labels).unwrap();
    let names: Vec<&str> = grads.iter().map(|(name, _, _)| name).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
    assert_eq!(grads.shape("0.weight"), Some(&[4, 1, 3, 3][..]));
    assert_eq!(grads.get("3.bias").map(<[f32]>::len), Some(3));
    assert_eq!(grads.get("1.weight"), None);
    assert_eq!(grads.as_slice().len(), Tiny::PARAMS);
}

#[test]
fn the_result_does_not_depend_on_threads_or_layout() {
    let (x, labels) = bars(37);
    let net = Tiny::init(2);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| net.gradients(x.view(), &labels).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    // A non-contiguous view of the same images.
    let mut wide = Array4::<f32>::zeros((37, 1, 6, 12));
    wide.slice_mut(s![.., .., .., ..;2]).assign(&x);
    let strided = wide.slice(s![.., .., .., ..;2]);
    assert!(strided.as_slice().is_none());
    assert_eq!(one, net.gradients(strided, &labels).unwrap());
}

#[test]
fn bad_batches_are_errors_and_change_nothing() {
    let (x, labels) = bars(6);
    let mut net = Tiny::init(4);
    let before = net.parameters().clone();
    let mut opt = Sgd::new(0.1);
    let wrong = Array4::<f32>::zeros((6, 1, 5, 6));
    match net.train_step(wrong.view(), &labels, &mut opt) {
        Err(Error::Shape {
            what,
            expected,
            got,
        }) => {
            assert_eq!(what, "input batch");
            assert_eq!((expected, got), (vec![6, 1, 6, 6], vec![6, 1, 5, 6]));
        }
        other => panic!("{other:?}"),
    }
    match net.train_step(x.view(), &labels[..5], &mut opt) {
        Err(Error::Shape {
            what: "labels",
            expected,
            got,
        }) => {
            assert_eq!((expected, got), (vec![6], vec![5]));
        }
        other => panic!("{other:?}"),
    }
    let bad_labels = [0, 1, 2, 3, 0, 1];
    match net.train_step(x.view(), &bad_labels, &mut opt) {
        Err(Error::Label {
            index,
            label,
            classes,
        }) => assert_eq!((index, label, classes), (3, 3, 3)),
        other => panic!("{other:?}"),
    }
    let empty = Array4::<f32>::zeros((0, 1, 6, 6));
    assert!(matches!(
        net.train_step(empty.view(), &[], &mut opt),
        Err(Error::Shape {
            what: "input batch",
            ..
        })
    ));
    assert_eq!(net.parameters(), &before);
    // Gradients of another network do not fit these parameters.
    let other = TinySoftmax::init(1);
    let mut small = Sgd::new(0.1);
    let (_, grads) = other.gradients(x.view(), &labels).unwrap();
    assert!(small.step(net.parameters_mut(), &grads).is_ok());
    network! { struct Other { input(1, 6, 6) fc(3) } }
    let (_, foreign) = Other::init(1).gradients(x.view(), &labels).unwrap();
    assert!(matches!(
        small.step(net.parameters_mut(), &foreign),
        Err(Error::TensorShape { .. } | Error::UnexpectedTensor { .. })
    ));
}

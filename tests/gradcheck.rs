//! Gradients against finite differences and exact adjoints.
//!
//! **Networks** (tests/gradcheck/cases.rs, 40 random small networks written
//! by tests/gen_gradcheck_cases.py, covering every layer kind, stride,
//! padding and pair; and the networks of [`modern`], one per modern layer
//! kind or option: dilated, grouped, depthwise and bias-free convolutions,
//! padded pools, global average pooling, each activation, batch norm in
//! training mode after a conv and after an fc, residual blocks with and
//! without a shortcut, dropout with a fixed seed): the generated
//! `gradients` is compared, for every learnable parameter, with a central
//! difference of the mean loss computed in f64 by a plain interpreter of
//! the network written here ([`forward64`]: the layers, the residual
//! blocks of the network's graph, batch norm on the statistics of the
//! whole batch, dropout's masks), with step `H = 1e-6`. In f64 the
//! difference is accurate to about `1e-16 / H + H² · L‴ ≈ 1e-10`, so the
//! comparison measures the f32 error of the code under test alone. That
//! error is rounding in f32 sums of at most a few hundred products per
//! layer through a handful of layers: about `√n·u` relative (u = 6e-8, n
//! the terms summed; observed up to 1e-6), `n·u ≈ 3e-5` in the worst case.
//! Hence the tolerance `|g − fd| ≤ 1e-4 · |fd| + 2e-6 · scale + 1e-7`,
//! where `scale` is the network's largest gradient: entries near zero (a
//! bias under a softmax, or a conv bias under batch norm, has an exact
//! zero gradient) are sums of terms whose size follows the gradients
//! flowing through the network, not their own, and 1e-7 is the rounding of
//! a loss near 1 in f32. A coordinate where the one-sided differences
//! disagree is a kink of relu or max pooling crossed by the step; it is
//! skipped, and at most 1 % may be.
//!
//! **Kernel cores** (proptest, random shapes): conv (with dilation, groups,
//! with and without a bias), fc and average pooling (padded) are linear in
//! their input and in their weights, so each gradient entry is exactly an
//! inner product of `dy` with the reference kernel
//! (`cnn_runtime::kernels::reference`) applied to a basis tensor; max
//! pooling (padded) is checked by an exact finite difference on inputs
//! spaced 1/64 apart with a step of 1/256 (all exactly representable, no
//! arg-max changes); activations, softmax and the fused loss against f64
//! formulas.

use cnn::{LayerInfo, LayerKind, Network, Node, TensorRole, Trainable};
use cnn_runtime::kernels::{reference, Act, ConvShape};
use cnn_runtime::train::{kernels, loss};
use cnn_spec::arith::window_out_floor;
use ndarray::Array4;
use proptest::prelude::*;

#[path = "gradcheck/cases.rs"]
mod cases;

/// SplitMix64: a small deterministic source of test inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [−1, 1).
    fn value(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn values(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.value()).collect()
    }
}

/// The learnable tensors of a network in f64, by name.
struct Params64(Vec<(String, Vec<f64>)>);

impl Params64 {
    fn get(&self, layer: &LayerInfo, what: &str) -> Option<&[f64]> {
        let name = layer.tensor_name(what);
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn tensor(&self, layer: &LayerInfo, what: &str) -> &[f64] {
        self.get(layer, what)
            .unwrap_or_else(|| panic!("no tensor {}.{what}", layer.path))
    }
}

/// The network's outputs for a batch of images, all in f64, in training
/// mode: a plain interpreter of the network's graph, independent of every
/// kernel of the crate. Batch norm normalises with the batch's mean and
/// biased variance; dropout keeps what `Dropout::keeps` says for the
/// parameters' `steps` (the one thing taken from the crate: the mask).
fn forward64(
    layers: &[LayerInfo],
    graph: &[Node],
    params: &Params64,
    images: &[Vec<f64>],
    steps: u64,
) -> Vec<Vec<f64>> {
    let mut v = images.to_vec();
    let mut kept: Vec<Vec<Vec<f64>>> = Vec::new();
    for node in graph {
        match *node {
            Node::Layer(i) => v = layer64(i, &layers[i], params, v, steps),
            Node::Fork => kept.push(v.clone()),
            Node::Shortcut => {
                let input = kept.pop().unwrap();
                kept.push(std::mem::replace(&mut v, input));
            }
            Node::Join => {
                let other = kept.pop().unwrap();
                for (a, b) in v.iter_mut().zip(other) {
                    assert_eq!(a.len(), b.len());
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                }
            }
        }
    }
    v
}

/// Layer `i` on a batch, in f64.
fn layer64(
    i: usize,
    layer: &LayerInfo,
    params: &Params64,
    batch: Vec<Vec<f64>>,
    steps: u64,
) -> Vec<Vec<f64>> {
    let [c, h, w] = layer.input;
    let [_, oh, ow] = layer.output;
    match layer.kind {
        LayerKind::BatchNorm { eps } => {
            let hw = h * w;
            let count = (batch.len() * hw) as f64;
            let (gamma, beta) = (params.tensor(layer, "weight"), params.tensor(layer, "bias"));
            let mut out = batch.clone();
            for ch in 0..c {
                let values = || batch.iter().flat_map(|x| &x[ch * hw..(ch + 1) * hw]);
                let mean = values().sum::<f64>() / count;
                let var = values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count;
                let sd = (var + f64::from(eps)).sqrt();
                for y in &mut out {
                    for v in &mut y[ch * hw..(ch + 1) * hw] {
                        *v = (*v - mean) / sd * gamma[ch] + beta[ch];
                    }
                }
            }
            out
        }
        LayerKind::Dropout { p } => {
            let drop = kernels::Dropout {
                p,
                seed: steps,
                layer: i,
            };
            let scale = 1.0 / (1.0 - f64::from(p));
            batch
                .into_iter()
                .enumerate()
                .map(|(b, x)| {
                    let keep = |j: usize| drop.keeps(b, j);
                    x.iter()
                        .enumerate()
                        .map(|(j, &v)| if keep(j) { v * scale } else { 0.0 })
                        .collect()
                })
                .collect()
        }
        _ => batch
            .iter()
            .map(|v| image64(layer, params, v, [c, h, w], [oh, ow]))
            .collect(),
    }
}

/// A layer that works image by image on one image, in f64.
fn image64(
    layer: &LayerInfo,
    params: &Params64,
    v: &[f64],
    [c, h, w]: [usize; 3],
    [oh, ow]: [usize; 2],
) -> Vec<f64> {
    // The input index `o·s + k·d − p` along an axis of `n`, if inside.
    let at = |o: usize, k: usize, s: usize, d: usize, p: usize, n: usize| {
        (o * s + k * d).checked_sub(p).filter(|&i| i < n)
    };
    match layer.kind {
        LayerKind::Conv {
            k,
            f,
            s,
            p,
            d,
            g,
            bias,
        } => {
            let weight = params.tensor(layer, "weight");
            let bias = bias.then(|| params.tensor(layer, "bias"));
            let (cg, kg) = (c / g, k / g);
            let mut y = vec![0.0; k * oh * ow];
            for ko in 0..k {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = bias.map_or(0.0, |b| b[ko]);
                        for cj in 0..cg {
                            let ci = ko / kg * cg + cj;
                            for ky in 0..f[0] {
                                let Some(iy) = at(oy, ky, s[0], d[0], p[0], h) else {
                                    continue;
                                };
                                for kx in 0..f[1] {
                                    let Some(ix) = at(ox, kx, s[1], d[1], p[1], w) else {
                                        continue;
                                    };
                                    sum += v[(ci * h + iy) * w + ix]
                                        * weight[((ko * cg + cj) * f[0] + ky) * f[1] + kx];
                                }
                            }
                        }
                        y[(ko * oh + oy) * ow + ox] = sum;
                    }
                }
            }
            y
        }
        LayerKind::MaxPool { f, s, p } | LayerKind::AvgPool { f, s, p } => {
            let max = matches!(layer.kind, LayerKind::MaxPool { .. });
            let mut y = vec![0.0; c * oh * ow];
            for ci in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        // The taps inside the input: max pooling pads with
                        // −∞, average pooling with zeros counted in F·F.
                        let window = (0..f[0]).flat_map(|ky| {
                            (0..f[1]).filter_map(move |kx| {
                                Some((at(oy, ky, s[0], 1, p[0], h)?, at(ox, kx, s[1], 1, p[1], w)?))
                            })
                        });
                        let values = window.map(|(iy, ix)| v[(ci * h + iy) * w + ix]);
                        y[(ci * oh + oy) * ow + ox] = if max {
                            values.fold(f64::NEG_INFINITY, f64::max)
                        } else {
                            values.sum::<f64>() / (f[0] * f[1]) as f64
                        };
                    }
                }
            }
            y
        }
        LayerKind::GlobalAvgPool => v
            .chunks_exact(h * w)
            .map(|plane| plane.iter().sum::<f64>() / (h * w) as f64)
            .collect(),
        LayerKind::Activation(act) => v.iter().map(|&a| act64(act, a)).collect(),
        LayerKind::Flatten => v.to_vec(),
        LayerKind::Fc { n } => {
            let (weight, bias) = (params.tensor(layer, "weight"), params.tensor(layer, "bias"));
            let inputs = v.len();
            (0..n)
                .map(|o| {
                    bias[o]
                        + (0..inputs)
                            .map(|i| weight[o * inputs + i] * v[i])
                            .sum::<f64>()
                })
                .collect()
        }
        LayerKind::Softmax => softmax64(v),
        LayerKind::BatchNorm { .. } | LayerKind::Dropout { .. } => unreachable!("batch layers"),
    }
}

/// An activation of one value, in f64.
fn act64(act: Act, a: f64) -> f64 {
    let sigmoid = |a: f64| 1.0 / (1.0 + (-a).exp());
    match act {
        Act::Identity => a,
        Act::Relu => a.max(0.0),
        Act::Relu6 => a.clamp(0.0, 6.0),
        Act::LeakyRelu(slope) => {
            if a < 0.0 {
                f64::from(slope) * a
            } else {
                a
            }
        }
        Act::Sigmoid => sigmoid(a),
        Act::Tanh => a.tanh(),
        Act::Silu => a * sigmoid(a),
        Act::Gelu => a * 0.5 * (1.0 + erf64(a / std::f64::consts::SQRT_2)),
        Act::HardSwish => a * (a + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

fn softmax64(v: &[f64]) -> Vec<f64> {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = v.iter().map(|a| (a - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// The mean softmax cross-entropy of a batch in f64: of the logits, or of
/// the probabilities when the network ends in softmax.
fn mean_loss64<N: Network>(
    params: &Params64,
    images: &[Vec<f64>],
    labels: &[usize],
    steps: u64,
) -> f64 {
    let ends_in_softmax = match N::MODEL.graph.last() {
        Some(&Node::Layer(i)) => N::LAYERS[i].kind == LayerKind::Softmax,
        _ => false,
    };
    let outs = forward64(N::LAYERS, N::MODEL.graph, params, images, steps);
    let total: f64 = outs
        .iter()
        .zip(labels)
        .map(|(out, &label)| {
            if ends_in_softmax {
                -out[label].ln()
            } else {
                let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                max + out.iter().map(|a| (a - max).exp()).sum::<f64>().ln() - out[label]
            }
        })
        .sum();
    total / labels.len() as f64
}

/// Finite-difference step of the network check (f64).
const H: f64 = 1e-6;
/// Relative tolerance of a network's gradient entry.
const RTOL: f64 = 1e-4;
/// Absolute tolerance, as a fraction of the network's largest gradient.
const ATOL: f64 = 2e-6;
/// Images per batch: more than one chunk of `cnn_runtime::train::CHUNK`.
const BATCH: usize = 10;

/// Checks every parameter gradient of network `N` against central
/// differences of the f64 loss.
fn check<N: Trainable>(seed: u64) {
    check_at::<N>(seed, 0);
}

/// [`check`] with the parameters' `steps` count (dropout's seed) set to
/// `steps`. Batch norm's weights and biases are drawn at random around 1
/// and 0, so that they are not the identity.
fn check_at<N: Trainable>(seed: u64, steps: u64) {
    let mut rng = Rng(seed.wrapping_mul(7919).wrapping_add(1));
    let mut net = N::init(seed + 100);
    net.parameters_mut().set_steps(steps);
    for layer in N::LAYERS {
        if let LayerKind::BatchNorm { .. } = layer.kind {
            for (what, offset) in [("weight", 1.0), ("bias", 0.0)] {
                let tensor = net.parameters_mut().get_mut(&layer.tensor_name(what));
                for v in tensor.unwrap().data_mut() {
                    *v = offset + 0.5 * rng.value();
                }
            }
        }
    }
    let [c, h, w] = N::INPUT;
    let classes: usize = N::OUTPUT.iter().product();
    let x = Array4::from_shape_fn((BATCH, c, h, w), |_| rng.value());
    let labels: Vec<usize> = (0..BATCH).map(|_| rng.below(classes)).collect();
    let (loss, grads) = net.gradients(x.view(), &labels).unwrap();

    let images: Vec<Vec<f64>> = x
        .outer_iter()
        .map(|image| image.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let learnable: Vec<_> = net
        .parameters()
        .iter()
        .filter(|t| t.role() == TensorRole::Param)
        .collect();
    assert_eq!(
        grads.len(),
        learnable.len(),
        "{}: one gradient per learnable tensor",
        N::NAME
    );
    let mut params = Params64(
        learnable
            .iter()
            .map(|t| {
                let values = t.data().iter().map(|&v| f64::from(v)).collect();
                (t.name().to_string(), values)
            })
            .collect(),
    );
    let l0 = mean_loss64::<N>(&params, &images, &labels, steps);
    assert!(
        (f64::from(loss) - l0).abs() <= 1e-5 * (1.0 + l0),
        "{}: loss {loss}, f64 reference {l0}",
        N::NAME
    );

    // Central differences of every parameter; `None` where a kink was crossed.
    let mut fds: Vec<Vec<Option<f64>>> = Vec::new();
    for t in 0..params.0.len() {
        let mut row = Vec::with_capacity(params.0[t].1.len());
        for j in 0..params.0[t].1.len() {
            let orig = params.0[t].1[j];
            params.0[t].1[j] = orig + H;
            let plus = mean_loss64::<N>(&params, &images, &labels, steps);
            params.0[t].1[j] = orig - H;
            let minus = mean_loss64::<N>(&params, &images, &labels, steps);
            params.0[t].1[j] = orig;
            let (right, left) = ((plus - l0) / H, (l0 - minus) / H);
            let kink = (right - left).abs() > 1e-4 * (1.0 + right.abs().max(left.abs()));
            row.push((!kink).then_some((plus - minus) / (2.0 * H)));
        }
        fds.push(row);
    }
    let scale = fds
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{}: every gradient is zero", N::NAME);
    let (mut checked, mut kinks, mut worst) = (0usize, 0usize, 0.0f64);
    for ((name, _), row) in params.0.iter().zip(fds) {
        let got = grads.get(name).unwrap();
        for (j, fd) in row.into_iter().enumerate() {
            let Some(fd) = fd else {
                kinks += 1;
                continue;
            };
            let g = f64::from(got[j]);
            let tol = RTOL * fd.abs() + ATOL * scale + 1e-7;
            assert!(
                (g - fd).abs() <= tol,
                "{}: {name}[{j}] is {g}, finite differences give {fd} (tolerance {tol:e})",
                N::NAME,
            );
            worst = worst.max((g - fd).abs() / tol);
            checked += 1;
        }
    }
    assert!(
        kinks * 100 <= checked + kinks,
        "{}: {kinks} kinks in {checked}",
        N::NAME
    );
    eprintln!(
        "{}: {checked} gradients agree ({kinks} kinks skipped), worst error {worst:.3} of the tolerance",
        N::NAME
    );
}

/// One small network per modern layer kind or option, each checked
/// against finite differences.
mod modern {
    use super::{check, check_at};

    cnn::network! {
        struct Dilated { input(2, 7, 7) conv(3, 3, d = 2, p = 1) relu conv(2, (2, 3), d = (2, 1), s = (1, 2)) fc(3) }
        struct Grouped { input(4, 5, 5) conv(6, 3, g = 2, p = 1) tanh conv(4, 1, g = 2) fc(3) }
        struct Depthwise { input(3, 6, 6) conv(3, 3, g = 3, p = 1, bias = false) sigmoid conv(6, 3, s = 2, g = 3, floor) fc(2) }
        struct BiasFree { input(2, 5, 5) conv(3, 3, bias = false) relu conv(2, 3, p = 1, bias = false) fc(3) }
        struct PaddedMaxPool { input(2, 6, 6) conv(3, 3, p = 1) pool(3, 2, p = 1, floor) fc(3) }
        struct PaddedAvgPool { input(2, 6, 6) conv(3, 3, p = 1) avgpool(3, 2, p = 1, floor) avgpool(2, 1, p = 1) fc(3) }
        struct GlobalPool { input(2, 5, 5) conv(4, 3, p = 1) tanh global_avgpool fc(3) }
        struct Relu6Net { input(2, 4, 4) conv(3, 3, p = 1) relu6 fc(3) }
        struct LeakyNet { input(2, 4, 4) conv(3, 3, p = 1) leaky_relu(0.2) fc(3) }
        struct LeakyDefaultNet { input(2, 4, 4) conv(3, 3, p = 1) leaky_relu fc(3) }
        struct SiluNet { input(2, 4, 4) conv(3, 3, p = 1) silu fc(3) }
        struct GeluNet { input(2, 4, 4) conv(3, 3, p = 1) gelu fc(3) }
        struct HardSwishNet { input(2, 4, 4) conv(3, 3, p = 1) hardswish fc(3) }
        struct SigmoidNet { input(2, 4, 4) conv(3, 3, p = 1) sigmoid fc(3) }
        struct TanhNet { input(2, 4, 4) conv(3, 3, p = 1) tanh fc(3) }
        struct ReluNet { input(2, 4, 4) conv(3, 3, p = 1) relu fc(3) }
        struct ConvBn { input(2, 5, 5) conv(3, 3, p = 1) bn relu fc(3) }
        struct FcBn { input(2, 3, 3) fc(6) bn(eps = 1e-3) tanh fc(3) }
        struct Identity {
            input(2, 5, 5)
            conv(3, 3, p = 1)
            residual(relu) { conv(3, 3, p = 1) bn relu conv(3, 3, p = 1, bias = false) bn }
            fc(3)
        }
        struct Shortcut {
            input(2, 6, 6)
            residual(relu) { conv(4, 3, s = 2, p = 1, floor) bn relu conv(4, 3, p = 1) }
                shortcut { conv(4, 1, s = 2, bias = false, floor) bn }
            global_avgpool
            fc(3)
        }
        struct FromInput {
            input(2, 4, 4)
            residual { conv(2, 3, p = 1) tanh }
            residual { residual { conv(2, 1) } }
            fc(3) softmax
        }
        struct Dropped { input(2, 4, 4) conv(3, 3, p = 1) relu dropout(0.3) fc(4) dropout(0.5) fc(3) }
    }

    #[test]
    fn dilated_conv() {
        check::<Dilated>(1);
    }

    #[test]
    fn grouped_conv() {
        check::<Grouped>(2);
    }

    #[test]
    fn depthwise_conv_without_bias() {
        check::<Depthwise>(3);
    }

    #[test]
    fn conv_without_bias() {
        check::<BiasFree>(4);
    }

    #[test]
    fn padded_max_pool() {
        check::<PaddedMaxPool>(5);
    }

    #[test]
    fn padded_avg_pool() {
        check::<PaddedAvgPool>(6);
    }

    #[test]
    fn global_avg_pool() {
        check::<GlobalPool>(7);
    }

    #[test]
    fn activations() {
        check::<Relu6Net>(8);
        check::<LeakyNet>(9);
        check::<LeakyDefaultNet>(10);
        check::<SiluNet>(11);
        check::<GeluNet>(12);
        check::<HardSwishNet>(13);
        check::<SigmoidNet>(14);
        check::<TanhNet>(15);
        check::<ReluNet>(16);
    }

    #[test]
    fn batch_norm_after_a_conv() {
        check::<ConvBn>(17);
    }

    #[test]
    fn batch_norm_after_an_fc() {
        check::<FcBn>(18);
    }

    #[test]
    fn residual_without_a_shortcut() {
        check::<Identity>(19);
        check::<FromInput>(20);
    }

    #[test]
    fn residual_with_a_shortcut() {
        check::<Shortcut>(21);
    }

    #[test]
    fn dropout_with_fixed_seeds() {
        for steps in [0, 7] {
            check_at::<Dropped>(22, steps);
        }
    }
}

// ---------------------------------------------------------------------------
// Kernel cores with random shapes.

/// `|got − want| ≤ 1e-4 · scale + 1e-6`, where `scale` is the sum of the
/// magnitudes of the terms of `want` (the f32 rounding bound of such a sum).
fn close(got: f32, want: f64, scale: f64) -> bool {
    (f64::from(got) - want).abs() <= 1e-4 * scale + 1e-6
}

fn dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(s, m), (&x, &y)| {
        let p = f64::from(x) * f64::from(y);
        (s + p, m + p.abs())
    })
}

/// The error function in f64: its Maclaurin series below 2.5, the
/// continued fraction of erfc above (both to about 1e-14).
fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        let (mut term, mut sum) = (a, a);
        for n in 1..200 {
            term *= -a * a / f64::from(n);
            sum += term / f64::from(2 * n + 1);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut frac = a;
        for k in (1..80).rev() {
            frac = a + f64::from(k) / 2.0 / frac;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / frac
    };
    r.copysign(x)
}

fn basis(len: usize, j: usize) -> Vec<f32> {
    let mut e = vec![0.0; len];
    e[j] = 1.0;
    e
}

prop_compose! {
    /// A convolution with stride, padding, dilation and groups, its output
    /// rounded down as PyTorch does.
    fn conv_shape()(
        g in 1usize..=3, cg in 1usize..=2, kg in 1usize..=2, h in 1usize..8, w in 1usize..8,
        fh in 1usize..4, fw in 1usize..4, sh in 1usize..4, sw in 1usize..4,
        ph in 0usize..3, pw in 0usize..3, dh in 1usize..=2, dw in 1usize..=2,
    ) -> ConvShape {
        // The filter's extent, D·(F − 1) + 1, fits the input.
        let (eh, ew) = (dh * (fh - 1) + 1, dw * (fw - 1) + 1);
        let (h, w) = (h.max(eh), w.max(ew));
        let out = |len, f, s, p| window_out_floor(len, f, s, p).unwrap_or(0);
        let o = [out(h, eh, sh, ph), out(w, ew, sw, pw)];
        ConvShape {
            d: [dh, dw],
            g,
            ..ConvShape::plain(g * cg, [h, w], g * kg, [fh, fw], [sh, sw], [ph, pw], o)
        }
    }
}

prop_compose! {
    /// A pooling window, padded by at most half of it (PyTorch's rule, so
    /// that every window holds an input value).
    fn window(max_c: usize)(
        c in 1..=max_c, h in 1usize..8, w in 1usize..8,
        fh in 1usize..4, fw in 1usize..4, sh in 1usize..4, sw in 1usize..4,
        ph in 0usize..3, pw in 0usize..3,
    ) -> reference::Window {
        let (h, w) = (h.max(fh), w.max(fw));
        let (ph, pw) = (ph.min(fh / 2), pw.min(fw / 2));
        // PyTorch's rounding: the last rows and columns no window reaches
        // are dropped.
        let out = |len, f, s, p| window_out_floor(len, f, s, p).unwrap_or(0);
        let o = [out(h, fh, sh, ph), out(w, fw, sw, pw)];
        reference::Window { c, h, w, f: [fh, fw], s: [sh, sw], p: [ph, pw], o }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv_backward_is_the_adjoint_of_the_reference(shape in conv_shape(), with_bias: bool, n in 1usize..3, seed: u64) {
        let mut rng = Rng(seed);
        let (k, [oh, ow]) = (shape.k, shape.o);
        let (in_len, out_len) = (shape.c * shape.h * shape.w, k * oh * ow);
        let taps = shape.c / shape.g * shape.f[0] * shape.f[1];
        let x = rng.values(n * in_len);
        let weight = rng.values(k * taps);
        let dy = rng.values(n * out_len);
        let mut dweight = vec![0.0; k * taps];
        let mut dbias = vec![0.0; k];
        let mut dx = vec![f32::NAN; n * in_len];
        let mut cols = vec![0.0; kernels::conv_cols_len(&shape)];
        let db = with_bias.then_some(&mut dbias[..]);
        kernels::conv_backward_with(shape, n, &x, &dy, &weight, &mut dweight, db, Some(&mut dx), &mut cols);

        let conv = |x: &[f32], weight: &[f32], bias: Option<&[f32]>| {
            let mut y = vec![0.0; out_len];
            reference::conv2d(shape, x, weight, bias, &mut y, Act::Identity);
            y
        };
        let zeros_in = vec![0.0; in_len];
        let zeros_w = vec![0.0; k * taps];
        for (j, &got) in dweight.iter().enumerate() {
            let e = basis(k * taps, j);
            let (want, scale) = (0..n).fold((0.0, 0.0), |(s, m), b| {
                let (d, a) = dot(&dy[b * out_len..][..out_len], &conv(&x[b * in_len..][..in_len], &e, None));
                (s + d, m + a)
            });
            prop_assert!(close(got, want, scale), "dweight[{j}] {got} vs {want}");
        }
        for (j, &got) in dbias.iter().enumerate() {
            if !with_bias {
                prop_assert_eq!(got, 0.0, "no bias, no gradient");
                continue;
            }
            let y = conv(&zeros_in, &zeros_w, Some(&basis(k, j)));
            let (want, scale) = (0..n).fold((0.0, 0.0), |(s, m), b| {
                let (d, a) = dot(&dy[b * out_len..][..out_len], &y);
                (s + d, m + a)
            });
            prop_assert!(close(got, want, scale), "dbias[{j}] {got} vs {want}");
        }
        for b in 0..n {
            for j in 0..in_len {
                let (want, scale) = dot(&dy[b * out_len..][..out_len], &conv(&basis(in_len, j), &weight, None));
                prop_assert!(close(dx[b * in_len + j], want, scale), "dx[{b}, {j}] {} vs {want}", dx[b * in_len + j]);
            }
        }
        // The forward kernel agrees with the reference too.
        let bias = rng.values(k);
        let bias = with_bias.then_some(&bias[..]);
        let mut y = vec![f32::NAN; n * out_len];
        kernels::conv_forward_with(shape, n, &x, &weight, bias, &mut y, &mut cols);
        for b in 0..n {
            let want = conv(&x[b * in_len..][..in_len], &weight, bias);
            for (j, (&g, &r)) in y[b * out_len..][..out_len].iter().zip(&want).enumerate() {
                prop_assert!((g - r).abs() <= 1e-5 * (1.0 + r.abs()), "y[{b}, {j}] {g} vs {r}");
            }
        }
    }

    #[test]
    fn fc_backward_is_the_adjoint_of_the_reference(inputs in 1usize..20, outputs in 1usize..8, n in 1usize..5, seed: u64) {
        let mut rng = Rng(seed);
        let x = rng.values(n * inputs);
        let weight = rng.values(outputs * inputs);
        let dy = rng.values(n * outputs);
        let mut dweight = vec![0.0; outputs * inputs];
        let mut dbias = vec![0.0; outputs];
        let mut dx = vec![f32::NAN; n * inputs];
        kernels::fc_backward_with(inputs, outputs, n, &x, &dy, &weight, &mut dweight, &mut dbias, Some(&mut dx));
        let fc = |x: &[f32], weight: &[f32], bias: &[f32]| {
            let mut y = vec![0.0; outputs];
            reference::fc(x, weight, bias, &mut y, Act::Identity);
            y
        };
        let zeros_b = vec![0.0; outputs];
        for (j, &got) in dweight.iter().enumerate() {
            let e = basis(outputs * inputs, j);
            let (want, scale) = (0..n).fold((0.0, 0.0), |(s, m), b| {
                let (d, a) = dot(&dy[b * outputs..][..outputs], &fc(&x[b * inputs..][..inputs], &e, &zeros_b));
                (s + d, m + a)
            });
            prop_assert!(close(got, want, scale), "dweight[{j}] {got} vs {want}");
        }
        for j in 0..outputs {
            let want: f64 = (0..n).map(|b| f64::from(dy[b * outputs + j])).sum();
            let scale: f64 = (0..n).map(|b| f64::from(dy[b * outputs + j].abs())).sum();
            prop_assert!(close(dbias[j], want, scale));
        }
        for b in 0..n {
            for j in 0..inputs {
                let (want, scale) = dot(&dy[b * outputs..][..outputs], &fc(&basis(inputs, j), &weight, &zeros_b));
                prop_assert!(close(dx[b * inputs + j], want, scale));
            }
        }
        let bias = rng.values(outputs);
        let mut y = vec![0.0; n * outputs];
        kernels::fc_forward_with(inputs, outputs, n, &x, &weight, &bias, &mut y);
        for b in 0..n {
            let want = fc(&x[b * inputs..][..inputs], &weight, &bias);
            for (&g, &r) in y[b * outputs..][..outputs].iter().zip(&want) {
                prop_assert!((g - r).abs() <= 1e-5 * (1.0 + r.abs()));
            }
        }
    }

    #[test]
    fn pooling_backward_matches_the_reference(win in window(2), n in 1usize..3, seed: u64) {
        let mut rng = Rng(seed);
        let [oh, ow] = win.out();
        let (in_len, out_len) = (win.c * win.h * win.w, win.c * oh * ow);
        // Distinct values 1/64 apart, so that no window has a tie.
        let mut order: Vec<usize> = (0..n * in_len).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let x: Vec<f32> = order.iter().map(|&k| (k as f32 - 40.0) / 64.0).collect();
        let dy = rng.values(n * out_len);

        let mut dx = vec![f32::NAN; n * in_len];
        kernels::max_pool_backward_with(win, n, &x, &dy, &mut dx);
        let step = 1.0 / 256.0;
        let max_pool = |x: &[f32]| {
            let mut y = vec![0.0; out_len];
            reference::max_pool(win, x, &mut y);
            y
        };
        for b in 0..n {
            let xb = &x[b * in_len..][..in_len];
            for j in 0..in_len {
                let (mut plus, mut minus) = (xb.to_vec(), xb.to_vec());
                plus[j] += step;
                minus[j] -= step;
                let diff: Vec<f32> = max_pool(&plus).iter().zip(max_pool(&minus)).map(|(p, m)| (p - m) / (2.0 * step)).collect();
                let (want, scale) = dot(&dy[b * out_len..][..out_len], &diff);
                prop_assert!(close(dx[b * in_len + j], want, scale), "max dx[{b}, {j}] {} vs {want}", dx[b * in_len + j]);
            }
        }
        let mut y = vec![0.0; n * out_len];
        kernels::max_pool_forward_with(win, n, &x, &mut y);
        for b in 0..n {
            prop_assert_eq!(&y[b * out_len..][..out_len], &max_pool(&x[b * in_len..][..in_len])[..]);
        }

        let mut dx = vec![f32::NAN; n * in_len];
        kernels::avg_pool_backward_with(win, n, &dy, &mut dx);
        for b in 0..n {
            for j in 0..in_len {
                let mut y = vec![0.0; out_len];
                reference::avg_pool(win, &basis(in_len, j), &mut y);
                let (want, scale) = dot(&dy[b * out_len..][..out_len], &y);
                prop_assert!(close(dx[b * in_len + j], want, scale), "avg dx[{b}, {j}] {} vs {want}", dx[b * in_len + j]);
            }
        }
        let mut y = vec![f32::NAN; n * out_len];
        kernels::avg_pool_forward_with(win, n, &x, &mut y);
        for b in 0..n {
            let mut want = vec![0.0; out_len];
            reference::avg_pool(win, &x[b * in_len..][..in_len], &mut want);
            for (&g, &r) in y[b * out_len..][..out_len].iter().zip(&want) {
                prop_assert!((g - r).abs() <= 1e-6, "avg y {g} vs {r}");
            }
        }

        // Global average pooling: linear, its adjoint spreads dy/(H·W).
        let (c, hw) = (win.c, win.h * win.w);
        let dy = rng.values(n * c);
        let mut dx = vec![f32::NAN; n * in_len];
        kernels::global_avg_pool_backward_with(c, hw, n, &dy, &mut dx);
        let mut y = vec![f32::NAN; n * c];
        kernels::global_avg_pool_forward_with(c, hw, n, &x, &mut y);
        for b in 0..n {
            let mut want = vec![0.0; c];
            reference::global_avg_pool(c, hw, &x[b * in_len..][..in_len], &mut want);
            for (&g, &r) in y[b * c..][..c].iter().zip(&want) {
                prop_assert!((g - r).abs() <= 1e-6, "global y {g} vs {r}");
            }
            for j in 0..in_len {
                let mut y = vec![0.0; c];
                reference::global_avg_pool(c, hw, &basis(in_len, j), &mut y);
                let (want, scale) = dot(&dy[b * c..][..c], &y);
                prop_assert!(close(dx[b * in_len + j], want, scale), "global dx[{b}, {j}]");
            }
        }
    }

    #[test]
    fn activation_and_softmax_backward_match_f64_formulas(len in 1usize..12, n in 1usize..4, seed: u64) {
        let mut rng = Rng(seed);
        let x: Vec<f32> = rng.values(n * len).iter().map(|v| 3.0 * v).collect();
        let dy = rng.values(n * len);
        let acts = [
            Act::Relu, Act::Relu6, Act::LeakyRelu(0.1), Act::Sigmoid, Act::Tanh, Act::Silu,
            Act::Gelu, Act::HardSwish,
        ];
        // Inputs up to ±12, past relu6's and hardswish's kinks.
        let x: Vec<f32> = x.iter().map(|v| 4.0 * v).collect();
        for act in acts {
            let y: Vec<f32> = x.iter().map(|&v| act.apply(v)).collect();
            let mut dx = vec![f32::NAN; n * len];
            kernels::activate_backward_with(n * len, act, (&x, &y), &dy, &mut dx);
            for j in 0..n * len {
                let a = f64::from(x[j]);
                let sigmoid = |a: f64| 1.0 / (1.0 + (-a).exp());
                let derivative = match act {
                    Act::Relu => f64::from(u8::from(a > 0.0)),
                    Act::Relu6 => f64::from(u8::from(a > 0.0 && a < 6.0)),
                    Act::LeakyRelu(slope) => if a > 0.0 { 1.0 } else { f64::from(slope) },
                    Act::Sigmoid => sigmoid(a) * (1.0 - sigmoid(a)),
                    Act::Tanh => 1.0 - a.tanh().powi(2),
                    Act::Silu => sigmoid(a) + a * sigmoid(a) * (1.0 - sigmoid(a)),
                    // d/dx of x·Φ(x), Φ from the test's own erf.
                    Act::Gelu => {
                        0.5 * (1.0 + erf64(a / std::f64::consts::SQRT_2))
                            + a * (-a * a / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
                    }
                    Act::HardSwish => if a < -3.0 { 0.0 } else if a <= 3.0 { a / 3.0 + 0.5 } else { 1.0 },
                    Act::Identity => 1.0,
                };
                let want = f64::from(dy[j]) * derivative;
                prop_assert!((f64::from(dx[j]) - want).abs() <= 1e-6, "{act:?} at {a}: dx[{j}] {} vs {want}", dx[j]);
            }
        }
        let mut dx = vec![f32::NAN; n * len];
        let labels: Vec<usize> = (0..n).map(|_| rng.below(len)).collect();
        let mut dlogits = vec![f32::NAN; n * len];
        let scale = 0.25;
        let total = loss::softmax_cross_entropy_with(len, n, &x, &labels, scale, &mut dlogits);
        let mut want_total = 0.0;
        for b in 0..n {
            let xb: Vec<f64> = x[b * len..][..len].iter().map(|&v| f64::from(v)).collect();
            let p = softmax64(&xb);
            want_total -= p[labels[b]].ln();
            for j in 0..len {
                let onehot = f64::from(u8::from(j == labels[b]));
                let want = f64::from(scale) * (p[j] - onehot);
                prop_assert!((f64::from(dlogits[b * len + j]) - want).abs() <= 1e-6);
            }
        }
        prop_assert!((total - want_total).abs() <= 1e-5 * (1.0 + want_total.abs()));

        let mut y = vec![0.0; n * len];
        for b in 0..n {
            let mut yb = x[b * len..][..len].to_vec();
            reference::softmax(&mut yb);
            y[b * len..][..len].copy_from_slice(&yb);
        }
        kernels::softmax_backward_with(len, n, &y, &dy, &mut dx);
        for b in 0..n {
            let xb: Vec<f64> = x[b * len..][..len].iter().map(|&v| f64::from(v)).collect();
            let p = softmax64(&xb);
            for j in 0..len {
                let want: f64 = (0..len)
                    .map(|i| f64::from(dy[b * len + i]) * p[i] * (f64::from(u8::from(i == j)) - p[j]))
                    .sum();
                prop_assert!((f64::from(dx[b * len + j]) - want).abs() <= 1e-6, "softmax dx[{b}, {j}] {} vs {want}", dx[b * len + j]);
            }
        }
    }
}

/// The derivatives at the kinks are PyTorch's: relu′(0) = 0, relu6′ = 0 at
/// 0 and 6, leaky relu′(0) = slope, hard swish′ = x/3 + 1/2 at −3 and 3.
#[test]
fn activation_derivatives_at_the_kinks_are_pytorchs() {
    let cases = [
        (Act::Relu, 0.0, 0.0),
        (Act::Relu6, 0.0, 0.0),
        (Act::Relu6, 6.0, 0.0),
        (Act::LeakyRelu(0.2), 0.0, 0.2),
        (Act::HardSwish, -3.0, -0.5),
        (Act::HardSwish, 3.0, 1.5),
    ];
    for (act, x, want) in cases {
        let mut dx = [f32::NAN];
        kernels::activate_backward_with(1, act, (&[x], &[act.apply(x)]), &[1.0], &mut dx);
        assert_eq!(dx[0], want, "{act:?} at {x}");
    }
}

//! ResNet-18 and MobileNetV2 as torchvision writes them: their parameter
//! counts are torchvision's, their tensors carry torchvision's names, and
//! their forward pass (batch norm folded, residual adds fused, depthwise
//! kernels) agrees with the plain interpreter on random weights and
//! running statistics.

use cnn::{Network, TensorRole};
use cnn_runtime::reference_forward;
use ndarray::Array4;

#[path = "../benches/common/modern.rs"]
mod modern;

use modern::{MobileNetV2, ResNet18};

// torchvision's counts: `sum(p.numel() for p in model.parameters())`.
const _: () = assert!(ResNet18::PARAMS == 11_689_512);
const _: () = assert!(MobileNetV2::PARAMS == 3_504_872);

/// SplitMix64: a small deterministic source of test values.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

/// `N` with PyTorch's initialisation and batch norms that are not the
/// identity: weights around 1, shifts, running means and variances drawn
/// at random, so that folding them has something to get wrong.
fn random<N: Network>(seed: u64) -> N {
    let mut net = N::init(seed);
    let mut rng = Rng(seed);
    let bn_tensors: Vec<String> = N::LAYERS
        .iter()
        .filter(|l| matches!(l.kind, cnn::LayerKind::BatchNorm { .. }))
        .map(|l| l.path.to_string())
        .collect();
    for tensor in net.parameters_mut().iter_mut() {
        let name = tensor.name().to_string();
        let Some((layer, what)) = name.rsplit_once('.') else {
            continue;
        };
        if !bn_tensors.iter().any(|b| b == layer) {
            continue;
        }
        let (lo, hi) = match what {
            "weight" => (0.5, 1.5),
            "running_var" => (0.5, 2.0),
            _ => (-0.3, 0.3),
        };
        assert!(what != "weight" || tensor.role() == TensorRole::Param);
        for v in tensor.data_mut() {
            *v = rng.uniform(lo, hi);
        }
    }
    net
}

/// The largest difference from the interpreter, relative to the largest
/// output of the interpreter.
fn check<N: Network>(seed: u64, images: usize) {
    let net = random::<N>(seed);
    let [c, h, w] = N::INPUT;
    let mut rng = Rng(seed ^ 0x5eed);
    let x = Array4::from_shape_simple_fn((images, c, h, w), || rng.uniform(-1.0, 1.0));
    let got = net.forward_batch(x.view()).expect("forward_batch");
    for (i, image) in x.outer_iter().enumerate() {
        let flat: Vec<f32> = image.iter().copied().collect();
        let want = reference_forward::forward(N::LAYERS, N::MODEL.graph, net.parameters(), &flat);
        let got: Vec<f32> = got
            .index_axis(ndarray::Axis(0), i)
            .iter()
            .copied()
            .collect();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "{}: outputs vanish ({scale})", N::NAME);
        for (j, (&g, &r)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - r).abs() <= 1e-4 * scale,
                "{} image {i} output {j}: {g}, the interpreter gives {r} (scale {scale})",
                N::NAME
            );
        }
    }
}

#[test]
fn resnet18_agrees_with_the_interpreter() {
    check::<ResNet18>(18, 2);
}

#[test]
fn mobilenet_v2_agrees_with_the_interpreter() {
    check::<MobileNetV2>(2, 2);
}

#[test]
fn tensors_carry_torchvision_names() {
    let resnet = ResNet18::zeros();
    let names: Vec<&str> = resnet.parameters().iter().map(|t| t.name()).collect();
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_mean",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.contains(&name), "no `{name}`");
    }
    assert_eq!(resnet.parameters().counters().len(), 20);
    assert_eq!(
        resnet
            .parameters()
            .counter("layer3.1.bn1.num_batches_tracked"),
        Some(0)
    );
    let mobilenet = MobileNetV2::zeros();
    let names: Vec<&str> = mobilenet.parameters().iter().map(|t| t.name()).collect();
    for name in [
        "features.0.0.weight",
        "features.1.conv.0.0.weight",
        "features.1.conv.2.running_var",
        "features.3.conv.1.0.weight",
        "features.17.conv.3.bias",
        "features.18.1.weight",
        "classifier.1.weight",
    ] {
        assert!(names.contains(&name), "no `{name}`");
    }
    // Depthwise: one input channel per filter.
    let dw = mobilenet
        .parameters()
        .get("features.3.conv.1.0.weight")
        .unwrap();
    assert_eq!(dw.shape(), &[144, 1, 3, 3]);
}

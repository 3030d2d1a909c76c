//! The benchmark networks (six small ones, ResNet-18 and MobileNetV2), shared by the criterion benchmarks
//! (`benches/networks.rs`) and the comparison against onnxruntime
//! (`examples/bench_networks.rs`, driven by `benches/compare.py`).
//!
//! Include it with `#[path = "…/benches/common/nets.rs"] mod nets;` and walk
//! the set with [`for_each`], which hands every network to a [`Visit`] as a
//! type parameter, so each one runs its own monomorphised forward pass.

use cnn::Network;

cnn::network! {
    /// B1: the lecture notes' network, one 5×5 conv, a pool and a classifier.
    pub struct Seed {
        input(3, 32, 32)
        conv(10, 5, s = 1, p = 2) relu pool(2, 2)
        fc(10)
    }

    /// B2: LeNet-5 on 28×28 digits.
    pub struct Lenet5 {
        input(1, 28, 28)
        conv(6, 5, p = 2) relu pool(2, 2)
        conv(16, 5) relu pool(2, 2)
        fc(120) relu fc(84) relu fc(10)
    }

    /// B3: a small VGG-style classifier for CIFAR-10.
    pub struct CifarVgg {
        input(3, 32, 32)
        conv(32, 3, p = 1) relu conv(32, 3, p = 1) relu pool(2, 2)
        conv(64, 3, p = 1) relu conv(64, 3, p = 1) relu pool(2, 2)
        conv(128, 3, p = 1) relu pool(2, 2)
        fc(256) relu fc(10)
    }

    /// B4: AlexNet's first layer: 96 11×11 filters at stride 4, then pooling.
    pub struct AlexnetConv1 {
        input(3, 227, 227)
        conv(96, 11, s = 4) relu pool(3, 2)
    }

    /// B5: one 3×3 convolution of a VGG block at 56×56.
    pub struct VggBlock {
        input(64, 56, 56)
        conv(64, 3, p = 1) relu
    }

    /// B6: a 1×1 (pointwise) convolution reducing 256 channels to 64.
    pub struct Pointwise {
        input(256, 14, 14)
        conv(64, 1) relu
    }
}

/// Something done to each benchmark network in turn.
pub trait Visit {
    /// Called once per network with its id (`"B1"`…) and short name.
    fn visit<N: Network>(&mut self, id: &'static str, name: &'static str);
}

#[path = "modern.rs"]
mod modern;

pub use modern::{MobileNetV2, ResNet18};

/// Hands every benchmark network to `v`, B1 to B6 then R1 (ResNet-18) and
/// R2 (MobileNetV2), in order.
pub fn for_each(v: &mut impl Visit) {
    v.visit::<Seed>("B1", "seed");
    v.visit::<Lenet5>("B2", "lenet5");
    v.visit::<CifarVgg>("B3", "cifar-vgg");
    v.visit::<AlexnetConv1>("B4", "alexnet-conv1");
    v.visit::<VggBlock>("B5", "vgg-block");
    v.visit::<Pointwise>("B6", "pointwise");
    v.visit::<ResNet18>("R1", "resnet18");
    v.visit::<MobileNetV2>("R2", "mobilenet-v2");
}

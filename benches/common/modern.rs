//! ResNet-18 and MobileNetV2 as torchvision writes them, with its
//! state-dict names: a torchvision checkpoint saved as safetensors loads
//! into these with no renaming. Shared by the tests, the benchmarks and the
//! comparison against onnxruntime.
//!
//! Include it with `#[path = "…/benches/common/modern.rs"] mod modern;`.

cnn::network! {
    /// ResNet-18 (He et al. 2015), torchvision's `resnet18`: 11,689,512
    /// parameters, 1.81 G multiply-accumulates per 224×224 image.
    pub struct ResNet18 {
        input(3, 224, 224)
        conv1: conv(64, 7, s = 2, p = 3, bias = false, floor) bn1: bn relu
        maxpool: pool(3, 2, p = 1, floor)
        layer1: {
            residual(relu) {
                conv1: conv(64, 3, p = 1, bias = false) bn1: bn relu
                conv2: conv(64, 3, p = 1, bias = false) bn2: bn
            }
            residual(relu) {
                conv1: conv(64, 3, p = 1, bias = false) bn1: bn relu
                conv2: conv(64, 3, p = 1, bias = false) bn2: bn
            }
        }
        layer2: {
            residual(relu) {
                conv1: conv(128, 3, s = 2, p = 1, bias = false, floor) bn1: bn relu
                conv2: conv(128, 3, p = 1, bias = false) bn2: bn
            } shortcut {
                downsample: { conv(128, 1, s = 2, bias = false, floor) bn }
            }
            residual(relu) {
                conv1: conv(128, 3, p = 1, bias = false) bn1: bn relu
                conv2: conv(128, 3, p = 1, bias = false) bn2: bn
            }
        }
        layer3: {
            residual(relu) {
                conv1: conv(256, 3, s = 2, p = 1, bias = false, floor) bn1: bn relu
                conv2: conv(256, 3, p = 1, bias = false) bn2: bn
            } shortcut {
                downsample: { conv(256, 1, s = 2, bias = false, floor) bn }
            }
            residual(relu) {
                conv1: conv(256, 3, p = 1, bias = false) bn1: bn relu
                conv2: conv(256, 3, p = 1, bias = false) bn2: bn
            }
        }
        layer4: {
            residual(relu) {
                conv1: conv(512, 3, s = 2, p = 1, bias = false, floor) bn1: bn relu
                conv2: conv(512, 3, p = 1, bias = false) bn2: bn
            } shortcut {
                downsample: { conv(512, 1, s = 2, bias = false, floor) bn }
            }
            residual(relu) {
                conv1: conv(512, 3, p = 1, bias = false) bn1: bn relu
                conv2: conv(512, 3, p = 1, bias = false) bn2: bn
            }
        }
        avgpool: global_avgpool
        fc: fc(1000)
    }

    /// MobileNetV2 (Sandler et al. 2018), torchvision's `mobilenet_v2`:
    /// inverted residual blocks of a 1×1 expansion, a 3×3 depthwise
    /// convolution and a linear 1×1 projection; 3,504,872 parameters.
    pub struct MobileNetV2 {
        input(3, 224, 224)
        features: {
            0: { conv(32, 3, s = 2, p = 1, bias = false, floor) bn relu6 }
            1: { conv: {
                0: { conv(32, 3, p = 1, g = 32, bias = false) bn relu6 }
                1: conv(16, 1, bias = false)
                2: bn
            } }
            2: { conv: {
                0: { conv(96, 1, bias = false) bn relu6 }
                1: { conv(96, 3, s = 2, p = 1, g = 96, bias = false, floor) bn relu6 }
                2: conv(24, 1, bias = false)
                3: bn
            } }
            3: residual { conv: {
                0: { conv(144, 1, bias = false) bn relu6 }
                1: { conv(144, 3, p = 1, g = 144, bias = false) bn relu6 }
                2: conv(24, 1, bias = false)
                3: bn
            } }
            4: { conv: {
                0: { conv(144, 1, bias = false) bn relu6 }
                1: { conv(144, 3, s = 2, p = 1, g = 144, bias = false, floor) bn relu6 }
                2: conv(32, 1, bias = false)
                3: bn
            } }
            5: residual { conv: {
                0: { conv(192, 1, bias = false) bn relu6 }
                1: { conv(192, 3, p = 1, g = 192, bias = false) bn relu6 }
                2: conv(32, 1, bias = false)
                3: bn
            } }
            6: residual { conv: {
                0: { conv(192, 1, bias = false) bn relu6 }
                1: { conv(192, 3, p = 1, g = 192, bias = false) bn relu6 }
                2: conv(32, 1, bias = false)
                3: bn
            } }
            7: { conv: {
                0: { conv(192, 1, bias = false) bn relu6 }
                1: { conv(192, 3, s = 2, p = 1, g = 192, bias = false, floor) bn relu6 }
                2: conv(64, 1, bias = false)
                3: bn
            } }
            8: residual { conv: {
                0: { conv(384, 1, bias = false) bn relu6 }
                1: { conv(384, 3, p = 1, g = 384, bias = false) bn relu6 }
                2: conv(64, 1, bias = false)
                3: bn
            } }
            9: residual { conv: {
                0: { conv(384, 1, bias = false) bn relu6 }
                1: { conv(384, 3, p = 1, g = 384, bias = false) bn relu6 }
                2: conv(64, 1, bias = false)
                3: bn
            } }
            10: residual { conv: {
                0: { conv(384, 1, bias = false) bn relu6 }
                1: { conv(384, 3, p = 1, g = 384, bias = false) bn relu6 }
                2: conv(64, 1, bias = false)
                3: bn
            } }
            11: { conv: {
                0: { conv(384, 1, bias = false) bn relu6 }
                1: { conv(384, 3, p = 1, g = 384, bias = false) bn relu6 }
                2: conv(96, 1, bias = false)
                3: bn
            } }
            12: residual { conv: {
                0: { conv(576, 1, bias = false) bn relu6 }
                1: { conv(576, 3, p = 1, g = 576, bias = false) bn relu6 }
                2: conv(96, 1, bias = false)
                3: bn
            } }
            13: residual { conv: {
                0: { conv(576, 1, bias = false) bn relu6 }
                1: { conv(576, 3, p = 1, g = 576, bias = false) bn relu6 }
                2: conv(96, 1, bias = false)
                3: bn
            } }
            14: { conv: {
                0: { conv(576, 1, bias = false) bn relu6 }
                1: { conv(576, 3, s = 2, p = 1, g = 576, bias = false, floor) bn relu6 }
                2: conv(160, 1, bias = false)
                3: bn
            } }
            15: residual { conv: {
                0: { conv(960, 1, bias = false) bn relu6 }
                1: { conv(960, 3, p = 1, g = 960, bias = false) bn relu6 }
                2: conv(160, 1, bias = false)
                3: bn
            } }
            16: residual { conv: {
                0: { conv(960, 1, bias = false) bn relu6 }
                1: { conv(960, 3, p = 1, g = 960, bias = false) bn relu6 }
                2: conv(160, 1, bias = false)
                3: bn
            } }
            17: { conv: {
                0: { conv(960, 1, bias = false) bn relu6 }
                1: { conv(960, 3, p = 1, g = 960, bias = false) bn relu6 }
                2: conv(320, 1, bias = false)
                3: bn
            } }
            18: { conv(1280, 1, bias = false) bn relu6 }
        }
        avgpool: global_avgpool
        classifier: { dropout(0.2) fc(1000) }
    }
}

//! ResNet-18 and MobileNetV2 have torchvision's state dicts: every key,
//! shape and role that `torchvision.models.resnet18()` and
//! `mobilenet_v2()` put in `state_dict()`, derived here from the module
//! structure of torchvision's Python source, and nothing else, so that a
//! torchvision checkpoint loads with no renaming and what we save loads
//! back with `load_state_dict(strict=True)`.
//!
//! Read from pytorch/vision:
//! - `torchvision/models/resnet.py` at f50e776b051ddf007b90d7bc8f70b0708c12d008
//!   (the 0.5-era file: `conv3x3`/`conv1x1` without bias, `BasicBlock` with
//!   `conv1 bn1 relu conv2 bn2 downsample`, `ResNet._make_layer` building
//!   `downsample = nn.Sequential(conv1x1(inplanes, planes, stride),
//!   norm_layer(planes))` when `stride != 1 or inplanes != planes`; an older
//!   version, 054e54c573ba46e5b9c63f1eea3ad4d103afbea2, has the same modules).
//!   Later releases (the multi-weight API) changed only the constructors'
//!   signatures, not the modules.
//! - `torchvision/models/mobilenetv2.py` at 9173b13b7ed3f9cc2426fe84aa15b47969a69828
//!   (the 0.9-era file: `ConvBNActivation` = `nn.Sequential(Conv2d(bias=False),
//!   norm_layer, activation_layer)`; `InvertedResidual.conv =
//!   nn.Sequential(*layers)` with layers `[ConvBNReLU(pw) if t != 1,
//!   ConvBNReLU(dw), Conv2d(pw-linear, bias=False), norm_layer]`;
//!   `features = [ConvBNReLU(3, 32, stride=2), blocks…, ConvBNReLU(320, 1280, 1)]`;
//!   `classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))`).
//!   Its successor `Conv2dNormActivation` (torchvision/ops/misc.py, 0.13+)
//!   is the same `Sequential` of conv (bias = `norm_layer is None`, so
//!   none), norm and activation, so the keys did not change; the
//!   IMAGENET1K_V1 checkpoint (`mobilenet_v2-b0353104.pth`) is shared.
//! - `nn.BatchNorm2d` (track_running_stats=True) registers the parameters
//!   `weight`, `bias` and the buffers `running_mean`, `running_var`,
//!   `num_batches_tracked` (a 0-dim int64), in that order; `state_dict()`
//!   lists a module's parameters, then its buffers, then its children in
//!   registration order. `nn.ReLU`, `nn.ReLU6`, `nn.MaxPool2d`,
//!   `nn.AdaptiveAvgPool2d` and `nn.Dropout` have no state but take their
//!   index in an `nn.Sequential`.
//!
//! The expected state dicts are written below as small functions mirroring
//! those modules, independently of `network!` and of the declarations in
//! benches/common/modern.rs.

use cnn::{Network, Parameters, Slot, TensorRole};

#[path = "../benches/common/modern.rs"]
mod modern;

use modern::{MobileNetV2, ResNet18};

/// A state dict being built: keys, shapes and roles in `state_dict()`
/// order.
#[derive(Default)]
struct StateDict(Vec<Slot>);

impl StateDict {
    fn push(&mut self, name: String, shape: Vec<usize>, role: TensorRole) {
        self.0.push(Slot { name, shape, role });
    }

    /// `nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)`.
    fn conv2d(
        &mut self,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        groups: usize,
        bias: bool,
    ) {
        assert_eq!(c_in % groups, 0);
        self.push(
            format!("{prefix}.weight"),
            vec![c_out, c_in / groups, k, k],
            TensorRole::Param,
        );
        if bias {
            self.push(format!("{prefix}.bias"), vec![c_out], TensorRole::Param);
        }
    }

    /// `nn.BatchNorm2d(c)`.
    fn batch_norm2d(&mut self, prefix: &str, c: usize) {
        self.push(format!("{prefix}.weight"), vec![c], TensorRole::Param);
        self.push(format!("{prefix}.bias"), vec![c], TensorRole::Param);
        self.push(
            format!("{prefix}.running_mean"),
            vec![c],
            TensorRole::Buffer,
        );
        self.push(format!("{prefix}.running_var"), vec![c], TensorRole::Buffer);
        self.push(
            format!("{prefix}.num_batches_tracked"),
            Vec::new(),
            TensorRole::Counter,
        );
    }

    /// `nn.Linear(c_in, c_out)`.
    fn linear(&mut self, prefix: &str, c_in: usize, c_out: usize) {
        self.push(
            format!("{prefix}.weight"),
            vec![c_out, c_in],
            TensorRole::Param,
        );
        self.push(format!("{prefix}.bias"), vec![c_out], TensorRole::Param);
    }

    /// `sum(p.numel() for p in model.parameters())`.
    fn parameters(&self) -> usize {
        self.0
            .iter()
            .filter(|s| s.role == TensorRole::Param)
            .map(|s| s.shape.iter().product::<usize>())
            .sum()
    }
}

// ---------------------------------------------------------------------
// torchvision/models/resnet.py
// ---------------------------------------------------------------------

/// `BasicBlock(inplanes, planes, stride, downsample)`: children `conv1`
/// (conv3x3), `bn1`, `relu`, `conv2` (conv3x3), `bn2`, `downsample`.
fn basic_block(sd: &mut StateDict, prefix: &str, inplanes: usize, planes: usize, downsample: bool) {
    sd.conv2d(&format!("{prefix}.conv1"), inplanes, planes, 3, 1, false);
    sd.batch_norm2d(&format!("{prefix}.bn1"), planes);
    sd.conv2d(&format!("{prefix}.conv2"), planes, planes, 3, 1, false);
    sd.batch_norm2d(&format!("{prefix}.bn2"), planes);
    if downsample {
        // nn.Sequential(conv1x1(inplanes, planes, stride), norm_layer(planes))
        sd.conv2d(
            &format!("{prefix}.downsample.0"),
            inplanes,
            planes,
            1,
            1,
            false,
        );
        sd.batch_norm2d(&format!("{prefix}.downsample.1"), planes);
    }
}

/// `ResNet._make_layer(BasicBlock, planes, blocks, stride)`; returns the
/// new `self.inplanes` (BasicBlock.expansion is 1).
fn make_layer(
    sd: &mut StateDict,
    prefix: &str,
    inplanes: usize,
    planes: usize,
    blocks: usize,
    stride: usize,
) -> usize {
    let downsample = stride != 1 || inplanes != planes;
    basic_block(sd, &format!("{prefix}.0"), inplanes, planes, downsample);
    for i in 1..blocks {
        basic_block(sd, &format!("{prefix}.{i}"), planes, planes, false);
    }
    planes
}

/// `resnet18()`: `ResNet(BasicBlock, [2, 2, 2, 2])`, 1000 classes.
fn torchvision_resnet18() -> StateDict {
    let mut sd = StateDict::default();
    let mut inplanes = 64;
    sd.conv2d("conv1", 3, inplanes, 7, 1, false);
    sd.batch_norm2d("bn1", inplanes);
    // relu, maxpool: no state.
    for (i, (planes, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)]
        .into_iter()
        .enumerate()
    {
        inplanes = make_layer(
            &mut sd,
            &format!("layer{}", i + 1),
            inplanes,
            planes,
            2,
            stride,
        );
    }
    // avgpool: no state.
    sd.linear("fc", 512, 1000);
    sd
}

// ---------------------------------------------------------------------
// torchvision/models/mobilenetv2.py
// ---------------------------------------------------------------------

/// `_make_divisible(v, divisor)`, for `width_mult = 1.0`.
fn make_divisible(v: usize, divisor: usize) -> usize {
    let rounded = ((v + divisor / 2) / divisor * divisor).max(divisor);
    // "Make sure that round down does not go down by more than 10%."
    if rounded * 10 < v * 9 {
        rounded + divisor
    } else {
        rounded
    }
}

/// `ConvBNActivation(c_in, c_out, kernel_size, stride, groups)`:
/// `Sequential(Conv2d(bias=False), BatchNorm2d, ReLU6)`.
fn conv_bn_relu6(
    sd: &mut StateDict,
    prefix: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    groups: usize,
) {
    sd.conv2d(&format!("{prefix}.0"), c_in, c_out, k, groups, false);
    sd.batch_norm2d(&format!("{prefix}.1"), c_out);
    // 2: ReLU6, no state.
}

/// `InvertedResidual(inp, oup, stride, expand_ratio)`: its one child
/// `conv`, a `Sequential` of `layers`. (The stride changes no shape.)
fn inverted_residual(
    sd: &mut StateDict,
    prefix: &str,
    inp: usize,
    oup: usize,
    expand_ratio: usize,
) {
    let hidden_dim = inp * expand_ratio;
    let mut index = 0;
    let mut next = || {
        index += 1;
        format!("{prefix}.conv.{}", index - 1)
    };
    if expand_ratio != 1 {
        // pw
        conv_bn_relu6(sd, &next(), inp, hidden_dim, 1, 1);
    }
    // dw
    conv_bn_relu6(sd, &next(), hidden_dim, hidden_dim, 3, hidden_dim);
    // pw-linear
    sd.conv2d(&next(), hidden_dim, oup, 1, 1, false);
    sd.batch_norm2d(&next(), oup);
}

/// `mobilenet_v2()`: `MobileNetV2(num_classes=1000, width_mult=1.0)`.
fn torchvision_mobilenet_v2() -> StateDict {
    let mut sd = StateDict::default();
    let inverted_residual_setting = [
        // t, c, n, s
        [1, 16, 1, 1],
        [6, 24, 2, 2],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ];
    let mut input_channel = make_divisible(32, 8);
    let last_channel = make_divisible(1280, 8);
    let mut feature = 0;
    let mut next = || {
        feature += 1;
        format!("features.{}", feature - 1)
    };
    conv_bn_relu6(&mut sd, &next(), 3, input_channel, 3, 1);
    for [t, c, n, _s] in inverted_residual_setting {
        let output_channel = make_divisible(c, 8);
        for _ in 0..n {
            inverted_residual(&mut sd, &next(), input_channel, output_channel, t);
            input_channel = output_channel;
        }
    }
    conv_bn_relu6(&mut sd, &next(), input_channel, last_channel, 1, 1);
    // classifier: Sequential(Dropout(0.2), Linear(last_channel, 1000)).
    sd.linear("classifier.1", last_channel, 1000);
    sd
}

// ---------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------

/// Our layout equals torchvision's state dict, key for key in order, with
/// a readable report of the first differences.
fn assert_same_layout(ours: &[Slot], theirs: &[Slot], what: &str) {
    let missing: Vec<&str> = theirs
        .iter()
        .filter(|t| !ours.iter().any(|o| o.name == t.name))
        .map(|t| t.name.as_str())
        .collect();
    let extra: Vec<&str> = ours
        .iter()
        .filter(|o| !theirs.iter().any(|t| t.name == o.name))
        .map(|o| o.name.as_str())
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: keys torchvision has and we lack: {missing:?}; keys we have and torchvision lacks: {extra:?}"
    );
    for t in theirs {
        let o = ours.iter().find(|o| o.name == t.name).unwrap();
        assert_eq!(
            (&o.shape, o.role),
            (&t.shape, t.role),
            "{what}: `{}` (ours, then torchvision's)",
            t.name
        );
    }
    let ours_names: Vec<&str> = ours.iter().map(|o| o.name.as_str()).collect();
    let theirs_names: Vec<&str> = theirs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        ours_names, theirs_names,
        "{what}: the keys' order differs from state_dict()"
    );
    assert_eq!(ours, theirs);
}

#[test]
fn the_mirrors_match_torchvision_counts() {
    // torchvision's published `num_params` of the two models.
    let resnet = torchvision_resnet18();
    assert_eq!(resnet.parameters(), 11_689_512);
    // conv1 and bn1 (5 keys), 8 blocks of two convs and two batch norms,
    // 3 downsamples, fc: 20 batch norms in all.
    assert_eq!(resnet.0.len(), 1 + 5 + 8 * 2 * (1 + 5) + 3 * (1 + 5) + 2);
    assert_eq!(
        resnet
            .0
            .iter()
            .filter(|s| s.role == TensorRole::Counter)
            .count(),
        20
    );
    let mobilenet = torchvision_mobilenet_v2();
    assert_eq!(mobilenet.parameters(), 3_504_872);
    assert_eq!(
        mobilenet
            .0
            .iter()
            .filter(|s| s.role == TensorRole::Counter)
            .count(),
        52
    );
}

#[test]
fn resnet18_layout_is_torchvisions_state_dict() {
    let theirs = torchvision_resnet18();
    let ours = Parameters::layout(ResNet18::LAYERS);
    assert_same_layout(&ours, &theirs.0, "resnet18");
    assert_eq!(ResNet18::PARAMS, theirs.parameters());
    assert_eq!(ResNet18::zeros().parameters().count(), theirs.parameters());
}

#[test]
fn mobilenet_v2_layout_is_torchvisions_state_dict() {
    let theirs = torchvision_mobilenet_v2();
    let ours = Parameters::layout(MobileNetV2::LAYERS);
    assert_same_layout(&ours, &theirs.0, "mobilenet_v2");
    assert_eq!(MobileNetV2::PARAMS, theirs.parameters());
    assert_eq!(
        MobileNetV2::zeros().parameters().count(),
        theirs.parameters()
    );
}

/// Each entry of a safetensors file: its name, dtype and shape, read by
/// the `safetensors` crate (independent of ours); the metadata must say
/// the file is PyTorch's.
fn header_entries(bytes: &[u8]) -> Vec<(String, String, Vec<usize>)> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let format = metadata.metadata().as_ref().and_then(|m| m.get("format"));
    assert_eq!(format.map(String::as_str), Some("pt"));
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, format!("{:?}", view.dtype()), view.shape().to_vec()))
        .collect()
}

/// What `save_safetensors` writes for `N`.
fn saved<N: Network>(net: &N) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!(
        "cnn-torchvision-{}-{}.safetensors",
        N::NAME,
        std::process::id()
    ));
    net.save_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

/// The saved file has exactly torchvision's keys (what
/// `load_state_dict(strict=True)` requires), with F32 tensors of their
/// shapes and I64 scalar counters; a file built from torchvision's state
/// dict alone loads, and the counters come back.
fn check_file<N: Network>(theirs: &StateDict) {
    let mut net = N::init(1);
    let counter = theirs
        .0
        .iter()
        .rev()
        .find(|s| s.role == TensorRole::Counter)
        .unwrap()
        .name
        .clone();
    assert!(net.parameters_mut().set_counter(&counter, 42));
    let bytes = saved(&net);

    let mut written = header_entries(&bytes);
    written.sort();
    let mut expected: Vec<(String, String, Vec<usize>)> = theirs
        .0
        .iter()
        .map(|s| {
            let dtype = if s.role == TensorRole::Counter {
                "I64"
            } else {
                "F32"
            };
            (s.name.clone(), dtype.to_string(), s.shape.clone())
        })
        .collect();
    expected.sort();
    let names =
        |v: &[(String, String, Vec<usize>)]| v.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&written), names(&expected), "{}: saved keys", N::NAME);
    assert_eq!(written, expected, "{}: saved dtypes and shapes", N::NAME);
    // Data: 4 bytes per f32, 8 per counter, nothing else.
    let data: usize = expected
        .iter()
        .map(|(_, dtype, shape)| {
            shape.iter().product::<usize>() * if dtype == "I64" { 8 } else { 4 }
        })
        .sum();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 8 + header_len + data);

    let loaded = N::from_safetensors_bytes(&bytes).unwrap();
    assert_eq!(loaded.parameters(), net.parameters());
    assert_eq!(loaded.parameters().counter(&counter), Some(42));
}

#[test]
fn resnet18_saves_torchvisions_keys_and_dtypes() {
    check_file::<ResNet18>(&torchvision_resnet18());
}

#[test]
fn mobilenet_v2_saves_torchvisions_keys_and_dtypes() {
    check_file::<MobileNetV2>(&torchvision_mobilenet_v2());
}

/// A safetensors file holding exactly torchvision's state dict, as
/// `safetensors.torch.save_file(model.state_dict(), …)` would: every f32
/// tensor filled with its position in the state dict, every counter set to
/// its position, so that any tensor loaded under the wrong name shows.
fn torchvision_file(theirs: &StateDict) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (i, slot) in theirs.0.iter().enumerate() {
        let start = data.len();
        let dtype = if slot.role == TensorRole::Counter {
            data.extend_from_slice(&(i as i64).to_le_bytes());
            "I64"
        } else {
            let len: usize = slot.shape.iter().product();
            for _ in 0..len {
                data.extend_from_slice(&(i as f32).to_le_bytes());
            }
            "F32"
        };
        let dims: Vec<String> = slot.shape.iter().map(ToString::to_string).collect();
        entries.push(format!(
            r#""{}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{start},{}]}}"#,
            slot.name,
            dims.join(","),
            data.len()
        ));
    }
    entries.push(r#""__metadata__":{"format":"pt"}"#.to_string());
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    bytes
}

/// A checkpoint with torchvision's keys loads with no renaming, each
/// tensor and counter where torchvision has it.
fn check_torchvision_checkpoint<N: Network>(theirs: &StateDict) {
    let net = N::from_safetensors_bytes(&torchvision_file(theirs))
        .unwrap_or_else(|e| panic!("{}: {e}", N::NAME));
    for (i, slot) in theirs.0.iter().enumerate() {
        if slot.role == TensorRole::Counter {
            assert_eq!(
                net.parameters().counter(&slot.name),
                Some(i as i64),
                "{}",
                slot.name
            );
            continue;
        }
        let tensor = net.parameters().get(&slot.name).unwrap();
        assert_eq!(tensor.shape(), slot.shape.as_slice(), "{}", slot.name);
        assert_eq!(tensor.role(), slot.role, "{}", slot.name);
        assert!(
            tensor.data().iter().all(|&v| v == i as f32),
            "{}: not the values torchvision's file holds under that name",
            slot.name
        );
    }
}

#[test]
fn resnet18_loads_a_torchvision_checkpoint() {
    check_torchvision_checkpoint::<ResNet18>(&torchvision_resnet18());
}

#[test]
fn mobilenet_v2_loads_a_torchvision_checkpoint() {
    check_torchvision_checkpoint::<MobileNetV2>(&torchvision_mobilenet_v2());
}

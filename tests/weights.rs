//! Weights in safetensors: round trips for every layer kind, PyTorch's names
//! and layouts checked on hand-written files, and an error (never a panic)
//! with a precise message for every kind of bad file.

use cnn::{network, Network, Parameters, Slot, TensorRole};
use ndarray::{Array3, Array4};

network! {
    /// Every layer kind, a stride, a padding, pairs and `p = same`.
    struct Every {
        input(2, 9, 9)
        conv(4, 3, s = 2, p = 1) relu
        conv(3, (3, 1), p = (1, 0)) sigmoid
        conv(3, 3, p = same) tanh
        pool(2, 1)
        avgpool(2)
        flatten
        fc(5) relu
        fc(3) softmax
    }

    /// One fully connected layer, small enough to write its file by hand.
    struct Dense {
        input(1, 2, 2)
        fc(2)
    }

    /// One convolution over two channels, to check the weight layout.
    struct TwoChannels {
        input(2, 3, 3)
        conv(2, 2)
    }

    /// Batch norm after a convolution and on its own, residuals with and
    /// without a shortcut, grouped and depthwise convolutions without bias.
    struct Blocks {
        input(4, 7, 7)
        conv(8, 3, p = 1, bias = false) bn relu
        residual(relu) {
            conv(8, 3, p = 1, g = 4, bias = false) bn relu6
            conv(8, 1, bias = false) bn
        }
        block: residual {
            conv(16, 3, s = 2, p = 1, g = 8, bias = false) bn
        } shortcut {
            down: { conv(16, 1, s = 2, bias = false) bn }
        }
        bn
        global_avgpool
        fc(3)
    }
}

/// A deterministic, varied input batch.
fn batch(n: usize, [c, h, w]: [usize; 3]) -> Array4<f32> {
    Array4::from_shape_fn((n, c, h, w), |(i, c, y, x)| {
        ((i * 131 + c * 37 + y * 11 + x * 5) % 17) as f32 / 8.0 - 1.0
    })
}

/// A safetensors file written by hand: `(name, dtype, shape, bytes)` with
/// contiguous offsets in the given order.
fn file(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
        entries.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{},{}]}}"#,
            dims.join(","),
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    raw(&format!("{{{}}}", entries.join(",")), &data)
}

/// A file from its header text and data bytes.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// The bytes `save_safetensors` writes (through a temporary file of its
/// own: tests run in parallel, several on one network).
fn saved<N: Network>(net: &N) -> Vec<u8> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "cnn-weights-{}-{}-{call}.safetensors",
        N::NAME,
        std::process::id()
    ));
    net.save_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn zeros(len: usize, bytes_per_value: usize) -> Vec<u8> {
    vec![0; len * bytes_per_value]
}

/// The error text of loading `bytes` into `Dense`.
fn dense_error(bytes: &[u8]) -> String {
    match Dense::from_safetensors_bytes(bytes) {
        Ok(_) => panic!("the file was accepted"),
        Err(e) => e.to_string(),
    }
}

/// A valid file for `Dense`, with the given tensors replaced or added.
fn dense_file(weight: (&str, &[usize]), bias: (&str, &[usize])) -> Vec<u8> {
    let size = |dtype: &str| match dtype {
        "F64" => 8,
        "F16" | "BF16" => 2,
        _ => 4,
    };
    let len = |shape: &[usize]| shape.iter().product::<usize>();
    file(&[
        (
            "0.weight",
            weight.0,
            weight.1,
            zeros(len(weight.1), size(weight.0)),
        ),
        ("0.bias", bias.0, bias.1, zeros(len(bias.1), size(bias.0))),
    ])
}

#[test]
fn round_trip_through_bytes_keeps_every_parameter_and_output() {
    let net = Every::init(7);
    let dir = std::env::temp_dir().join(format!("cnn-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("every.safetensors");
    net.save_safetensors(&path).unwrap();
    let loaded = Every::load_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let from_bytes = Every::from_safetensors_bytes(&bytes).unwrap();

    assert_eq!(loaded.parameters(), net.parameters());
    assert_eq!(from_bytes.parameters(), net.parameters());
    let x = batch(3, Every::INPUT);
    let expected = net.forward_batch(x.view()).unwrap();
    assert_eq!(loaded.forward_batch(x.view()).unwrap(), expected);
    assert_eq!(from_bytes.forward_batch(x.view()).unwrap(), expected);
    // The outputs are not trivially equal: the network is not constant.
    assert_ne!(
        expected.slice(ndarray::s![0, .., .., ..]),
        expected.slice(ndarray::s![1, .., .., ..])
    );
}

#[test]
fn saved_file_uses_pytorch_names_shapes_and_f32() {
    let bytes = saved(&Every::init(1));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    for (name, shape) in [
        ("0.weight", "[4,2,3,3]"),
        ("0.bias", "[4]"),
        ("2.weight", "[3,4,3,1]"),
        ("4.weight", "[3,3,3,3]"),
        ("9.weight", "[5,12]"),
        ("11.weight", "[3,5]"),
        ("11.bias", "[3]"),
    ] {
        let entry = format!(r#""{name}":{{"dtype":"F32","shape":{shape}"#);
        assert!(header.contains(&entry), "{entry} not in {header}");
    }
    assert!(
        header.contains(r#""__metadata__":{"format":"pt"}"#),
        "{header}"
    );
}

#[test]
fn hand_written_fc_file_computes_the_product() {
    // weight [N, C·H·W] row-major, bias [N].
    let bytes = file(&[
        ("0.bias", "F32", &[2], f32s(&[0.5, -1.0])),
        (
            "0.weight",
            "F32",
            &[2, 4],
            f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
        ),
    ]);
    let net = Dense::from_safetensors_bytes(&bytes).unwrap();
    let x = Array3::from_shape_vec((1, 2, 2), vec![1.0, 0.0, 0.0, 2.0]).unwrap();
    let y = net.forward(x.view()).unwrap();
    assert_eq!(y.shape(), &[2, 1, 1]);
    assert_eq!(
        y.iter().copied().collect::<Vec<_>>(),
        vec![1.0 + 8.0 + 0.5, 5.0 + 16.0 - 1.0]
    );
}

#[test]
fn hand_written_conv_file_uses_k_c_fh_fw_layout() {
    // Distinct weights, so any transposition of the layout shows.
    let weight: Vec<f32> = (0..16).map(|v| v as f32 * 0.25 - 1.0).collect();
    let bias = [0.5f32, -0.25];
    let bytes = file(&[
        ("0.weight", "F32", &[2, 2, 2, 2], f32s(&weight)),
        ("0.bias", "F32", &[2], f32s(&bias)),
    ]);
    let net = TwoChannels::from_safetensors_bytes(&bytes).unwrap();
    let x = Array3::from_shape_fn((2, 3, 3), |(c, y, x)| (c * 9 + y * 3 + x) as f32 - 4.0);
    let y = net.forward(x.view()).unwrap();
    for k in 0..2 {
        for oy in 0..2 {
            for ox in 0..2 {
                let mut sum = bias[k];
                for c in 0..2 {
                    for i in 0..2 {
                        for j in 0..2 {
                            sum += weight[((k * 2 + c) * 2 + i) * 2 + j] * x[[c, oy + i, ox + j]];
                        }
                    }
                }
                assert!(
                    (y[[k, oy, ox]] - sum).abs() < 1e-5,
                    "{k} {oy} {ox}: {} vs {sum}",
                    y[[k, oy, ox]]
                );
            }
        }
    }
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let bytes = file(&[("0.weight", "F32", &[2, 4], zeros(8, 4))]);
    assert_eq!(
        dense_error(&bytes),
        "tensor `0.bias` is missing from the weights (the network needs shape [2])"
    );
}

#[test]
fn extra_tensor_is_named_with_its_shape() {
    let mut tensors = vec![
        ("0.weight", "F32", &[2usize, 4][..], zeros(8, 4)),
        ("0.bias", "F32", &[2][..], zeros(2, 4)),
    ];
    tensors.push(("1.weight", "F16", &[3, 1][..], zeros(3, 2)));
    assert_eq!(
        dense_error(&file(&tensors)),
        "tensor `1.weight` (shape [3, 1]) is not a parameter of this network"
    );
}

#[test]
fn misshaped_tensor_names_both_shapes() {
    assert_eq!(
        dense_error(&dense_file(("F32", &[4, 2]), ("F32", &[2]))),
        "tensor `0.weight` has shape [4, 2], but the network needs [2, 4]"
    );
    assert_eq!(
        dense_error(&dense_file(("F32", &[2, 4]), ("F32", &[2, 1]))),
        "tensor `0.bias` has shape [2, 1], but the network needs [2]"
    );
}

#[test]
fn wrong_dtype_is_named() {
    for dtype in ["F64", "F16", "BF16"] {
        assert_eq!(
            dense_error(&dense_file((dtype, &[2, 4]), ("F32", &[2]))),
            format!("tensor `0.weight` has dtype {dtype}, but the network needs F32")
        );
    }
    assert_eq!(
        dense_error(&dense_file(("F32", &[2, 4]), ("BF16", &[2]))),
        "tensor `0.bias` has dtype BF16, but the network needs F32"
    );
}

#[test]
fn truncated_file_is_refused() {
    let bytes = saved(&Dense::init(3));
    let data_len = 4 * (8 + 2);
    // The file holds `0.bias` (bytes 0..8 of the data), then `0.weight`
    // (8..40); the error names the first tensor the cut reaches.
    for (cut, tensor, end) in [
        (1, "0.weight", 40),
        (4, "0.weight", 40),
        (data_len, "0.bias", 8),
    ] {
        assert_eq!(
            dense_error(&bytes[..bytes.len() - cut]),
            format!(
                "invalid weights file: tensor `{tensor}` ends at byte {end} of the data, but only {} bytes of data follow the header (truncated file?)",
                data_len - cut
            )
        );
    }
    // Cut inside the header.
    let error = dense_error(&bytes[..20]);
    assert!(
        error.contains("bytes, but only 12 bytes follow it (truncated or not safetensors)"),
        "{error}"
    );
    for len in [0, 7] {
        assert_eq!(
            dense_error(&bytes[..len]),
            format!("invalid weights file: the file is {len} bytes long, too short to be safetensors (it starts with an 8-byte header length)")
        );
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = saved(&Dense::init(3));
    bytes.extend_from_slice(&[0; 4]);
    assert_eq!(
        dense_error(&bytes),
        "invalid weights file: incomplete metadata, file not fully covered"
    );
}

#[test]
fn corrupt_header_is_refused() {
    let error = dense_error(&raw("{\"0.weight\": [", &[]));
    assert!(
        error.starts_with("invalid weights file: the header is not a JSON object: "),
        "{error}"
    );

    let error = dense_error(&raw("[1, 2]", &[]));
    assert!(
        error.starts_with("invalid weights file: the header is not a JSON object: "),
        "{error}"
    );

    let mut bytes = raw("{}", &[]);
    bytes[8] = 0xff;
    let error = dense_error(&bytes);
    assert!(
        error.starts_with("invalid weights file: the header is not UTF-8: "),
        "{error}"
    );

    let error = dense_error(&raw(
        r#"{"0.weight":{"dtype":"Q4","shape":[2,4],"data_offsets":[0,4]}}"#,
        &[0; 4],
    ));
    assert!(
        error.starts_with("invalid weights file: tensor `0.weight` has an invalid header entry: unknown variant `Q4`"),
        "{error}"
    );

    let error = dense_error(&raw(r#"{"0.weight":{"dtype":"F32","shape":[2,4]}}"#, &[]));
    assert!(
        error.starts_with("invalid weights file: tensor `0.weight` has an invalid header entry: missing field `data_offsets`"),
        "{error}"
    );

    // Offsets that do not match the shape, reversed, or leave a gap.
    assert_eq!(
        dense_error(&raw(r#"{"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, &[0; 4])),
        "invalid weights file: tensor `0.bias` has dtype F32 and shape [2], which take 8 bytes, but its data offsets [0, 4] do not span that"
    );
    assert_eq!(
        dense_error(&raw(r#"{"0.bias":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, &[0; 4])),
        "invalid weights file: tensor `0.bias` has dtype F32 and shape [0], which take 0 bytes, but its data offsets [4, 0] do not span that"
    );
    assert_eq!(
        dense_error(&raw(
            r#"{"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            &[0; 12]
        )),
        "invalid weights file: invalid offset for tensor `0.bias`"
    );
}

#[test]
fn absurd_header_length_is_refused() {
    let mut bytes = raw("{}", &[]);
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        dense_error(&bytes),
        "invalid weights file: the header length field says 18446744073709551615 bytes, but only 2 bytes follow it (truncated or not safetensors)"
    );
}

#[test]
fn huge_declared_size_is_refused_before_allocation() {
    // 4 TB of declared data in a file of a few bytes.
    let header = r#"{"0.weight":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#;
    assert_eq!(
        dense_error(&raw(header, &[0; 8])),
        "invalid weights file: tensor `0.weight` ends at byte 4000000000000 of the data, but only 8 bytes of data follow the header (truncated file?)"
    );
    // A shape whose byte count overflows.
    let header = format!(
        r#"{{"0.weight":{{"dtype":"F32","shape":[{},2],"data_offsets":[0,8]}}}}"#,
        usize::MAX
    );
    assert_eq!(
        dense_error(&raw(&header, &[0; 8])),
        format!("invalid weights file: tensor `0.weight` declares shape [{}, 2], whose size in bytes overflows", usize::MAX)
    );
    // Eight tensors of 2^61 − 1 bytes each: every one is consistent with
    // its shape, but together they end near usize::MAX, where adding the
    // header length would overflow.
    let each = (1usize << 61) - 1;
    let entries: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#""t{i}":{{"dtype":"U8","shape":[{each}],"data_offsets":[{},{}]}}"#,
                i * each,
                (i + 1) * each
            )
        })
        .collect();
    assert_eq!(
        dense_error(&raw(&format!("{{{}}}", entries.join(",")), &[0; 8])),
        format!("invalid weights file: tensor `t0` ends at byte {each} of the data, but only 8 bytes of data follow the header (truncated file?)")
    );
}

#[test]
fn from_parameters_checks_like_loading() {
    let every = Every::init(5);
    let loaded = Every::from_parameters(every.parameters().clone()).unwrap();
    assert_eq!(loaded.parameters(), every.parameters());
    let Err(error) = Dense::from_parameters(every.parameters().clone()) else {
        panic!("Every's parameters were accepted by Dense");
    };
    assert_eq!(
        error.to_string(),
        "tensor `0.weight` has shape [4, 2, 3, 3], but the network needs [2, 4]"
    );
}

// ---------------------------------------------------------------------
// Batch norm: buffers, counters, residuals, grouped convolutions.
// ---------------------------------------------------------------------

/// The five tensors of a batch norm over `c` channels at `path`, in
/// PyTorch's state-dict order.
fn bn_slots(path: &str, c: usize) -> Vec<Slot> {
    [
        ("weight", TensorRole::Param),
        ("bias", TensorRole::Param),
        ("running_mean", TensorRole::Buffer),
        ("running_var", TensorRole::Buffer),
        ("num_batches_tracked", TensorRole::Counter),
    ]
    .into_iter()
    .map(|(what, role)| Slot {
        name: format!("{path}.{what}"),
        shape: if role == TensorRole::Counter {
            Vec::new()
        } else {
            vec![c]
        },
        role,
    })
    .collect()
}

fn param(name: &str, shape: &[usize]) -> Slot {
    Slot {
        name: name.to_string(),
        shape: shape.to_vec(),
        role: TensorRole::Param,
    }
}

/// `Blocks` with every tensor varied (batch norm not the identity: weights
/// and variances in [0.5, 1.5), the rest in [−0.5, 0.5)).
fn varied_blocks(seed: u64) -> Blocks {
    let mut net = Blocks::init(seed);
    for (t, tensor) in net.parameters_mut().iter_mut().enumerate() {
        let positive = tensor.name().ends_with("running_var")
            || (tensor.shape().len() == 1 && tensor.name().ends_with(".weight"));
        let offset = if positive { 1.0 } else { 0.0 };
        for (i, v) in tensor.data_mut().iter_mut().enumerate() {
            let k = (i * 37 + t * 11 + seed as usize) % 29;
            *v = offset + k as f32 / 29.0 - 0.5;
        }
    }
    net
}

/// One tensor of a hand-written file: name, dtype, shape, bytes.
type Entry = (String, &'static str, Vec<usize>, Vec<u8>);

/// The entries of a file holding `params`: F32 tensors, then I64 counters
/// of shape [].
fn entries(params: &Parameters) -> Vec<Entry> {
    let tensors = params.iter().map(|t| {
        (
            t.name().to_string(),
            "F32",
            t.shape().to_vec(),
            f32s(t.data()),
        )
    });
    let counters = params.counters().iter().map(|c| {
        (
            c.name().to_string(),
            "I64",
            Vec::new(),
            c.value().to_le_bytes().to_vec(),
        )
    });
    tensors.chain(counters).collect()
}

fn file_of(entries: &[Entry]) -> Vec<u8> {
    let borrowed: Vec<(&str, &str, &[usize], Vec<u8>)> = entries
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.as_str(), *dtype, shape.as_slice(), bytes.clone()))
        .collect();
    file(&borrowed)
}

/// The entry named `name`, to change it.
fn entry<'a>(entries: &'a mut [Entry], name: &str) -> &'a mut Entry {
    entries
        .iter_mut()
        .find(|e| e.0 == name)
        .unwrap_or_else(|| panic!("no entry `{name}`"))
}

/// The error text of loading `entries` into `Blocks`.
fn blocks_error(entries: &[Entry]) -> String {
    match Blocks::from_safetensors_bytes(&file_of(entries)) {
        Ok(_) => panic!("the file was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bn_residual_and_grouped_layout_follows_the_names_rule() {
    let mut expected = vec![param("0.weight", &[8, 4, 3, 3])];
    expected.extend(bn_slots("1", 8));
    // The residual is entry 3; its layers are numbered inside it.
    expected.push(param("3.0.weight", &[8, 2, 3, 3]));
    expected.extend(bn_slots("3.1", 8));
    expected.push(param("3.3.weight", &[8, 8, 1, 1]));
    expected.extend(bn_slots("3.4", 8));
    // MAIN and SC form one sequence; `down` is a named group in SC.
    expected.push(param("block.0.weight", &[16, 1, 3, 3]));
    expected.extend(bn_slots("block.1", 16));
    expected.push(param("block.down.0.weight", &[16, 8, 1, 1]));
    expected.extend(bn_slots("block.down.1", 16));
    expected.extend(bn_slots("5", 16));
    expected.push(param("7.weight", &[3, 16]));
    expected.push(param("7.bias", &[3]));
    assert_eq!(Parameters::layout(Blocks::LAYERS), expected);

    let net = Blocks::zeros();
    let counters: Vec<(&str, i64)> = net
        .parameters()
        .counters()
        .iter()
        .map(|c| (c.name(), c.value()))
        .collect();
    assert_eq!(
        counters,
        [
            ("1.num_batches_tracked", 0),
            ("3.1.num_batches_tracked", 0),
            ("3.4.num_batches_tracked", 0),
            ("block.1.num_batches_tracked", 0),
            ("block.down.1.num_batches_tracked", 0),
            ("5.num_batches_tracked", 0),
        ]
    );
    // Counters are not tensors, and buffers are not parameters.
    assert_eq!(net.parameters().len(), expected.len() - counters.len());
    assert_eq!(
        Blocks::PARAMS,
        8 * 4 * 9
            + 8 * 2 * 9
            + 8 * 8
            + 16 * 9
            + 16 * 8
            + 2 * (8 + 8 + 8 + 16 + 16 + 16)
            + 3 * 16
            + 3
    );
    assert_eq!(net.parameters().count(), Blocks::PARAMS);
}

#[test]
fn bn_round_trip_keeps_every_tensor_and_counter() {
    let mut net = varied_blocks(3);
    let params = net.parameters_mut();
    assert!(params.set_counter("1.num_batches_tracked", 12_345));
    assert!(params.set_counter("block.down.1.num_batches_tracked", i64::MAX));
    assert!(params.set_counter("5.num_batches_tracked", -1));
    assert!(!params.set_counter("2.num_batches_tracked", 1));
    assert!(!params.set_counter("1.running_var", 1));
    // A forward pass first: batch norm is folded into the convolutions for
    // it, and saving must still write the tensors as they were set.
    let x = batch(3, Blocks::INPUT);
    let expected = net.forward_batch(x.view()).unwrap();
    assert_ne!(
        expected.slice(ndarray::s![0, .., .., ..]),
        expected.slice(ndarray::s![1, .., .., ..])
    );

    let bytes = saved(&net);
    let loaded = Blocks::from_safetensors_bytes(&bytes).unwrap();
    for tensor in net.parameters().iter() {
        assert_eq!(
            loaded.parameters().get(tensor.name()),
            Some(tensor),
            "{}",
            tensor.name()
        );
    }
    assert_eq!(loaded.parameters().len(), net.parameters().len());
    assert_eq!(loaded.parameters().counters(), net.parameters().counters());
    assert_eq!(
        loaded.parameters().counter("1.num_batches_tracked"),
        Some(12_345)
    );
    assert_eq!(
        loaded
            .parameters()
            .counter("block.down.1.num_batches_tracked"),
        Some(i64::MAX)
    );
    assert_eq!(
        loaded.parameters().counter("5.num_batches_tracked"),
        Some(-1)
    );
    assert_eq!(
        loaded.parameters().counter("3.1.num_batches_tracked"),
        Some(0)
    );
    assert_eq!(loaded.parameters(), net.parameters());
    assert_eq!(loaded.forward_batch(x.view()).unwrap(), expected);

    // The same through a file on disk, and a second save is the same file.
    let path = std::env::temp_dir().join(format!(
        "cnn-weights-blocks-{}.safetensors",
        std::process::id()
    ));
    loaded.save_safetensors(&path).unwrap();
    let from_file = Blocks::load_safetensors(&path).unwrap();
    let again = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file.parameters(), net.parameters());
    assert_eq!(again, bytes);

    // What the header says: running statistics F32 [C], counters I64 [].
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    for (name, dtype, shape) in [
        ("1.running_mean", "F32", "[8]"),
        ("3.4.running_var", "F32", "[8]"),
        ("block.down.1.bias", "F32", "[16]"),
        ("block.0.weight", "F32", "[16,1,3,3]"),
        ("3.0.weight", "F32", "[8,2,3,3]"),
        ("1.num_batches_tracked", "I64", "[]"),
        ("5.num_batches_tracked", "I64", "[]"),
    ] {
        let entry = format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape}"#);
        assert!(header.contains(&entry), "{entry} not in {header}");
    }
    assert!(!header.contains("0.bias"), "{header}");
    assert_eq!(
        header.matches("data_offsets").count(),
        Parameters::layout(Blocks::LAYERS).len(),
        "{header}"
    );
}

#[test]
fn hand_written_bn_file_loads_with_counters_read_and_defaulted() {
    let mut net = varied_blocks(5);
    assert!(net
        .parameters_mut()
        .set_counter("3.4.num_batches_tracked", 77));
    let all = entries(net.parameters());

    // With every counter: read as written.
    let loaded = Blocks::from_safetensors_bytes(&file_of(&all)).unwrap();
    assert_eq!(loaded.parameters(), net.parameters());
    // In another order (PyTorch writes them sorted by name).
    let mut reversed = all.clone();
    reversed.reverse();
    let loaded = Blocks::from_safetensors_bytes(&file_of(&reversed)).unwrap();
    assert_eq!(loaded.parameters(), net.parameters());

    // Without any `num_batches_tracked`: every counter 0, tensors as given.
    let without: Vec<Entry> = all
        .iter()
        .filter(|e| !e.0.ends_with("num_batches_tracked"))
        .cloned()
        .collect();
    assert_eq!(without.len(), net.parameters().len());
    let loaded = Blocks::from_safetensors_bytes(&file_of(&without)).unwrap();
    assert_eq!(loaded.parameters().counters().len(), 6);
    assert!(
        loaded
            .parameters()
            .counters()
            .iter()
            .all(|c| c.value() == 0),
        "{:?}",
        loaded.parameters().counters()
    );
    for tensor in net.parameters().iter() {
        assert_eq!(loaded.parameters().get(tensor.name()), Some(tensor));
    }
    let x = batch(2, Blocks::INPUT);
    assert_eq!(
        loaded.forward_batch(x.view()).unwrap(),
        net.forward_batch(x.view()).unwrap()
    );
    // And saved again, the counters are written, as 0.
    let header_bytes = saved(&loaded);
    let header_len = u64::from_le_bytes(header_bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&header_bytes[8..8 + header_len]).unwrap();
    assert!(
        header.contains(r#""3.4.num_batches_tracked":{"dtype":"I64","shape":[]"#),
        "{header}"
    );

    // Only one counter missing: that one 0, the others read.
    let one_missing: Vec<Entry> = all
        .iter()
        .filter(|e| e.0 != "1.num_batches_tracked")
        .cloned()
        .collect();
    let loaded = Blocks::from_safetensors_bytes(&file_of(&one_missing)).unwrap();
    assert_eq!(
        loaded.parameters().counter("1.num_batches_tracked"),
        Some(0)
    );
    assert_eq!(
        loaded.parameters().counter("3.4.num_batches_tracked"),
        Some(77)
    );
}

#[test]
fn bn_tensor_of_the_wrong_shape_is_named_with_both_shapes() {
    let all = entries(Blocks::init(1).parameters());
    for (name, shape, message) in [
        (
            "1.running_mean",
            vec![7],
            "tensor `1.running_mean` has shape [7], but the network needs [8]",
        ),
        (
            "block.down.1.running_var",
            vec![16, 1],
            "tensor `block.down.1.running_var` has shape [16, 1], but the network needs [16]",
        ),
        (
            "5.weight",
            vec![8],
            "tensor `5.weight` has shape [8], but the network needs [16]",
        ),
        (
            "block.0.weight",
            vec![16, 8, 3, 3],
            "tensor `block.0.weight` has shape [16, 8, 3, 3], but the network needs [16, 1, 3, 3]",
        ),
        (
            "3.0.weight",
            vec![8, 8, 3, 3],
            "tensor `3.0.weight` has shape [8, 8, 3, 3], but the network needs [8, 2, 3, 3]",
        ),
    ] {
        let mut bad = all.clone();
        let e = entry(&mut bad, name);
        e.3 = zeros(shape.iter().product(), 4);
        e.2 = shape;
        assert_eq!(blocks_error(&bad), message);
    }

    // A counter must be a scalar, shape [] (these hold one I64 too).
    for (shape, shown) in [(vec![1], "[1]"), (vec![1, 1], "[1, 1]")] {
        let mut bad = all.clone();
        entry(&mut bad, "3.1.num_batches_tracked").2 = shape;
        assert_eq!(
            blocks_error(&bad),
            format!("tensor `3.1.num_batches_tracked` has shape {shown}, but the network needs []")
        );
    }
    let mut bad = all.clone();
    let e = entry(&mut bad, "3.1.num_batches_tracked");
    e.2 = vec![2];
    e.3 = zeros(2, 8);
    assert_eq!(
        blocks_error(&bad),
        "tensor `3.1.num_batches_tracked` has shape [2], but the network needs []"
    );
}

#[test]
fn bn_tensor_of_the_wrong_dtype_is_named_with_both_dtypes() {
    let all = entries(Blocks::init(1).parameters());
    for (name, dtype, bytes_per_value, message) in [
        (
            "1.running_var",
            "F16",
            2,
            "tensor `1.running_var` has dtype F16, but the network needs F32",
        ),
        (
            "block.1.running_mean",
            "F64",
            8,
            "tensor `block.1.running_mean` has dtype F64, but the network needs F32",
        ),
        (
            "1.num_batches_tracked",
            "F32",
            4,
            "tensor `1.num_batches_tracked` has dtype F32, but the network needs I64",
        ),
        (
            "5.num_batches_tracked",
            "I32",
            4,
            "tensor `5.num_batches_tracked` has dtype I32, but the network needs I64",
        ),
        (
            "3.4.weight",
            "I64",
            8,
            "tensor `3.4.weight` has dtype I64, but the network needs F32",
        ),
        (
            "block.down.0.weight",
            "I64",
            8,
            "tensor `block.down.0.weight` has dtype I64, but the network needs F32",
        ),
    ] {
        let mut bad = all.clone();
        let e = entry(&mut bad, name);
        e.1 = dtype;
        e.3 = zeros(e.2.iter().product(), bytes_per_value);
        assert_eq!(blocks_error(&bad), message);
    }
}

#[test]
fn missing_bn_tensor_is_named_with_its_shape() {
    let all = entries(Blocks::init(1).parameters());
    for (name, message) in [
        (
            "3.1.running_var",
            "tensor `3.1.running_var` is missing from the weights (the network needs shape [8])",
        ),
        (
            "block.down.1.running_mean",
            "tensor `block.down.1.running_mean` is missing from the weights (the network needs shape [16])",
        ),
        (
            "5.bias",
            "tensor `5.bias` is missing from the weights (the network needs shape [16])",
        ),
        (
            "block.down.0.weight",
            "tensor `block.down.0.weight` is missing from the weights (the network needs shape [16, 8, 1, 1])",
        ),
    ] {
        let bad: Vec<Entry> = all.iter().filter(|e| e.0 != name).cloned().collect();
        assert_eq!(bad.len() + 1, all.len());
        assert_eq!(blocks_error(&bad), message);
    }
}

#[test]
fn extra_bn_or_unknown_tensor_is_named_with_its_shape() {
    let all = entries(Blocks::init(1).parameters());
    for (name, dtype, shape, message) in [
        // A bias for a convolution declared without one.
        (
            "0.bias",
            "F32",
            vec![8],
            "tensor `0.bias` (shape [8]) is not a parameter of this network",
        ),
        (
            "block.down.0.bias",
            "F32",
            vec![16],
            "tensor `block.down.0.bias` (shape [16]) is not a parameter of this network",
        ),
        // A counter on a layer without batch norm.
        (
            "2.num_batches_tracked",
            "I64",
            vec![],
            "tensor `2.num_batches_tracked` (shape []) is not a parameter of this network",
        ),
        // A tensor a batch norm does not have.
        (
            "1.running_std",
            "F32",
            vec![8],
            "tensor `1.running_std` (shape [8]) is not a parameter of this network",
        ),
        // Names that match no layer at all.
        (
            "layer1.0.conv1.weight",
            "F32",
            vec![64, 64, 3, 3],
            "tensor `layer1.0.conv1.weight` (shape [64, 64, 3, 3]) is not a parameter of this network",
        ),
        (
            "block.2.running_mean",
            "F32",
            vec![16],
            "tensor `block.2.running_mean` (shape [16]) is not a parameter of this network",
        ),
        (
            "9.weight",
            "F16",
            vec![3, 16],
            "tensor `9.weight` (shape [3, 16]) is not a parameter of this network",
        ),
    ] {
        let size = match dtype {
            "I64" => 8,
            "F16" => 2,
            _ => 4,
        };
        let bytes = zeros(shape.iter().product(), size);
        for at in [0, all.len()] {
            let mut bad = all.clone();
            bad.insert(at, (name.to_string(), dtype, shape.clone(), bytes.clone()));
            assert_eq!(blocks_error(&bad), message, "inserted at {at}");
        }
    }
}

#[test]
fn from_parts_reads_counters_and_checks_them() {
    let net = varied_blocks(9);
    let tensors = || {
        net.parameters()
            .iter()
            .map(|t| (t.name().to_string(), t.shape().to_vec(), t.data().to_vec()))
    };
    let params = Parameters::from_parts(
        Blocks::LAYERS,
        tensors(),
        vec![("block.1.num_batches_tracked".to_string(), 3)],
    )
    .unwrap();
    assert_eq!(params.counter("block.1.num_batches_tracked"), Some(3));
    assert_eq!(params.counter("1.num_batches_tracked"), Some(0));
    assert_eq!(params.counter("0.num_batches_tracked"), None);
    let from = Blocks::from_parameters(params).unwrap();
    assert_eq!(
        from.parameters().counter("block.1.num_batches_tracked"),
        Some(3)
    );

    // Without counters: all 0.
    let params = Parameters::from_tensors(Blocks::LAYERS, tensors()).unwrap();
    assert!(params.counters().iter().all(|c| c.value() == 0));
    assert_eq!(&params, net.parameters());

    // A counter given as an f32 tensor, a tensor given as a counter, and a
    // counter for a layer without batch norm.
    let mut with_f32_counter: Vec<_> = tensors().collect();
    with_f32_counter.push(("1.num_batches_tracked".to_string(), Vec::new(), vec![0.0]));
    let Err(error) = Parameters::from_parts(Blocks::LAYERS, with_f32_counter, Vec::new()) else {
        panic!("an f32 counter was accepted");
    };
    assert_eq!(
        error.to_string(),
        "tensor `1.num_batches_tracked` has dtype F32, but the network needs I64"
    );
    let without_var = tensors().filter(|t| t.0 != "3.1.running_var");
    let Err(error) = Parameters::from_parts(
        Blocks::LAYERS,
        without_var,
        vec![("3.1.running_var".to_string(), 1)],
    ) else {
        panic!("a counter for a running variance was accepted");
    };
    assert_eq!(
        error.to_string(),
        "tensor `3.1.running_var` has dtype I64, but the network needs F32"
    );
    let Err(error) = Parameters::from_parts(
        Blocks::LAYERS,
        tensors(),
        vec![("2.num_batches_tracked".to_string(), 1)],
    ) else {
        panic!("a counter of a relu was accepted");
    };
    assert_eq!(
        error.to_string(),
        "tensor `2.num_batches_tracked` (shape []) is not a parameter of this network"
    );
}

//! Weights in safetensors: round trips for every layer kind, PyTorch's names
//! and layouts checked on hand-written files, and an error (never a panic)
//! with a precise message for every kind of bad file.

use cnn::{network, Network};
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

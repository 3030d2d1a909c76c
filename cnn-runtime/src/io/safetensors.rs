//! Weights as safetensors, with PyTorch's names and layouts.
//!
//! A file is an 8-byte little-endian header length, a JSON header naming
//! each tensor's dtype, shape and byte range, then the tensor data. Every
//! number in the header is checked against the buffer before anything is
//! sliced or allocated, so a corrupt or hostile file is an [`Error`], never
//! a panic or a huge allocation.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorInfo, TensorView};
use safetensors::SafeTensors;
use serde_json::{Map, Value};

use crate::layer::TensorRole;
use crate::{Error, LayerInfo, Parameters};

/// Bytes of the header-length field that starts every file.
const LEN_FIELD: usize = 8;

/// The key of the free-form string map a header may carry.
const METADATA_KEY: &str = "__metadata__";

/// Reads and checks parameters for `layers` from safetensors bytes.
///
/// Tensors are named after their layer's path (`"0.weight"`,
/// `"layer1.0.bn1.running_var"`); weights and buffers must be F32 and
/// counters (`num_batches_tracked`) I64 of shape `[]`, absent counters read
/// as 0. Every other tensor the layers need must be present with its
/// shape, and no other.
pub fn load(layers: &[LayerInfo], bytes: &[u8]) -> Result<Parameters, Error> {
    let header = checked_header(bytes)?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| format_error(e.to_string()))?;

    let layout = Parameters::layout(layers);
    let mut views: HashMap<&str, TensorView<'_>> = file.iter().collect();
    for slot in &layout {
        if let Some(view) = views.get(slot.name.as_str()) {
            let expected = match slot.role {
                TensorRole::Counter => Dtype::I64,
                TensorRole::Param | TensorRole::Buffer => Dtype::F32,
            };
            if view.dtype() != expected {
                return Err(Error::Dtype {
                    name: slot.name.clone(),
                    expected: if expected == Dtype::I64 { "I64" } else { "F32" },
                    found: view.dtype().to_string(),
                });
            }
        }
    }

    // Expected tensors in layout order, then the others in file order, so
    // that the first error reported does not depend on hashing.
    let mut tensors = Vec::with_capacity(views.len());
    let mut counters = Vec::new();
    for slot in &layout {
        let Some(view) = views.remove(slot.name.as_str()) else {
            continue;
        };
        if slot.role == TensorRole::Counter {
            let value = match view.data().first_chunk::<8>() {
                Some(bytes) if view.shape().is_empty() => i64::from_le_bytes(*bytes),
                _ => {
                    return Err(Error::TensorShape {
                        name: slot.name.clone(),
                        expected: Vec::new(),
                        got: view.shape().to_vec(),
                    })
                }
            };
            counters.push((slot.name.clone(), value));
        } else {
            tensors.push((
                slot.name.clone(),
                view.shape().to_vec(),
                f32_values(view.data()),
            ));
        }
    }
    for name in header {
        if let Some(view) = views.remove(name.as_str()) {
            tensors.push((name, view.shape().to_vec(), Vec::new()));
        }
    }
    Parameters::from_parts(layers, tensors, counters)
}

/// Serialises parameters as safetensors bytes (PyTorch's names, layouts
/// and dtypes: F32, and I64 for counters; with the `{"format": "pt"}`
/// metadata PyTorch writes).
pub fn save(params: &Parameters) -> Result<Vec<u8>, Error> {
    let bytes: Vec<Vec<u8>> = params
        .iter()
        .map(|t| t.data().iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let counts: Vec<[u8; 8]> = params
        .counters()
        .iter()
        .map(|c| c.value().to_le_bytes())
        .collect();
    let mut views = Vec::with_capacity(params.len() + counts.len());
    for (tensor, data) in params.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, tensor.shape().to_vec(), data)
            .map_err(|e| format_error(format!("tensor `{}`: {e}", tensor.name())))?;
        views.push((tensor.name(), view));
    }
    for (counter, data) in params.counters().iter().zip(&counts) {
        let view = TensorView::new(Dtype::I64, Vec::new(), data)
            .map_err(|e| format_error(format!("tensor `{}`: {e}", counter.name())))?;
        views.push((counter.name(), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| format_error(e.to_string()))
}

fn format_error(message: String) -> Error {
    Error::Format { message }
}

/// Checks the header against the buffer before the `safetensors` crate
/// reads it: the header length fits, the JSON is an object of tensor
/// entries, and every tensor's byte range is consistent with its dtype and
/// shape and lies inside the data that follows the header. Returns the
/// tensor names in file order.
fn checked_header(bytes: &[u8]) -> Result<Vec<String>, Error> {
    let Some((len_field, rest)) = bytes.split_first_chunk::<LEN_FIELD>() else {
        return Err(format_error(format!(
            "the file is {} bytes long, too short to be safetensors (it starts with an 8-byte header length)",
            bytes.len()
        )));
    };
    let declared = u64::from_le_bytes(*len_field);
    let header_len = usize::try_from(declared)
        .ok()
        .filter(|&n| n <= rest.len())
        .ok_or_else(|| {
            format_error(format!(
                "the header length field says {declared} bytes, but only {} bytes follow it (truncated or not safetensors)",
                rest.len()
            ))
        })?;
    let (header, data) = rest.split_at(header_len);
    let header = std::str::from_utf8(header)
        .map_err(|e| format_error(format!("the header is not UTF-8: {e}")))?;
    let entries: Map<String, Value> = serde_json::from_str(header)
        .map_err(|e| format_error(format!("the header is not a JSON object: {e}")))?;

    let mut tensors = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        if name == METADATA_KEY {
            continue;
        }
        let info: TensorInfo = serde_json::from_value(entry).map_err(|e| {
            format_error(format!("tensor `{name}` has an invalid header entry: {e}"))
        })?;
        tensors.push((name, info));
    }
    // In file order, so that a truncation is reported at the first tensor
    // it cuts.
    tensors.sort_by_key(|(_, info)| info.data_offsets);
    for (name, info) in &tensors {
        check_extent(name, info, data.len())?;
    }
    Ok(tensors.into_iter().map(|(name, _)| name).collect())
}

/// Checks that a tensor's byte range matches its dtype and shape and lies
/// within `data_len` bytes, with checked arithmetic throughout.
fn check_extent(name: &str, info: &TensorInfo, data_len: usize) -> Result<(), Error> {
    let (start, end) = info.data_offsets;
    let needed = info
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(info.dtype.bitsize()))
        .map(|bits| bits.div_ceil(8));
    let Some(needed) = needed else {
        return Err(format_error(format!(
            "tensor `{name}` declares shape {:?}, whose size in bytes overflows",
            info.shape
        )));
    };
    if end < start || end - start != needed {
        return Err(format_error(format!(
            "tensor `{name}` has dtype {} and shape {:?}, which take {needed} bytes, but its data offsets [{start}, {end}] do not span that",
            info.dtype, info.shape
        )));
    }
    if end > data_len {
        return Err(format_error(format!(
            "tensor `{name}` ends at byte {end} of the data, but only {data_len} bytes of data follow the header (truncated file?)"
        )));
    }
    Ok(())
}

/// Little-endian f32 values; `bytes.len()` is a multiple of 4 for an F32
/// tensor whose extent was checked.
fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

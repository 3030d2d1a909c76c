//! ONNX export.

use crate::{LayerInfo, Parameters};

/// The network as an ONNX model.
pub fn export(name: &str, input: [usize; 3], layers: &[LayerInfo], params: &Parameters) -> Vec<u8> {
    let _ = (name, input, layers, params);
    Vec::new()
}

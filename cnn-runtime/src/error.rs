//! The runtime's error type: every variant carries what a user needs to act.

use std::fmt;

/// Everything that can go wrong at run time: a tensor of the wrong shape, a
/// weights file that does not match the network, an I/O failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An input or output array has the wrong shape.
    Shape {
        /// What was being checked (`"input"`, `"output"`, `"labels"`).
        what: &'static str,
        /// The shape the network needs.
        expected: Vec<usize>,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// A tensor the network needs is not in the weights.
    MissingTensor {
        /// The tensor's name, e.g. `"0.weight"`.
        name: String,
        /// The shape the network needs.
        expected: Vec<usize>,
    },
    /// The weights hold a tensor the network does not have.
    UnexpectedTensor {
        /// The tensor's name.
        name: String,
        /// Its shape in the file.
        shape: Vec<usize>,
    },
    /// A tensor has the wrong shape.
    TensorShape {
        /// The tensor's name.
        name: String,
        /// The shape the network needs.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A tensor has the wrong dtype (F32 for weights and buffers, I64 for
    /// counters).
    Dtype {
        /// The tensor's name.
        name: String,
        /// The dtype the network needs.
        expected: &'static str,
        /// The dtype found, e.g. `"F16"`.
        found: String,
    },
    /// A weights file is not valid (truncated, corrupt header, …).
    Format {
        /// What is wrong, as precisely as known.
        message: String,
    },
    /// A label is not a valid class index.
    Label {
        /// Position of the label in the batch.
        index: usize,
        /// The label given.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// A convolution cannot run: the CPU lacks its kernel's instruction
    /// set, or the layer's shape is not one the kernel takes.
    Kernel {
        /// The step of the forward pass.
        step: usize,
        /// Why.
        source: crate::kernels::ConvError,
    },
    /// What the network asks is not supported yet (training a layer kind
    /// that has no backward pass).
    Unsupported {
        /// What, and why.
        message: String,
    },
    /// A network's plan is inconsistent with its layers (a plan not made by
    /// `network!`).
    Plan {
        /// What is wrong.
        message: String,
    },
    /// An I/O error, with the path involved.
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn dims(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { what, expected, got } => write!(
                f,
                "{what} has shape {}, but the network needs {}",
                dims(got),
                dims(expected)
            ),
            Error::MissingTensor { name, expected } => write!(
                f,
                "tensor `{name}` is missing from the weights (the network needs shape {})",
                dims(expected)
            ),
            Error::UnexpectedTensor { name, shape } => write!(
                f,
                "tensor `{name}` (shape {}) is not a parameter of this network",
                dims(shape)
            ),
            Error::TensorShape { name, expected, got } => write!(
                f,
                "tensor `{name}` has shape {}, but the network needs {}",
                dims(got),
                dims(expected)
            ),
            Error::Dtype {
                name,
                expected,
                found,
            } => {
                write!(f, "tensor `{name}` has dtype {found}, but the network needs {expected}")
            }
            Error::Format { message } => write!(f, "invalid weights file: {message}"),
            Error::Label { index, label, classes } => write!(
                f,
                "label {label} at position {index} is not a class: the network has {classes} outputs"
            ),
            Error::Kernel { step, source } => {
                write!(f, "step {step} of the forward pass cannot run: {source}")
            }
            Error::Plan { message } => write!(f, "the network's plan is invalid: {message}"),
            Error::Unsupported { message } => write!(f, "not supported: {message}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Kernel { source, .. } => Some(source),
            _ => None,
        }
    }
}

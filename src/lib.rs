//! Convolutional networks declared inline, shape-checked at compile time,
//! run by a specialised runtime.
//!
//! ```
//! use cnn::network;
//!
//! network! {
//!     /// The network from the lecture notes: 10 5×5 filters, stride 1, pad 2.
//!     pub struct SeedNet {
//!         input(3, 32, 32)
//!         conv(10, 5, s = 1, p = 2) relu pool(2, 2)
//!         fc(10)
//!     }
//! }
//!
//! const _: () = assert!(SeedNet::PARAMS == 760 + 10 * 16 * 16 * 10 + 10);
//! assert_eq!(SeedNet::OUTPUT, [10, 1, 1]);
//!
//! let net = SeedNet::init(42);
//! let image = ndarray::Array3::<f32>::zeros((3, 32, 32));
//! let scores = net.forward(image.view()).unwrap();
//! assert_eq!(scores.shape(), &[10, 1, 1]);
//! ```

pub use cnn_macros::network;
pub use cnn_runtime::kernels::Act;
pub use cnn_runtime::train::{Gradients, Sgd, Trainable};
pub use cnn_runtime::{
    Counter, Error, LayerInfo, LayerKind, Network, Node, Parameters, Slot, Tensor, TensorInfo,
    TensorRole, Workspace,
};

/// The shape table of a network as plain text, like torchinfo's summary.
pub fn summary<N: Network>() -> &'static str {
    N::SUMMARY
}

/// Items the generated code names; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use cnn_runtime::train;
    pub use cnn_runtime::{kernels, plan};
    pub use cnn_runtime::{
        Error, LayerInfo, LayerKind, Model, Network, Node, Parameters, TensorInfo, TensorRole,
        Workspace,
    };
    pub use ndarray::{Array3, Array4, ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4};

    /// The largest workspace a network may need, in f32s: its bytes must fit
    /// an allocation (`isize::MAX`).
    pub const MAX_WORKSPACE: usize = isize::MAX as usize / ::core::mem::size_of::<f32>();
}

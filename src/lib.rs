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
//!
//! Training takes any [`Optimizer`] ([`Sgd`], [`AdamW`]), whose learning
//! rate a [`Schedule`] can set step by step:
//!
//! ```
//! use cnn::{network, AdamW, Optimizer, Schedule};
//!
//! network! {
//!     struct Tiny { input(1, 4, 4) conv(2, 3, p = 1) relu pool(2) fc(3) }
//! }
//!
//! let mut net = Tiny::init(7);
//! // Three classes: a horizontal bar, a vertical bar, a diagonal.
//! let labels = [0, 1, 2, 0, 1, 2];
//! let x = ndarray::Array4::<f32>::from_shape_fn((6, 1, 4, 4), |(n, _, h, w)| {
//!     let on = [h == 1 + n / 3, w == 1 + n / 3, h == w][labels[n]];
//!     f32::from(u8::from(on))
//! });
//! let mut opt = AdamW::default().weight_decay(0.05);
//! let schedule = Schedule::cosine(0.05, 30).warmup(5);
//! let (first, _) = net.gradients(x.view(), &labels)?;
//! for t in 0..35 {
//!     schedule.apply(t, &mut opt);
//!     net.train_step(x.view(), &labels, &mut opt)?;
//! }
//! let (last, _) = net.gradients(x.view(), &labels)?;
//! assert!(last < first / 2.0, "{first} → {last}");
//! assert!(opt.lr() < 1e-3); // annealed
//! # Ok::<(), cnn::Error>(())
//! ```

pub use cnn_macros::network;
pub use cnn_runtime::kernels::Act;
pub use cnn_runtime::train::{AdamW, Gradients, Optimizer, Schedule, Sgd, Trainable};
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

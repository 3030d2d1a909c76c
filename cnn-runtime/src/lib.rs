//! The runtime of the `cnn` crate: specialised kernels, parameters, weight
//! I/O and the [`Network`] trait that generated networks implement.
//!
//! Users depend on the `cnn` facade, which re-exports what is public here.

#![warn(missing_docs)]

mod error;
pub mod io;
pub mod kernels;
mod layer;
mod network;
mod params;
#[doc(hidden)]
pub mod reference_forward;
pub mod train;
mod workspace;

pub use error::Error;
pub use layer::{LayerInfo, LayerKind};
pub use network::Network;
pub use params::{Parameters, Tensor};
pub use workspace::Workspace;

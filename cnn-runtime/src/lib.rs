//! The runtime of the `cnn` crate: kernels compiled once for every layer
//! shape, parameters, weight I/O and the [`Network`] trait that generated
//! networks implement.
//!
//! `network!` expands into constants: a [`Model`] holding the network's
//! volumes, layers and [`Plan`](plan::Plan), its forward pass as data. The
//! trait's methods run that plan with the kernels of [`kernels`], chosen
//! per layer for the instruction set in use ([`cpu`]).
//!
//! Users depend on the `cnn` facade, which re-exports what is public here.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cpu;
mod error;
pub mod io;
pub mod kernels;
mod layer;
mod model;
mod network;
mod par;
mod params;
pub mod plan;
mod prepared;
#[doc(hidden)]
pub mod reference_forward;
mod run;
pub mod train;
mod workspace;

pub use error::Error;
pub use layer::{LayerInfo, LayerKind, Node, TensorInfo, TensorRole};
pub use model::Model;
pub use network::{Network, TEAM_MIN_PASS_MACS};
pub use params::{Counter, Parameters, Slot, Tensor};
pub use workspace::Workspace;

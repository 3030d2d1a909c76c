//! An example crate whose build script (`build.rs`) writes the shape
//! documentation of the networks in `src/nets.rs` into `OUT_DIR`; the crate
//! includes it with `include_str!`, here in its own docs:
//!
#![doc = include_str!(concat!(env!("OUT_DIR"), "/shapes.md"))]

pub mod nets;

/// The files the build script wrote, included at compile time.
pub mod shapes {
    /// Every network's shape table in Markdown, under a heading per network.
    pub const ALL_MARKDOWN: &str = include_str!(concat!(env!("OUT_DIR"), "/shapes.md"));
    /// `SeedNet`'s shape table in Markdown.
    pub const SEED_NET_MARKDOWN: &str = include_str!(concat!(env!("OUT_DIR"), "/SeedNet.md"));
    /// `LeNet5`'s shapes as JSON (schema: `cnn_spec::render::json`).
    pub const LENET5_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/LeNet5.json"));
    /// A picture of `Vgg`'s volumes as SVG.
    pub const VGG_SVG: &str = include_str!(concat!(env!("OUT_DIR"), "/Vgg.svg"));
}

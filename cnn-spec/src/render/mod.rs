//! Shape documentation renderers, each from the same checked model.

mod markdown;
mod number;
mod text;

pub use markdown::markdown;
pub use number::thousands;
pub use text::summary;

//! Prints the shape tables of three classic networks, computed at compile
//! time by `network!`.
//!
//! ```text
//! cargo run --example shapes
//! ```

use cnn::{network, Network};

network! {
    /// The network from the lecture notes: 10 5×5 filters, stride 1, pad 2.
    pub struct SeedNet {
        input(3, 32, 32)
        conv(10, 5, s = 1, p = 2) relu pool(2, 2)
        fc(10)
    }

    /// LeNet-5 on 28×28 digits (padding 2 stands in for the original 32×32 input).
    pub struct LeNet5 {
        input(1, 28, 28)
        conv(6, 5, p = 2) relu pool(2, 2)
        conv(16, 5) relu pool(2, 2)
        fc(120) relu fc(84) relu fc(10)
    }

    /// A VGG-style network for 32×32 colour images: stacks of 3×3 convolutions.
    pub struct CifarVgg {
        input(3, 32, 32)
        conv(32, 3, p = same) relu conv(32, 3, p = same) relu pool(2)
        conv(64, 3, p = same) relu conv(64, 3, p = same) relu pool(2)
        conv(128, 3, p = same) relu pool(2)
        fc(256) relu fc(10)
    }
}

fn print<N: Network>() {
    println!("{}\n{}", N::NAME, cnn::summary::<N>());
}

fn main() {
    print::<SeedNet>();
    print::<LeNet5>();
    print::<CifarVgg>();
}

//! The crate's networks; `build.rs` reads this file.

cnn::network! {
    /// The network from the lecture notes: 10 5×5 filters, stride 1, pad 2.
    #[derive(Clone)]
    pub struct SeedNet {
        input(3, 32, 32)
        conv(10, 5, s = 1, p = 2) relu pool(2, 2)
        fc(10)
    }

    /// LeNet-5 on 28×28 digits.
    pub struct LeNet5 {
        input(1, 28, 28)
        conv(6, 5, p = 2) relu pool(2, 2)
        conv(16, 5) relu pool(2, 2)
        fc(120) relu fc(84) relu fc(10)
    }
}

/// A deeper network, declared inside a module, to show a picture that
/// wraps.
pub mod deep {
    cnn::network! {
        /// A small VGG-like stack on 64×64 images.
        pub struct Vgg {
            input(3, 64, 64)
            conv(16, 3, p = same) relu conv(16, 3, p = same) relu pool(2)
            conv(32, 3, p = same) relu conv(32, 3, p = same) relu pool(2)
            conv(64, 3, p = same) relu conv(64, 3, p = same) relu pool(2)
            conv(128, 3, p = same) relu pool(2)
            flatten fc(256) relu fc(64) relu fc(10) softmax
        }
    }
}

use cnn::network;

network! {
    /// `p = same` with an even filter and an odd dilation has no centre.
    struct Net {
        input(16, 32, 32)
        conv(16, 4, d = 3, p = same) relu
        fc(10)
    }
}

fn main() {}

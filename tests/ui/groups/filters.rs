use cnn::network;

network! {
    /// A depthwise conv (g = C) whose filters are not a multiple of C.
    struct MobileBlock {
        input(32, 112, 112)
        conv(48, 3, p = 1, g = 32, bias = false) bn relu6
        conv(16, 1, bias = false) bn
    }
}

fn main() {}

use cnn::network;

network! {
    /// MAIN and the shortcut form one sequence of names.
    struct Block {
        input(64, 56, 56)
        residual(relu) {
            conv1: conv(128, 3, s = 2, p = 1, bias = false, floor) bn: bn relu
            conv2: conv(128, 3, p = 1, bias = false) bn2: bn
        } shortcut {
            conv1: conv(128, 1, s = 2, bias = false, floor) bn
        }
    }
}

fn main() {}

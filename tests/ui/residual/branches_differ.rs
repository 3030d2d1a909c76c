use cnn::network;

network! {
    /// A downsample that forgets MAIN's stride.
    struct Layer2 {
        input(64, 56, 56)
        residual(relu) {
            conv1: conv(128, 3, s = 2, p = 1, bias = false, floor) bn1: bn relu
            conv2: conv(128, 3, p = 1, bias = false) bn2: bn
        } shortcut {
            downsample: { conv(128, 1, bias = false) bn }
        }
    }
}

fn main() {}

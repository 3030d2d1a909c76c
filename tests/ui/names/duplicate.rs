use cnn::network;

network! {
    /// A BasicBlock whose second batch norm kept the first one's name.
    struct Block {
        input(64, 56, 56)
        layer1: {
            residual(relu) {
                conv1: conv(64, 3, p = 1, bias = false) bn1: bn relu
                conv2: conv(64, 3, p = 1, bias = false) bn1: bn
            }
        }
    }
}

fn main() {}

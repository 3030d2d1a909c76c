use cnn::network;

network! {
    /// `3` names the first conv, and the fourth entry is `3` by position.
    struct Features {
        input(3, 32, 32)
        features: {
            3: conv(32, 3, p = 1, bias = false) bn relu conv(32, 3, p = 1, bias = false) bn relu
        }
        fc(10)
    }
}

fn main() {}

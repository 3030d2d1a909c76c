use cnn::network;

network! {
    /// A dilated conv whose stride does not fit.
    struct Net {
        input(16, 32, 32)
        conv(16, 3, s = 2, d = 2) relu
        fc(10)
    }
}

fn main() {}

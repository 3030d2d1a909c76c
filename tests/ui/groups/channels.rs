use cnn::network;

network! {
    /// A grouped conv whose 4 groups do not divide the 6 channels.
    struct Net {
        input(6, 32, 32)
        conv(32, 3, p = 1, g = 4) relu
        global_avgpool fc(10)
    }
}

fn main() {}

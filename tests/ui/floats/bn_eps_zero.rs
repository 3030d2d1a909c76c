use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(16, 3, p = 1, bias = false) bn(eps = 0.0) relu fc(10) }
}

fn main() {}

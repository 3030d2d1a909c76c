use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(10, 5, s = 2) relu fc(10) }
}

fn main() {}

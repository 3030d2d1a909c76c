use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(10, 4, s = 3) relu fc(10) }
}

fn main() {}

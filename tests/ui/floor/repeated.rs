use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(16, 3, s = 2, floor, floor) relu fc(10) }
}

fn main() {}

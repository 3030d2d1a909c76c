use cnn::network;

network! {
    struct Net { x: input(3, 32, 32) conv1: conv(16, 3, p = 1) relu fc: fc(10) }
}

fn main() {}

use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(8, 3) relu maxpool(2) linear(10) }
}

fn main() {}

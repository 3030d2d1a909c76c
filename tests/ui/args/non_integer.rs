use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(8, 2.5) pool("2") fc(-1) }
}

fn main() {}

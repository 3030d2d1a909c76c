use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(8, (3, 3, 3)) fc((1, 2)) }
}

fn main() {}

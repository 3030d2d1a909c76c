use cnn::network;

network! {
    struct Net { input(3, 32, 32) }
}

fn main() {}

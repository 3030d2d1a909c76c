use cnn::network;

network! {
    struct Net { input(3, 4294967296, 4294967296) fc(10) }
}

fn main() {}

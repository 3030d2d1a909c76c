use cnn::network;

network! {
    struct Net {}
}

fn main() {}

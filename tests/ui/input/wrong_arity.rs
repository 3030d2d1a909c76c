use cnn::network;

network! {
    struct Net { input(32, 32) fc(10) }
}

fn main() {}

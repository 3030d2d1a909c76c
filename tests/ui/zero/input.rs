use cnn::network;

network! {
    struct Net { input(0, 32, 32) fc(10) }
}

fn main() {}

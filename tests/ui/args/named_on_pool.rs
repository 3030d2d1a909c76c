use cnn::network;

network! {
    struct Net { input(3, 32, 32) pool(2, s = 2) fc(10) }
}

fn main() {}

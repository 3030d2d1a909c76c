use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(8, 3, 1) pool(2, 2, 2) fc(10, 3) }
}

fn main() {}

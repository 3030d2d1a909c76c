use cnn::network;

network! {
    struct Net { input(1, 8, 8) conv(4, 3, p = 1) pool(2) pool(2) pool(2) pool(2) fc(10) }
}

fn main() {}

use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(99999999999999999999999, 3) fc(10) }
}

fn main() {}

use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(8, 3) lstm(64) fc(10) }
}

fn main() {}

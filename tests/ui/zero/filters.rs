use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(0, 3) fc(10) }
}

fn main() {}

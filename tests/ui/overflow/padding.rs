use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(8, 3, p = 9223372036854775807) fc(10) }
}

fn main() {}

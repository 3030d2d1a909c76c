use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(8, 3, s = 2, p = same) fc(10) }
}

fn main() {}

use cnn::network;

network! {
    struct Net { input(3, 31, 31) conv(16, 3, p = 1) relu pool(2, 2) fc(10) }
}

fn main() {}

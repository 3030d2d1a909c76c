use cnn::network;

network! {
    struct Net { input(3, 32, 28) conv(8, (5, 3), s = (3, 2)) fc(10) }
}

fn main() {}

use cnn::network;

network! {
    struct Net { input(3, 5, 5) conv(10, 7) fc(2) }
}

fn main() {}

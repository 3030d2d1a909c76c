use cnn::network;

network! {
    struct Net { input(3, 32u32, 32) fc(10) }
}

fn main() {}

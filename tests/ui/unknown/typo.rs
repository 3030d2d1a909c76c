use cnn::network;

network! {
    struct Net { input(3, 32, 32) covn(8, 3) relu fc(10) }
}

fn main() {}

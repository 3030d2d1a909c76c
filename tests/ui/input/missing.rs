use cnn::network;

network! {
    struct Net { conv(8, 3) relu fc(10) }
}

fn main() {}

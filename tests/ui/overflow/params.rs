use cnn::network;

network! {
    struct Net { input(1, 1, 1) fc(1152921504606846976) fc(1152921504606846976) }
}

fn main() {}

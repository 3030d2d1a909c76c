use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(16, 3, p = 1) relu flatten fc(128) relu dropout(1.5) fc(10) }
}

fn main() {}

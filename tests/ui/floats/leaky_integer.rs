use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(16, 3, p = 1) leaky_relu(1) fc(10) }
}

fn main() {}

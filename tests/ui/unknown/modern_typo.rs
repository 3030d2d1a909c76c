use cnn::network;

network! {
    struct Net { input(3, 32, 32) conv(16, 3, p = 1) batchnorm relu7 global_avgpol fc(10) }
}

fn main() {}

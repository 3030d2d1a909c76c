use cnn::network;

network! {
    struct Net {
        input(3, 32, 32)
        conv(16, 3, s = 2, p = 1, floor) bn relu
        global_avgpool fc(10, floor)
    }
}

fn main() {}

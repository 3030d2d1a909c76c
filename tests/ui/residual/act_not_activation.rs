use cnn::network;

network! {
    struct Block {
        input(64, 8, 8)
        residual(fc(3)) { conv(64, 3, p = 1, bias = false) bn relu conv(64, 3, p = 1, bias = false) bn }
        global_avgpool fc(10)
    }
}

fn main() {}

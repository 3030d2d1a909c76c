use cnn::network;

network! {
    /// A stem max pool padded by more than half its window.
    struct Stem {
        input(3, 224, 224)
        conv(64, 7, s = 2, p = 3, bias = false, floor) bn relu
        pool(3, 2, p = 2, floor)
        fc(10)
    }
}

fn main() {}

use cnn::network;

network! {
    /// A 3×3 filter dilated by 4 spans 9×9: more than a 7×7 map.
    struct Head {
        input(256, 7, 7)
        conv(256, 3, d = 4) relu
        global_avgpool fc(10)
    }
}

fn main() {}

use cnn::network;

network! {
    /// torchvision's ResNet stem without the `floor` PyTorch applies.
    struct Stem {
        input(3, 224, 224)
        conv(64, 7, s = 2, p = 3, bias = false) bn relu
        fc(10)
    }
}

fn main() {}

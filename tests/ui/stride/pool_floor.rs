use cnn::network;

network! {
    /// torchvision's ResNet max pool without the `floor` PyTorch applies.
    struct Stem {
        input(64, 112, 112)
        pool(3, 2, p = 1)
        fc(10)
    }
}

fn main() {}

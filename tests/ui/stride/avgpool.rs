use cnn::network;

network! {
    struct Net { input(8, 10, 10) avgpool(3, 2) fc(10) }
}

fn main() {}

use cnn::network;

network! {
    fn Net() {}
}

fn main() {}

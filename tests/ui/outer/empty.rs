use cnn::network;

network! {}

fn main() {}

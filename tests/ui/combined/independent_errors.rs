use cnn::network;

network! {
    struct Net {
        input(3, 32, 32)
        covn(8, 3)
        conv(0, 3)
        conv(8, 4, p = same)
        fc(10)
    }

    struct Other { input(1, 28, 28) conv(6, 5, s = 2) fc(10) }
}

fn main() {}

use cnn::network;

network! {
    /// MAIN over-pads and grows the map: no 1×1 shortcut can follow it.
    struct Block {
        input(64, 56, 56)
        residual(relu) { conv(64, 3, p = 2, bias = false) bn relu }
    }
}

fn main() {}

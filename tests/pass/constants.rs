use cnn::network;

network! {
    /// The network from the lecture notes.
    #[derive(Clone, Debug)]
    pub struct SeedNet {
        input(3, 32, 32)
        conv(10, 5, s = 1, p = 2) relu pool(2, 2)
        fc(10)
    }
}

// The constants are usable in const context.
const _: () = assert!(SeedNet::LAYERS[0].params == 760);
const _: () = assert!(SeedNet::PARAMS == 760 + 10 * 16 * 16 * 10 + 10);
const _: () = assert!(SeedNet::MACS == 10 * 32 * 32 * 75 + 2560 * 10);
const INPUT: [usize; 3] = SeedNet::INPUT;
const OUTPUT: [usize; 3] = SeedNet::OUTPUT;

fn main() {
    assert_eq!(INPUT, [3, 32, 32]);
    assert_eq!(OUTPUT, [10, 1, 1]);
    assert_eq!(SeedNet::LAYERS[0].name, "conv(10, 5, s = 1, p = 2)");
    let net = SeedNet::init(1);
    let copy = net.clone();
    assert_eq!(format!("{net:?}"), format!("{copy:?}"));
}

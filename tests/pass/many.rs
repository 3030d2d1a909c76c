mod models {
    cnn::network! {
        /// AlexNet's first layers, with pairs and `same`.
        pub struct Alex {
            input(3, 227, 227)
            conv(96, 11, s = 4) relu pool(3, 2)
            conv(256, 5, p = same) relu pool(3, 2)
        }

        pub(crate) struct Pairs {
            input(2, 9, 16)
            conv(4, (3, 4), s = (2, 3)) tanh
            avgpool((2, 1), (1, 1)) sigmoid flatten fc(3) softmax
        }

        struct Private { input(1, 4, 4) flatten }
    }

    pub fn private_output() -> [usize; 3] {
        Private::OUTPUT
    }
}

fn main() {
    use models::{Alex, Pairs};
    assert_eq!(Alex::LAYERS[0].output, [96, 55, 55]);
    assert_eq!(Alex::LAYERS[0].params, 34_944);
    assert_eq!(Alex::LAYERS[2].output, [96, 27, 27]);
    assert_eq!(Alex::LAYERS[3].output, [256, 27, 27]);
    assert_eq!(Alex::OUTPUT, [256, 13, 13]);
    assert_eq!(Pairs::LAYERS[0].output, [4, 4, 5]);
    assert_eq!(Pairs::OUTPUT, [3, 1, 1]);
    assert_eq!(models::private_output(), [16, 1, 1]);

    fn generic<N: cnn::Network>() -> usize {
        N::PARAMS
    }
    assert_eq!(generic::<Pairs>(), Pairs::PARAMS);
}

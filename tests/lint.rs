//! Networks expanded under strict lints: users who deny warnings, require
//! docs or run clippy's pedantic group never see a warning pointing into
//! `network!` (`cargo clippy --all-targets` runs this file's lints too).

#![deny(warnings, missing_docs, unused, rust_2018_idioms, future_incompatible)]
#![deny(clippy::all, clippy::pedantic)]

cnn::network! {
    /// A documented network with every layer kind.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Strict {
        input(2, 12, 12)
        conv(4, 3, p = same) relu conv(4, (3, 1), s = (1, 1)) sigmoid pool(2) avgpool((1, 2), (1, 2))
        flatten fc(6) tanh fc(3) softmax
    }
}

#[test]
fn strict_network_runs() {
    let net = Strict::init(3);
    let x = ndarray::Array3::<f32>::from_elem((2, 12, 12), 0.5);
    let y = net
        .forward(x.view())
        .expect("the input has the network's shape");
    let sum: f32 = y.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "softmax sums to one, got {sum}");
    assert_eq!(Strict::OUTPUT, [3, 1, 1]);
    assert_eq!(net.clone(), net);
}

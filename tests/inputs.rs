//! Inputs at the edge: wrong shapes are errors naming both shapes,
//! non-contiguous views work, NaN and infinities flow through.

use cnn::network;
use ndarray::{s, Array3, Array4, Axis};

network! {
    /// A small network with a conv, a pooling and an fc.
    struct Small {
        input(2, 6, 6)
        conv(3, 3, p = 1) relu pool(2)
        fc(4)
    }

    /// Max pooling alone, to see how NaN and infinities pool.
    struct MaxOnly {
        input(1, 4, 4)
        pool(2)
    }

    /// Softmax alone.
    struct SoftmaxOnly {
        input(1, 1, 3)
        softmax
    }
}

fn image([c, h, w]: [usize; 3]) -> Array3<f32> {
    Array3::from_shape_fn((c, h, w), |(c, y, x)| {
        ((c * 29 + y * 7 + x * 3) % 11) as f32 / 5.0 - 1.0
    })
}

#[test]
fn forward_rejects_a_wrong_shape_naming_both() {
    let net = Small::init(1);
    let error = net.forward(Array3::zeros((2, 6, 5)).view()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "input has shape [2, 6, 5], but the network needs [2, 6, 6]"
    );
    let error = net.forward(Array3::zeros((6, 6, 2)).view()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "input has shape [6, 6, 2], but the network needs [2, 6, 6]"
    );
}

#[test]
fn forward_batch_rejects_a_wrong_shape_naming_both() {
    let net = Small::init(1);
    let error = net
        .forward_batch(Array4::zeros((5, 3, 6, 6)).view())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "input batch has shape [5, 3, 6, 6], but the network needs [5, 2, 6, 6]"
    );
    let error = net
        .forward_batch(Array4::zeros((0, 2, 6, 7)).view())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "input batch has shape [0, 2, 6, 7], but the network needs [0, 2, 6, 6]"
    );
}

#[test]
fn forward_batch_into_fills_a_reused_output_and_checks_its_shape() {
    let net = Small::init(3);
    let mut x = Array4::zeros((3, 2, 6, 6));
    for (i, mut image) in x.outer_iter_mut().enumerate() {
        image.assign(&image3(i));
    }
    let expected = net.forward_batch(x.view()).unwrap();
    // Garbage first, and every other row of a larger array: a strided view.
    let mut out = Array4::from_elem((6, 4, 1, 1), f32::NAN);
    net.forward_batch_into(x.view(), out.slice_mut(s![..;2, .., .., ..]))
        .unwrap();
    assert_eq!(out.slice(s![..;2, .., .., ..]), expected);
    assert!(out.slice(s![1..;2, .., .., ..]).iter().all(|v| v.is_nan()));

    let error = net
        .forward_batch_into(x.view(), Array4::zeros((2, 4, 1, 1)).view_mut())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "output batch has shape [2, 4, 1, 1], but the network needs [3, 4, 1, 1]"
    );
}

/// Image `i` of a batch: distinct values per image.
fn image3(i: usize) -> Array3<f32> {
    image(Small::INPUT).mapv(|v| v + i as f32 * 0.25)
}

#[test]
fn empty_batch_gives_empty_output() {
    let y = Small::init(1)
        .forward_batch(Array4::zeros((0, 2, 6, 6)).view())
        .unwrap();
    assert_eq!(y.shape(), &[0, 4, 1, 1]);
}

#[test]
fn non_contiguous_views_give_the_same_output() {
    let net = Small::init(2);
    let x = image(Small::INPUT);
    let expected = net.forward(x.view()).unwrap();

    // The same image stored as H×W×C, viewed as C×H×W.
    let hwc = x
        .view()
        .permuted_axes([1, 2, 0])
        .as_standard_layout()
        .into_owned();
    let chw = hwc.view().permuted_axes([2, 0, 1]);
    assert!(chw.as_slice().is_none());
    assert_eq!(net.forward(chw).unwrap(), expected);

    // Every other image of a batch.
    let mut batch = Array4::zeros((4, 2, 6, 6));
    batch.index_axis_mut(Axis(0), 0).assign(&x);
    batch.index_axis_mut(Axis(0), 2).assign(&x);
    let strided = batch.slice(s![..;2, .., .., ..]);
    let y = net.forward_batch(strided).unwrap();
    assert_eq!(y.index_axis(Axis(0), 0), expected);
    assert_eq!(y.index_axis(Axis(0), 1), expected);
}

#[test]
fn nan_and_infinities_flow_through_without_panic() {
    let net = Small::init(3);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = image(Small::INPUT);
        x[[1, 2, 3]] = bad;
        let y = net.forward(x.view()).unwrap();
        assert_eq!(y.shape(), &[4, 1, 1]);
        let batch = x.insert_axis(Axis(0));
        let from_batch = net.forward_batch(batch.view()).unwrap();
        // The same values, NaN included, whether alone or in a batch.
        for (a, b) in from_batch.iter().zip(&y) {
            assert_eq!(a.to_bits(), b.to_bits(), "{bad}: {a} vs {b}");
        }
    }
}

#[test]
fn max_pooling_over_nan_is_nan_and_infinities_win() {
    // Windows: top-left holds NaN, top-right +inf, bottom-left −inf,
    // bottom-right plain values.
    let mut x = Array3::from_shape_fn((1, 4, 4), |(_, y, x)| (y * 4 + x) as f32);
    x[[0, 1, 0]] = f32::NAN;
    x[[0, 0, 3]] = f32::INFINITY;
    x[[0, 2, 0]] = f32::NEG_INFINITY;
    let y = MaxOnly::zeros().forward(x.view()).unwrap();
    assert!(y[[0, 0, 0]].is_nan());
    assert_eq!(y[[0, 0, 1]], f32::INFINITY);
    assert_eq!(y[[0, 1, 0]], 13.0);
    assert_eq!(y[[0, 1, 1]], 15.0);
}

#[test]
fn softmax_of_an_infinity_does_not_panic() {
    let x = Array3::from_shape_vec((1, 1, 3), vec![0.0, f32::NEG_INFINITY, 1.0]).unwrap();
    let y = SoftmaxOnly::zeros().forward(x.view()).unwrap();
    let e = 1.0f32.exp();
    assert!((y[[0, 0, 0]] - 1.0 / (1.0 + e)).abs() < 1e-6);
    assert_eq!(y[[0, 0, 1]], 0.0);
    assert!((y[[0, 0, 2]] - e / (1.0 + e)).abs() < 1e-6);
}

//! Loading a PyTorch-style checkpoint: weights saved with safetensors from
//! an `nn.Sequential` load into the `network!` with the same layers.
//!
//! ```text
//! cargo run --release --example pytorch_import                      # shipped weights
//! cargo run --release --example pytorch_import -- weights.safetensors
//! cargo run --release --example pytorch_import -- --train OUT.safetensors
//! ```
//!
//! The PyTorch model that writes a compatible file:
//!
//! ```python
//! import torch.nn as nn
//! from safetensors.torch import save_file
//! model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
//!                       nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
//! # ... train on 1×8×8 digit images, pixels scaled to [0, 1] ...
//! save_file(model.state_dict(), "weights.safetensors")
//! ```
//!
//! Its state-dict names are `0.weight`, `0.bias` (the conv, layer 0) and
//! `4.weight`, `4.bias` (the linear layer, after ReLU, pooling and Flatten),
//! exactly the names of the network below, which writes `flatten` where the
//! PyTorch model has `nn.Flatten`.
//!
//! The shipped `examples/data/tiny_digits.safetensors` was written by this
//! project itself, with `--train`: ten epochs of SGD on 1,500 of the UCI
//! digits; the other 297 are held out for the accuracy printed.

#[path = "support/digits_data.rs"]
mod digits_data;
#[path = "support/report.rs"]
mod report;

use std::error::Error;
use std::path::PathBuf;

use cnn::{network, Sgd};
use digits_data::{Digits, SplitMix64};

network! {
    /// The `nn.Sequential` above, layer for layer.
    pub struct TinyDigits {
        input(1, 8, 8)
        conv(4, 3, p = 1) relu pool(2)
        flatten
        fc(10)
    }
}

/// The weights shipped with the example.
const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/data/tiny_digits.safetensors"
);

/// The class with the highest score of each image.
fn predict(net: &TinyDigits, images: &Digits) -> Result<Vec<usize>, cnn::Error> {
    Ok(report::classes(
        net.forward_batch(images.images.view())?.view(),
    ))
}

/// Held-out images, and the seed of the split, initialisation and order.
const TEST: usize = 297;
const SEED: u64 = 42;

/// Trains the network on the training split and saves its weights: how the
/// shipped file was made.
fn train(data: &Digits, out: &PathBuf) -> Result<(), Box<dyn Error>> {
    let mut net = TinyDigits::init(SEED);
    let mut opt = Sgd::new(0.05).momentum(0.9);
    let mut rng = SplitMix64(SEED);
    let mut order: Vec<usize> = (0..data.len()).collect();
    for epoch in 1..=10 {
        rng.shuffle(&mut order);
        let mut loss = 0.0;
        for indices in order.chunks(32) {
            let batch = data.select(indices);
            loss += net.train_step(batch.images.view(), &batch.labels, &mut opt)?
                * indices.len() as f32;
        }
        println!("epoch {epoch:2}: loss {:.4}", loss / data.len() as f32);
    }
    net.save_safetensors(out)?;
    println!("weights written to {}", out.display());
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (train_set, test_set) = digits_data::load()?.split(TEST, SEED);
    let path = match args.as_slice() {
        [] => PathBuf::from(SHIPPED),
        [flag, out] if flag == "--train" => return train(&train_set, &PathBuf::from(out)),
        [path] => PathBuf::from(path),
        _ => return Err("usage: pytorch_import [WEIGHTS.safetensors | --train OUT]".into()),
    };

    let net = TinyDigits::load_safetensors(&path)?;
    println!(
        "loaded {} ({} parameters)",
        path.display(),
        TinyDigits::PARAMS
    );
    for tensor in net.parameters().iter() {
        println!("  {:<9} {:?}", tensor.name(), tensor.shape());
    }

    let first = test_set.select(&[0, 1, 2, 3, 4]);
    let predicted = predict(&net, &first)?;
    for (p, l) in predicted.iter().zip(&first.labels) {
        println!("image of a {l}: predicted {p}");
    }
    let all = predict(&net, &test_set)?;
    let right = all
        .iter()
        .zip(&test_set.labels)
        .filter(|(p, l)| p == l)
        .count();
    println!(
        "accuracy on the {} held-out digits: {:.1}%",
        test_set.len(),
        100.0 * right as f64 / test_set.len() as f64
    );
    Ok(())
}

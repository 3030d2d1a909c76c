//! ResNet-18, declared with `network!` in torchvision's names: prints its
//! shape table, loads a torchvision state dict saved as safetensors (or
//! initialises itself as PyTorch would), classifies a batch of images and
//! prints each one's five best classes and the time per image.
//!
//! ```text
//! cargo run --release --example resnet                          # init(42)
//! cargo run --release --example resnet -- resnet18.safetensors  # trained weights
//! ```
//!
//! The network is declared in `benches/common/modern.rs` (shared with the
//! tests and benchmarks). A torchvision checkpoint loads with no renaming:
//!
//! ```python
//! import torchvision
//! from safetensors.torch import save_file
//! model = torchvision.models.resnet18(weights="IMAGENET1K_V1")
//! save_file(model.state_dict(), "resnet18.safetensors")
//! ```
//!
//! The images here are synthetic (smooth colour gradients, normalised with
//! ImageNet's mean and standard deviation), so with trained weights the
//! classes printed say little; the point is the path from a PyTorch
//! checkpoint to a forward pass, and its speed.

use std::error::Error;
use std::time::Instant;

use ndarray::{Array4, Axis};

#[path = "../benches/common/modern.rs"]
mod modern;

use modern::ResNet18;

/// Images in the batch.
const BATCH: usize = 8;

/// A batch of smooth synthetic images, normalised per channel as
/// torchvision's ImageNet models expect.
fn images() -> Array4<f32> {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let [c, h, w] = ResNet18::INPUT;
    Array4::from_shape_fn((BATCH, c, h, w), |(n, ch, y, x)| {
        let phase = n as f32 * 0.7 + ch as f32 * 2.1;
        let value = 0.5 + 0.5 * ((x as f32 / 37.0 + phase).sin() * (y as f32 / 53.0).cos());
        (value - MEAN[ch]) / STD[ch]
    })
}

/// The five classes with the highest probability, best first.
fn top5(logits: &[f32]) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let mut ranked: Vec<(usize, f32)> = logits
        .iter()
        .map(|&l| (l - max).exp() / sum)
        .enumerate()
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(5);
    ranked
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("{}", cnn::summary::<ResNet18>());
    let net = match std::env::args().nth(1) {
        Some(path) => {
            println!("weights: {path}");
            ResNet18::load_safetensors(&path)?
        }
        None => {
            println!("weights: init(42), PyTorch's initialisation (pass a .safetensors file to load one)");
            ResNet18::init(42)
        }
    };

    let x = images();
    // The first pass packs the filters (batch norm folded in); time the rest.
    let mut scores = net.forward_batch(x.view())?;
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        scores = net.forward_batch(x.view())?;
    }
    let batch_ms = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
    let one = x.index_axis(Axis(0), 0);
    let start = Instant::now();
    for _ in 0..runs {
        net.forward(one)?;
    }
    let one_ms = start.elapsed().as_secs_f64() * 1e3 / runs as f64;

    for (i, image) in scores.outer_iter().enumerate() {
        let logits: Vec<f32> = image.iter().copied().collect();
        let best: Vec<String> = top5(&logits)
            .iter()
            .map(|(class, p)| format!("{class:>4} ({:>5.1} %)", p * 100.0))
            .collect();
        println!("image {i}: {}", best.join("  "));
    }
    println!(
        "{:.1} ms per image in a batch of {BATCH} ({} threads); {:.1} ms for one image alone",
        batch_ms / BATCH as f64,
        rayon::current_num_threads(),
        one_ms
    );
    Ok(())
}

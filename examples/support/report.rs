//! What the training examples read off a network's scores: each image's
//! class and the confusion matrix.

use ndarray::{ArrayView4, Axis};

/// The class with the highest score of each image of an N×K×1×1 batch of
/// scores (the first, on a tie).
pub fn classes(scores: ArrayView4<f32>) -> Vec<usize> {
    scores
        .axis_iter(Axis(0))
        .map(|s| {
            s.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

/// Prints the 10 × 10 confusion matrix of `predicted` against `labels`
/// (digits 0..9): rows are the true digit, columns the prediction.
#[allow(dead_code)] // not every example prints one
pub fn print_confusion(predicted: &[usize], labels: &[usize]) {
    println!("\nconfusion matrix on the test set (rows: true digit, columns: predicted)");
    let mut matrix = [[0usize; 10]; 10];
    for (&p, &l) in predicted.iter().zip(labels) {
        if let Some(cell) = matrix.get_mut(l).and_then(|row| row.get_mut(p)) {
            *cell += 1;
        }
    }
    println!(
        "      {}",
        (0..10).map(|d| format!("{d:>4}")).collect::<String>()
    );
    for (digit, row) in matrix.iter().enumerate() {
        println!(
            "  {digit:>2}: {}",
            row.iter().map(|n| format!("{n:>4}")).collect::<String>()
        );
    }
}

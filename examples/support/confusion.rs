//! The confusion matrix the training examples print.

/// Prints the 10 × 10 confusion matrix of `predicted` against `labels`
/// (digits 0..9): rows are the true digit, columns the prediction.
pub fn print(predicted: &[usize], labels: &[usize]) {
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

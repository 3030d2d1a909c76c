use crate::kernels::Act;

/// Fully connected: `weight` N×IN (row-major), `bias` N; `y = act(W·x + b)`.
pub fn fc(x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], act: Act) {
    let inputs = x.len();
    for (n, out) in y.iter_mut().enumerate() {
        let row = &weight[n * inputs..(n + 1) * inputs];
        let sum: f64 = row
            .iter()
            .zip(x)
            .map(|(&w, &v)| f64::from(w) * f64::from(v))
            .sum();
        *out = act.apply((sum + f64::from(bias[n])) as f32);
    }
}

/// Applies an activation in place.
pub fn activate(act: Act, y: &mut [f32]) {
    for v in y {
        *v = act.apply(*v);
    }
}

/// Softmax over all values, in place, computed in f64.
pub fn softmax(y: &mut [f32]) {
    let max = y.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = y
        .iter()
        .map(|&v| (f64::from(v) - f64::from(max)).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    for (v, e) in y.iter_mut().zip(exps) {
        *v = (e / sum) as f32;
    }
}

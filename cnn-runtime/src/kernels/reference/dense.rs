use crate::kernels::Act;

/// An activation of one value, computed in f64 with the textbook formula
/// (independently of [`Act::apply`], which the fast kernels use).
fn activation(act: Act, x: f64) -> f64 {
    match act {
        Act::Identity => x,
        // NaN is not below 0, so it stays NaN.
        Act::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Act::Tanh => x.tanh(),
    }
}

/// Fully connected: `weight` N×IN (row-major), `bias` N; `y = act(W·x + b)`,
/// summed in f64. IN is `x.len()`, N is `y.len()`.
pub fn fc(x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], act: Act) {
    let inputs = x.len();
    for (n, out) in y.iter_mut().enumerate() {
        let row = &weight[n * inputs..(n + 1) * inputs];
        let sum: f64 = row
            .iter()
            .zip(x)
            .map(|(&w, &v)| f64::from(w) * f64::from(v))
            .sum();
        *out = activation(act, sum + f64::from(bias[n])) as f32;
    }
}

/// Applies an activation in place, computed in f64.
pub fn activate(act: Act, y: &mut [f32]) {
    for v in y {
        *v = activation(act, f64::from(*v)) as f32;
    }
}

/// Softmax over all values, in place, computed in f64 after shifting by the
/// largest value. A NaN anywhere, a `+∞`, or all `−∞` make every output NaN.
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

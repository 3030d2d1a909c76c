use crate::kernels::Act;

/// An activation of one value, computed in f64 with the textbook formula
/// (independently of [`Act::apply`], which the fast kernels use).
pub(super) fn activation(act: Act, x: f64) -> f64 {
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
        Act::Relu6 => x.clamp(0.0, 6.0),
        Act::LeakyRelu(slope) => {
            if x < 0.0 {
                f64::from(slope) * x
            } else {
                x
            }
        }
        Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Act::Tanh => x.tanh(),
        Act::Silu => x / (1.0 + (-x).exp()),
        Act::Gelu => 0.5 * x * erfc_any(-x / std::f64::consts::SQRT_2),
        Act::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// The error function in f64, from its Maclaurin series below 3 and 1 −
/// [`erfc`] above (both to about 1e-15): the reference's, independent of
/// the kernels' approximation.
fn erf(x: f64) -> f64 {
    let a = x.abs();
    if a.is_nan() {
        return f64::NAN;
    }
    let r = if a < 3.0 {
        // erf(a) = 2/√π · Σ (−1)ⁿ a^(2n+1) / (n! (2n + 1)).
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        1.0 - erfc(a)
    };
    r.copysign(x)
}

/// The complementary error function in f64 for any `v`: 1 − [`erf`] below
/// 3, [`erfc`] from 3 on, where `1 − erf` would cancel (GELU's `1 +
/// erf(x/√2)` loses all its digits from x ≈ −8).
fn erfc_any(v: f64) -> f64 {
    if v >= 3.0 {
        erfc(v)
    } else {
        1.0 - erf(v)
    }
}

/// The complementary error function in f64 for `a ≥ 3`, from its continued
/// fraction e^(−a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …)))), to about
/// 1e-15 relative.
fn erfc(a: f64) -> f64 {
    let mut frac = a;
    for k in (1..60).rev() {
        frac = a + f64::from(k) / 2.0 / frac;
    }
    (-a * a).exp() / std::f64::consts::PI.sqrt() / frac
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

#[cfg(test)]
mod tests {
    #[test]
    fn erf_matches_tabulated_values() {
        // Abramowitz and Stegun, table 7.1, and erf(−x) = −erf(x).
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
            (-1.0, -0.842_700_792_949_714_9),
        ] {
            let got = super::erf(x);
            assert!((got - want).abs() < 1e-13, "erf({x}) = {got}, not {want}");
        }
    }

    #[test]
    fn the_kernels_complementary_error_function_agrees() {
        // To the fit's 1.2e-7 and the rounding to f32, relative.
        for i in -600..=600 {
            let x = i as f32 / 100.0;
            let a = f64::from(x);
            let want = if a >= 3.0 {
                super::erfc(a)
            } else {
                1.0 - super::erf(a)
            };
            let got = f64::from(crate::kernels::erfc(x));
            let tolerance = 2e-7 * want + 1e-30;
            assert!(
                (got - want).abs() <= tolerance,
                "erfc({x}) = {got}, not {want}"
            );
        }
    }
}

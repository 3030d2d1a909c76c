//! Shape and parameter arithmetic: the one place where output volumes,
//! parameter counts and multiply-accumulate counts are computed.
//!
//! Everything here works on plain integers with checked arithmetic, so that
//! no input, however large, can overflow or panic.

/// Why a sliding window (a convolution filter or a pooling window) does not
/// fit an input axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// The arithmetic overflows `usize`.
    Overflow,
    /// The window is larger than the padded input: `f > len + 2p`.
    TooLarge {
        /// The padded length, `len + 2p`.
        padded: usize,
    },
    /// `(len − f + 2p)` is not divisible by the stride.
    Uneven {
        /// The numerator `len − f + 2p`.
        span: usize,
    },
}

/// The span a window of size `f` slides over on an axis of length `len`
/// padded by `p` on both sides: `len + 2p − f`.
fn window_span(len: usize, f: usize, p: usize) -> Result<usize, WindowError> {
    let padded = p
        .checked_mul(2)
        .and_then(|pp| len.checked_add(pp))
        .ok_or(WindowError::Overflow)?;
    padded
        .checked_sub(f)
        .ok_or(WindowError::TooLarge { padded })
}

/// Output length of a window of size `f` sliding with stride `s` over an axis
/// of length `len` padded by `p` on both sides: `(len − f + 2p)/s + 1`.
///
/// `s` must be positive; a zero stride is reported as [`WindowError::Overflow`]
/// only to keep the function total (callers reject zero sizes earlier).
///
/// ```
/// use cnn_spec::arith::window_out;
/// assert_eq!(window_out(32, 5, 1, 2), Ok(32));
/// assert_eq!(window_out(227, 11, 4, 0), Ok(55));
/// ```
pub fn window_out(len: usize, f: usize, s: usize, p: usize) -> Result<usize, WindowError> {
    let span = window_span(len, f, p)?;
    if s != 0 && span % s != 0 {
        return Err(WindowError::Uneven { span });
    }
    window_out_floor(len, f, s, p)
}

/// [`window_out`] rounded down, as PyTorch computes it: the last positions
/// a window cannot reach are dropped, `⌊(len − f + 2p)/s⌋ + 1`.
///
/// ```
/// use cnn_spec::arith::window_out_floor;
/// assert_eq!(window_out_floor(224, 7, 2, 3), Ok(112));
/// assert_eq!(window_out_floor(10, 3, 2, 0), Ok(4));
/// ```
pub fn window_out_floor(len: usize, f: usize, s: usize, p: usize) -> Result<usize, WindowError> {
    let span = window_span(len, f, p)?;
    if s == 0 {
        return Err(WindowError::Overflow);
    }
    (span / s).checked_add(1).ok_or(WindowError::Overflow)
}

/// The quotient `span / s + 1` written as a decimal, as the user would
/// compute it by hand: `14.5`, `9.33…`.
pub fn fractional_out(span: usize, s: usize) -> String {
    if s == 0 {
        return "undefined".to_string();
    }
    let whole = (span / s).saturating_add(1);
    let rem = (span % s) as u128;
    // Two decimals, rounded down, with an ellipsis when inexact.
    let hundredths = rem * 100 / s as u128;
    let exact = (rem * 100).is_multiple_of(s as u128);
    let mut text = format!("{whole}.{hundredths:02}");
    if exact {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    } else {
        text.push('…');
    }
    text
}

/// How many candidates a search for a fitting size tries on each side: the
/// suggestions must stay instant whatever the sizes written.
pub const SEARCH_LIMIT: usize = 4096;

/// Candidates below `x`, nearest first, at least 1, at most
/// [`SEARCH_LIMIT`] of them.
pub fn candidates_below(x: usize) -> impl Iterator<Item = usize> {
    (x.saturating_sub(SEARCH_LIMIT).max(1)..x).rev()
}

/// Candidates above `x` up to `max` inclusive, nearest first, at most
/// [`SEARCH_LIMIT`] of them.
pub fn candidates_above(x: usize, max: usize) -> impl Iterator<Item = usize> {
    let end = max.min(x.saturating_add(SEARCH_LIMIT));
    (x.saturating_add(1)..=end).take_while(move |_| x < usize::MAX)
}

/// The paddings `p` (smallest first, at most `limit`) for which a window of
/// size `f` and stride `s` fits an axis of length `len`.
pub fn fitting_paddings(len: usize, f: usize, s: usize, limit: usize) -> Vec<usize> {
    (0..=limit.min(SEARCH_LIMIT))
        .filter(|&p| window_out(len, f, s, p).is_ok())
        .collect()
}

/// The strides nearest to `s` (one below, one above, when they exist) for
/// which a window of size `f` with padding `p` fits an axis of length `len`.
pub fn nearest_fitting_strides(len: usize, f: usize, s: usize, p: usize) -> Vec<usize> {
    let Ok(span) = window_span(len, f, p) else {
        return Vec::new();
    };
    let fits = |t: usize| span % t == 0;
    let mut found = Vec::new();
    if let Some(below) = candidates_below(s).find(|&t| fits(t)) {
        found.push(below);
    }
    // Strides above the span itself give a single output; stop there.
    if let Some(above) = candidates_above(s, span).find(|&t| fits(t)) {
        found.push(above);
    }
    found
}

/// The input span of a window of size `f` whose taps are `d` apart:
/// `d·(f − 1) + 1`.
///
/// ```
/// assert_eq!(cnn_spec::arith::extent(3, 2), Some(5));
/// ```
pub fn extent(f: usize, d: usize) -> Option<usize> {
    d.checked_mul(f.checked_sub(1)?)?.checked_add(1)
}

/// Learnable parameters of a convolution whose filters see `c` channels
/// each (C/G with groups): `FH·FW·C·K`, plus `K` with a bias.
pub fn conv_params(c: usize, k: usize, fh: usize, fw: usize, bias: bool) -> Option<usize> {
    fh.checked_mul(fw)?
        .checked_mul(c)?
        .checked_mul(k)?
        .checked_add(if bias { k } else { 0 })
}

/// Multiply-accumulates of a convolution per image, biases excluded, its
/// filters seeing `c` channels each (C/G with groups): `K·H₂·W₂·C·FH·FW`.
pub fn conv_macs(c: usize, k: usize, fh: usize, fw: usize, oh: usize, ow: usize) -> Option<u64> {
    [k, oh, ow, c, fh, fw]
        .into_iter()
        .try_fold(1u64, |acc, x| acc.checked_mul(u64::try_from(x).ok()?))
}

/// Learnable parameters of a fully connected layer from `inputs` values to
/// `n`: `inputs·N + N`.
pub fn fc_params(inputs: usize, n: usize) -> Option<usize> {
    inputs.checked_mul(n)?.checked_add(n)
}

/// Multiply-accumulates of a fully connected layer, biases excluded.
pub fn fc_macs(inputs: usize, n: usize) -> Option<u64> {
    u64::try_from(inputs)
        .ok()?
        .checked_mul(u64::try_from(n).ok()?)
}

/// Number of values in a C×H×W volume.
pub fn volume_len(c: usize, h: usize, w: usize) -> Option<usize> {
    c.checked_mul(h)?.checked_mul(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lecture_seed_example() {
        // 32×32×3 input, 10 5×5 filters, stride 1, pad 2.
        assert_eq!(window_out(32, 5, 1, 2), Ok(32));
        assert_eq!(conv_params(3, 10, 5, 5, true), Some(760));
        assert_eq!(conv_macs(3, 10, 5, 5, 32, 32), Some(10 * 32 * 32 * 75));
    }

    #[test]
    fn same_padding_keeps_size() {
        for (f, p) in [(3, 1), (5, 2), (7, 3)] {
            for len in [7, 8, 32, 224] {
                assert_eq!(window_out(len, f, 1, p), Ok(len), "F={f} P={p} len={len}");
            }
        }
    }

    #[test]
    fn alexnet_conv1_and_pool() {
        assert_eq!(window_out(227, 11, 4, 0), Ok(55));
        assert_eq!(conv_params(3, 96, 11, 11, true), Some(34_944));
        assert_eq!(window_out(55, 3, 2, 0), Ok(27));
    }

    #[test]
    fn asymmetric_pairs() {
        // A 3×5 filter with padding (1, 2) keeps a 10×20 input.
        assert_eq!(window_out(10, 3, 1, 1), Ok(10));
        assert_eq!(window_out(20, 5, 1, 2), Ok(20));
        // Strides (2, 3) on 9×16 with a 3×4 window: (9−3)/2+1 = 4, (16−4)/3+1 = 5.
        assert_eq!(window_out(9, 3, 2, 0), Ok(4));
        assert_eq!(window_out(16, 4, 3, 0), Ok(5));
        assert_eq!(conv_params(2, 4, 3, 5, true), Some(3 * 5 * 2 * 4 + 4));
    }

    #[test]
    fn rejections() {
        assert_eq!(
            window_out(32, 5, 2, 0),
            Err(WindowError::Uneven { span: 27 })
        );
        assert_eq!(
            window_out(4, 7, 1, 1),
            Err(WindowError::TooLarge { padded: 6 })
        );
        assert_eq!(window_out(usize::MAX, 1, 1, 1), Err(WindowError::Overflow));
        assert_eq!(conv_params(usize::MAX, 2, 1, 1, true), None);
        assert_eq!(fc_macs(usize::MAX, usize::MAX), None);
    }

    #[test]
    fn fractions_read_like_hand_arithmetic() {
        assert_eq!(fractional_out(27, 2), "14.5");
        assert_eq!(fractional_out(28, 3), "10.33…");
        assert_eq!(fractional_out(29, 4), "8.25");
    }

    #[test]
    fn suggestions() {
        // 32 − 5 + 2P is odd for every P: no padding fits stride 2.
        assert!(fitting_paddings(32, 5, 2, 5).is_empty());
        assert_eq!(nearest_fitting_strides(32, 5, 2, 0), vec![1, 3]);
        // 32 − 4 + 2P with stride 3: P = 1 gives 30.
        assert_eq!(fitting_paddings(32, 4, 3, 4), vec![1, 4]);
    }
}

//! Number formatting shared by the renderers.

/// Formats an integer with thousands separators: `34944` → `34,944`.
pub fn thousands(value: impl Into<u128>) -> String {
    let digits = value.into().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A byte count in binary units with three significant figures:
/// `29840` → `29.1 KiB`; below 1 KiB, `512 B`.
pub(crate) fn bytes_human(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", three_figures(value), UNITS[unit])
}

/// A count with a decimal prefix and three significant figures:
/// `1177600` → `1.18 M`; below a thousand, the plain number.
pub(crate) fn count_human(count: u128) -> String {
    const UNITS: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
    if count < 1000 {
        return count.to_string();
    }
    let mut value = count as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{} {}", three_figures(value), UNITS[unit])
}

/// `value` (at least 1) rounded to three significant figures.
fn three_figures(value: f64) -> String {
    if value >= 99.95 {
        format!("{value:.0}")
    } else if value >= 9.995 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators() {
        assert_eq!(thousands(0u32), "0");
        assert_eq!(thousands(760u32), "760");
        assert_eq!(thousands(34_944u32), "34,944");
        assert_eq!(thousands(1_234_567u64), "1,234,567");
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes_human(512), "512 B");
        assert_eq!(bytes_human(1024), "1.00 KiB");
        assert_eq!(bytes_human(29_840), "29.1 KiB");
        assert_eq!(bytes_human(3 * 1024 * 1024), "3.00 MiB");
        assert_eq!(count_human(999), "999");
        assert_eq!(count_human(1_177_600), "1.18 M");
        assert_eq!(count_human(105_415_200), "105 M");
        assert_eq!(count_human(999_999), "1.00 M");
    }
}

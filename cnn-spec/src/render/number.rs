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

#[cfg(test)]
mod tests {
    #[test]
    fn separators() {
        assert_eq!(super::thousands(0u32), "0");
        assert_eq!(super::thousands(760u32), "760");
        assert_eq!(super::thousands(34_944u32), "34,944");
        assert_eq!(super::thousands(1_234_567u64), "1,234,567");
    }
}

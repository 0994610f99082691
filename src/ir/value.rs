//! Scalar values both front ends write the same way: file modes in octal,
//! sizes in bytes with binary multiples, and Go-style durations.

/// Parses 1 to 4 octal digits (an optional leading `0` included).
pub fn parse_octal(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 5 {
        return None;
    }
    u32::from_str_radix(text, 8).ok().filter(|n| *n <= 0o7777)
}

/// Parses a Go-style duration (`1h2m3s`, `500ms`, `1.5s`) into nanoseconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    const UNITS: [(&str, f64); 6] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 6e10),
        ("h", 3.6e12),
    ];
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = UNITS.iter().find(|(u, _)| *u == &rest[..unit_end])?.1;
        total += number * factor;
        rest = &rest[unit_end..];
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(total.round() as u64)
}

/// Parses a size in bytes: `1024`, `64k`, `64m`, `1g` (`kb`, `mib`, … too;
/// binary multiples).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits_end].parse().ok()?;
    let factor: u64 = match text[digits_end..].trim_end_matches(['b', 'i']) {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("30s"), Some(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3d"), None);
    }

    #[test]
    fn sizes_and_modes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_octal("0755"), Some(0o755));
        assert_eq!(parse_octal("8"), None);
    }
}

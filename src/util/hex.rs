//! Lowercase hex of digests, without `fmt`'s per-byte machinery: a no-op
//! build formats and parses a few thousand of them.

use std::fmt;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex to `f`.
///
/// # Errors
///
/// When `f` fails.
pub fn write(f: &mut fmt::Formatter<'_>, bytes: &[u8; 32]) -> fmt::Result {
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    f.write_str(std::str::from_utf8(&out).expect("hex digits are ASCII"))
}

/// The 32 bytes that 64 hex digits (either case) spell.
#[must_use]
pub fn decode32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (value(pair[0])? << 4) | value(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Hex([u8; 32]);

    impl fmt::Display for Hex {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write(f, &self.0)
        }
    }

    #[test]
    fn round_trips_and_matches_fmt() {
        let bytes: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 37 % 256).unwrap());
        let text = Hex(bytes).to_string();
        let by_fmt = bytes.iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        assert_eq!(text, by_fmt);
        assert_eq!(decode32(&text), Some(bytes));
        assert_eq!(decode32(&text.to_uppercase()), Some(bytes));
        assert_eq!(decode32(&text[1..]), None);
        assert_eq!(decode32(&format!("{}g", &text[1..])), None);
    }
}

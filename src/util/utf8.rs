//! Bytes that are mostly UTF-8, read the way Go reads them.
//!
//! File names are bytes. Docker's matchers (`filepath.Match`, the regular
//! expressions of `patternmatcher`) are Go code over Go strings, which may
//! hold any bytes: Go decodes them rune by rune, and a byte that does not
//! start a valid UTF-8 sequence is the rune U+FFFD, one byte wide. These
//! helpers do the same, so a name that is not UTF-8 matches exactly as in
//! `BuildKit`.

use std::borrow::Cow;
use std::fmt::Write;

/// The first rune of `bytes` and its width, as Go's `utf8.DecodeRune`:
/// an invalid, overlong, surrogate or truncated sequence is U+FFFD of
/// width 1; an empty slice is U+FFFD of width 0.
pub fn decode_rune(bytes: &[u8]) -> (char, usize) {
    let Some(&lead) = bytes.first() else {
        return (char::REPLACEMENT_CHARACTER, 0);
    };
    let width = match lead {
        0x00..=0x7f => return (char::from(lead), 1),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (char::REPLACEMENT_CHARACTER, 1),
    };
    match bytes
        .get(..width)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.chars().next())
    {
        Some(c) => (c, width),
        None => (char::REPLACEMENT_CHARACTER, 1),
    }
}

/// `bytes` as the runes Go sees in it: borrowed when it is UTF-8, else
/// with every byte that is not part of a valid sequence replaced by one
/// U+FFFD (unlike [`String::from_utf8_lossy`], which replaces a truncated
/// sequence by a single U+FFFD). For matching only, never for data.
pub fn go_runes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    let mut at = 0;
    while at < bytes.len() {
        let (c, width) = decode_rune(&bytes[at..]);
        out.push(c);
        at += width;
    }
    Cow::Owned(out)
}

/// `bytes` for a person to read, telling different names apart: unchanged
/// (borrowed) when it is UTF-8, else with each byte that is not part of valid
/// UTF-8 written as `\xNN`. For messages and records that name files, never
/// for data or keys.
pub fn escaped(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        assert_eq!(decode_rune(b"a"), ('a', 1));
        assert_eq!(decode_rune("é!".as_bytes()), ('é', 2));
        assert_eq!(decode_rune("☺".as_bytes()), ('☺', 3));
        assert_eq!(decode_rune("😀".as_bytes()), ('😀', 4));
        for invalid in [
            &b"\xff"[..],
            b"\xfe",
            b"\x80",
            b"\xc0\xaf",     // overlong
            b"\xed\xa0\x80", // surrogate
            b"\xf0\x9f\x98", // truncated
            b"\xf5\x80\x80\x80",
        ] {
            assert_eq!(
                decode_rune(invalid),
                (char::REPLACEMENT_CHARACTER, 1),
                "{invalid:?}"
            );
        }
        assert_eq!(decode_rune(b""), (char::REPLACEMENT_CHARACTER, 0));
    }

    #[test]
    fn every_invalid_byte_is_one_rune() {
        assert_eq!(go_runes(b"f-\xff.txt"), "f-\u{fffd}.txt");
        // Go: three runes; from_utf8_lossy would give one.
        assert_eq!(go_runes(b"\xf0\x9f\x98"), "\u{fffd}\u{fffd}\u{fffd}");
        assert!(matches!(go_runes("ok é".as_bytes()), Cow::Borrowed("ok é")));
    }

    #[test]
    fn escapes_only_invalid_bytes() {
        assert_eq!(escaped(b"f-\xff.txt"), "f-\\xff.txt");
        assert_eq!(escaped(&["é-".as_bytes(), b"\xfe"].concat()), "é-\\xfe");
        assert!(matches!(escaped(b"plain"), Cow::Borrowed("plain")));
    }
}

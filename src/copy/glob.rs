//! Wildcards in copy sources, with Go's `filepath.Match` semantics as Docker uses them.
//!
//! `*` matches any run of characters except `/`, `?` one character except
//! `/`, `[...]` a class (`[^...]` or `[!...]` negated, ranges `a-z`), and `\`
//! escapes the next character.
//!
//! Names are bytes and need not be UTF-8. As in Go, `?` and a class match
//! one rune, where a byte that starts no valid UTF-8 sequence is the rune
//! U+FFFD one byte wide (so `?` matches one invalid byte, and `[^a]` does
//! too); literal characters match their UTF-8 bytes exactly.

use crate::util::utf8::decode_rune;

/// Whether `pattern` has wildcard characters.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Why a pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pattern `{0}`")]
pub struct BadPattern(pub String);

/// Whether `name` (a file name: bytes, maybe not UTF-8) matches `pattern` in full.
pub fn matches(pattern: &str, name: &[u8]) -> Result<bool, BadPattern> {
    let bad = || BadPattern(pattern.to_owned());
    let p: Vec<char> = pattern.chars().collect();
    // Check the pattern's syntax first, as Go does, so errors do not depend on the name.
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(bad());
                }
                i += 2;
            }
            '[' => i = class_end(&p, i).ok_or_else(bad)?,
            _ => i += 1,
        }
    }
    Ok(match_from(&p, name))
}

/// Index just past the `]` closing the class that starts at `start`.
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if i < p.len() && (p[i] == '^' || p[i] == '!') {
        i += 1;
    }
    let mut first = true;
    while i < p.len() {
        match p[i] {
            ']' if first => return None,
            ']' => return Some(i + 1),
            '\\' => i += 2,
            '-' if first || p.get(i + 1) == Some(&']') => return None,
            _ => i += 1,
        }
        first = false;
    }
    None
}

fn class_matches(p: &[char], start: usize, end: usize, c: char) -> bool {
    let mut i = start + 1;
    let negated = p[i] == '^' || p[i] == '!';
    if negated {
        i += 1;
    }
    let mut found = false;
    while i < end - 1 {
        let mut lo = p[i];
        if lo == '\\' {
            i += 1;
            lo = p[i];
        }
        i += 1;
        let mut hi = lo;
        if i + 1 < end - 1 && p[i] == '-' {
            hi = p[i + 1];
            if hi == '\\' {
                i += 1;
                hi = p[i + 1];
            }
            i += 2;
        }
        if lo <= c && c <= hi {
            found = true;
        }
    }
    found != negated
}

/// Matches all of `p` against the bytes `n` as Go's `filepath.Match` does:
/// the pattern is split into chunks at its stars, and each chunk after a
/// star is tried at every position up to the next `/`, taking the first
/// that fits (the last chunk must reach the end). No recursion, and at
/// most pattern × name steps, whatever the input: `*`, `?` and classes
/// never backtrack further than their own chunk.
fn match_from(p: &[char], n: &[u8]) -> bool {
    let mut pattern = p;
    let mut name = n;
    'chunks: while !pattern.is_empty() {
        let star = pattern[0] == '*';
        while pattern.first() == Some(&'*') {
            pattern = &pattern[1..];
        }
        let end = chunk_end(pattern);
        let (chunk, rest) = pattern.split_at(end);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing star matches the rest, up to a `/`.
            return !name.contains(&b'/');
        }
        if let Some(after) = match_chunk(chunk, name)
            && (after.is_empty() || !pattern.is_empty())
        {
            name = after;
            continue;
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(after) = match_chunk(chunk, &name[i + 1..]) {
                    // The last chunk must match the whole rest of the name.
                    if pattern.is_empty() && !after.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = after;
                    continue 'chunks;
                }
                i += 1;
            }
        }
        return false;
    }
    name.is_empty()
}

/// Where the chunk at the start of `p` (no leading star) ends: at the next
/// star outside a class and an escape, or at the end.
fn chunk_end(p: &[char]) -> usize {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => return i,
            '\\' => i += 2,
            '[' => i = class_end(p, i).unwrap_or(p.len()),
            _ => i += 1,
        }
    }
    p.len()
}

/// Matches the star-free `chunk` at the start of `n`; the rest of `n`.
fn match_chunk<'n>(chunk: &[char], mut n: &'n [u8]) -> Option<&'n [u8]> {
    let mut i = 0;
    while i < chunk.len() {
        match chunk[i] {
            '?' => {
                if n.first().is_none_or(|b| *b == b'/') {
                    return None;
                }
                let (_, width) = decode_rune(n);
                n = &n[width..];
                i += 1;
            }
            '[' => {
                let end = class_end(chunk, i)?;
                if n.first().is_none_or(|b| *b == b'/') {
                    return None;
                }
                let (c, width) = decode_rune(n);
                if !class_matches(chunk, i, end, c) {
                    return None;
                }
                n = &n[width..];
                i = end;
            }
            c => {
                let c = if c == '\\' {
                    i += 1;
                    *chunk.get(i)?
                } else {
                    c
                };
                let mut buf = [0u8; 4];
                let bytes = c.encode_utf8(&mut buf).as_bytes();
                n = n.strip_prefix(bytes)?;
                i += 1;
            }
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_stars_and_long_patterns_match_in_bounded_time() {
        let name = "a".repeat(255);
        let stars = format!("{}b", "*a".repeat(40));
        assert!(!matches(&stars, name.as_bytes()).unwrap());
        assert!(matches(&"*a".repeat(40), name.as_bytes()).unwrap());
        // A very long literal pattern: no recursion, so no stack to exhaust.
        let long = "x".repeat(200_000);
        assert!(matches(&format!("{long}*"), long.as_bytes()).unwrap());
        // Pattern × name steps at most: a star before a 4 KiB chunk.
        let chunk = "x".repeat(4096);
        assert!(!matches(&format!("*{chunk}y"), chunk.as_bytes()).unwrap());
    }

    #[test]
    fn go_filepath_match_cases() {
        // From Go's path/filepath match tests.
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                matches(pattern, name.as_bytes()),
                Ok(*expected),
                "{pattern} ~ {name}"
            );
        }
    }

    #[test]
    fn names_that_are_not_utf8() {
        // Go's filepath.Match over a string holding invalid bytes: each is
        // the rune U+FFFD, one byte wide, for `?` and classes; literals
        // compare bytes, so U+FFFD itself matches no invalid byte.
        let cases: &[(&str, &[u8], bool)] = &[
            ("f-*", b"f-\xff.txt", true),
            ("f-*.txt", b"f-\xfe.txt", true),
            ("*", b"\xff", true),
            ("f-?.txt", b"f-\xff.txt", true),
            ("f-??.txt", b"f-\xff.txt", false),
            ("f-??.txt", b"f-\xff\xfe.txt", true),
            // A truncated sequence is three runes, as in Go.
            ("???", b"\xf0\x9f\x98", true),
            ("?", b"\xf0\x9f\x98", false),
            ("?", "😀".as_bytes(), true),
            ("f-[^a].txt", b"f-\xff.txt", true),
            ("f-[a-z].txt", b"f-\xff.txt", false),
            ("f-[\u{fff0}-\u{ffff}].txt", b"f-\xff.txt", true),
            ("f-\u{fffd}.txt", b"f-\xff.txt", false),
            ("f-\u{fffd}.txt", "f-\u{fffd}.txt".as_bytes(), true),
            ("f-\\*", b"f-\xff", false),
            ("*.txt", b"\xff\xfe/x.txt", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                matches(pattern, name),
                Ok(*expected),
                "{pattern} ~ {:?}",
                bstr::BStr::new(name)
            );
        }
    }

    #[test]
    fn malformed_patterns() {
        for pattern in ["[]a]", "[-]", "[x-]", "[", "[^", "a\\", "[a-", "*[", "[\\"] {
            assert!(matches(pattern, b"x").is_err(), "{pattern}");
        }
    }
}

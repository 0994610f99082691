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
    Ok(match_from(&p, 0, name, 0))
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

/// Matches `p[pi..]` against the bytes `n[ni..]`. Like Go's `filepath.Match`,
/// `*` may stop at any byte, `?` and classes take one rune (see the module
/// docs) and literals compare bytes.
fn match_from(p: &[char], pi: usize, n: &[u8], ni: usize) -> bool {
    if pi == p.len() {
        return ni == n.len();
    }
    let literal = |c: char, next: usize| {
        let mut buf = [0u8; 4];
        let c = c.encode_utf8(&mut buf).as_bytes();
        n[ni..].starts_with(c) && match_from(p, next, n, ni + c.len())
    };
    match p[pi] {
        '*' => (ni..=n.len())
            .take_while(|&k| k == ni || n[k - 1] != b'/')
            .any(|k| match_from(p, pi + 1, n, k)),
        '?' => {
            ni < n.len() && n[ni] != b'/' && {
                let (_, width) = decode_rune(&n[ni..]);
                match_from(p, pi + 1, n, ni + width)
            }
        }
        '[' => {
            let end = class_end(p, pi).expect("checked before matching");
            ni < n.len() && n[ni] != b'/' && {
                let (c, width) = decode_rune(&n[ni..]);
                class_matches(p, pi, end, c) && match_from(p, end, n, ni + width)
            }
        }
        '\\' => literal(p[pi + 1], pi + 2),
        c => literal(c, pi + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

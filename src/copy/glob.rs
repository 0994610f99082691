//! Wildcards in copy sources, with Go's `filepath.Match` semantics as Docker uses them.
//!
//! `*` matches any run of characters except `/`, `?` one character except
//! `/`, `[...]` a class (`[^...]` or `[!...]` negated, ranges `a-z`), and `\`
//! escapes the next character.

/// Whether `pattern` has wildcard characters.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Why a pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pattern `{0}`")]
pub struct BadPattern(pub String);

/// Whether `name` matches `pattern` in full.
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let bad = || BadPattern(pattern.to_owned());
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
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
    Ok(match_from(&p, 0, &n, 0))
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

fn match_from(p: &[char], pi: usize, n: &[char], ni: usize) -> bool {
    if pi == p.len() {
        return ni == n.len();
    }
    match p[pi] {
        '*' => (ni..=n.len())
            .take_while(|&k| k == ni || n[k - 1] != '/')
            .any(|k| match_from(p, pi + 1, n, k)),
        '?' => ni < n.len() && n[ni] != '/' && match_from(p, pi + 1, n, ni + 1),
        '[' => {
            let end = class_end(p, pi).expect("checked before matching");
            ni < n.len()
                && n[ni] != '/'
                && class_matches(p, pi, end, n[ni])
                && match_from(p, end, n, ni + 1)
        }
        '\\' => ni < n.len() && n[ni] == p[pi + 1] && match_from(p, pi + 2, n, ni + 1),
        c => ni < n.len() && n[ni] == c && match_from(p, pi + 1, n, ni + 1),
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
            assert_eq!(matches(pattern, name), Ok(*expected), "{pattern} ~ {name}");
        }
    }

    #[test]
    fn malformed_patterns() {
        for pattern in ["[]a]", "[-]", "[x-]", "[", "[^", "a\\", "[a-", "*[", "[\\"] {
            assert!(matches(pattern, "x").is_err(), "{pattern}");
        }
    }
}

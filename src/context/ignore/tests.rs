use super::*;

fn pm(patterns: &[&str]) -> Result<PatternMatcher, PatternError> {
    PatternMatcher::new(&patterns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

/// patternmatcher's package-level `Matches`/`MatchesOrParentMatches`
/// helper: cleans the path and never matches `.`.
fn matches(file: &str, patterns: &[&str]) -> Result<bool, PatternError> {
    let m = pm(patterns)?;
    let file = clean(file);
    Ok(m.excludes(&file))
}

#[test]
fn wildcard_matches() {
    assert!(matches("fileutils.go", &["*"]).unwrap());
}

#[test]
fn pattern_matches() {
    assert!(matches("fileutils.go", &["*.go"]).unwrap());
}

#[test]
fn exclusion_pattern_matches_pattern_before() {
    assert!(matches("fileutils.go", &["!fileutils.go", "*.go"]).unwrap());
}

#[test]
fn pattern_matches_folder_exclusions() {
    assert!(!matches("docs/README.md", &["docs", "!docs/README.md"]).unwrap());
    assert!(!matches("docs/README.md", &["docs/", "!docs/README.md"]).unwrap());
    assert!(!matches("docs/README.md", &["docs/*", "!docs/README.md"]).unwrap());
}

#[test]
fn exclusion_pattern_matches_pattern_after() {
    assert!(!matches("fileutils.go", &["*.go", "!fileutils.go"]).unwrap());
}

#[test]
fn exclusion_pattern_matches_whole_directory() {
    assert!(!matches(".", &["*.go"]).unwrap());
    assert!(!matches(".", &["**"]).unwrap());
}

#[test]
fn single_exclamation_error() {
    let err = matches("fileutils.go", &["!"]).unwrap_err();
    assert_eq!(err.pattern, "!");
    assert!(err.message.contains("illegal exclusion pattern"));
    assert!(pm(&["  ! "]).is_err());
}

#[test]
fn matches_with_no_patterns() {
    assert!(!matches("/any/path/there", &[]).unwrap());
    assert!(pm(&[]).unwrap().is_empty());
}

#[test]
fn matches_with_malformed_patterns() {
    let err = matches("/any/path/there", &["["]).unwrap_err();
    assert_eq!(err.pattern, "[");
    assert!(err.to_string().contains("\"[\""), "{err}");
}

/// `patternmatcher_test.go` `TestMatches`: single pattern, path, expected.
const MATCHES: &[(&str, &str, bool)] = &[
    ("**", "file", true),
    ("**", "file/", true),
    ("**/", "file", true), // weird one
    ("**/", "file/", true),
    ("**", "/", true),
    ("**/", "/", true),
    ("**", "dir/file", true),
    ("**/", "dir/file", true),
    ("**", "dir/file/", true),
    ("**/", "dir/file/", true),
    ("**/**", "dir/file", true),
    ("**/**", "dir/file/", true),
    ("dir/**", "dir/file", true),
    ("dir/**", "dir/file/", true),
    ("dir/**", "dir/dir2/file", true),
    ("dir/**", "dir/dir2/file/", true),
    ("**/dir", "dir", true),
    ("**/dir", "dir/file", true),
    ("**/dir2/*", "dir/dir2/file", true),
    ("**/dir2/*", "dir/dir2/file/", true),
    ("**/dir2/**", "dir/dir2/dir3/file", true),
    ("**/dir2/**", "dir/dir2/dir3/file/", true),
    ("**file", "file", true),
    ("**file", "dir/file", true),
    ("**/file", "dir/file", true),
    ("**file", "dir/dir/file", true),
    ("**/file", "dir/dir/file", true),
    ("**/file*", "dir/dir/file", true),
    ("**/file*", "dir/dir/file.txt", true),
    ("**/file*txt", "dir/dir/file.txt", true),
    ("**/file*.txt", "dir/dir/file.txt", true),
    ("**/file*.txt*", "dir/dir/file.txt", true),
    ("**/**/*.txt", "dir/dir/file.txt", true),
    ("**/**/*.txt2", "dir/dir/file.txt", false),
    ("**/*.txt", "file.txt", true),
    ("**/**/*.txt", "file.txt", true),
    ("a**/*.txt", "a/file.txt", true),
    ("a**/*.txt", "a/dir/file.txt", true),
    ("a**/*.txt", "a/dir/dir/file.txt", true),
    ("a/*.txt", "a/dir/file.txt", false),
    ("a/*.txt", "a/file.txt", true),
    ("a/*.txt**", "a/file.txt", true),
    ("a[b-d]e", "ae", false),
    ("a[b-d]e", "ace", true),
    ("a[b-d]e", "aae", false),
    ("a[^b-d]e", "aze", true),
    (".*", ".foo", true),
    (".*", "foo", false),
    ("abc.def", "abcdef", false),
    ("abc.def", "abc.def", true),
    ("abc.def", "abcZdef", false),
    ("abc?def", "abcZdef", true),
    ("abc?def", "abcdef", false),
    ("a\\\\", "a\\", true),
    ("**/foo/bar", "foo/bar", true),
    ("**/foo/bar", "dir/foo/bar", true),
    ("**/foo/bar", "dir/dir2/foo/bar", true),
    ("abc/**", "abc", false),
    ("abc/**", "abc/def", true),
    ("abc/**", "abc/def/ghi", true),
    ("**/.foo", ".foo", true),
    ("**/.foo", "bar.foo", false),
    ("a(b)c/def", "a(b)c/def", true),
    ("a(b)c/def", "a(b)c/xyz", false),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    // Appended on non-Windows.
    ("a\\*b", "a*b", true),
];

/// `patternmatcher_test.go` `TestMatches` multi-pattern cases.
const MULTI: &[(&[&str], &str, bool)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        true,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
];

#[test]
fn matches_or_parent_matches_table() {
    let mut failures = Vec::new();
    for &(pattern, text, want) in MATCHES {
        let m = pm(&[pattern]).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        if m.excludes(text) != want {
            failures.push(format!("pattern={pattern:?} text={text:?} want={want}"));
        }
    }
    for &(patterns, text, want) in MULTI {
        let m = pm(patterns).unwrap();
        if m.excludes(text) != want {
            failures.push(format!("patterns={patterns:?} text={text:?} want={want}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn clean_patterns() {
    assert_eq!(pm(&["docs", "config"]).unwrap().patterns.len(), 2);
    assert_eq!(pm(&["docs", "config", ""]).unwrap().patterns.len(), 2);
}

#[test]
fn clean_patterns_exception_flag() {
    assert!(pm(&["docs", "!docs/README.md"]).unwrap().has_exceptions());
    assert!(pm(&["docs", "  !docs/README.md"]).unwrap().has_exceptions());
    assert!(pm(&["docs", "!docs/README.md  "]).unwrap().has_exceptions());
    assert!(!pm(&["docs"]).unwrap().has_exceptions());
}

/// `patternmatcher_test.go` `matchTests` (Go's filepath.Match table), run
/// through the package-level `Matches`; `Err(())` = `ErrBadPattern`.
const MATCH_TESTS: &[(&str, &str, Result<bool, ()>)] = &[
    ("abc", "abc", Ok(true)),
    ("*", "abc", Ok(true)),
    ("*c", "abc", Ok(true)),
    ("a*", "a", Ok(true)),
    ("a*", "abc", Ok(true)),
    ("a*", "ab/c", Ok(true)),
    ("a*/b", "abc/b", Ok(true)),
    ("a*/b", "a/c/b", Ok(false)),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
    ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
    ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
    ("ab[c]", "abc", Ok(true)),
    ("ab[b-d]", "abc", Ok(true)),
    ("ab[e-g]", "abc", Ok(false)),
    ("ab[^c]", "abc", Ok(false)),
    ("ab[^b-d]", "abc", Ok(false)),
    ("ab[^e-g]", "abc", Ok(true)),
    ("a\\*b", "a*b", Ok(true)),
    ("a\\*b", "ab", Ok(false)),
    ("a?b", "a☺b", Ok(true)),
    ("a[^a]b", "a☺b", Ok(true)),
    ("a???b", "a☺b", Ok(false)),
    ("a[^a][^a][^a]b", "a☺b", Ok(false)),
    ("[a-ζ]*", "α", Ok(true)),
    ("*[a-ζ]", "A", Ok(false)),
    ("a?b", "a/b", Ok(false)),
    ("a*b", "a/b", Ok(false)),
    ("[\\]a]", "]", Ok(true)),
    ("[\\-]", "-", Ok(true)),
    ("[x\\-]", "x", Ok(true)),
    ("[x\\-]", "-", Ok(true)),
    ("[x\\-]", "z", Ok(false)),
    ("[\\-x]", "x", Ok(true)),
    ("[\\-x]", "-", Ok(true)),
    ("[\\-x]", "a", Ok(false)),
    ("[]a]", "]", Err(())),
    ("[-]", "-", Err(())),
    ("[x-]", "x", Err(())),
    ("[x-]", "-", Err(())),
    ("[x-]", "z", Err(())),
    ("[-x]", "x", Err(())),
    ("[-x]", "-", Err(())),
    ("[-x]", "a", Err(())),
    ("\\", "a", Err(())),
    ("[a-b-c]", "a", Err(())),
    ("[", "a", Err(())),
    ("[^", "a", Err(())),
    ("[^bc", "a", Err(())),
    ("a[", "a", Err(())), // was nil but IMO its wrong
    ("a[", "ab", Err(())),
    ("*x", "xxx", Ok(true)),
];

#[test]
fn match_table() {
    let mut failures = Vec::new();
    for &(pattern, text, want) in MATCH_TESTS {
        let got = matches(text, &[pattern]).map_err(|_| ());
        if got != want {
            failures.push(format!(
                "Match({pattern:?}, {text:?}) = {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[derive(Debug, PartialEq)]
enum Type {
    Exact,
    Prefix,
    Suffix,
    Regex(&'static str),
}

/// `patternmatcher_test.go` `compileTests` (the `/` separator column).
const COMPILE_TESTS: &[(&str, Type)] = &[
    ("*", Type::Regex(r"^[^/]*$")),
    ("file*", Type::Regex(r"^file[^/]*$")),
    ("*file", Type::Regex(r"^[^/]*file$")),
    ("a*/b", Type::Regex(r"^a[^/]*/b$")),
    ("**", Type::Suffix),
    ("**/**", Type::Regex(r"^(.*/)?.*$")),
    ("dir/**", Type::Prefix),
    ("**/dir", Type::Suffix),
    ("**/dir2/*", Type::Regex(r"^(.*/)?dir2/[^/]*$")),
    ("**/dir2/**", Type::Regex(r"^(.*/)?dir2/.*$")),
    ("**file", Type::Suffix),
    ("**/file*txt", Type::Regex(r"^(.*/)?file[^/]*txt$")),
    ("**/**/*.txt", Type::Regex(r"^(.*/)?(.*/)?[^/]*\.txt$")),
    ("a[b-d]e", Type::Regex(r"^a[b-d]e$")),
    (".*", Type::Regex(r"^\.[^/]*$")),
    ("abc.def", Type::Exact),
    ("abc?def", Type::Regex(r"^abc[^/]def$")),
    ("**/foo/bar", Type::Suffix),
    ("a(b)c/def", Type::Exact),
    ("a.|)$(}+{bc", Type::Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Type::Exact,
    ),
];

#[test]
fn compile_table() {
    for (pattern, want) in COMPILE_TESTS {
        let got = match compile(&clean(pattern)).unwrap() {
            Matcher::Exact => Type::Exact,
            Matcher::Prefix(_) => Type::Prefix,
            Matcher::Suffix(_) => Type::Suffix,
            Matcher::Regex(re) => {
                let Type::Regex(want_re) = want else {
                    panic!("pattern {pattern:?}: got regex {re}, want {want:?}");
                };
                assert_eq!(re.as_str(), *want_re, "pattern {pattern:?}");
                Type::Regex(want_re)
            }
        };
        assert_eq!(&got, want, "pattern {pattern:?}");
    }
}

/// Regression test for moby/moby#52203: Go accepts `[Local-Only]/` at
/// parse time and fails (without panicking) on every match; we reject it
/// up front.
#[test]
fn reversed_range_is_rejected_at_compile_time() {
    let err = pm(&["[Local-Only]/"]).unwrap_err();
    assert_eq!(err.pattern, "[Local-Only]/");
}

/// `ignorefile_test.go` `TestReadAll`.
#[test]
fn read_all() {
    assert!(parse_dockerignore("").is_empty());
    let content =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
    assert_eq!(
        parse_dockerignore(content),
        [
            "test1",
            "test2",
            "a/file/here",
            "lastfile",
            "!inverted/abs/path",
            "!",
            "!"
        ]
    );
    // Lone `!` lines survive parsing but are rejected by the matcher.
    assert!(PatternMatcher::new(&parse_dockerignore(content)).is_err());
}

#[test]
fn read_all_bom_crlf_and_indented_hash() {
    let text = "\u{feff}a\r\n  # not a comment\r\nb//c/./d/\r\n/\r\n";
    assert_eq!(
        parse_dockerignore(text),
        ["a", "# not a comment", "b/c/d", "/"]
    );
}

#[test]
fn new_cleans_and_unroots() {
    let m = pm(&["/build/", "./x/../y", "! /keep//me"]).unwrap();
    let cleaned: Vec<_> = m.patterns.iter().map(|p| p.cleaned.as_str()).collect();
    assert_eq!(cleaned, ["build", "y", "keep/me"]);
    assert!(m.patterns[2].exception);
    assert!(m.excludes("build"));
    assert!(m.excludes("build/out.o"));
    assert!(!m.excludes("src/build"));
}

#[test]
fn go_clean() {
    for (input, want) in [
        ("", "."),
        (".", "."),
        ("/", "/"),
        ("//a//b/", "/a/b"),
        ("a/./b/../c", "a/c"),
        ("../a", "../a"),
        ("a/../../b", "../b"),
        ("/../a", "/a"),
        ("a/..", "."),
    ] {
        assert_eq!(clean(input), want, "clean({input:?})");
    }
    for (input, want) in [
        ("a", "."),
        ("a/b/c", "a/b"),
        ("file/", "file"),
        ("/", "/"),
        ("/a", "/"),
    ] {
        assert_eq!(&*go_dir(input.as_bytes()), want.as_bytes(), "{input}");
    }
    assert_eq!(&*go_dir(b"a\xff/./b"), b"a\xff");
}

#[test]
fn may_include_under_follows_buildkit() {
    let none = pm(&["docs"]).unwrap();
    assert!(!none.may_include_under("docs"));

    let prefix = pm(&["docs", "!docs/keep.md", "!a/b/**"]).unwrap();
    assert!(prefix.may_include_under("docs"));
    assert!(!prefix.may_include_under("doc"));
    assert!(!prefix.may_include_under("docs2"));
    assert!(!prefix.may_include_under("docs/keep.md/x"));
    assert!(prefix.may_include_under("a"));
    assert!(prefix.may_include_under("a/b"));
    assert!(!prefix.may_include_under("a/c"));

    let wild = pm(&["**", "!**/*.go"]).unwrap();
    assert!(wild.may_include_under("anything/at/all"));
}

/// fsutil `filter_test.go` `TestFilteredOpenInvert`.
#[test]
fn nested_exceptions() {
    let m = pm(&["foo", "!foo/bar", "foo/bar/baz", "!foo/bar/baz/x"]).unwrap();
    assert!(!m.excludes("foo/bar/baz/x"));
    assert!(m.excludes("foo/bar/baz/y"));
    assert!(!m.excludes("foo/bar"));
    assert!(m.excludes("foo"));
}

/// patternmatcher runs Go's regexp over Go strings: a byte that is not
/// UTF-8 is the rune U+FFFD, one byte wide; patterns without wildcards
/// compare bytes.
#[test]
fn paths_that_are_not_utf8() {
    let m = |patterns: &[&str], path: &[u8]| pm(patterns).unwrap().excludes(path);
    assert!(m(&["f-*"], b"f-\xff.txt"));
    assert!(m(&["f-?.txt"], b"f-\xff.txt"));
    assert!(!m(&["f-?.txt"], b"f-\xff\xfe.txt"));
    assert!(m(&["f-??.txt"], b"f-\xff\xfe.txt"));
    assert!(m(&["f-[^a].txt"], b"f-\xff.txt"));
    assert!(!m(&["f-[a-z].txt"], b"f-\xff.txt"));
    // U+FFFD in a regular expression matches an invalid byte (Go's
    // regexp compares the decoded rune), but not in an exact pattern.
    assert!(m(&["f-\u{fffd}*"], b"f-\xff.txt"));
    assert!(!m(&["f-\u{fffd}.txt"], b"f-\xff.txt"));
    // Parent directories, prefixes and suffixes are bytes too.
    assert!(!m(&["d\u{fffd}"], b"d\xff/x"));
    assert!(m(&["d?"], b"d\xff/x"));
    assert!(m(&["d*"], b"d\xff/x"));
    assert!(m(&["**/x"], b"d\xff/x"));
    assert!(!m(&["**/x"], b"d\xff/x\xff"));
    assert!(m(&["d**"], b"d\xff/x"));
    assert!(m(&["*", "!f-?"], b"f-\xfe.txt"));
    assert!(!m(&["*", "!f-?"], b"f-\xfe"));
    let keep = pm(&["*", "!dir?/keep"]).unwrap();
    assert!(keep.may_include_under(b"dir\xff"));
    assert!(!keep.excludes(b"dir\xfe/keep"));
    assert!(keep.excludes(b"dir\xfe/drop"));
}

#[test]
fn keep_build_files_like_docker_cli() {
    let pats = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let kept = keep_build_files(pats(&["*", "!src"]), Some("Dockerfile")).unwrap();
    assert_eq!(kept, ["*", "!src", "!.dockerignore", "!Dockerfile"]);
    let m = PatternMatcher::new(&kept).unwrap();
    assert!(!m.excludes(".dockerignore") && !m.excludes("Dockerfile"));
    let untouched = keep_build_files(pats(&["*.md"]), None).unwrap();
    assert_eq!(untouched, ["*.md"]);
}

#[test]
fn find_ignore_file_prefers_dockerfile_specific() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path();
    let df = ctx.join("sub/App.Dockerfile");
    std::fs::create_dir_all(df.parent().unwrap()).unwrap();
    let path = |f: Option<IgnoreFile>| f.map(|f| f.path());
    assert_eq!(path(find_ignore_file(ctx, Some(&df))), None);
    std::fs::write(ctx.join(".dockerignore"), "x").unwrap();
    assert_eq!(
        path(find_ignore_file(ctx, Some(&df))),
        Some(ctx.join(".dockerignore"))
    );
    assert_eq!(
        path(find_ignore_file(ctx, None)),
        Some(ctx.join(".dockerignore"))
    );
    let specific = ctx.join("sub/App.Dockerfile.dockerignore");
    std::fs::write(&specific, "y").unwrap();
    let found = find_ignore_file(ctx, Some(&df)).unwrap();
    assert_eq!(found.root, ctx.join("sub"));
    assert!(found.beside_dockerfile);
    assert_eq!(found.path(), specific);
    // A directory or dangling link is found too, so reading can refuse it.
    std::fs::remove_file(&specific).unwrap();
    std::os::unix::fs::symlink("missing", &specific).unwrap();
    assert_eq!(path(find_ignore_file(ctx, Some(&df))), Some(specific));
}

#[test]
fn ignore_file_links_resolve_inside_the_root_only() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "secret-outside\n").unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("d/e")).unwrap();
    std::fs::write(ctx.join("inner"), "inner-pattern\n").unwrap();
    let read = |target: &str| {
        let link = ctx.join(".dockerignore");
        let _ = std::fs::remove_file(&link);
        symlink(target, &link).unwrap();
        read_ignore_file(&find_ignore_file(&ctx, None).unwrap())
    };
    assert_eq!(read("inner").unwrap(), "inner-pattern\n");
    assert_eq!(read("d/e/../../inner").unwrap(), "inner-pattern\n");
    // `..` and absolute targets stay in the root, as in BuildKit.
    assert_eq!(read("../../inner").unwrap(), "inner-pattern\n");
    assert_eq!(read("/inner").unwrap(), "inner-pattern\n");
    for escape in [
        "../outside",
        outside.to_str().unwrap(),
        "missing",
        ".dockerignore",
    ] {
        let err = read(escape).unwrap_err();
        assert!(
            matches!(err, IgnoreFileError::OutsideRoot { .. }),
            "{escape}: {err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    // A link through a directory link that points out.
    symlink(dir.path(), ctx.join("up")).unwrap();
    assert!(matches!(
        read("up/outside"),
        Err(IgnoreFileError::OutsideRoot { .. })
    ));
    let err = read("d").unwrap_err();
    assert!(
        err.to_string().contains("is a symlink to a directory"),
        "{err}"
    );
}

#[test]
fn ignore_file_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".dockerignore")).unwrap();
    let err = read_ignore_file(&find_ignore_file(dir.path(), None).unwrap()).unwrap_err();
    assert!(
        matches!(&err, IgnoreFileError::NotAFile { kind, .. } if kind == "a directory"),
        "{err}"
    );
}

//! A mutation test on the stable toolchain: a few thousand inputs made by
//! mutating the examples, the book's Dockerfiles and hand-made layers go
//! through every entry point. A panic fails the test and names the input
//! (its seed and mutant number), which `IMGBUILD_MUTANT=target:seed:n`
//! replays; `IMGBUILD_MUTANT_SLOW=1` prints the mutants that take long.

use std::path::{Path, PathBuf};

/// A small deterministic generator (xorshift64*), so every run tries the
/// same mutants and a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }
}

/// Bytes that mean something to one of the parsers.
const INTERESTING: &[&[u8]] = &[
    b"$",
    b"${",
    b"}",
    b":-",
    b":?",
    b"#",
    b"%%",
    b"//",
    b"\\",
    b"\"",
    b"'",
    b"<<",
    b"<<-EOF\n",
    b"EOF\n",
    b"\n",
    b"\r\n",
    b"\t",
    b"[",
    b"]",
    b"=",
    b",",
    b"*",
    b"**",
    b"!",
    b"..",
    b"/",
    b"--mount=type=",
    b"--from=",
    b" AS ",
    b"FROM ",
    b"ARG ",
    b"\xff\xfe",
    b"\xc3",
    b"\x00",
    b"{ ",
    b" }",
    b"[[",
    b"]]",
    b"\"\"\"",
    b"0o777",
    b"-1",
    b"99999999999999999999",
];

fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(9) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, piece.iter().copied());
            }
            2 if at < data.len() => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            3 if at < data.len() => {
                // Repeat a piece, up to a deep nesting or a long line.
                let end = (at + 1 + rng.below(16)).min(data.len());
                let piece: Vec<u8> = data[at..end].to_vec();
                let times = [2, 8, 100, 3000][rng.below(4)];
                let repeated: Vec<u8> = piece.repeat(times);
                data.splice(at..at, repeated);
            }
            4 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let start = rng.below(other.len());
                let end = (start + rng.below(200)).min(other.len());
                data.splice(at..at, other[start..end].iter().copied());
            }
            5 => {
                let long = vec![b"xA${}"[rng.below(5)]; 70_000];
                data.splice(at..at, long);
            }
            6 => data.truncate(at),
            7 => {
                let nested = b"${A:-".repeat(200);
                data.splice(at..at, nested);
            }
            _ => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                let end = (at + piece.len()).min(data.len());
                data.splice(at..end, piece.iter().copied());
            }
        }
    }
    data
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` whose name satisfies `wanted`.
fn files_under(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file()
            && wanted(&name)
            && let Ok(bytes) = std::fs::read(entry.path())
        {
            out.push(bytes);
        }
    }
    out
}

/// The fenced blocks of the book in `language`.
fn book_blocks(language: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for page in files_under(&repo().join("book/src"), &|n| {
        Path::new(n).extension().is_some_and(|e| e == "md")
    }) {
        let page = String::from_utf8_lossy(&page).into_owned();
        let mut block: Option<String> = None;
        for line in page.lines() {
            match &mut block {
                None if line.trim_start() == format!("```{language}") => {
                    block = Some(String::new());
                }
                Some(text) if line.trim_start() == "```" => {
                    out.push(std::mem::take(text).into_bytes());
                    block = None;
                }
                Some(text) => {
                    text.push_str(line);
                    text.push('\n');
                }
                None => {}
            }
        }
    }
    out
}

fn layer_seeds() -> Vec<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, link: &str, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        let _ = header.set_path(path);
        if !link.is_empty() {
            let _ = header.set_link_name(link);
        }
        header.set_cksum();
        builder.append(&header, data).expect("a tar entry");
    };
    add("etc/", tar::EntryType::Directory, "", b"");
    add(
        "etc/passwd",
        tar::EntryType::Regular,
        "",
        b"root:x:0:0::/root:/bin/sh\n",
    );
    add(
        "etc/link",
        tar::EntryType::Symlink,
        "../../../../tmp/x",
        b"",
    );
    add("etc/hard", tar::EntryType::Link, "etc/passwd", b"");
    add("etc/.wh.gone", tar::EntryType::Regular, "", b"");
    add("etc/.wh..wh..opq", tar::EntryType::Regular, "", b"");
    let plain = builder.into_inner().expect("a tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).expect("gzip");
    vec![plain, gz.finish().expect("gzip")]
}

/// Runs `count` mutants of each of `seeds` through `target`.
fn run(name: &str, seeds: &[Vec<u8>], count: usize, target: fn(&[u8])) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let replay = std::env::var("IMGBUILD_MUTANT").ok();
    for (s, seed) in seeds.iter().enumerate() {
        target(seed);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((s as u64 + 1) * 0x1000_0001));
        for n in 0..count {
            let mutant = mutate(&mut rng, seed, seeds);
            if replay
                .as_deref()
                .is_some_and(|r| r != format!("{name}:{s}:{n}"))
            {
                continue;
            }
            let started = std::time::Instant::now();
            let outcome = std::panic::catch_unwind(|| target(&mutant));
            if std::env::var_os("IMGBUILD_MUTANT_SLOW").is_some()
                && started.elapsed().as_millis() > 300
            {
                eprintln!(
                    "SLOW {name}:{s}:{n} {:?} len {}: {:?}",
                    started.elapsed(),
                    mutant.len(),
                    String::from_utf8_lossy(&mutant[..mutant.len().min(300)])
                );
            }
            assert!(
                outcome.is_ok(),
                "{name}: mutant {s}:{n} panicked; replay with IMGBUILD_MUTANT={name}:{s}:{n}; input:\n{}",
                String::from_utf8_lossy(&mutant[..mutant.len().min(2000)])
            );
        }
    }
}

/// How many mutants of each seed: enough for a few thousand in all.
fn per_seed(seeds: usize, total: usize) -> usize {
    (total / seeds.max(1)).max(10)
}

#[test]
fn mutated_manifests_never_panic() {
    let mut seeds = files_under(&repo().join("examples"), &|n| {
        Path::new(n).extension().is_some_and(|e| e == "toml")
    });
    seeds.extend(
        book_blocks("toml")
            .into_iter()
            .filter(|b| b.starts_with(b"[")),
    );
    run(
        "manifest",
        &seeds,
        per_seed(seeds.len(), 1500),
        super::manifest,
    );
}

#[test]
fn mutated_dockerfiles_never_panic() {
    let mut seeds = files_under(&repo().join("examples"), &|n| n.starts_with("Dockerfile"));
    seeds.extend(book_blocks("dockerfile"));
    seeds.extend(files_under(&repo().join("tests/differential"), &|n| {
        n == "Dockerfile"
    }));
    run(
        "dockerfile",
        &seeds,
        per_seed(seeds.len(), 1500),
        super::dockerfile,
    );
}

#[test]
fn mutated_shell_words_never_panic() {
    let seeds: Vec<Vec<u8>> = [
        "${A:-${B:+x}}$C\nA=1\nB=2",
        "${A#*/}${A%%.*}${A/x/y}${A//[a-z]/-}\nA=x/y.z",
        "'$A' \"$A\" \\$A $A\"x\"'y'\nA= a b ",
        "${A:?must be set} ${A?x}\n",
        "$$ $1 $@ ${#} ${A:0:2}\nA=abc",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run("shell_word", &seeds, 400, super::shell_word);
}

#[test]
fn mutated_dockerignores_never_panic() {
    let seeds: Vec<Vec<u8>> = [
        "*.md\n!README.md\n**/target\n# comment\n",
        "/abs/**/x?y[a-c]\n!**/keep\n../up\n.\n",
        "dir/\n[!a]\\*\n**\n!",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run("dockerignore", &seeds, 400, super::dockerignore);
}

#[test]
fn mutated_layers_never_panic_or_escape() {
    run("layer", &layer_seeds(), 250, super::layer);
}

/// Inputs the fuzz targets found, replayed: each once took seconds to minutes.
#[test]
fn inputs_the_fuzzers_found_run_quickly() {
    for (target, input) in [
        (
            super::shell_word as fn(&[u8]),
            include_bytes!("regressions/shell_word-slow-replace-1").as_slice(),
        ),
        (
            super::shell_word,
            include_bytes!("regressions/shell_word-slow-replace-2").as_slice(),
        ),
    ] {
        target(input);
    }
}

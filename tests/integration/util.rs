//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root, where examples and the book live.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a finished `imgbuild` run printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `imgbuild ARGS` in `dir`.
pub fn imgbuild_in(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args(args)
        .current_dir(dir)
        .env("IMGBUILD_STORE", shared_store())
        .env("NO_COLOR", "1")
        .env_remove("IMGBUILD_LOG")
        .env_remove("IMGBUILD_PROGRESS")
        .output()
        .expect("imgbuild runs");
    Output {
        code: output.status.code().expect("imgbuild exits normally"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// A store for runs that name none (`--store` wins over it): one per test
/// process, so no test reads or fills the user's own store.
fn shared_store() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("store-{}", std::process::id()))
}

/// Runs `imgbuild ARGS` in the repository root.
pub fn imgbuild(args: &[&str]) -> Output {
    imgbuild_in(&repo(), args)
}

/// A temporary directory holding `imgbuild.toml` with `text`.
pub fn manifest_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("imgbuild.toml"), text).expect("write manifest");
    dir
}

/// Plans `text` as `imgbuild.toml` with extra `args`.
pub fn plan_manifest(text: &str, args: &[&str]) -> Output {
    let dir = manifest_dir(text);
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    imgbuild_in(dir.path(), &all)
}

/// Plans `text` as JSON, asserting success.
pub fn plan_json(text: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = plan_manifest(text, &all);
    assert_eq!(out.code, 0, "plan failed:\n{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("plan --json prints JSON")
}

/// Whether the host is linux/amd64, which the snapshots were taken on.
pub fn host_is_amd64() -> bool {
    if imgbuild::ir::Platform::host().to_string() == "linux/amd64" {
        true
    } else {
        eprintln!("skipped: snapshots assume a linux/amd64 build machine");
        false
    }
}

/// Whether `tool` is installed; scripts/test sets `IMGBUILD_REQUIRE_TOOLS` so CI never skips.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("IMGBUILD_REQUIRE_TOOLS").is_none(),
            "{tool} is required but missing"
        );
        eprintln!("skipped: {tool} is not installed (scripts/test installs it)");
    }
    found
}

/// Runs a tool that must succeed and returns its stdout.
pub fn run_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether runc and busybox are here; scripts/test makes them required.
pub fn can_run() -> bool {
    let ok = Path::new("/bin/busybox").exists()
        && Command::new("runc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("IMGBUILD_REQUIRE_TOOLS").is_none(),
            "runc and busybox-static are required"
        );
        eprintln!("skipped: needs runc and busybox-static (scripts/test installs them)");
    }
    ok
}

/// The arm64 busybox scripts/test downloads (`apt-get download
/// busybox-static:arm64`), when it and qemu's binfmt handler are here.
pub fn arm64_busybox() -> Option<PathBuf> {
    let path = std::env::var_os("IMGBUILD_ARM64_BUSYBOX").map_or_else(
        || repo().join("target/fixtures/arm64/bin/busybox"),
        PathBuf::from,
    );
    let registered = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|t| t.starts_with("enabled"));
    if path.exists() && registered {
        return Some(path);
    }
    assert!(
        std::env::var_os("IMGBUILD_REQUIRE_TOOLS").is_none(),
        "arm64 busybox and qemu-aarch64 are required"
    );
    eprintln!(
        "skipped arm64: needs {} and qemu-user-static",
        path.display()
    );
    None
}

/// Asserts that planning a manifest fails with exit code 2, with `message`
/// reported at `imgbuild.toml:LINE:COLUMN`.
macro_rules! bad_manifest {
    ($name:ident, $text:expr, $message:expr, $line:expr, $column:expr) => {
        bad_manifest!($name, $text, $message, $line, $column, "");
    };
    ($name:ident, $text:expr, $message:expr, $line:expr, $column:expr, $help:expr) => {
        #[test]
        fn $name() {
            let out = $crate::util::plan_manifest($text, &[]);
            assert_eq!(out.code, 2, "exit code; stderr:\n{}", out.stderr);
            assert!(
                out.stderr.contains($message),
                "expected {:?} in:\n{}",
                $message,
                out.stderr
            );
            let location = format!("imgbuild.toml:{}:{}", $line, $column);
            assert!(
                out.stderr.contains(&location),
                "expected {location} in:\n{}",
                out.stderr
            );
            assert!(
                out.stderr.contains($help),
                "expected help {:?} in:\n{}",
                $help,
                out.stderr
            );
            assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
    };
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(bytes)
        .iter()
        .fold(String::from("sha256:"), |mut s, x| {
            use std::fmt::Write as _;
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// Writes an OCI layout of one image for the host platform whose one layer
/// is the blob `layer` of `media_type`, with `diff_id` in its config.
pub fn layout_with_blob(dir: &Path, layer: &[u8], media_type: &str, diff_id: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let digest = sha256_digest(b);
        std::fs::write(blobs.join(&digest["sha256:".len()..]), b).unwrap();
        (digest, b.len())
    };
    let (layer_digest, layer_size) = put(layer);
    let platform = imgbuild::ir::Platform::host();
    let config = serde_json::json!({"architecture": platform.architecture, "os": platform.os, "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}});
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": media_type, "digest": layer_digest, "size": layer_size}]});
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// The pids of the processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .filter(|&pid| pid != std::process::id())
        .collect()
}

/// The cleanup watchdog (`imgbuild __reap`) that the imgbuild process `pid` spawned.
pub fn reaper_of(pid: u32) -> Option<u32> {
    processes_with("__reap").into_iter().find(|p| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
            // Fields after the command name, which is in parentheses: state, ppid, …
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
    })
}

/// Polls `done` every 20 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

//! Tests against a local `docker-registry` (Debian's build of the CNCF
//! distribution registry) on 127.0.0.1; they skip with a message when it is
//! not installed, unless `IMGBUILD_REQUIRE_TOOLS` is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use crate::store::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store};

#[path = "../../tests/support/registry.rs"]
mod support;

use support::TestRegistry;

const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

fn platform(text: &str) -> Platform {
    Platform::parse(text).unwrap()
}

/// A client for `registry` over plain HTTP, with the credentials in
/// `auth_file`; without one, anonymous whatever the developer's own
/// ~/.docker/config.json says.
fn connect(registry: &TestRegistry, auth_file: Option<PathBuf>) -> Registry {
    let auth_file = auth_file.unwrap_or_else(|| {
        let empty = registry.dir().join("no-auth.json");
        std::fs::write(&empty, "{}").unwrap();
        empty
    });
    Registry::new(RegistryOptions {
        insecure: vec![registry.host()],
        auth_file: Some(auth_file),
    })
    .unwrap()
}

/// An image made by hand in a store.
struct Image {
    index: Digest,
    manifests: Vec<Digest>,
    blobs: Vec<Digest>,
}

/// Writes a manifest for `arch` with its config and `layers` into the store.
fn make_manifest(store: &Store, arch: &str, layers: &[Digest]) -> (Digest, u64, Digest) {
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|d| {
            let size = std::fs::metadata(store.blob_path(d)).unwrap().len();
            serde_json::json!({"mediaType": LAYER_TYPE, "digest": d, "size": size})
        })
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers},
        "config": {"Env": ["PATH=/usr/bin"]},
    }))
    .unwrap();
    let config_digest = store.write_blob(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
        "layers": layer_descs,
    }))
    .unwrap();
    let digest = store.write_blob(&manifest).unwrap();
    (digest, manifest.len() as u64, config_digest)
}

/// A two-platform image: a shared layer, one layer per platform, two configs.
fn make_image(store: &Store) -> Image {
    let shared = store.write_blob(&vec![7u8; 300_000]).unwrap();
    let amd = store.write_blob(b"amd64 layer bytes").unwrap();
    let arm = store.write_blob(b"arm64 layer bytes").unwrap();
    let (m_amd, s_amd, c_amd) = make_manifest(store, "amd64", &[shared.clone(), amd.clone()]);
    let (m_arm, s_arm, c_arm) = make_manifest(store, "arm64", &[shared.clone(), arm.clone()]);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [
            {"mediaType": MANIFEST_MEDIA_TYPE, "digest": m_amd, "size": s_amd,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": MANIFEST_MEDIA_TYPE, "digest": m_arm, "size": s_arm,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
    }))
    .unwrap();
    Image {
        index: store.write_blob(&index).unwrap(),
        manifests: vec![m_amd, m_arm],
        blobs: vec![shared, amd, arm, c_amd, c_arm],
    }
}

fn assert_blob_equal(a: &Store, b: &Store, digest: &Digest) {
    assert_eq!(
        a.read_blob(digest).unwrap(),
        b.read_blob(digest).unwrap(),
        "{digest}"
    );
}

#[test]
fn normalizes_like_docker() {
    let n = |r: &str| Registry::normalize(r).unwrap();
    assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
    assert_eq!(n("alpine:3.20"), "docker.io/library/alpine:3.20");
    assert_eq!(n("user/app"), "docker.io/user/app:latest");
    assert_eq!(n("ghcr.io/o/app:v1"), "ghcr.io/o/app:v1");
    assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
    let pinned = format!("alpine@sha256:{}", "a".repeat(64));
    assert_eq!(
        n(&pinned),
        format!("docker.io/library/alpine@sha256:{}", "a".repeat(64))
    );
    for bad in ["", "UPPER/case", "a b", "alpine@sha256:short"] {
        assert!(
            matches!(
                Registry::normalize(bad),
                Err(RegistryError::InvalidReference { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn platform_selection() {
    let desc = |os: &str, arch: &str, variant: Option<&str>| Desc {
        media_type: MANIFEST_MEDIA_TYPE.to_owned(),
        digest: String::new(),
        size: 0,
        platform: Some(EntryPlatform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        }),
    };
    let matches = |d: &Desc, p: &str| entry_platform(d) == Some(platform(p));
    assert!(matches(&desc("linux", "arm64", None), "linux/arm64/v8"));
    assert!(matches(&desc("linux", "arm64", Some("v8")), "linux/arm64"));
    assert!(matches(&desc("linux", "arm", Some("v7")), "linux/arm/v7"));
    assert!(!matches(&desc("linux", "arm", Some("v6")), "linux/arm/v7"));
    assert!(!matches(&desc("windows", "amd64", None), "linux/amd64"));
    assert!(!matches(&desc("linux", "amd64", None), "linux/arm64"));
}

#[test]
fn pinning_drops_the_tag() {
    let d = Digest::of(b"x");
    assert_eq!(
        pin("docker.io/library/alpine:3.20", &d),
        format!("docker.io/library/alpine@{d}")
    );
    assert_eq!(
        pin("127.0.0.1:5000/team/app:v1", &d),
        format!("127.0.0.1:5000/team/app@{d}")
    );
    assert_eq!(
        pin("127.0.0.1:5000/app", &d),
        format!("127.0.0.1:5000/app@{d}")
    );
    let other = Digest::of(b"y");
    assert_eq!(
        pin(&format!("ghcr.io/o/app@{other}"), &d),
        format!("ghcr.io/o/app@{d}")
    );
}

#[test]
fn push_and_pull_back() {
    let Some(reg) = TestRegistry::start(None) else {
        return;
    };
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(dir.path().join("src")).unwrap();
    let image = make_image(&src);
    let client = connect(&reg, None);
    let reference = format!("{host}/team/app:v1");

    let first = client
        .push(&src, &image.index, INDEX_MEDIA_TYPE, &reference)
        .unwrap();
    assert_eq!(first.digest, image.index);
    // shared layer, two platform layers, two configs; the shared one is
    // skipped the second time it is seen.
    assert_eq!((first.blobs_uploaded, first.blobs_skipped), (5, 1));

    // The registry's own access log agrees: one upload per blob.
    assert_eq!(reg.blob_uploads(), 5, "{:#?}", reg.requests());

    let second = client
        .push(&src, &image.index, INDEX_MEDIA_TYPE, &reference)
        .unwrap();
    assert_eq!((second.blobs_uploaded, second.blobs_skipped), (0, 6));
    assert_eq!(reg.blob_uploads(), 5, "no upload the second time");

    let scratch = Store::open(dir.path().join("scratch")).unwrap();
    let resolved = client.resolve(&scratch, &reference).unwrap();
    assert_eq!(
        (resolved.media_type.as_str(), &resolved.digest),
        (INDEX_MEDIA_TYPE, &image.index)
    );
    assert_eq!(resolved.name, reference);
    assert_eq!(
        resolved.pinned(),
        format!("{host}/team/app@{}", image.index)
    );
    assert!(scratch.has_blob(&image.index), "the index is stored");

    // By tag, arm64.
    let by_tag = Store::open(dir.path().join("by-tag")).unwrap();
    let got = client
        .pull(&by_tag, &reference, &platform("linux/arm64"))
        .unwrap();
    assert_eq!(got, image.manifests[1]);
    for d in [
        &image.index,
        &image.manifests[1],
        &image.blobs[0],
        &image.blobs[2],
        &image.blobs[4],
    ] {
        assert_blob_equal(&src, &by_tag, d);
    }
    assert!(
        !by_tag.has_blob(&image.manifests[0]),
        "only the platform asked for"
    );
    assert!(!by_tag.has_blob(&image.blobs[1]));

    // By digest, amd64, into a fresh store.
    let by_digest = Store::open(dir.path().join("by-digest")).unwrap();
    let pinned = format!("{host}/team/app@{}", image.index);
    let got = client
        .pull(&by_digest, &pinned, &platform("linux/amd64"))
        .unwrap();
    assert_eq!(got, image.manifests[0]);
    for d in [
        &image.index,
        &image.manifests[0],
        &image.blobs[0],
        &image.blobs[1],
        &image.blobs[3],
    ] {
        assert_blob_equal(&src, &by_digest, d);
    }
    assert!(by_digest.verify(false).unwrap().is_clean());

    // A single manifest pushed under its own tag, pulled by tag.
    let single = format!("{host}/team/app:amd64-only");
    let report = client
        .push(&src, &image.manifests[0], MANIFEST_MEDIA_TYPE, &single)
        .unwrap();
    assert_eq!((report.blobs_uploaded, report.blobs_skipped), (0, 3));
    let one = Store::open(dir.path().join("one")).unwrap();
    assert_eq!(
        client
            .pull(&one, &single, &platform("linux/amd64"))
            .unwrap(),
        image.manifests[0]
    );
    let resolved = client.resolve(&scratch, &single).unwrap();
    assert_eq!(
        (resolved.media_type.as_str(), &resolved.digest),
        (MANIFEST_MEDIA_TYPE, &image.manifests[0])
    );

    // Errors name the image.
    let missing = format!("{host}/team/app:nope");
    let err = client
        .pull(&one, &missing, &platform("linux/amd64"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("team/app:nope"), "{err}");
    let err = client
        .pull(&one, &reference, &platform("linux/s390x"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/arm64/v8"), "{err}");
    assert!(err.to_string().contains("linux/s390x"), "{err}");

    // Pushing by digest, and a digest that is not the one pushed.
    let by_digest = format!("{host}/team/other@{}", image.manifests[1]);
    let report = client
        .push(&src, &image.manifests[1], MANIFEST_MEDIA_TYPE, &by_digest)
        .unwrap();
    assert_eq!(report.digest, image.manifests[1]);
    assert_eq!(
        client.resolve(&scratch, &by_digest).unwrap().digest,
        image.manifests[1]
    );
    let err = client
        .push(&src, &image.manifests[0], MANIFEST_MEDIA_TYPE, &by_digest)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::InvalidReference { .. }),
        "{err}"
    );

    // A second registry client (no cached state) sees the same.
    let again = connect(&reg, None);
    let fresh = Store::open(dir.path().join("fresh")).unwrap();
    assert_eq!(
        again.resolve(&fresh, &reference).unwrap().digest,
        image.index
    );

    if Path::new("/usr/bin/skopeo").exists() {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            Digest::of(&out.stdout),
            image.index,
            "skopeo sees the index"
        );
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--override-arch", "arm64"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["Architecture"], "arm64");
        // skopeo reports the digest the reference names: the index.
        assert_eq!(json["Digest"], image.index.as_str());
        assert_eq!(json["Layers"].as_array().unwrap().len(), 2);
    } else {
        eprintln!("skopeo not installed: skipping the skopeo check");
    }
}

#[test]
fn credentials_are_checked() {
    let Some(reg) = TestRegistry::start(Some(("alice", "right-password"))) else {
        return;
    };
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(dir.path().join("src")).unwrap();
    let image = make_image(&src);
    let reference = format!("{host}/private/app:v1");

    let good = connect(&reg, Some(reg.auth_file("good", "alice", "right-password")));
    let bad = connect(&reg, Some(reg.auth_file("bad", "alice", "wrong")));
    let anonymous = connect(&reg, None);

    let report = good
        .push(&src, &image.manifests[0], MANIFEST_MEDIA_TYPE, &reference)
        .unwrap();
    assert_eq!(report.blobs_uploaded, 3);

    for (who, client) in [("wrong password", &bad), ("anonymous", &anonymous)] {
        let err = client
            .push(&src, &image.manifests[0], MANIFEST_MEDIA_TYPE, &reference)
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { .. }),
            "{who}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("private/app"), "{text}");
        let help = miette::Diagnostic::help(&err).unwrap().to_string();
        assert!(help.contains(&format!("docker login {host}")), "{help}");
        let store = Store::open(dir.path().join(who.replace(' ', "-"))).unwrap();
        let err = client
            .pull(&store, &reference, &platform("linux/amd64"))
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { .. }),
            "{who}: {err}"
        );
        let err = client.resolve(&store, &reference).unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { .. }),
            "{who}: {err}"
        );
    }

    let store = Store::open(dir.path().join("pulled")).unwrap();
    assert_eq!(
        good.pull(&store, &reference, &platform("linux/amd64"))
            .unwrap(),
        image.manifests[0]
    );
}

/// Writes a blob of `size` pseudo-random bytes through the store's streaming
/// writer (one random MiB, each copy stamped with its index).
fn write_big_blob(store: &Store, size: usize) -> Digest {
    let mut writer = store.blob_writer().unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for b in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        b.copy_from_slice(&state.to_le_bytes()[..b.len()]);
    }
    let mut left = size;
    let mut index: u64 = 0;
    while left > 0 {
        buf[..8].copy_from_slice(&index.to_le_bytes());
        let n = left.min(buf.len());
        writer.write_all(&buf[..n]).unwrap();
        left -= n;
        index += 1;
    }
    writer.commit().unwrap().0
}

/// A manifest whose single layer is `layer` (already in the store).
fn image_with_layer(store: &Store, layer: &Digest) -> Digest {
    make_manifest(store, "amd64", std::slice::from_ref(layer)).0
}

#[test]
fn registry_killed_mid_push_then_retry_succeeds() {
    let Some(mut reg) = TestRegistry::start(None) else {
        return;
    };
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(dir.path().join("src")).unwrap();
    let layer = write_big_blob(&src, 160 << 20);
    let manifest = image_with_layer(&src, &layer);
    let reference = format!("{host}/big/app:v1");

    let client = connect(&reg, None);
    let outcome = std::thread::scope(|s| {
        let pushing = s.spawn(|| client.push(&src, &manifest, MANIFEST_MEDIA_TYPE, &reference));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reg.upload_in_progress() && !pushing.is_finished() {
            assert!(Instant::now() < deadline, "the upload never started");
            std::thread::sleep(Duration::from_millis(2));
        }
        reg.kill();
        pushing.join().unwrap()
    });
    let err = outcome.expect_err("the registry was killed during the upload");
    assert!(
        matches!(err, RegistryError::Network { .. }),
        "a dead registry is a network error: {err}"
    );
    assert!(err.to_string().contains("big/app"), "{err}");

    // The store is intact.
    let report = src.verify(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(src.read_blob(&manifest).unwrap().len() as u64, {
        std::fs::metadata(src.blob_path(&manifest)).unwrap().len()
    });

    reg.restart();
    let report = client
        .push(&src, &manifest, MANIFEST_MEDIA_TYPE, &reference)
        .unwrap();
    assert_eq!(report.digest, manifest);
    assert_eq!(report.blobs_uploaded + report.blobs_skipped, 2);

    let back = Store::open(dir.path().join("back")).unwrap();
    assert_eq!(
        client
            .pull(&back, &reference, &platform("linux/amd64"))
            .unwrap(),
        manifest
    );
    assert!(back.has_blob(&layer));
    assert!(back.verify(false).unwrap().is_clean());
}

/// Peak resident memory (`VmHWM`) of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Pushes a 512 MiB blob and checks this process stays under 100 MiB.
/// Slow and disk-hungry (about 1.5 GiB), so run on demand:
/// `cargo test push_512mib -- --ignored --nocapture`.
#[test]
#[ignore = "slow: pushes 512 MiB"]
fn push_512mib_blob_in_bounded_memory() {
    let Some(reg) = TestRegistry::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(dir.path().join("src")).unwrap();
    let layer = write_big_blob(&src, 512 << 20);
    let manifest = image_with_layer(&src, &layer);
    let before = peak_rss_kib();
    let client = connect(&reg, None);
    let started = Instant::now();
    let report = client
        .push(
            &src,
            &manifest,
            MANIFEST_MEDIA_TYPE,
            &format!("{}/big/app:v1", reg.host()),
        )
        .unwrap();
    let peak = peak_rss_kib();
    eprintln!(
        "pushed 512 MiB in {:.1?}; peak RSS before push {} MiB, after {} MiB",
        started.elapsed(),
        before / 1024,
        peak / 1024
    );
    assert_eq!(report.blobs_uploaded, 2);
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn retries_transient_errors_only() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let attempts = std::cell::Cell::new(0);
    let failing = |error: fn() -> RegistryError| {
        attempts.set(0);
        runtime.block_on(retry(|| async {
            attempts.set(attempts.get() + 1);
            Err::<(), _>(error())
        }))
    };
    let server = || RegistryError::Server {
        reference: "r".to_owned(),
        status: 503,
        message: String::new(),
    };
    assert!(failing(server).is_err());
    assert_eq!(attempts.get(), 3, "5xx is retried");
    let not_found = || RegistryError::NotFound {
        reference: "r".to_owned(),
        what: "manifest".to_owned(),
    };
    assert!(failing(not_found).is_err());
    assert_eq!(attempts.get(), 1, "404 is not retried");
    attempts.set(0);
    let ok = runtime.block_on(retry(|| async {
        attempts.set(attempts.get() + 1);
        if attempts.get() < 2 {
            Err(server())
        } else {
            Ok(7)
        }
    }));
    assert_eq!(ok.unwrap(), 7);
}

#[test]
fn damaged_blob_in_registry_is_refused() {
    let Some(reg) = TestRegistry::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(dir.path().join("src")).unwrap();
    let image = make_image(&src);
    let client = connect(&reg, None);
    let reference = format!("{}/damaged/app:v1", reg.host());
    client
        .push(&src, &image.manifests[0], MANIFEST_MEDIA_TYPE, &reference)
        .unwrap();
    // Flip bytes of the amd64 layer (same size) in the registry's storage.
    let data = reg.blob_data(image.blobs[1].hex());
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let dest = Store::open(dir.path().join("dest")).unwrap();
    let err = client
        .pull(&dest, &reference, &platform("linux/amd64"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("damaged/app"), "{err}");
    assert!(
        !dest.has_blob(&image.blobs[1]),
        "nothing damaged enters the store"
    );
    assert!(dest.verify(false).unwrap().is_clean());
}

/// A fake registry that speaks Docker Hub's anonymous token flow: `/v2/`
/// and the manifest answer 401 with a Bearer challenge until the request
/// carries the token `/token` hands out; the first authorised manifest
/// request fails with 503. Returns the port and the request log
/// (`METHOD PATH AUTHORIZATION`); stops when `stop` is set.
fn token_registry(
    manifest: &'static [u8],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let requests = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut failed_once = false;
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => panic!("accept: {e}"),
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = value.trim().to_owned();
                }
            }
            let mut words = request_line.split_whitespace();
            let method = words.next().unwrap_or_default().to_owned();
            let path = words.next().unwrap_or_default().to_owned();
            requests
                .lock()
                .unwrap()
                .push(format!("{method} {path} {authorization}"));
            let authorised = authorization == "Bearer t0k";
            let (status, headers, body): (&str, String, &[u8]) = if path.starts_with("/token?") {
                (
                    "200 OK",
                    "Content-Type: application/json\r\n".to_owned(),
                    br#"{"token":"t0k","expires_in":300}"#,
                )
            } else if authorised && path == "/v2/lib/app/manifests/v1" && !failed_once {
                failed_once = true;
                ("503 Service Unavailable", String::new(), b"try again")
            } else if authorised && path == "/v2/lib/app/manifests/v1" {
                (
                    "200 OK",
                    format!(
                        "Content-Type: {MANIFEST_MEDIA_TYPE}\r\nDocker-Content-Digest: {}\r\n",
                        Digest::of(manifest)
                    ),
                    manifest,
                )
            } else {
                (
                    "401 Unauthorized",
                    format!(
                        "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake-registry\",scope=\"repository:lib/app:pull\"\r\nContent-Type: application/json\r\n"
                    ),
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    (port, log)
}

#[test]
fn anonymous_bearer_token_flow_and_retry_on_503() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (port, log) = token_registry(MANIFEST, std::sync::Arc::clone(&stop));
    let host = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("auth.json");
    std::fs::write(&auth_file, "{}").unwrap();
    let client = Registry::new(RegistryOptions {
        insecure: vec![host.clone()],
        auth_file: Some(auth_file),
    })
    .unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let resolved = client
        .resolve(&store, &format!("{host}/lib/app:v1"))
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(resolved.digest, Digest::of(MANIFEST));
    assert_eq!(resolved.media_type, MANIFEST_MEDIA_TYPE);
    assert!(store.has_blob(&resolved.digest));
    let log = log.lock().unwrap().clone();
    let tokens: Vec<&String> = log.iter().filter(|r| r.contains("/token?")).collect();
    assert!(!tokens.is_empty(), "{log:#?}");
    assert!(
        tokens
            .iter()
            .all(|r| r.contains("scope=repository%3Alib%2Fapp%3Apull")
                && r.contains("service=fake-registry")
                && r.ends_with(' ')),
        "anonymous token requests for the repository: {log:#?}"
    );
    let manifests: Vec<&String> = log
        .iter()
        .filter(|r| r.starts_with("GET /v2/lib/app/manifests/v1 Bearer t0k"))
        .collect();
    assert_eq!(manifests.len(), 2, "one 503, then success: {log:#?}");
}

#[test]
fn base_resolver_plans_without_layers_then_pulls() {
    use crate::image::base::{BaseResolver, PullPolicy};
    use crate::image::source::ImageSource;
    let Some(reg) = TestRegistry::start(None) else {
        return;
    };
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(dir.path().join("src")).unwrap();
    let image = make_image(&src);
    let reference = format!("{host}/team/app:v1");
    connect(&reg, None)
        .push(&src, &image.index, INDEX_MEDIA_TYPE, &reference)
        .unwrap();

    let store = Store::open(dir.path().join("fresh")).unwrap();
    let auth_file = reg.dir().join("empty-auth.json");
    std::fs::write(&auth_file, "{}").unwrap();
    let resolver = BaseResolver::new(
        &store,
        PullPolicy::Missing,
        RegistryOptions {
            insecure: vec![host.clone()],
            auth_file: Some(auth_file),
        },
    );
    let source = ImageSource::Registry(reference.clone());
    let arm = platform("linux/arm64");
    // For a plan: the manifest and config, and no layer downloaded.
    let planned = resolver.resolve_metadata(&source, &arm).unwrap();
    assert_eq!(planned.manifest_digest, image.manifests[1]);
    assert_eq!(planned.image.layers.len(), 2);
    assert!(store.has_blob(&image.blobs[4]), "the arm64 config");
    assert!(!store.has_blob(&image.blobs[0]), "no layer for a plan");
    assert!(!store.has_blob(&image.blobs[2]), "no layer for a plan");
    let pinned = format!("{host}/team/app@{}", image.index);
    assert_eq!(
        resolver.resolved_references(),
        [(reference.clone(), pinned.clone())]
    );
    assert_eq!(
        store.tag(&reference).unwrap().unwrap().digest,
        image.index,
        "the pulled tag is in the store"
    );
    // For a build: the same manifest, with its layers.
    let base = resolver.resolve(&source, &arm).unwrap();
    assert_eq!(base.manifest_digest, image.manifests[1]);
    assert_eq!(base.pinned.as_deref(), Some(pinned.as_str()));
    assert_eq!(base.name, reference);
    assert_eq!(base.image.layers.len(), 2);
    assert_eq!(base.image, planned.image);
    for blob in [&image.blobs[0], &image.blobs[2], &image.blobs[4]] {
        assert!(store.has_blob(blob), "{blob}");
    }
    assert!(store.verify(false).unwrap().is_clean());
}

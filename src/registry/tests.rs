//! Tests against a local `docker-registry` (Debian's build of distribution)
//! on 127.0.0.1. They skip (with a message) when it cannot be installed,
//! unless `IMGBUILD_REQUIRE_TOOLS` is set.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::store::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Installs `docker-registry` if needed; `false` (after a message) if it
/// cannot be had and the tools are not required.
fn have_registry() -> bool {
    if Path::new(REGISTRY_BIN).exists() {
        return true;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "docker-registry"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed && Path::new(REGISTRY_BIN).exists() {
        return true;
    }
    assert!(
        std::env::var_os("IMGBUILD_REQUIRE_TOOLS").is_none(),
        "IMGBUILD_REQUIRE_TOOLS is set but docker-registry cannot be installed"
    );
    eprintln!(
        "SKIP: docker-registry is not installed and `apt-get install docker-registry` failed"
    );
    false
}

/// A `docker-registry` process on 127.0.0.1 with its own storage; killed on drop.
struct TestRegistry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl TestRegistry {
    /// Starts a registry; with `htpasswd`, it requires that user and password.
    fn start(htpasswd: Option<(&str, &str)>) -> Option<TestRegistry> {
        if !have_registry() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((user, password)) = htpasswd {
            let hash = bcrypt::hash_with_result(password, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY);
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
            config += "auth:\n  htpasswd:\n    realm: test\n    path: ";
            config += &file.display().to_string();
            config += "\n";
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut registry = TestRegistry {
            dir,
            port,
            child: None,
        };
        registry.restart();
        Some(registry)
    }

    /// (Re)starts the process on the same port and storage; waits until it listens.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "docker-registry exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn client(&self, auth_file: Option<PathBuf>) -> Registry {
        // An auth file that does not exist means anonymous access, whatever
        // the developer's own ~/.docker/config.json says.
        let auth_file = auth_file.unwrap_or_else(|| self.dir.path().join("no-auth.json"));
        Registry::new(RegistryOptions {
            insecure: vec![self.host()],
            auth_file: Some(auth_file),
        })
        .unwrap()
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
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
    let desc = |arch: &str, variant: Option<&str>| Desc {
        media_type: MANIFEST_MEDIA_TYPE.to_owned(),
        digest: String::new(),
        size: 0,
        platform: Some(Platform {
            os: "linux".to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        }),
    };
    assert!(platform_matches(
        &desc("arm64", None),
        "linux",
        "arm64",
        Some("v8")
    ));
    assert!(platform_matches(
        &desc("arm64", Some("v8")),
        "linux",
        "arm64",
        None
    ));
    assert!(!platform_matches(
        &desc("arm", Some("v6")),
        "linux",
        "arm",
        Some("v7")
    ));
    assert!(!platform_matches(
        &desc("amd64", None),
        "windows",
        "amd64",
        None
    ));
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
    let client = reg.client(None);
    let reference = format!("{host}/team/app:v1");

    let first = client
        .push(&src, &image.index, INDEX_MEDIA_TYPE, &reference)
        .unwrap();
    assert_eq!(first.digest, image.index);
    // shared layer, two platform layers, two configs; the shared one is
    // skipped the second time it is seen.
    assert_eq!((first.blobs_uploaded, first.blobs_skipped), (5, 1));

    let second = client
        .push(&src, &image.index, INDEX_MEDIA_TYPE, &reference)
        .unwrap();
    assert_eq!((second.blobs_uploaded, second.blobs_skipped), (0, 6));

    let (media_type, digest) = client.resolve(&reference).unwrap();
    assert_eq!(
        (media_type.as_str(), &digest),
        (INDEX_MEDIA_TYPE, &image.index)
    );

    // By tag, arm64.
    let by_tag = Store::open(dir.path().join("by-tag")).unwrap();
    let got = client
        .pull(&by_tag, &reference, "linux", "arm64", None)
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
        .pull(&by_digest, &pinned, "linux", "amd64", None)
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
        client.pull(&one, &single, "linux", "amd64", None).unwrap(),
        image.manifests[0]
    );
    assert_eq!(
        client.resolve(&single).unwrap(),
        (MANIFEST_MEDIA_TYPE.to_owned(), image.manifests[0].clone())
    );

    // Errors name the image.
    let missing = format!("{host}/team/app:nope");
    let err = client
        .pull(&one, &missing, "linux", "amd64", None)
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("team/app:nope"), "{err}");
    let err = client
        .pull(&one, &reference, "linux", "s390x", None)
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/arm64/v8"), "{err}");

    // Pushing by digest, and a digest that is not the one pushed.
    let by_digest = format!("{host}/team/other@{}", image.manifests[1]);
    let report = client
        .push(&src, &image.manifests[1], MANIFEST_MEDIA_TYPE, &by_digest)
        .unwrap();
    assert_eq!(report.digest, image.manifests[1]);
    assert_eq!(client.resolve(&by_digest).unwrap().1, image.manifests[1]);
    let err = client
        .push(&src, &image.manifests[0], MANIFEST_MEDIA_TYPE, &by_digest)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::InvalidReference { .. }),
        "{err}"
    );

    // A second registry client (no cached state) sees the same.
    let again = reg.client(None);
    assert_eq!(again.resolve(&reference).unwrap().1, image.index);

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

    let auth_file = |name: &str, user: &str, password: &str| {
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        write!(
            f,
            r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{password}"}}}}}}"#
        )
        .unwrap();
        path
    };
    let good = reg.client(Some(auth_file("good.json", "alice", "right-password")));
    let bad = reg.client(Some(auth_file("bad.json", "alice", "wrong")));
    let anonymous = reg.client(None);

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
        assert!(text.contains(&format!("docker login {host}")), "{text}");
        assert!(text.contains("private/app"), "{text}");
        let store = Store::open(dir.path().join(who.replace(' ', "-"))).unwrap();
        let err = client
            .pull(&store, &reference, "linux", "amd64", None)
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { .. }),
            "{who}: {err}"
        );
        let err = client.resolve(&reference).unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { .. }),
            "{who}: {err}"
        );
    }

    let store = Store::open(dir.path().join("pulled")).unwrap();
    assert_eq!(
        good.pull(&store, &reference, "linux", "amd64", None)
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

/// Whether the registry's storage holds a partial upload with data.
fn upload_in_progress(storage: &Path) -> bool {
    fn walk(dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                path.file_name().is_some_and(|n| n == "data")
                    && path.to_string_lossy().contains("_uploads")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            }
        })
    }
    walk(storage)
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

    let client = reg.client(None);
    let outcome = std::thread::scope(|s| {
        let pushing = s.spawn(|| client.push(&src, &manifest, MANIFEST_MEDIA_TYPE, &reference));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !upload_in_progress(&reg.storage()) && !pushing.is_finished() {
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
            .pull(&back, &reference, "linux", "amd64", None)
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
    let client = reg.client(None);
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

/// Finds the registry's copy of a blob (`…/blobs/sha256/XX/HEX/data`).
fn registry_blob(storage: &Path, digest: &Digest) -> PathBuf {
    storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex())
        .join("data")
}

#[test]
fn damaged_blob_in_registry_is_refused() {
    let Some(reg) = TestRegistry::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = Store::open(dir.path().join("src")).unwrap();
    let image = make_image(&src);
    let client = reg.client(None);
    let reference = format!("{}/damaged/app:v1", reg.host());
    client
        .push(&src, &image.manifests[0], MANIFEST_MEDIA_TYPE, &reference)
        .unwrap();
    // Flip bytes of the amd64 layer (same size) in the registry's storage.
    let data = registry_blob(&reg.storage(), &image.blobs[1]);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let dest = Store::open(dir.path().join("dest")).unwrap();
    let err = client
        .pull(&dest, &reference, "linux", "amd64", None)
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("damaged/app"), "{err}");
    assert!(
        !dest.has_blob(&image.blobs[1]),
        "nothing damaged enters the store"
    );
    assert!(dest.verify(false).unwrap().is_clean());
}

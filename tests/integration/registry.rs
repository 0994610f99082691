//! Registries end to end: `apply --push`, `pull`, `push` and registry base
//! images against a real registry (Debian's `docker-registry`) on
//! 127.0.0.1, checked with skopeo and the registry's own access log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::test_registry::TestRegistry;
use crate::util::{Output, have, repo, run_tool};

/// Runs `imgbuild ARGS` in `dir` with `store`, anonymous to registries
/// unless `args` say otherwise (the developer's own Docker config is never read).
fn imgbuild(dir: &Path, store: &Path, args: &[&str]) -> Output {
    let output = command(dir, store, args).output().expect("imgbuild runs");
    Output {
        code: output.status.code().expect("imgbuild exits normally"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn command(dir: &Path, store: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imgbuild"));
    command
        .arg("--store")
        .arg(store)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("IMGBUILD_LOG");
    command
}

/// A directory with `imgbuild.toml` and context files.
fn project(manifest: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imgbuild.toml"), manifest).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

fn ok(out: &Output) -> &Output {
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out
}

/// The digest `apply` printed for its only image.
fn digest_of(out: &Output) -> String {
    ok(out).stdout.split_whitespace().nth(1).unwrap().to_owned()
}

/// The digest `apply --push` printed for `repository` (`pushed REPO@DIGEST`):
/// that of the pushed image, whose layers are compressed, unlike the
/// store's copy whose digest `apply` prints on stdout.
fn pushed_digest(out: &Output, repository: &str) -> String {
    let prefix = format!("pushed {repository}@");
    let line = ok(out)
        .stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in:\n{}", out.stderr));
    line[prefix.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A two-platform image whose `/arch` says its architecture.
fn two_platform_manifest(tags: &[String]) -> String {
    format!(
        "[stages.a]\nfrom = \"scratch\"\nsteps = [{{ copy = \"${{TARGETARCH}}.txt\", to = \"/arch\" }}]\n\
         [images.a]\nstage = \"a\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\ntags = {tags:?}\n"
    )
}

fn skopeo_raw_digest(reference: &str) -> String {
    let raw = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    imgbuild::store::Digest::of(&raw.stdout).to_string()
}

#[test]
fn push_two_platforms_then_pull_back_by_tag_and_digest() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let host = registry.host();
    let tags = [
        format!("{host}/team/multi:1"),
        format!("{host}/team/multi:latest"),
    ];
    let dir = project(
        &two_platform_manifest(&tags),
        &[("amd64.txt", b"amd64\n"), ("arm64.txt", b"arm64\n")],
    );
    let store = dir.path().join("store");
    let out = imgbuild(
        dir.path(),
        &store,
        &["apply", "--push", "--insecure-registry", &host],
    );
    let built = digest_of(&out);
    let index = pushed_digest(&out, &format!("{host}/team/multi"));
    // Two layers and two configs, uploaded once for both tags.
    assert_eq!(registry.blob_uploads(), 4, "{:#?}", registry.requests());
    for tag in &tags {
        let pinned = format!("{}@{index}", tag.rsplit_once(':').unwrap().0);
        assert!(
            out.stderr.contains(&format!("pushed {pinned}")),
            "{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("(4 blobs uploaded, 0 already there)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(0 blobs uploaded, 4 already there)"),
        "{}",
        out.stderr
    );

    // Pushing again uploads nothing: the registry's log shows no new upload.
    let again = imgbuild(
        dir.path(),
        &store,
        &[
            "apply",
            "--output",
            "type=registry",
            "--insecure-registry",
            &host,
        ],
    );
    assert_eq!(digest_of(&again), built);
    assert_eq!(pushed_digest(&again, &format!("{host}/team/multi")), index);
    assert_eq!(registry.blob_uploads(), 4, "{:#?}", registry.requests());

    if have("skopeo") {
        assert_eq!(skopeo_raw_digest(&tags[0]), index, "skopeo sees the index");
        let inspect: serde_json::Value = serde_json::from_str(&run_tool(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                "--override-arch",
                "arm64",
                &format!("docker://{}", tags[0]),
            ],
        ))
        .unwrap();
        assert_eq!(inspect["Architecture"], "arm64");
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
        assert_eq!(
            skopeo_raw_digest(&format!("{host}/team/multi@{index}")),
            index
        );
    }

    // Pull back by tag and by digest into fresh stores; each gets its
    // platform's file.
    let by_tag = [
        format!("{host}/team/multi:1"),
        format!("{host}/team/multi@{index}"),
    ];
    for (i, reference) in by_tag.iter().enumerate() {
        let fresh = dir.path().join(format!("fresh-{i}"));
        let out = imgbuild(
            dir.path(),
            &fresh,
            &[
                "pull",
                "--insecure-registry",
                &host,
                "--platform",
                "linux/arm64",
                reference,
            ],
        );
        assert_eq!(ok(&out).stdout.trim(), format!("{host}/team/multi@{index}"));
        assert!(
            out.stderr.contains("linux/arm64: sha256:"),
            "{}",
            out.stderr
        );
        // The pulled image is a base that needs no registry.
        let base = project(
            &format!(
                "[stages.b]\nfrom = \"{reference}\"\n[images.b]\nstage = \"b\"\nplatforms = [\"linux/arm64\"]\n"
            ),
            &[],
        );
        let out = imgbuild(
            base.path(),
            &fresh,
            &["apply", "--pull=never", "--output", "type=local,dest=fs"],
        );
        ok(&out);
        assert_eq!(
            std::fs::read_to_string(base.path().join("fs/arch")).unwrap(),
            "arm64\n"
        );
        let verify = imgbuild(dir.path(), &fresh, &["store", "verify"]);
        ok(&verify);
    }

    // `imgbuild push` copies a store tag to another name.
    let copy = format!("{host}/other/copy:2");
    let out = imgbuild(
        dir.path(),
        &store,
        &["push", "--insecure-registry", &host, &tags[0], &copy],
    );
    assert_eq!(ok(&out).stdout.trim(), format!("{host}/other/copy@{index}"));
    if have("skopeo") {
        assert_eq!(skopeo_raw_digest(&copy), index);
    }
    // Another repository gets the blobs once more (registries do not share
    // blobs across repositories without a mount).
    assert_eq!(registry.blob_uploads(), 8);
    let out = imgbuild(
        dir.path(),
        &store,
        &["push", "--insecure-registry", &host, "nothing:here"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no image tagged `nothing:here` in the store"),
        "{}",
        out.stderr
    );

    // `inspect docker://` pulls the platform asked for into an empty store
    // and reports it as it reports a stored image.
    let reference = format!("docker://{}", tags[0]);
    let inspect = |flag: &str| {
        imgbuild(
            dir.path(),
            &dir.path().join("inspect-store"),
            &[
                "inspect",
                "--insecure-registry",
                &host,
                "--platform",
                "linux/arm64",
                flag,
                &reference,
            ],
        )
    };
    let out = inspect("--files");
    assert!(ok(&out).stdout.contains("/arch"), "{}", out.stdout);
    let out = inspect("--json");
    let report: serde_json::Value = serde_json::from_str(&ok(&out).stdout).unwrap();
    assert_eq!(report[0]["platform"], "linux/arm64", "{report:#}");
    assert_eq!(report[0]["layers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn build_from_a_registry_base_then_offline() {
    let Some(mut registry) = TestRegistry::start(None) else {
        return;
    };
    let host = registry.host();
    let base_tag = format!("{host}/base:1");
    let base = project(
        &format!(
            "[stages.base]\nfrom = \"scratch\"\nsteps = [{{ file = \"base\\n\", to = \"/base.txt\" }}]\n\
             [images.base]\nstage = \"base\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\ntags = [\"{base_tag}\"]\nlabels = {{ from = \"base\" }}\n"
        ),
        &[],
    );
    let base_index = pushed_digest(
        &imgbuild(
            base.path(),
            &base.path().join("store"),
            &["apply", "--push", "--insecure-registry", &host],
        ),
        &format!("{host}/base"),
    );

    let app_manifest = |from: &str| {
        format!(
            "[stages.app]\nfrom = \"{from}\"\nsteps = [{{ file = \"app\\n\", to = \"/app.txt\" }}]\n\
             [images.app]\nstage = \"app\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n"
        )
    };
    let app = project(&app_manifest(&base_tag), &[]);
    let store = app.path().join("store");
    let apply = |dir: &Path, args: &[&str]| {
        let mut all = vec![
            "apply",
            "--insecure-registry",
            host.as_str(),
            "--output",
            "type=oci-layout,dest=layout",
        ];
        all.extend_from_slice(args);
        imgbuild(dir, &store, &all)
    };
    let built = digest_of(&apply(app.path(), &[]));
    // Two platforms, one resolution of the tag.
    let by_tag = |registry: &TestRegistry| {
        registry
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET /v2/base/manifests/1 "))
            .count()
    };
    assert_eq!(by_tag(&registry), 1, "{:#?}", registry.requests());
    // Both platforms start from the base: its layer, then the stage's.
    if have("skopeo") {
        for arch in ["amd64", "arm64"] {
            let inspect: serde_json::Value = serde_json::from_str(&run_tool(
                "skopeo",
                &[
                    "inspect",
                    "--override-arch",
                    arch,
                    &format!("oci:{}", app.path().join("layout").display()),
                ],
            ))
            .unwrap();
            assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{arch}");
            assert_eq!(inspect["Labels"]["from"], "base", "{arch}");
        }
    }
    // The tag is now in the store: with the registry gone, `missing` (the
    // default) builds the same image, and so does the pinned reference.
    registry.kill();
    let plan = imgbuild(app.path(), &store, &["plan"]);
    assert!(
        ok(&plan).stdout.contains("cached  file /app.txt"),
        "{}",
        plan.stdout
    );
    // The plan says which digest the tag stands for: what to pin.
    assert!(
        plan.stdout
            .contains(&format!("from {base_tag} = {host}/base@{base_index}")),
        "{}",
        plan.stdout
    );
    assert_eq!(digest_of(&apply(app.path(), &[])), built);
    let pinned = project(&app_manifest(&format!("{host}/base@{base_index}")), &[]);
    assert_eq!(digest_of(&apply(pinned.path(), &[])), built);
    // `always` asks the registry, which is down.
    let out = apply(app.path(), &["--pull=always"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot reach the registry of {base_tag}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--insecure-registry"), "{}", out.stderr);
    // `never` with an empty store.
    let out = imgbuild(
        app.path(),
        &app.path().join("empty-store"),
        &["apply", "--pull=never"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is not in the store, and `--pull=never` forbids pulling it"),
        "{}",
        out.stderr
    );
    // Back up: `always` resolves the tag again and gets the same image.
    registry.restart();
    assert_eq!(digest_of(&apply(app.path(), &["--pull=always"])), built);
    assert_eq!(by_tag(&registry), 2, "{:#?}", registry.requests());
    // A platform the base does not have.
    let out = apply(app.path(), &["--platform", "linux/s390x"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("has no image for linux/s390x; it has: linux/amd64, linux/arm64"),
        "{}",
        out.stderr
    );
}

#[test]
fn registry_base_onbuild_triggers_are_planned() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let host = registry.host();
    let base_tag = format!("{host}/toolchain:1");
    let base = project(
        &format!(
            "[stages.toolchain]\nfrom = \"scratch\"\nonbuild = [\"COPY marker /marker\", \"LABEL triggered=yes\"]\n\
             steps = [{{ file = \"tool\\n\", to = \"/tool\" }}]\n\
             [images.toolchain]\nstage = \"toolchain\"\ntags = [\"{base_tag}\"]\n"
        ),
        &[],
    );
    ok(&imgbuild(
        base.path(),
        &base.path().join("store"),
        &["apply", "--push", "--insecure-registry", &host],
    ));
    let app = project(
        &format!("[stages.app]\nfrom = \"{base_tag}\"\n[images.app]\nstage = \"app\"\n"),
        &[("marker", b"from the app's context\n")],
    );
    let store = app.path().join("store");
    let plan = imgbuild(
        app.path(),
        &store,
        &["plan", "--json", "--insecure-registry", &host],
    );
    let plan: serde_json::Value = serde_json::from_str(&ok(&plan).stdout).unwrap();
    let steps = &plan["nodes"][0]["steps"];
    assert_eq!(steps.as_array().map(Vec::len), Some(2), "{steps:#}");
    assert_eq!(steps[0]["onbuild"], true, "{steps:#}");
    assert!(
        plan["nodes"][0]["base_pinned"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("{host}/toolchain@sha256:"))),
        "{plan:#}"
    );
    ok(&imgbuild(
        app.path(),
        &store,
        &[
            "apply",
            "--insecure-registry",
            &host,
            "--output",
            "type=local,dest=out",
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(app.path().join("out/marker")).unwrap(),
        "from the app's context\n"
    );
}

#[test]
fn wrong_credentials_are_a_clear_error() {
    let Some(registry) = TestRegistry::start(Some(("alice", "right-password"))) else {
        return;
    };
    let host = registry.host();
    let tag = format!("{host}/private/app:1");
    let dir = project(
        &format!(
            "[stages.a]\nfrom = \"scratch\"\nsteps = [{{ file = \"secret app\\n\", to = \"/a\" }}]\n[images.a]\nstage = \"a\"\ntags = [\"{tag}\"]\n"
        ),
        &[],
    );
    let store = dir.path().join("store");
    let wrong = registry.auth_file("wrong", "alice", "wrong-password");
    let out = imgbuild(
        dir.path(),
        &store,
        &[
            "apply",
            "--push",
            "--insecure-registry",
            &host,
            "--authfile",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("the registry refused access to {tag}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("docker login {host}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wrong-password"), "{}", out.stderr);
    assert_eq!(registry.blob_uploads(), 0);

    // Anonymous: the same error, from `pull`.
    let out = imgbuild(
        dir.path(),
        &dir.path().join("other"),
        &["pull", "--insecure-registry", &host, &tag],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("the registry refused access to {tag}")),
        "{}",
        out.stderr
    );

    // A missing --authfile is a mistake, not anonymous access.
    let out = imgbuild(
        dir.path(),
        &store,
        &[
            "push",
            "--insecure-registry",
            &host,
            "--authfile",
            "/nonexistent/auth.json",
            &tag,
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/auth.json"),
        "{}",
        out.stderr
    );

    // The right password in Docker's own config file, found through $DOCKER_CONFIG.
    let docker_config = dir.path().join("docker");
    std::fs::create_dir(&docker_config).unwrap();
    std::fs::copy(
        registry.auth_file("right", "alice", "right-password"),
        docker_config.join("config.json"),
    )
    .unwrap();
    let output = command(
        dir.path(),
        &store,
        &["push", "--insecure-registry", &host, &tag],
    )
    .env("DOCKER_CONFIG", &docker_config)
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(registry.blob_uploads(), 2);
    let output = command(
        dir.path(),
        &dir.path().join("pulled"),
        &["pull", "--insecure-registry", &host, &tag],
    )
    .env("DOCKER_CONFIG", &docker_config)
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes `size` bytes of incompressible data to `path`.
fn write_noise(path: &Path, size: usize) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut block = vec![0u8; 1 << 16];
    for _ in 0..size / block.len() {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

#[test]
fn registry_dying_mid_push_leaves_nothing_broken() {
    let Some(mut registry) = TestRegistry::start(None) else {
        return;
    };
    let host = registry.host();
    let tag = format!("{host}/big/app:1");
    let dir = project(
        &format!(
            "[stages.a]\nfrom = \"scratch\"\nsteps = [{{ copy = \"big\", to = \"/big\" }}]\n[images.a]\nstage = \"a\"\ntags = [\"{tag}\"]\n"
        ),
        &[],
    );
    write_noise(&dir.path().join("big"), 192 << 20);
    let store = dir.path().join("store");
    ok(&imgbuild(dir.path(), &store, &["apply"]));

    let mut pushing = command(
        dir.path(),
        &store,
        &["push", "--insecure-registry", &host, &tag],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !registry.upload_in_progress() {
        assert!(
            pushing.try_wait().unwrap().is_none(),
            "the push ended before the registry was killed"
        );
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    registry.kill();
    let failed = pushing.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the registry of {tag}")),
        "{stderr}"
    );
    ok(&imgbuild(dir.path(), &store, &["store", "verify"]));

    // Nothing was tagged: the registry has no manifest for the tag.
    registry.restart();
    let out = imgbuild(
        dir.path(),
        &dir.path().join("fresh"),
        &["pull", "--insecure-registry", &host, &tag],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("manifest of {tag} not found")),
        "{}",
        out.stderr
    );

    // Retrying succeeds, and the image comes back whole.
    let out = imgbuild(
        dir.path(),
        &store,
        &["push", "--insecure-registry", &host, &tag],
    );
    let pushed = ok(&out).stdout.trim().to_owned();
    assert!(
        pushed.starts_with(&format!("{host}/big/app@sha256:")),
        "{pushed}"
    );
    let fresh = dir.path().join("fresh");
    let out = imgbuild(
        dir.path(),
        &fresh,
        &["pull", "--insecure-registry", &host, &tag],
    );
    assert_eq!(ok(&out).stdout.trim(), pushed);
    ok(&imgbuild(dir.path(), &fresh, &["store", "verify"]));
}

/// The TOML blocks of a book page that define an image.
fn book_manifests(page: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("book/src").join(page)).unwrap();
    crate::book::manifests(&text)
}

#[test]
fn book_registry_example_runs() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let host = registry.host();
    let manifests: Vec<String> = book_manifests("registries.md")
        .iter()
        .map(|m| m.replace("localhost:5000", &host))
        .collect();
    let [hello, app] = manifests.as_slice() else {
        panic!("registries.md should show two manifests: {manifests:?}");
    };
    let store = tempfile::tempdir().unwrap();
    let hello_dir = project(hello, &[]);
    let out = imgbuild(
        hello_dir.path(),
        store.path(),
        &["apply", "--push", "--insecure-registry", &host],
    );
    let index = pushed_digest(&out, &format!("{host}/hello"));
    assert!(
        out.stderr.contains(&format!(
            "pushed {host}/hello@{index} (3 blobs uploaded, 1 already there)"
        )),
        "{}",
        out.stderr
    );
    if have("skopeo") {
        assert_eq!(skopeo_raw_digest(&format!("{host}/hello:1")), index);
    }
    // The page's `pull` and `push` commands.
    let pulled = tempfile::tempdir().unwrap();
    let out = imgbuild(
        hello_dir.path(),
        pulled.path(),
        &[
            "pull",
            "--insecure-registry",
            &host,
            "--platform",
            "linux/arm64",
            &format!("{host}/hello:1"),
        ],
    );
    assert_eq!(ok(&out).stdout.trim(), format!("{host}/hello@{index}"));
    let out = imgbuild(
        hello_dir.path(),
        store.path(),
        &[
            "push",
            "--insecure-registry",
            &host,
            &format!("{host}/hello:1"),
            &format!("{host}/hello:stable"),
        ],
    );
    assert_eq!(ok(&out).stdout.trim(), format!("{host}/hello@{index}"));
    assert!(
        out.stderr
            .contains("0 blobs uploaded, 4 already in the registry"),
        "{}",
        out.stderr
    );
    let app_dir = project(app, &[]);
    // A fresh store, so the base really comes from the registry.
    let fresh = tempfile::tempdir().unwrap();
    ok(&imgbuild(
        app_dir.path(),
        fresh.path(),
        &[
            "apply",
            "--insecure-registry",
            &host,
            "--output",
            "type=local,dest=app",
        ],
    ));
    let mut files: Vec<PathBuf> = std::fs::read_dir(app_dir.path().join("app"))
        .unwrap()
        .map(|e| PathBuf::from(e.unwrap().file_name()))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [PathBuf::from("app.txt"), PathBuf::from("hello.txt")]
    );
}

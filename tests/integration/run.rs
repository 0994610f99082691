//! `run` steps: real containers (runc) on overlay snapshots, mounts,
//! scripts and emulated platforms. Base images are made from Debian's
//! busybox-static, which scripts/test installs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::{Output, arm64_busybox, can_run, imgbuild_in, repo, run_tool};

/// Busybox applets the tests use, linked into the fixture's /bin.
const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "cat",
    "ls",
    "id",
    "mkdir",
    "rm",
    "touch",
    "uname",
    "ip",
    "sleep",
    "test",
    "[",
    "true",
    "false",
    "printf",
    "env",
    "wc",
    "grep",
    "head",
    "tail",
    "seq",
    "chmod",
    "stat",
    "mount",
    "hostname",
    "ln",
    "cp",
    "mv",
    "tr",
    "sha256sum",
    "awk",
];

/// Builds (once per test run) a busybox base image for `arch` from `busybox` as an OCI layout.
fn fixture(arch: &str, busybox: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("busybox-{arch}-{}", std::process::id()));
    let layout = dir.join("layout");
    if layout.join("index.json").exists() {
        return layout;
    }
    let context = dir.join("context");
    std::fs::create_dir_all(context.join("bin")).unwrap();
    std::fs::copy(busybox, context.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        let _ = std::os::unix::fs::symlink("busybox", context.join("bin").join(applet));
    }
    std::fs::write(
        context.join("imgbuild.toml"),
        format!(
            r#"[stages.busybox]
from = "scratch"
platform = "linux/{arch}"
env = {{ PATH = "/bin" }}
steps = [
  {{ copy = "bin/", to = "/bin/" }},
  {{ file = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n", to = "/etc/passwd" }},
  {{ file = "root:x:0:\napp:x:1000:\nextra:x:2000:app\n", to = "/etc/group" }},
]
[images.busybox]
stage = "busybox"
tags = ["busybox:latest"]
"#
        ),
    )
    .unwrap();
    let out = imgbuild_in(
        &context,
        &[
            "--store",
            dir.join("store").to_str().unwrap(),
            "apply",
            "--output",
            &format!("type=oci-layout,dest={}", layout.display()),
        ],
    );
    assert_eq!(out.code, 0, "fixture build failed: {}", out.stderr);
    layout
}

/// The amd64 busybox base image, built once per test run.
pub fn busybox() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| fixture("amd64", Path::new("/bin/busybox")))
}

/// A project on the busybox base with its own store.
struct Project {
    dir: tempfile::TempDir,
    store: tempfile::TempDir,
}

impl Project {
    fn new(steps: &str) -> Self {
        Self::with_stages(&format!(
            "[stages.a]\nfrom = \"oci-layout:{}\"\nsteps = [\n{steps}\n]\n[images.a]\nstage = \"a\"\ntags = [\"localhost/a:1\"]\n",
            busybox().display()
        ))
    }

    fn with_stages(manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("imgbuild.toml"), manifest).unwrap();
        Self {
            dir,
            store: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self) -> PathBuf {
        // Outside the project, so the store is not part of the build context.
        self.store.path().to_owned()
    }

    fn apply(&self, args: &[&str]) -> Output {
        let store = self.store();
        let mut all = vec!["--store", store.to_str().unwrap(), "apply"];
        all.extend_from_slice(args);
        imgbuild_in(self.path(), &all)
    }

    /// Applies (must succeed) and returns the image's filesystem.
    fn rootfs(&self, args: &[&str]) -> PathBuf {
        let _ = std::fs::remove_dir_all(self.path().join("rootfs"));
        let mut all = vec![
            "--output",
            "type=local,dest=rootfs",
            "--output",
            "type=oci-layout,dest=layout",
        ];
        all.extend_from_slice(args);
        let out = self.apply(&all);
        assert_eq!(out.code, 0, "apply failed:\n{}", out.stderr);
        self.path().join("rootfs")
    }
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The entry names of the image's last layer, lossily for readable asserts.
fn last_layer_names(layout: &Path) -> Vec<String> {
    last_layer_name_bytes(layout)
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

/// The entry names of the image's last layer, exactly.
fn last_layer_name_bytes(layout: &Path) -> Vec<Vec<u8>> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let file =
        std::fs::File::open(blob(layers.last().unwrap()["digest"].as_str().unwrap())).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect()
}

#[test]
fn run_writes_deletes_and_replaces_files() {
    if !can_run() {
        return;
    }
    let project = Project::new(
        r#"  { file = "keep", to = "/data/keep" },
  { file = "gone", to = "/data/gone" },
  { file = "old", to = "/data/dir/old" },
  { run = "rm /data/gone && echo replaced > /data/keep && echo new > /data/new && rm -rf /data/dir && mkdir /data/dir && echo fresh > /data/dir/fresh" },"#,
    );
    let root = project.rootfs(&[]);
    assert!(!root.join("data/gone").exists());
    assert_eq!(read(&root, "data/keep"), "replaced\n");
    assert_eq!(read(&root, "data/new"), "new\n");
    assert_eq!(read(&root, "data/dir/fresh"), "fresh\n");
    assert!(!root.join("data/dir/old").exists());
    // The image with whiteouts and an opaque directory still satisfies tools no one here wrote.
    let layout = project.path().join("layout");
    let layout_ref = format!("{}:1", layout.display());
    run_tool(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            "name=1",
            layout.to_str().unwrap(),
        ],
    );
    run_tool("skopeo", &["inspect", &format!("oci:{layout_ref}")]);
    let bundle = project.path().join("umoci-bundle");
    run_tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &layout_ref,
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(read(&bundle.join("rootfs"), "data/keep"), "replaced\n");
    assert!(!bundle.join("rootfs/data/gone").exists());
    assert!(!bundle.join("rootfs/data/dir/old").exists());
    let names = last_layer_names(&project.path().join("layout"));
    assert!(names.contains(&"data/.wh.gone".to_owned()), "{names:?}");
    assert!(
        names.contains(&"data/dir/.wh..wh..opq".to_owned()),
        "{names:?}"
    );
    // Mount points the runtime made do not land in the layer.
    for stub in ["etc/resolv.conf", "etc/hosts", "proc", "dev", "sys"] {
        assert!(
            !names.iter().any(|n| n.trim_end_matches('/') == stub),
            "{stub} in {names:?}"
        );
    }
}

/// A RUN step that makes names that are not UTF-8 gets a layer with those
/// names, byte for byte, as with `BuildKit`.
#[test]
fn run_keeps_names_that_are_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    if !can_run() {
        return;
    }
    let project = Project::new(
        r#"  { run = '''mkdir /out && cd /out && touch "$(printf 'f-\377')" && echo fe > "$(printf 'f-\376')" && ln -s "$(printf 'f-\377')" link''' },"#,
    );
    let root = project.rootfs(&[]);
    let check = |root: &Path| {
        let at = |name: &[u8]| root.join("out").join(OsStr::from_bytes(name));
        assert_eq!(std::fs::read(at(b"f-\xff")).unwrap(), b"");
        assert_eq!(std::fs::read(at(b"f-\xfe")).unwrap(), b"fe\n");
        let link = std::fs::read_link(at(b"link")).unwrap();
        assert_eq!(link.as_os_str().as_bytes(), b"f-\xff");
    };
    check(&root);
    let names = last_layer_name_bytes(&project.path().join("layout"));
    for name in [&b"out/f-\xff"[..], b"out/f-\xfe", b"out/link"] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
    let bundle = project.path().join("umoci-bundle");
    run_tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:1", project.path().join("layout").display()),
            bundle.to_str().unwrap(),
        ],
    );
    check(&bundle.join("rootfs"));
}

#[test]
fn process_has_env_user_workdir_and_devices() {
    if !can_run() {
        return;
    }
    let project = Project::with_stages(&format!(
        r#"[args]
GREETING = "hello"
[stages.a]
from = "oci-layout:{}"
env = {{ FROM_ENV = "env-value" }}
workdir = "/work/dir"
steps = [
  {{ run = "echo \"$GREETING $FROM_ENV $(pwd)\" > /out.txt && ls /dev/null /dev/zero /dev/urandom /dev/pts /dev/shm /dev/fd/1 > /dev/null && hostname > /hostname && ! touch /sys/x 2>/dev/null && echo ok > /sys-ro" }},
  {{ run = "mkdir -m 1777 /tmp" }},
  {{ user = "app" }},
  {{ run = "id -u > /tmp/uid; id -G > /tmp/groups" }},
]
[images.a]
stage = "a"
"#,
        busybox().display()
    ));
    let root = project.rootfs(&[]);
    assert_eq!(read(&root, "out.txt"), "hello env-value /work/dir\n");
    assert_eq!(read(&root, "sys-ro"), "ok\n");
    assert_eq!(read(&root, "tmp/uid"), "1000\n");
    assert_eq!(read(&root, "tmp/groups"), "1000 2000\n");
}

#[test]
fn scripts_run_by_shell_or_their_interpreter() {
    if !can_run() {
        return;
    }
    let project = Project::new(
        r#"  { run = '''
for i in $(seq 1 3); do
  echo "line $i" >> /loop.txt
done
''' },
  { run = '''#!/bin/busybox sh
echo "from $0" > /shebang.txt
''' },"#,
    );
    let root = project.rootfs(&[]);
    assert_eq!(read(&root, "loop.txt"), "line 1\nline 2\nline 3\n");
    assert!(
        read(&root, "shebang.txt").starts_with("from /"),
        "{}",
        read(&root, "shebang.txt")
    );
}

#[test]
fn failing_step_reports_exit_code_and_output() {
    if !can_run() {
        return;
    }
    let project = Project::new(r#"  { run = "echo first line; echo 'the error' >&2; exit 3" },"#);
    let out = project.apply(&[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("exited with code 3"), "{}", out.stderr);
    assert!(out.stderr.contains("the error"), "{}", out.stderr);
}

/// A step's stdout and stderr reach the log in the order it wrote them,
/// as with `BuildKit`: one stream, not two raced against each other.
#[test]
fn output_keeps_the_order_of_stdout_and_stderr() {
    if !can_run() {
        return;
    }
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo out$i; echo err$i >&2; done; exit 3";
    let project = Project::new(&format!("  {{ run = \"{script}\" }},"));
    let out = project.apply(&["--progress", "plain"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let written: Vec<String> = (1..=10)
        .flat_map(|i| [format!("out{i}"), format!("err{i}")])
        .collect();
    // The plain progress, then the failure's last lines: each in order.
    let is_written = |l: &&str| written.iter().any(|w| w == l);
    let progress: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next())
        .filter(is_written)
        .collect();
    assert_eq!(progress, written, "{}", out.stderr);
    let tail: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::trim)
        .filter(is_written)
        .collect();
    assert_eq!(tail, written, "{}", out.stderr);
}

#[test]
fn network_none_has_only_loopback() {
    if !can_run() {
        return;
    }
    let project = Project::new(
        r#"  { run = "ip -o link > /none.txt", network = "none" },
  { run = "ip -o link > /host.txt" },"#,
    );
    let root = project.rootfs(&[]);
    let none = read(&root, "none.txt");
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:") && none.contains("UP"), "{none}");
    assert!(read(&root, "host.txt").lines().count() >= 1);
}

#[test]
fn cache_bind_and_tmpfs_mounts() {
    if !can_run() {
        return;
    }
    let project = Project::new(
        r#"  { run = "echo run >> /cache/count && wc -l < /cache/count > /count.txt", mounts = [{ type = "cache", target = "/cache", id = "counter", sharing = "locked" }] },
  { run = "cat /src/input.txt > /bound.txt && echo scribble > /src/new.txt", mounts = [{ type = "bind", target = "/src", rw = true }] },
  { run = "mount | grep ' /scratch ' > /tmpfs.txt && echo x > /scratch/file", mounts = [{ type = "tmpfs", target = "/scratch", size = "8m" }] },"#,
    );
    std::fs::write(project.path().join("input.txt"), "from context\n").unwrap();
    let root = project.rootfs(&[]);
    assert_eq!(read(&root, "count.txt").trim(), "1");
    assert_eq!(read(&root, "bound.txt"), "from context\n");
    assert!(
        !project.path().join("new.txt").exists(),
        "rw bind writes are discarded"
    );
    assert!(
        read(&root, "tmpfs.txt").contains("tmpfs"),
        "{}",
        read(&root, "tmpfs.txt")
    );
    assert!(
        read(&root, "tmpfs.txt").contains("size=8192k"),
        "{}",
        read(&root, "tmpfs.txt")
    );
    for path in ["cache", "src", "scratch"] {
        let leftover = root.join(path);
        assert!(
            !leftover.exists() || std::fs::read_dir(&leftover).unwrap().next().is_none(),
            "{path} reached the layer"
        );
    }
    // The cache mount persists across builds (this one ignores the build cache).
    let root = project.rootfs(&["--no-cache"]);
    assert_eq!(read(&root, "count.txt").trim(), "2");
}

#[test]
fn secrets_reach_the_step_and_nothing_else() {
    if !can_run() {
        return;
    }
    let value = "s3cr3t-VALUE-8f2a91";
    let project = Project::new(
        r#"  { run = "sha256sum < /run/secrets/token > /file.sum && printf %s \"$TOKEN\" | sha256sum > /env.sum", mounts = [
      { type = "secret", id = "token", required = true },
      { type = "secret", id = "token", env = "TOKEN" },
  ] },"#,
    );
    std::fs::write(project.path().join("token.txt"), value).unwrap();
    let root = project.rootfs(&[
        "--secret",
        "id=token,src=token.txt",
        "--output",
        "type=docker,dest=image.tar",
    ]);
    let expected = imgbuild::store::Digest::of(value.as_bytes())
        .hex()
        .to_owned();
    assert!(
        read(&root, "file.sum").starts_with(&expected),
        "{}",
        read(&root, "file.sum")
    );
    assert!(
        read(&root, "env.sum").starts_with(&expected),
        "{}",
        read(&root, "env.sum")
    );
    assert!(
        !root.join("run/secrets").exists(),
        "the secret mount point reached the layer"
    );
    // Search every file the build wrote, decompressing layers.
    let mut searched = 0;
    let store = project.store();
    for entry in walkdir::WalkDir::new(project.path())
        .into_iter()
        .chain(walkdir::WalkDir::new(&store))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
    {
        if entry.file_name() == "token.txt" {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let mut plain = Vec::new();
        let _ =
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain);
        for haystack in [&bytes, &plain] {
            assert!(
                !haystack.windows(value.len()).any(|w| w == value.as_bytes()),
                "the secret is in {}",
                entry.path().display()
            );
        }
        searched += 1;
    }
    assert!(searched > 5, "searched {searched} files");

    let missing = Project::new(
        r#"  { run = "true", mounts = [{ type = "secret", id = "absent", required = true }] },"#,
    )
    .apply(&[]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("secret absent: not found"),
        "{}",
        missing.stderr
    );
}

#[test]
fn ssh_agent_socket_is_forwarded() {
    if !can_run() {
        return;
    }
    // The step's socket has the mount's mode and owner (BuildKit's
    // defaults: 0600, root), whatever the agent's own socket has.
    let project = Project::new(
        r#"  { run = "test -S \"$SSH_AUTH_SOCK\" && stat -c '%u:%g %a' \"$SSH_AUTH_SOCK\" > /ssh.txt", mounts = [{ type = "ssh", required = true }] },
  { run = "stat -c '%u:%g %a' /run/agent > /ssh-owned.txt", mounts = [{ type = "ssh", target = "/run/agent", uid = 1000, gid = 1001, mode = 0o660 }] },"#,
    );
    let socket = project.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let root = project.rootfs(&["--ssh", &format!("default={}", socket.display())]);
    assert_eq!(read(&root, "ssh.txt"), "0:0 600\n");
    assert_eq!(read(&root, "ssh-owned.txt"), "1000:1001 660\n");
}

#[test]
fn arm64_stage_runs_under_emulation() {
    if !can_run() {
        return;
    }
    let Some(busybox) = arm64_busybox() else {
        return;
    };
    let layout = fixture("arm64", &busybox);
    let project = Project::with_stages(&format!(
        "[stages.a]\nfrom = \"oci-layout:{}\"\nplatform = \"linux/arm64\"\nsteps = [{{ run = \"uname -m > /arch\" }}]\n[images.a]\nstage = \"a\"\nplatforms = [\"linux/arm64\"]\n",
        layout.display()
    ));
    let root = project.rootfs(&[]);
    assert_eq!(read(&root, "arch"), "aarch64\n");
}

#[test]
fn multistage_example_builds_and_runs() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("examples/multistage");
    for entry in walkdir::WalkDir::new(&example)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
    {
        let to = dir
            .path()
            .join(entry.path().strip_prefix(&example).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(entry.path(), &to).unwrap();
    }
    // The example starts from a busybox layout next to it, as its README says to make one.
    let status = Command::new("cp")
        .args([
            "-a",
            busybox().to_str().unwrap(),
            dir.path().join("busybox").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let bundle = dir.path().join("bundle");
    let out = imgbuild_in(
        dir.path(),
        &[
            "--store",
            dir.path().join("store").to_str().unwrap(),
            "apply",
            "--output",
            &format!("type=local,dest={}", bundle.join("rootfs").display()),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Run the image's command with runc, as a container runtime would.
    let config = imgbuild_in(
        dir.path(),
        &[
            "--store",
            dir.path().join("store").to_str().unwrap(),
            "apply",
            "--output",
            "type=oci-layout,dest=layout",
        ],
    );
    assert_eq!(config.code, 0, "{}", config.stderr);
    let image_config: serde_json::Value = serde_json::from_str(&run_tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}", dir.path().join("layout").display()),
        ],
    ))
    .unwrap();
    let mut argv: Vec<String> = image_config["config"]["Entrypoint"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    argv.extend(
        image_config["config"]["Cmd"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    run_tool("runc", &["spec", "--bundle", bundle.to_str().unwrap()]);
    let spec_path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(argv);
    spec["root"]["readonly"] = false.into();
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let id = format!("imgbuild-test-{}", std::process::id());
    let run = Command::new("runc")
        .args(["run", "--bundle", bundle.to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("runc")
        .args(["delete", "--force", &id])
        .output();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        stdout,
        "Hello from a multi-stage build, compiled for amd64\n"
    );
}

#[test]
fn doctor_reports_what_runs_need() {
    if !can_run() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let out = imgbuild_in(
        &repo(),
        &["--store", store.path().to_str().unwrap(), "doctor"],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("runtime    ok    runc"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("overlayfs  ok"), "{}", out.stdout);
    let missing = imgbuild_in(
        &repo(),
        &[
            "--store",
            store.path().to_str().unwrap(),
            "doctor",
            "--runtime",
            "no-such-runtime",
        ],
    );
    assert_eq!(missing.code, 1, "{}", missing.stdout);
    assert!(
        missing.stdout.contains("runtime    FAIL") && missing.stdout.contains("install runc"),
        "{}",
        missing.stdout
    );
}

#[test]
fn identical_layers_stack() {
    if !can_run() {
        return;
    }
    // Two steps that change nothing make the same (empty) layer twice.
    let project = Project::new(
        r#"  { run = "true" },
  { run = "true" },
  { run = "echo after > /after.txt" },"#,
    );
    let root = project.rootfs(&[]);
    assert_eq!(read(&root, "after.txt"), "after\n");
}

#[test]
fn bind_sources_cannot_leave_the_context() {
    if !can_run() {
        return;
    }
    let project = Project::new(
        r#"  { run = "cat /mnt/passwd > /leaked.txt", mounts = [{ type = "bind", target = "/mnt", source = "escape" }] },"#,
    );
    std::os::unix::fs::symlink("/etc", project.path().join("escape")).unwrap();
    let out = project.apply(&[]);
    assert_eq!(
        out.code, 1,
        "a symlink to the host's /etc must not be bound:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("bind mount source `escape` does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn killed_run_leaves_no_mount_behind() {
    if !can_run() {
        return;
    }
    let project = Project::new(r#"  { run = "sleep 3" },"#);
    let store = project.store();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgbuild"))
        .args(["--store", store.to_str().unwrap(), "apply"])
        .current_dir(project.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tmp = store.join("tmp").display().to_string();
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(&tmp))
    };
    // The runtime's command line names the step's bundle in the build's
    // private directory; without the watchdog, the process it starts
    // outlives the build until its command ends.
    let bundles = format!(
        "{}/p{}-",
        imgbuild::exec::private::root().display(),
        child.id()
    );
    let runtime_alive = || !crate::util::processes_with(&bundles).is_empty();
    // Wait for the step itself: short-lived read-only views are mounted
    // under tmp/ before it, and killing the build between them and the
    // step's root would leave nothing to clean up.
    let started = std::time::Instant::now();
    while !(runtime_alive() && mounted()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Its watchdog would clean up at once (see `secrets.rs`); without it,
    // the next command has to.
    let reaper = crate::util::reaper_of(child.id()).expect("the build's cleanup watchdog");
    Command::new("kill")
        .args(["-KILL", &reaper.to_string()])
        .status()
        .unwrap();
    crate::util::wait_until(
        "the watchdog to die",
        std::time::Duration::from_secs(10),
        || crate::util::reaper_of(child.id()).is_none(),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(mounted(), "the killed build left its overlay mounted");
    let private = format!("p{}-", child.id());
    let private_left = || {
        std::fs::read_dir(imgbuild::exec::private::root())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&private))
    };
    assert!(
        private_left(),
        "the killed build left its private directory"
    );
    let started = std::time::Instant::now();
    while runtime_alive() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the runtime never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let verify = imgbuild_in(
        project.path(),
        &["--store", store.to_str().unwrap(), "store", "verify"],
    );
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(
        !mounted(),
        "opening the store unmounted the dead build's overlay"
    );
    assert!(
        !private_left(),
        "the next command did not sweep the dead build's private directory"
    );
}

/// Two independent stages meet in a shared cache: each waits for the other
/// to start, which only succeeds when they run at the same time.
#[test]
fn independent_stages_run_concurrently() {
    if !can_run() {
        return;
    }
    let stage = |me: &str, other: &str| {
        format!(
            r#"[stages.{me}]
from = "oci-layout:{}"
steps = [{{ run = "touch /sync/{me}; i=0; while [ ! -e /sync/{other} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e /sync/{other}", mounts = [{{ type = "cache", id = "rendezvous", target = "/sync" }}] }}]
[images.{me}]
stage = "{me}"
"#,
            busybox().display()
        )
    };
    let project = Project::with_stages(&format!("{}{}", stage("a", "b"), stage("b", "a")));
    let out = project.apply(&["--jobs", "2"]);
    assert_eq!(out.code, 0, "the stages did not overlap:\n{}", out.stderr);
}

/// A stage starts when the stages it needs are built, not when every stage
/// of an earlier wave is: `late` (after `quick`) runs while `slow`, which
/// waits for it, is still running.
#[test]
fn a_stage_starts_when_its_own_dependencies_are_built() {
    if !can_run() {
        return;
    }
    let busybox = busybox().display().to_string();
    let manifest = format!(
        r#"[stages.slow]
from = "oci-layout:{busybox}"
steps = [{{ run = "i=0; while [ ! -e /sync/late ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e /sync/late", mounts = [{{ type = "cache", id = "dataflow", target = "/sync" }}] }}]
[stages.quick]
from = "oci-layout:{busybox}"
steps = [{{ file = "quick\n", to = "/quick" }}]
[stages.late]
from = "quick"
steps = [{{ run = "touch /sync/late", mounts = [{{ type = "cache", id = "dataflow", target = "/sync" }}] }}]
[images.slow]
stage = "slow"
[images.late]
stage = "late"
"#
    );
    let project = Project::with_stages(&manifest);
    let out = project.apply(&["--jobs", "2"]);
    assert_eq!(
        out.code, 0,
        "`late` did not run while `slow` waited for it:\n{}",
        out.stderr
    );
}

/// A step waits for the stage it reads, not its whole stage: the final
/// stage's first step runs while `slow`, which the second step copies
/// from, is still running (and `slow` waits for that first step).
#[test]
fn a_step_waits_only_for_the_stage_it_reads() {
    if !can_run() {
        return;
    }
    let busybox = busybox().display().to_string();
    let manifest = format!(
        r#"[stages.slow]
from = "oci-layout:{busybox}"
steps = [{{ run = "i=0; while [ ! -e /sync/first ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e /sync/first && echo slow > /slow", mounts = [{{ type = "cache", id = "steps", target = "/sync" }}] }}]
[stages.final]
from = "oci-layout:{busybox}"
steps = [
  {{ run = "touch /sync/first", mounts = [{{ type = "cache", id = "steps", target = "/sync" }}] }},
  {{ copy = "/slow", from = "slow", to = "/slow" }},
]
[images.final]
stage = "final"
"#
    );
    let project = Project::with_stages(&manifest);
    let out = project.apply(&["--jobs", "2"]);
    assert_eq!(
        out.code, 0,
        "the final stage's first step did not run while `slow` ran:\n{}",
        out.stderr
    );
}

/// Two stages fail at once: both are reported, and no stage that needs one
/// of them starts.
#[test]
fn failures_of_concurrent_stages_are_all_reported() {
    if !can_run() {
        return;
    }
    let busybox = busybox().display().to_string();
    let stage = |name: &str, code: u8| {
        format!(
            r#"[stages.{name}]
from = "oci-layout:{busybox}"
steps = [{{ run = "touch /sync/{name}; i=0; while [ ! -e /sync/a ] || [ ! -e /sync/b ]; do [ $i -lt 300 ] || break; sleep 0.1; i=$((i+1)); done; exit {code}", mounts = [{{ type = "cache", id = "failures", target = "/sync" }}] }}]
"#
        )
    };
    let manifest = format!(
        "{}{}[stages.after]\nfrom = \"a\"\nsteps = [{{ run = \"true\" }}]\n[images.after]\nstage = \"after\"\n[images.b]\nstage = \"b\"\n",
        stage("a", 3),
        stage("b", 4)
    );
    let project = Project::with_stages(&manifest);
    let out = project.apply(&["--jobs", "2", "--progress", "plain"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("2 stages failed"), "{}", out.stderr);
    for code in ["exited with code 3", "exited with code 4"] {
        assert!(out.stderr.contains(code), "{code}:\n{}", out.stderr);
    }
    assert!(
        !out.stderr.contains("after@"),
        "a stage after a failed one started:\n{}",
        out.stderr
    );
}

/// Concurrent stages each keep their own secret file until they finish, and
/// a read-only bind of the context works when the context path is relative.
#[test]
fn concurrent_stages_keep_their_secrets_and_binds() {
    if !can_run() {
        return;
    }
    let stage = |me: &str, other: &str| {
        format!(
            r#"[stages.{me}]
from = "oci-layout:{}"
steps = [{{ run = "touch /sync/{me}; i=0; while [ ! -e /sync/{other} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; sleep 0.5; cat /run/secrets/token /data/input.txt > /out.txt", mounts = [
  {{ type = "cache", id = "rendezvous-secrets", target = "/sync" }},
  {{ type = "secret", id = "token" }},
  {{ type = "bind", source = "data", target = "/data" }},
] }}]
[images.{me}]
stage = "{me}"
"#,
            busybox().display()
        )
    };
    let project = Project::with_stages(&format!("{}{}", stage("a", "b"), stage("b", "a")));
    std::fs::create_dir(project.path().join("data")).unwrap();
    std::fs::write(project.path().join("data/input.txt"), "input\n").unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("token");
    std::fs::write(&token, "token\n").unwrap();
    let out = project.apply(&[
        "--jobs",
        "2",
        "--secret",
        &format!("id=token,src={}", token.display()),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

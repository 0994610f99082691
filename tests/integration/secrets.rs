//! Secrets on the host: private while a step runs (0700 directories, 0600
//! files, in memory) and gone afterwards on every exit path: success, a
//! failing step, `kill -9`, Ctrl-C. "Gone" is checked the hard way: no file
//! in the store, /dev/shm, /tmp or /run contains either value.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::run::busybox;
use crate::util::{can_run, imgbuild, processes_with, reaper_of, wait_until};

/// The environment variable of imgbuild that the env secret comes from.
const ENV_VAR: &str = "IMGBUILD_TEST_ENV_SECRET";
/// Long enough for a loaded machine to start a step.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A value no file on the machine contains yet.
fn unique(kind: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed = format!(
        "{kind}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let hex = imgbuild::store::Digest::of(seed.as_bytes())
        .hex()
        .to_owned();
    format!("{kind}{}", &hex[..32])
}

/// A build of one `run` step that gets a file secret and an env secret.
struct SecretBuild {
    /// Project and secret source file: under target/ (outside the searched
    /// directories unless the repository is under /tmp).
    dir: tempfile::TempDir,
    store: tempfile::TempDir,
    file_value: String,
    env_value: String,
    /// In the step's command line, to find its processes.
    marker: String,
}

impl SecretBuild {
    /// `script` runs after the step has checked that it got both secrets.
    fn new(script: &str) -> Self {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let marker = unique("marker");
        let file_value = unique("filesecret");
        let env_value = unique("envsecret");
        std::fs::write(dir.path().join("token"), &file_value).unwrap();
        let manifest = format!(
            r#"[stages.a]
from = "oci-layout:{}"
steps = [
  {{ run = ": {marker}; test -s /run/secrets/filetok && test -n \"$TOKEN\" && {script}", mounts = [
    {{ type = "secret", id = "filetok", required = true }},
    {{ type = "secret", id = "envtok", env = "TOKEN", required = true }},
    {{ type = "cache", id = "gate", target = "/gate" }},
  ] }},
]
[images.a]
stage = "a"
"#,
            busybox().display()
        );
        std::fs::write(dir.path().join("imgbuild.toml"), manifest).unwrap();
        Self {
            dir,
            store: tempfile::tempdir().unwrap(),
            file_value,
            env_value,
            marker,
        }
    }

    /// Starts `imgbuild apply` in a process group of its own.
    fn spawn(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_imgbuild"))
            .args(["--store", self.store.path().to_str().unwrap(), "apply"])
            .args(["--progress", "plain", "--secret"])
            .arg(format!(
                "id=filetok,src={}",
                self.dir.path().join("token").display()
            ))
            .args(["--secret", &format!("id=envtok,env={ENV_VAR}")])
            .env(ENV_VAR, &self.env_value)
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Processes of the step (its command line has the marker).
    fn step_processes(&self) -> Vec<u32> {
        processes_with(&self.marker)
    }

    /// Waits until the step's command runs.
    fn wait_for_step(&self, child: &mut Child) {
        let started = Instant::now();
        while self.step_processes().is_empty() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
                panic!("the build ended ({status}) before its step ran:\n{stderr}");
            }
            assert!(started.elapsed() < START_TIMEOUT, "the step never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets a step waiting at the gate go on.
    fn open_gate(&self) {
        let caches = self.store.path().join("cache");
        let gate = std::fs::read_dir(&caches)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("gate-"))
            })
            .expect("the gate cache exists");
        std::fs::write(gate.join("go"), b"").unwrap();
    }

    /// Files under the store, /dev/shm, /tmp and /run that contain either value.
    fn copies(&self) -> Vec<String> {
        let out = Command::new("grep")
            .args(["-r", "-l", "-s", "-F", "-D", "skip", "--binary-files=text"])
            .args(["-e", &self.file_value, "-e", &self.env_value])
            .arg(self.store.path())
            .args(["/dev/shm", "/tmp", "/run"])
            .output()
            .unwrap();
        // 0: found, 1: not found, 2: some file vanished or was unreadable.
        assert!(out.status.code().is_some(), "grep was killed");
        // The secret's own source file is not a copy (it lies under /tmp
        // when the repository does).
        let source = self.dir.path().display().to_string();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| !line.starts_with(&source))
            .map(str::to_owned)
            .collect()
    }

    /// Mounts at or below the store.
    fn mounts(&self) -> Vec<String> {
        let store = self.store.path().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&store))
            .map(str::to_owned)
            .collect()
    }
}

/// Entries of the imgbuild process `pid` in the private directories' root.
fn private_entries(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("p{pid}-");
    std::fs::read_dir(imgbuild::exec::private::root())
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Kills the build in a step with `kill`, then checks, 1 s later, that no
/// copy of a secret, no process of the step and no mount is left.
fn killed_build_leaves_nothing(kill: impl FnOnce(&mut Child)) {
    let build = SecretBuild::new("i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done");
    let mut child = build.spawn();
    build.wait_for_step(&mut child);
    let pid = child.id();
    assert!(reaper_of(pid).is_some(), "no cleanup watchdog runs");
    assert!(
        !private_entries(pid).is_empty(),
        "the step has no private directory"
    );
    kill(&mut child);
    let killed = Instant::now();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1).saturating_sub(killed.elapsed()));
    let copies = build.copies();
    assert!(copies.is_empty(), "secrets left on disk: {copies:?}");
    assert_eq!(
        build.step_processes(),
        Vec::<u32>::new(),
        "step processes alive"
    );
    assert_eq!(build.mounts(), Vec::<String>::new(), "mounts left");
    assert_eq!(
        private_entries(pid),
        Vec::<PathBuf>::new(),
        "private entries left"
    );
    // The watchdog exits once it is done.
    wait_until("the watchdog to exit", Duration::from_secs(10), || {
        reaper_of(pid).is_none()
    });
}

#[test]
fn kill_9_in_a_step_leaves_no_secret_process_or_mount() {
    if !can_run() {
        return;
    }
    killed_build_leaves_nothing(|child| child.kill().unwrap());
}

/// Ctrl-C: `SIGINT` to the whole process group, as a terminal sends it.
#[test]
fn ctrl_c_in_a_step_leaves_no_secret_process_or_mount() {
    if !can_run() {
        return;
    }
    killed_build_leaves_nothing(|child| {
        let group = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        rustix::process::kill_process_group(group, rustix::process::Signal::INT).unwrap();
    });
}

#[test]
fn secrets_are_private_while_a_step_runs_and_gone_after_it() {
    if !can_run() {
        return;
    }
    let build = SecretBuild::new(
        "i=0; while [ ! -e /gate/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; test -e /gate/go",
    );
    let mut child = build.spawn();
    build.wait_for_step(&mut child);
    let pid = child.id();

    let root = imgbuild::exec::private::root();
    assert_eq!(mode(&root), 0o700, "{}", root.display());
    let steps: Vec<PathBuf> = private_entries(pid)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "step"))
        .collect();
    assert_eq!(steps.len(), 1, "{steps:?}");
    let step = &steps[0];
    assert_eq!(mode(step), 0o700);
    let bundle = step.join("bundle");
    assert_eq!(mode(&bundle), 0o700);
    assert_eq!(mode(&bundle.join("config.json")), 0o600);
    assert_eq!(mode(&bundle.join("state")), 0o700);
    let config = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(
        config.contains(&build.env_value),
        "the env secret is expected in the private bundle only"
    );
    let secret = std::fs::read_dir(step)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("secret-"))
        })
        .expect("the secret file");
    // The step's `mode` (default 0400), never more than 0600.
    assert_eq!(mode(&secret), 0o400);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), build.file_value);
    // Nothing of either value on disk in the store, even while the step runs.
    let store = build.store.path().display().to_string();
    let copies: Vec<String> = build
        .copies()
        .into_iter()
        .filter(|c| c.starts_with(&store))
        .collect();
    assert!(copies.is_empty(), "secrets in the store: {copies:?}");

    // Another command's startup sweep spares a live build's files.
    let other = imgbuild(&["schema"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert!(secret.exists(), "a sweep removed a live build's secret");

    build.open_gate();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        private_entries(pid),
        Vec::<PathBuf>::new(),
        "private entries left"
    );
    let copies = build.copies();
    assert!(copies.is_empty(), "secrets left on disk: {copies:?}");
    assert_eq!(build.mounts(), Vec::<String>::new(), "mounts left");
}

#[test]
fn failing_step_leaves_no_secret() {
    if !can_run() {
        return;
    }
    let build = SecretBuild::new("exit 3");
    let child = build.spawn();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exited with code 3"), "{stderr}");
    assert_eq!(
        private_entries(pid),
        Vec::<PathBuf>::new(),
        "private entries left"
    );
    let copies = build.copies();
    assert!(copies.is_empty(), "secrets left on disk: {copies:?}");
    assert_eq!(build.mounts(), Vec::<String>::new(), "mounts left");
}

/// Leftovers of a build killed together with its watchdog: any command removes them.
#[test]
fn any_command_sweeps_secrets_of_dead_builds() {
    let root = imgbuild::exec::private::root();
    if !root.exists() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&root)
            .unwrap();
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // No process holds this owner's lock: it is dead.
    let owner = format!("p{}-{nanos}-0", u32::MAX - 1);
    std::fs::write(root.join(format!("{owner}.lock")), b"").unwrap();
    let step = root.join(format!("{owner}.0.step"));
    std::fs::create_dir(&step).unwrap();
    std::fs::write(step.join("secret-0"), b"x").unwrap();
    let out = imgbuild(&["schema"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!step.exists(), "the dead build's secrets were not swept");
    assert!(!root.join(format!("{owner}.lock")).exists());
}

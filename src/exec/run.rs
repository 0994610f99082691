//! Spawning the runtime for one container and streaming its output.

use std::collections::VecDeque;
use std::fs;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use super::bundle::write_bundle;
use super::{ExecError, RunOutcome, RunSpec};

/// Lines kept in [`RunOutcome::log_tail`].
const TAIL_LINES: usize = 20;
/// Longer lines are delivered in pieces of this many bytes.
const MAX_LINE: usize = 64 * 1024;
/// Runtime state directory, inside the bundle.
const STATE_DIR: &str = "state";
/// The runtime's own log (JSON lines), inside the bundle.
const RUNTIME_LOG: &str = "runtime.log";

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A container id unique within this host's live processes.
fn container_id() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("imgbuild-{}-{n}", std::process::id())
}

/// Runs `spec` with the runtime `binary`; see [`super::Executor::run`].
pub(crate) fn run_container(
    binary: &Path,
    spec: &RunSpec,
    output: &mut dyn FnMut(&str),
) -> Result<RunOutcome, ExecError> {
    let (bundle, state, log) = prepare_bundle(spec)?;
    let id = container_id();
    // One pipe for both: the process's stdout and stderr are one stream, in
    // the order it wrote them. A runtime in the foreground copies each of
    // them through a pipe of its own, concurrently, which reorders them; a
    // detached one hands its own stdio to the process. Created
    // close-on-exec, so no other container inherits the write end.
    let (reader, writer) = std::io::pipe().map_err(|source| ExecError::Spawn {
        binary: binary.to_owned(),
        source,
    })?;
    let writer_err = writer.try_clone().map_err(|source| ExecError::Spawn {
        binary: binary.to_owned(),
        source,
    })?;
    tracing::debug!(runtime = %binary.display(), bundle = %bundle.display(), %id, "starting container");
    // Registered before it exists: if this process is killed, the reaper
    // kills the runtime and deletes the container.
    let watch = super::reaper::watch_container(binary, &state, &id)?;
    let pid_file = bundle.join(PID_FILE);
    become_subreaper();

    let mut child = Command::new(binary)
        .arg("--root")
        .arg(&state)
        .arg("--log")
        .arg(&log)
        .arg("--log-format")
        .arg("json")
        .arg("run")
        .arg("--detach")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("--bundle")
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_err)
        .spawn()
        .map_err(|source| ExecError::Spawn {
            binary: binary.to_owned(),
            source,
        })?;
    watch.runtime_pid(child.id());
    // The runtime exits once the process runs, which is then this
    // process's child (see `become_subreaper`).
    let started = child.wait().map_err(|source| ExecError::Spawn {
        binary: binary.to_owned(),
        source,
    })?;
    let process = started
        .success()
        .then(|| fs::read_to_string(&pid_file).ok())
        .flatten()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);

    let tail = read_output(reader, output);
    let waited = match process {
        Some(pid) => wait_process(pid),
        None if started.success() => Err(ExecError::Runtime {
            message: format!(
                "{} wrote no process id to {}",
                binary.display(),
                pid_file.display()
            ),
        }),
        None => Ok(exit_code(started)),
    };

    delete_leftover(binary, &state, &id);
    drop(watch);
    let exit_code = waited?;

    if exit_code != 0 {
        let errors = runtime_errors(&log);
        if !errors.is_empty() {
            return Err(ExecError::Runtime {
                message: errors.join("\n"),
            });
        }
    }
    tracing::debug!(%id, exit_code, "container exited");
    Ok(RunOutcome {
        exit_code,
        log_tail: tail.into(),
    })
}

/// Writes the bundle of `spec` and makes its runtime state directory
/// (0700) and a fresh runtime log: the bundle, state and log paths.
fn prepare_bundle(spec: &RunSpec) -> Result<(PathBuf, PathBuf, PathBuf), ExecError> {
    write_bundle(spec)?;
    let bundle = std::path::absolute(&spec.bundle).map_err(|source| ExecError::Io {
        path: spec.bundle.clone(),
        source,
    })?;
    let state = bundle.join(STATE_DIR);
    // The runtime keeps the whole configuration there, environment included.
    match fs::DirBuilder::new().mode(0o700).create(&state) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(ExecError::Io {
                path: state.clone(),
                source: e,
            });
        }
        _ => {}
    }
    let log = bundle.join(RUNTIME_LOG);
    // A fresh log: only this run's errors count.
    fs::write(&log, b"").map_err(|source| ExecError::Io {
        path: log.clone(),
        source,
    })?;
    Ok((bundle, state, log))
}

/// Passes each line the process writes to `output`, until every holder of
/// the pipe's write end (the runtime, the container's processes) has
/// closed it; the last [`TAIL_LINES`] lines.
fn read_output(reader: std::io::PipeReader, output: &mut dyn FnMut(&str)) -> VecDeque<String> {
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES + 1);
    read_lines(reader, &mut |line| {
        output(line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_owned());
    });
    tail
}

/// Deletes container `id` if it is still in `state`: `run` normally
/// destroys the container itself.
fn delete_leftover(binary: &Path, state: &Path, id: &str) {
    if state.join(id).exists() {
        let _ = Command::new(binary)
            .arg("--root")
            .arg(state)
            .arg("delete")
            .arg("--force")
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The runtime writes the process's pid there, inside the bundle.
const PID_FILE: &str = "pid";

/// Makes this process the reaper of its orphaned descendants, once: the
/// process a detached runtime starts is reparented to it when the runtime
/// exits, so it can wait for the process's exit status.
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            tracing::warn!(error = %e, "cannot become a subreaper");
        }
    });
}

/// Waits for the container's process `pid`, this process's child since
/// its runtime exited; its exit code, 128+signal when a signal killed it.
fn wait_process(pid: rustix::process::Pid) -> Result<i32, ExecError> {
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(signal) = status.terminating_signal() {
                    return Ok(128 + signal);
                }
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(ExecError::Runtime {
                    message: format!("cannot wait for the container's process {pid}: {e}"),
                });
            }
        }
    }
}

/// The process's exit code, 128+signal when the runtime itself was killed.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

/// Error messages from the runtime's JSON log: non-empty exactly when the
/// runtime failed on its own account (bad configuration, missing command, …).
fn runtime_errors(log: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(log) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).ok()?;
            let level = entry.get("level")?.as_str()?;
            if !matches!(level, "error" | "fatal" | "panic") {
                return None;
            }
            Some(
                entry
                    .get("msg")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(line)
                    .to_owned(),
            )
        })
        .collect()
}

/// Reads `reader` to its end, passing on each line (without its newline;
/// a longer one than [`MAX_LINE`] in pieces).
fn read_lines(mut reader: impl Read, line: &mut dyn FnMut(&str)) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut send = |bytes: &[u8]| {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        line(&String::from_utf8_lossy(bytes));
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading container output failed");
                break;
            }
        };
        let mut chunk = &buf[..n];
        loop {
            let (segment, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(pos) => (&chunk[..pos], Some(&chunk[pos + 1..])),
                None => (chunk, None),
            };
            pending.extend_from_slice(segment);
            while pending.len() > MAX_LINE {
                send(&pending[..MAX_LINE]);
                pending.drain(..MAX_LINE);
            }
            let Some(rest) = complete else { break };
            send(&pending);
            pending.clear();
            chunk = rest;
        }
    }
    if !pending.is_empty() {
        send(&pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::test_support::{busybox_rootfs, runc_or_skip};
    use crate::exec::{MountKind, MountSpec, NetworkMode};
    use std::path::PathBuf;

    struct Fixture {
        _dir: tempfile::TempDir,
        spec: RunSpec,
        runc: PathBuf,
    }

    fn fixture(script: &str) -> Option<Fixture> {
        let runc = runc_or_skip()?;
        let dir = tempfile::tempdir().unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let bundle = dir.path().join("bundle");
        fs::create_dir(&bundle).unwrap();
        let spec = RunSpec {
            bundle,
            rootfs,
            args: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin".into(), "GREETING=hello world".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            hostname: "buildbox".into(),
            network: NetworkMode::None,
            mounts: Vec::new(),
        };
        Some(Fixture {
            _dir: dir,
            spec,
            runc,
        })
    }

    struct Captured {
        outcome: RunOutcome,
        /// Every line of stdout and stderr, in order.
        output: Vec<String>,
    }

    fn run(f: &Fixture) -> Captured {
        let mut output = Vec::new();
        let outcome =
            run_container(&f.runc, &f.spec, &mut |line| output.push(line.to_owned())).unwrap();
        Captured { outcome, output }
    }

    fn run_script(script: &str) -> Option<Captured> {
        let f = fixture(script)?;
        Some(run(&f))
    }

    #[test]
    fn streams_and_exit_codes() {
        let Some(c) = run_script("echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3")
        else {
            return;
        };
        assert_eq!(c.outcome.exit_code, 3);
        // One stream, in the order written.
        assert_eq!(c.output, ["out1", "err1", "out2", "err2"]);
        assert_eq!(c.outcome.log_tail.len(), 4);

        assert_eq!(run_script("true").unwrap().outcome.exit_code, 0);
        // PID 1 ignores signals it has no handler for, even SIGKILL, when
        // they come from inside its namespace: a child shell is needed.
        let c = run_script("sh -c 'kill -9 $$'; echo after $?").unwrap();
        // The shell's report of the kill is on stderr, the same stream.
        assert_eq!(c.output, ["Killed", "after 137"]);
        let c = run_script("printf 'no newline'").unwrap();
        assert_eq!(c.output, ["no newline"]);
    }

    #[test]
    fn killed_by_a_signal_is_128_plus_signal() {
        let Some(f) = fixture("echo ready; sleep 30; echo not killed") else {
            return;
        };
        let state = f.spec.bundle.join(STATE_DIR);
        let runc = f.runc.clone();
        let mut lines = Vec::new();
        let outcome = run_container(&f.runc, &f.spec, &mut |line| {
            lines.push(line.to_owned());
            if line == "ready" {
                let list = Command::new(&runc)
                    .arg("--root")
                    .arg(&state)
                    .args(["list", "-q"])
                    .output()
                    .unwrap();
                let id = String::from_utf8(list.stdout).unwrap();
                let status = Command::new(&runc)
                    .arg("--root")
                    .arg(&state)
                    .args(["kill", id.trim(), "KILL"])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        })
        .unwrap();
        assert_eq!(outcome.exit_code, 128 + 9);
        assert_eq!(lines, ["ready"]);
    }

    #[test]
    fn env_cwd_user_hostname() {
        let Some(mut f) = fixture(
            "echo \"$GREETING\"; pwd; id -u; id -g; id -G; hostname; touch /tmp/x 2>/dev/null && echo bypassed permissions; grep CapEff /proc/self/status",
        ) else {
            return;
        };
        fs::create_dir_all(f.spec.rootfs.join("work/dir")).unwrap();
        fs::create_dir_all(f.spec.rootfs.join("tmp")).unwrap();
        f.spec.cwd = "/work/dir".into();
        f.spec.uid = 1000;
        f.spec.gid = 1001;
        f.spec.additional_gids = vec![1002, 1003];
        let c = run(&f);
        assert_eq!(c.outcome.exit_code, 0, "{:?}", c.output);
        // The capability set is the same for every user (as the brief asks),
        // so a non-root user keeps CAP_DAC_OVERRIDE.
        eprintln!("{:?}", c.output);
        assert_eq!(
            c.output[..6],
            [
                "hello world",
                "/work/dir",
                "1000",
                "1001",
                "1001 1002 1003",
                "buildbox"
            ]
        );
    }

    #[test]
    fn devices_proc_sys() {
        let Some(c) = run_script(
            "for d in null zero random urandom tty full; do test -c /dev/$d || echo missing $d; done
             test \"$(readlink /dev/fd)\" = /proc/self/fd || echo bad fd
             test \"$(readlink /dev/stdin)\" = /proc/self/fd/0 || echo bad stdin
             test -d /dev/pts && test -d /dev/shm && test -d /dev/mqueue || echo missing dirs
             echo x > /dev/null || echo null unwritable
             test -r /proc/self/status || echo no proc
             echo $$
             touch /sys/kernel/x 2>/dev/null && echo sys writable
             grep -q ' /sys sysfs ro' /proc/mounts || echo sys not ro
             touch /dev/shm/x || echo shm unwritable
             grep -q ' /sys/fs/cgroup/memory cgroup ro' /proc/mounts || grep -q ' /sys/fs/cgroup cgroup2 ro' /proc/mounts || echo no cgroup mount
             ls /sys/fs/cgroup/pids/tasks /sys/fs/cgroup/memory/tasks /sys/fs/cgroup/cgroup.procs 2>/dev/null | grep -q . || echo cgroupfs empty
             ulimit -n",
        ) else {
            return;
        };
        assert_eq!(c.outcome.exit_code, 0, "{:?}", c.output);
        assert_eq!(
            c.output,
            ["1", &*crate::exec::bundle::nofile_limit().to_string()],
            "stderr: {:?}",
            c.output
        );
    }

    #[test]
    fn resolv_conf_is_a_read_only_copy() {
        let Some(c) = run_script(
            "cat /etc/resolv.conf; echo ---; (echo 'nameserver 6.6.6.6' >> /etc/resolv.conf) 2>/dev/null && echo writable; cat /etc/hosts",
        ) else {
            return;
        };
        let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
        let expected: Vec<&str> = host.lines().chain(["---"]).chain(hosts.lines()).collect();
        assert_eq!(c.output, expected);
        assert_eq!(
            fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            host
        );
    }

    #[test]
    fn mount_points_are_created_when_missing() {
        let Some(f) = fixture("test -f /etc/resolv.conf && test -d /proc/1") else {
            return;
        };
        assert!(!f.spec.rootfs.join("etc").exists());
        assert_eq!(run(&f).outcome.exit_code, 0);
        for created in ["etc/resolv.conf", "etc/hosts", "proc", "dev", "sys"] {
            assert!(f.spec.rootfs.join(created).exists(), "{created}");
        }
        assert_eq!(
            fs::metadata(f.spec.rootfs.join("etc/resolv.conf"))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn network_none_has_only_loopback_up() {
        let Some(c) = run_script("ip -o link") else {
            return;
        };
        assert_eq!(c.outcome.exit_code, 0, "{:?}", c.output);
        assert_eq!(c.output.len(), 1, "{:?}", c.output);
        assert!(c.output[0].contains(": lo: "), "{:?}", c.output);
        assert!(c.output[0].contains(",UP"), "{:?}", c.output);
    }

    #[test]
    fn network_host_sees_host_interfaces() {
        let Some(mut f) = fixture("ip -o link") else {
            return;
        };
        f.spec.network = NetworkMode::Host;
        let c = run(&f);
        assert_eq!(c.outcome.exit_code, 0, "{:?}", c.output);
        let host: Vec<String> = fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.output.len(), host.len(), "{:?} vs {host:?}", c.output);
        for name in host {
            assert!(
                c.output.iter().any(|l| l.contains(&format!(": {name}"))),
                "{name} missing from {:?}",
                c.output
            );
        }
    }

    #[test]
    fn user_mounts() {
        let Some(mut f) = fixture(
            "cat /ro/file; touch /ro/new 2>/dev/null && echo ro writable; touch /rw/new || echo rw unwritable
             grep ' /scratch ' /proc/mounts; touch /scratch/x || echo tmpfs unwritable",
        ) else {
            return;
        };
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("file"), "content\n").unwrap();
        let rw = tempfile::tempdir().unwrap();
        f.spec.mounts = vec![
            MountSpec {
                destination: "/ro".into(),
                kind: MountKind::Bind {
                    source: host.path().to_owned(),
                    readonly: true,
                },
            },
            MountSpec {
                destination: "/rw".into(),
                kind: MountKind::Bind {
                    source: rw.path().to_owned(),
                    readonly: false,
                },
            },
            MountSpec {
                destination: "/scratch".into(),
                kind: MountKind::Tmpfs {
                    size: Some(2 * 1024 * 1024),
                    mode: Some(0o750),
                },
            },
        ];
        let c = run(&f);
        assert_eq!(c.outcome.exit_code, 0, "{:?}", c.output);
        assert_eq!(c.output.len(), 2, "{:?} {:?}", c.output, c.output);
        assert_eq!(c.output[0], "content");
        assert!(c.output[1].contains("tmpfs rw,"), "{}", c.output[1]);
        assert!(c.output[1].contains("size=2048k"), "{}", c.output[1]);
        assert!(c.output[1].contains("mode=750"), "{}", c.output[1]);
        assert!(!host.path().join("new").exists());
        assert!(rw.path().join("new").exists());
    }

    #[test]
    fn large_output_does_not_deadlock() {
        let Some(f) = fixture(
            "seq 1 700000 >&2 & seq 1 700000; wait; i=0; while [ $i -lt 25 ]; do echo tail$i; i=$((i+1)); done",
        ) else {
            return;
        };
        let mut output = Vec::new();
        let outcome =
            run_container(&f.runc, &f.spec, &mut |line| output.push(line.to_owned())).unwrap();
        assert_eq!(outcome.exit_code, 0);
        assert_eq!(outcome.log_tail, output[output.len() - 20..]);
        assert_eq!(output.len(), 1_400_025);
        let expected: Vec<String> = (5..25).map(|i| format!("tail{i}")).collect();
        assert_eq!(output[output.len() - 20..], expected);
    }

    #[test]
    fn runtime_failures_are_errors() {
        let Some(mut f) = fixture("true") else {
            return;
        };
        f.spec.args = vec!["/no/such/command".into()];
        let err = run_container(&f.runc, &f.spec, &mut |_| {}).unwrap_err();
        let ExecError::Runtime { message } = err else {
            panic!("{err:?}");
        };
        assert!(message.contains("/no/such/command"), "{message}");

        let Some(mut f) = fixture("true") else {
            return;
        };
        f.spec.mounts.push(MountSpec {
            destination: "/x".into(),
            kind: MountKind::Bind {
                source: PathBuf::from("/no/such/source"),
                readonly: false,
            },
        });
        let err = run_container(&f.runc, &f.spec, &mut |_| {}).unwrap_err();
        assert!(matches!(err, ExecError::Runtime { .. }), "{err:?}");
        // A process printing runtime-like errors and failing is still a process exit.
        let c = run_script("echo 'level=error msg=\"runc run failed\"' >&2; exit 1").unwrap();
        assert_eq!(c.outcome.exit_code, 1);
    }

    #[test]
    fn read_lines_splits_lines() {
        let long = "y".repeat(MAX_LINE + 5);
        let input = format!("a\r\nb\n\n{long}\nc");
        let mut lines: Vec<String> = Vec::new();
        read_lines(input.as_bytes(), &mut |l| lines.push(l.to_owned()));
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[..3], ["a", "b", ""]);
        assert_eq!(lines[3].len(), MAX_LINE);
        assert_eq!(lines[4], "yyyyy");
        assert_eq!(lines[5], "c");
    }
}

//! A watchdog process that cleans up after this one, however it ends.
//!
//! A `run` step leaves things outside this process: the runtime's container
//! (its processes, and its state directory, which holds the whole container
//! configuration with the secret environment variables), overlay mounts, and
//! the step's private directory with secret files and the bundle. When
//! imgbuild is killed (`kill -9`, or `SIGINT` and `SIGTERM`, which it does not
//! catch), no code of it runs any more. So the first time it has something to
//! clean up, it spawns a reaper: its own binary (`/proc/self/exe`) with the
//! hidden subcommand [`SUBCOMMAND`], in a session of its own (so a signal to
//! imgbuild's process group or terminal does not reach it), fed through a
//! pipe on the reaper's stdin. Threads only spawn it; nothing forks.
//!
//! Each thing to clean up is registered with `watch_container`,
//! `watch_mount` or `watch_path` *before* it exists; the returned
//! `Guard` tells the reaper to forget it when dropped, after the caller has
//! cleaned it up itself. When the pipe reaches its end, imgbuild has exited;
//! the reaper then cleans up whatever is still registered, in this order:
//! kills the containers' runtime processes and force-deletes the containers
//! (which kills their processes and removes their state), detaches the mounts
//! (`MNT_DETACH`), removes the paths; then it exits. A clean exit has
//! forgotten everything first, so the reaper has nothing left to do.
//!
//! Orders are lines of space-separated fields; a field escapes bytes outside
//! printable ASCII, spaces and `%` as `%XX`, so any path fits. A line of at
//! most `PIPE_BUF` bytes arrives whole or not at all, even when the writer is
//! killed.
//!
//! Without [`enable`] (the library in tests, other programs) no reaper is
//! spawned and every guard does nothing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitCode, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The hidden subcommand that runs the reaper (`imgbuild __reap`).
pub const SUBCOMMAND: &str = "__reap";

/// What the reaper prints once it runs in its own session.
const READY: &str = "ready";

/// How long the reaper keeps trying to delete a container.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why something could not be handed to the reaper.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    /// The reaper process could not be started.
    #[error("cannot start the cleanup watchdog `{} {SUBCOMMAND}`", .program.display())]
    Spawn {
        /// The program started.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The reaper started but did not report that it runs.
    #[error("the cleanup watchdog `{} {SUBCOMMAND}` did not start", .program.display())]
    Handshake {
        /// The program started.
        program: PathBuf,
    },
    /// The reaper is gone (killed?), so nothing would clean up after a kill.
    #[error("the cleanup watchdog has exited")]
    Gone {
        /// The error writing to it.
        #[source]
        source: io::Error,
    },
}

/// This process's connection to its reaper.
enum Link {
    /// No reaper: guards do nothing.
    Disabled,
    /// Spawn `program` on first use.
    Enabled(PathBuf),
    /// The reaper runs; orders go to its stdin.
    Running(ChildStdin),
    /// The reaper exited; nothing more can be registered.
    Broken,
}

struct State {
    link: Link,
    next_key: u64,
}

static STATE: Mutex<State> = Mutex::new(State {
    link: Link::Disabled,
    next_key: 0,
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes the guards of this process register with a reaper, spawned from
/// this process's own binary on first use. The binary must dispatch
/// [`SUBCOMMAND`] to [`serve`].
pub fn enable() {
    let mut state = state();
    if matches!(state.link, Link::Disabled) {
        state.link = Link::Enabled(PathBuf::from("/proc/self/exe"));
    }
}

/// A registration with the reaper; dropping it makes the reaper forget it.
#[derive(Debug)]
#[must_use = "dropping the guard unregisters at once"]
pub(crate) struct Guard {
    key: Option<u64>,
}

impl Guard {
    /// Tells the reaper the pid of a container's runtime process, which it
    /// kills before deleting the container, so the runtime cannot go on
    /// creating it. Best effort.
    pub(crate) fn runtime_pid(&self, pid: u32) {
        if let Some(key) = self.key {
            let _ = send(&mut state(), &["pid", &key.to_string(), &pid.to_string()]);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let _ = send(&mut state(), &["forget", &key.to_string()]);
        }
    }
}

/// Registers a container: after a kill, the reaper runs `runtime --root root
/// delete --force id` (after killing the runtime process, see [`Guard::runtime_pid`]).
pub(crate) fn watch_container(runtime: &Path, root: &Path, id: &str) -> Result<Guard, ReaperError> {
    register(
        "container",
        &[runtime.as_os_str(), root.as_os_str(), id.as_ref()],
    )
}

/// Registers a mount point: after a kill, the reaper detaches it and removes
/// the directory if it is empty.
pub(crate) fn watch_mount(path: &Path) -> Result<Guard, ReaperError> {
    register("mount", &[path.as_os_str()])
}

/// Registers a file or directory: after a kill, the reaper removes it (with
/// whatever is mounted below it).
pub(crate) fn watch_path(path: &Path) -> Result<Guard, ReaperError> {
    register("path", &[path.as_os_str()])
}

fn register(kind: &str, fields: &[&std::ffi::OsStr]) -> Result<Guard, ReaperError> {
    let mut state = state();
    if matches!(state.link, Link::Disabled) {
        return Ok(Guard { key: None });
    }
    let key = state.next_key;
    state.next_key += 1;
    let key_text = key.to_string();
    let mut line: Vec<String> = vec![kind.to_owned(), key_text];
    line.extend(fields.iter().map(|f| escape(f.as_bytes())));
    let line: Vec<&str> = line.iter().map(String::as_str).collect();
    send(&mut state, &line)?;
    Ok(Guard { key: Some(key) })
}

/// Sends one order, spawning the reaper first if needed.
fn send(state: &mut State, fields: &[&str]) -> Result<(), ReaperError> {
    if let Link::Enabled(program) = &state.link {
        let spawned = spawn(program);
        state.link = match spawned {
            Ok(stdin) => Link::Running(stdin),
            Err(e) => {
                state.link = Link::Broken;
                return Err(e);
            }
        };
    }
    let stdin = match &mut state.link {
        Link::Disabled => return Ok(()),
        Link::Running(stdin) => stdin,
        Link::Broken | Link::Enabled(_) => {
            return Err(ReaperError::Gone {
                source: io::Error::from(io::ErrorKind::BrokenPipe),
            });
        }
    };
    let mut line = fields.join(" ");
    line.push('\n');
    // One write: the line arrives whole or not at all.
    if let Err(source) = stdin.write_all(line.as_bytes()) {
        state.link = Link::Broken;
        return Err(ReaperError::Gone { source });
    }
    Ok(())
}

/// Starts the reaper and waits until it runs in its own session.
fn spawn(program: &Path) -> Result<ChildStdin, ReaperError> {
    let mut child = Command::new(program)
        .arg(SUBCOMMAND)
        // Not even the variables that secrets come from.
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ReaperError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut first = String::new();
    let _ = BufReader::new(stdout).read_line(&mut first);
    if first.trim_end() != READY {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ReaperError::Handshake {
            program: program.to_owned(),
        });
    }
    tracing::debug!(pid = child.id(), "cleanup watchdog started");
    Ok(child.stdin.take().expect("stdin is piped"))
}

/// Runs the reaper: reads orders from stdin until its end, then cleans up
/// what is still registered. The entry point of [`SUBCOMMAND`].
pub fn serve() -> ExitCode {
    // Out of imgbuild's process group and terminal session, so the signals
    // that kill imgbuild (Ctrl-C, a group kill, a hangup) spare the reaper.
    let _ = rustix::process::setsid();
    {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{READY}");
        let _ = stdout.flush();
    }
    let mut registry = Registry::default();
    let stdin = io::stdin().lock();
    for line in stdin.split(b'\n') {
        match line {
            Ok(line) => registry.apply(&line),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    registry.clean();
    ExitCode::SUCCESS
}

/// One thing to clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Container {
        runtime: PathBuf,
        root: PathBuf,
        id: OsString,
        pid: Option<i32>,
    },
    Mount(PathBuf),
    Path(PathBuf),
}

/// What the reaper holds: items by key, in registration order.
#[derive(Debug, Default)]
struct Registry {
    items: BTreeMap<u64, Item>,
}

impl Registry {
    /// Applies one order line; malformed lines are ignored.
    fn apply(&mut self, line: &[u8]) {
        let fields: Option<Vec<Vec<u8>>> = line
            .split(|&b| b == b' ')
            .map(|f| unescape(f.strip_suffix(b"\r").unwrap_or(f)))
            .collect();
        let Some(fields) = fields else { return };
        let text = |i: usize| fields.get(i).and_then(|f| std::str::from_utf8(f).ok());
        let path = |i: usize| {
            fields
                .get(i)
                .map(|f| PathBuf::from(OsString::from_vec(f.clone())))
        };
        let Some(key) = text(1).and_then(|k| k.parse::<u64>().ok()) else {
            return;
        };
        match (text(0), fields.len()) {
            (Some("container"), 5) => {
                let (Some(runtime), Some(root), Some(id)) = (path(2), path(3), path(4)) else {
                    return;
                };
                self.items.insert(
                    key,
                    Item::Container {
                        runtime,
                        root,
                        id: id.into_os_string(),
                        pid: None,
                    },
                );
            }
            (Some("pid"), 3) => {
                if let (Some(Item::Container { pid, .. }), Some(n)) = (
                    self.items.get_mut(&key),
                    text(2).and_then(|p| p.parse::<i32>().ok()),
                ) {
                    *pid = Some(n);
                }
            }
            (Some("mount"), 3) => {
                if let Some(p) = path(2) {
                    self.items.insert(key, Item::Mount(p));
                }
            }
            (Some("path"), 3) => {
                if let Some(p) = path(2) {
                    self.items.insert(key, Item::Path(p));
                }
            }
            (Some("forget"), 2) => {
                self.items.remove(&key);
            }
            _ => {}
        }
    }

    /// Cleans up every item: containers, then mounts and paths, newest first.
    fn clean(self) {
        let items: Vec<Item> = self.items.into_values().rev().collect();
        for item in &items {
            if let Item::Container {
                runtime,
                root,
                id,
                pid,
            } = item
            {
                delete_container(runtime, root, id, *pid);
            }
        }
        for item in &items {
            if let Item::Mount(path) = item {
                let _ = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH);
                let _ = std::fs::remove_dir(path);
            }
        }
        for item in &items {
            if let Item::Path(path) = item {
                let _ = crate::store::remove_tree(path);
            }
        }
    }
}

/// Kills the runtime process (so it cannot go on creating the container),
/// then force-deletes the container until its state is gone.
fn delete_container(runtime: &Path, root: &Path, id: &std::ffi::OsStr, pid: Option<i32>) {
    if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    let started = Instant::now();
    loop {
        let _ = Command::new(runtime)
            .arg("--root")
            .arg(root)
            .args(["delete", "--force"])
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !root.join(id).exists() || started.elapsed() > DELETE_TIMEOUT {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `bytes` as one order field.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The bytes of an order field, or `None` when it is malformed.
fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            out.push(b);
            rest = tail;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        for bytes in [
            &b"/plain/path"[..],
            b"with space",
            b"100%",
            b"new\nline",
            b"\xff\x00tab\t",
            b"",
        ] {
            let field = escape(bytes);
            assert!(field.bytes().all(|b| b.is_ascii_graphic()), "{field}");
            assert_eq!(unescape(field.as_bytes()).unwrap(), bytes);
        }
        assert_eq!(unescape(b"%4"), None);
        assert_eq!(unescape(b"%zz"), None);
    }

    #[test]
    fn registry_keeps_what_is_not_forgotten() {
        let mut registry = Registry::default();
        registry.apply(b"path 0 /a%20b");
        registry.apply(b"mount 1 /m");
        registry.apply(b"container 2 /usr/bin/runc /state id-1");
        registry.apply(b"pid 2 42");
        registry.apply(b"path 3 /forgotten");
        registry.apply(b"forget 3");
        for bad in [
            &b"path x /p"[..],
            b"path 4",
            b"nonsense 5 /p",
            b"path 6 %4",
            b"",
        ] {
            registry.apply(bad);
        }
        let items: Vec<&Item> = registry.items.values().collect();
        assert_eq!(
            items,
            [
                &Item::Path("/a b".into()),
                &Item::Mount("/m".into()),
                &Item::Container {
                    runtime: "/usr/bin/runc".into(),
                    root: "/state".into(),
                    id: "id-1".into(),
                    pid: Some(42),
                },
            ]
        );
    }

    #[test]
    fn clean_removes_registered_paths_only() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let file = dir.path().join("secret file");
        let tree = dir.path().join("tree");
        std::fs::write(&kept, b"x").unwrap();
        std::fs::write(&file, b"x").unwrap();
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/f"), b"x").unwrap();
        let mut registry = Registry::default();
        for (key, path) in [&file, &tree, &kept].iter().enumerate() {
            let line = format!("path {key} {}", escape(path.as_os_str().as_bytes()));
            registry.apply(line.as_bytes());
        }
        registry.apply(b"forget 2");
        registry.clean();
        assert!(!file.exists());
        assert!(!tree.exists());
        assert!(kept.exists());
    }

    #[test]
    fn disabled_guards_do_nothing() {
        // Unit tests never enable the reaper.
        let guard = watch_path(Path::new("/nonexistent")).unwrap();
        assert!(guard.key.is_none());
        guard.runtime_pid(1);
    }
}

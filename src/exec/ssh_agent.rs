//! Forwards an SSH agent into a step through a socket of the step's own, as
//! `BuildKit` does: the socket gets the mode and owner the mount asks for
//! (by default 0600 and root), and the agent's own socket keeps its
//! permissions. Each connection to the step's socket is relayed to the
//! agent's.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A socket that relays to an SSH agent until it is dropped.
#[derive(Debug)]
pub struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accepting: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listens at `path` (mode `mode`, owned by `uid`:`gid`) and relays every
    /// connection to the agent listening at `agent`.
    pub fn start(agent: &Path, path: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        rustix::fs::chown(
            path,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = {
            let stop = Arc::clone(&stop);
            let agent = agent.to_owned();
            std::thread::Builder::new()
                .name("imgbuild-ssh-agent".into())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        if let Ok(client) = client {
                            relay(client, &agent);
                        }
                    }
                })?
        };
        Ok(Self {
            path: path.to_owned(),
            stop,
            accepting: Some(accepting),
        })
    }

    /// The step's socket.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accepting thread, which then sees `stop`.
        let _ = UnixStream::connect(&self.path);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Copies bytes both ways between `client` and a new connection to the
/// agent, on threads of their own; each direction ends at its end of file.
fn relay(client: UnixStream, agent: &Path) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        tracing::debug!("cannot connect to the SSH agent at {}", agent.display());
        return;
    };
    let (Ok(client_reader), Ok(upstream_reader)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let copy = |mut from: UnixStream, mut to: UnixStream| {
        move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        }
    };
    let _ = std::thread::Builder::new()
        .name("imgbuild-ssh-relay".into())
        .spawn(copy(client_reader, upstream));
    let _ = std::thread::Builder::new()
        .name("imgbuild-ssh-relay".into())
        .spawn(copy(upstream_reader, client));
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn relays_both_ways_with_its_own_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut stream, _) = agent.accept().unwrap();
            let mut request = [0u8; 4];
            stream.read_exact(&mut request).unwrap();
            stream.write_all(b"pong").unwrap();
            request
        });
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let proxy =
            AgentProxy::start(&agent_path, &dir.path().join("step"), 0o640, uid, gid).unwrap();
        let meta = std::fs::metadata(proxy.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640);
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        let mut client = UnixStream::connect(proxy.path()).unwrap();
        client.write_all(b"ping").unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"pong");
        assert_eq!(&echo.join().unwrap(), b"ping");
        let path = proxy.path().to_owned();
        drop(proxy);
        assert!(!path.exists(), "the step's socket outlived the proxy");
    }
}

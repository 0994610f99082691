//! A real registry for tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on 127.0.0.1, on a free port, with its storage in
//! a temp directory, optionally behind htpasswd basic auth; killed on drop.
//! Shared by the unit tests of `src/registry` and the end-to-end tests.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `docker-registry` package puts the binary.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Whether `docker-registry` is installed; when it is not, fails under
/// `IMGBUILD_REQUIRE_TOOLS` (as scripts/test sets) and skips otherwise.
pub fn have_registry() -> bool {
    if Path::new(REGISTRY_BIN).exists() {
        return true;
    }
    assert!(
        std::env::var_os("IMGBUILD_REQUIRE_TOOLS").is_none(),
        "docker-registry is required but missing (scripts/test installs it)"
    );
    eprintln!("skipped: docker-registry is not installed (scripts/test installs it)");
    false
}

/// A running `docker-registry`.
pub struct TestRegistry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl TestRegistry {
    /// Starts a registry; with `htpasswd`, it requires that user and
    /// password. None (after a message) when `docker-registry` is missing.
    pub fn start(htpasswd: Option<(&str, &str)>) -> Option<TestRegistry> {
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
        // The access log (on stdout) lets tests count requests.
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
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
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
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
                    std::fs::read_to_string(self.log_path()).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT`, as references and `--insecure-registry` write it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A directory for the test's own files; removed with the registry.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The request lines of the access log so far: `METHOD PATH STATUS`.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                // Combined log format: ... "METHOD PATH HTTP/1.1" STATUS SIZE ...
                let (_, rest) = line.split_once('"')?;
                let (request, rest) = rest.split_once('"')?;
                let mut words = request.split_whitespace();
                let method = words.next()?;
                let path = words.next()?;
                let status = rest.split_whitespace().next()?;
                Some(format!("{method} {path} {status}"))
            })
            .collect()
    }

    /// How many blob uploads were started (`POST /v2/NAME/blobs/uploads/`).
    pub fn blob_uploads(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with("POST /v2/") && r.contains("/blobs/uploads/"))
            .count()
    }

    /// Whether the storage holds a partial upload with data.
    pub fn upload_in_progress(&self) -> bool {
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
        walk(&self.storage())
    }

    /// The registry's copy of a blob (`…/blobs/sha256/XX/HEX/data`), by hex digest.
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Writes a Docker `config.json` with `user` and `password` for this
    /// registry into the test's directory, as `NAME.json`; returns its path.
    pub fn auth_file(&self, name: &str, user: &str, password: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.json"));
        let auth = format!(
            r#"{{"auths":{{"{}":{{"username":"{user}","password":"{password}"}}}}}}"#,
            self.host()
        );
        std::fs::write(&path, auth).unwrap();
        path
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

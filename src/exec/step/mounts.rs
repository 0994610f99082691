//! The mounts of a `run` step: cache directories (locked as their
//! `sharing` says), secret files and variables, bind mounts (writable ones
//! on a throwaway overlay or copy), tmpfs and SSH agent sockets.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::super::rootfs::{OverlayMount, Upper, mount_overlay};
use super::super::ssh_agent::AgentProxy;
use super::super::{MountKind, MountSpec};
use super::{SecretSource, StepError, Workspace, inside, io_setup, setup};
use crate::ir::{Mount, Sharing};

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        fs::set_permissions(to, meta.permissions())?;
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        fs::copy(from, to)?;
    }
    rustix::fs::chownat(
        rustix::fs::CWD,
        to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// A held cache lock, released on drop.
pub(super) struct CacheLock(#[allow(dead_code)] fs::File);

/// What the step's mounts need until its process has ended, and the
/// environment they add to.
#[derive(Default)]
pub(super) struct Prepared {
    /// The process's environment, in order.
    pub(super) env: Vec<(String, String)>,
    /// The mounts, as the runtime gets them.
    pub(super) specs: Vec<MountSpec>,
    /// The locks of `locked` and `private` cache mounts.
    pub(super) locks: Vec<CacheLock>,
    /// The overlays of writable bind mounts.
    pub(super) overlays: Vec<OverlayMount>,
    /// The SSH agent proxies.
    pub(super) agents: Vec<AgentProxy>,
}

impl Prepared {
    /// Sets `name` in the environment, replacing an earlier value.
    fn set_env(&mut self, name: &str, value: String) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value));
    }

    pub(super) fn bind(&mut self, destination: &str, source: PathBuf, readonly: bool) {
        self.specs.push(MountSpec {
            destination: destination.to_owned(),
            kind: MountKind::Bind { source, readonly },
        });
    }
}

/// The directory name of the cache mount `id` under `ROOT/cache`: the id
/// made safe for a file name, and a hash of it so that ids stay apart.
fn cache_key(id: &str) -> String {
    let key: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{key}-{}",
        &crate::store::Digest::of(id.as_bytes()).hex()[..12]
    )
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), StepError> {
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(uid.unwrap_or(0))),
        Some(rustix::fs::Gid::from_raw(gid.unwrap_or(0))),
    )
    .map_err(|e| io_setup("chown", path, &e.into()))
}

fn unavailable_source(from: &str) -> StepError {
    setup(
        format!("mount source `{from}` is not available"),
        "this is a bug in imgbuild",
    )
}

impl<S: std::hash::BuildHasher> Workspace<'_, '_, S> {
    /// Sets up the `n`th mount of the step.
    pub(super) fn mount(
        &self,
        n: usize,
        m: &Mount<String>,
        prepared: &mut Prepared,
    ) -> Result<(), StepError> {
        match m {
            Mount::Cache { .. } => self.cache(n, m, prepared),
            Mount::Secret { .. } => self.secret(n, m, prepared),
            Mount::Bind { .. } => self.bind(n, m, prepared),
            Mount::Tmpfs { target, size } => {
                prepared.specs.push(MountSpec {
                    destination: target.clone(),
                    kind: MountKind::Tmpfs {
                        size: *size,
                        mode: None,
                    },
                });
                Ok(())
            }
            Mount::Ssh { .. } => self.ssh(n, m, prepared),
            Mount::Deferred { .. } => Err(setup(
                "a `--mount` was not resolved by the plan",
                "this is a bug in imgbuild: the plan reads every deferred mount",
            )),
        }
    }

    /// A `cache` mount: a directory under `ROOT/cache`, locked as its
    /// `sharing` says, created (and seeded from `from`) on first use.
    fn cache(&self, n: usize, m: &Mount<String>, prepared: &mut Prepared) -> Result<(), StepError> {
        let Mount::Cache {
            target,
            id,
            sharing,
            readonly,
            ..
        } = m
        else {
            unreachable!("cache() is called with cache mounts")
        };
        let id = id.clone().unwrap_or_else(|| target.clone());
        let key = cache_key(&id);
        let caches = self.inputs.store.root().join("cache");
        fs::create_dir_all(&caches).map_err(|e| io_setup("create", &caches, &e))?;
        let mut dir = caches.join(&key);
        let lock_path = caches.join(format!("{key}.lock"));
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_setup("open", &lock_path, &e))?;
        match sharing {
            Sharing::Shared => {}
            Sharing::Locked => {
                rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
                    .map_err(|e| io_setup("lock", &lock_path, &e.into()))?;
                prepared.locks.push(CacheLock(lock_file));
            }
            Sharing::Private => {
                if rustix::fs::flock(
                    &lock_file,
                    rustix::fs::FlockOperation::NonBlockingLockExclusive,
                )
                .is_ok()
                {
                    prepared.locks.push(CacheLock(lock_file));
                } else {
                    dir = self.dirs.private.join(format!("cache-{n}"));
                }
            }
        }
        if !dir.exists() {
            self.create_cache(n, m, &dir)?;
        }
        prepared.bind(target, dir, *readonly);
        Ok(())
    }

    /// Creates the cache directory `dir` of the cache mount `m` (the `n`th).
    fn create_cache(&self, n: usize, m: &Mount<String>, dir: &Path) -> Result<(), StepError> {
        let Mount::Cache {
            from,
            source,
            mode,
            uid,
            gid,
            ..
        } = m
        else {
            unreachable!("create_cache() is called with cache mounts")
        };
        let partial = self.dirs.temp.join(format!("cache-new-{n}"));
        match (from, source) {
            (Some(from), _) => {
                let root = self
                    .inputs
                    .sources
                    .get(from)
                    .ok_or_else(|| unavailable_source(from))?;
                let seed = inside(root, source.as_deref().unwrap_or("/"))?;
                copy_tree(&seed, &partial)
                    .map_err(|e| io_setup("seed the cache from", &seed, &e))?;
            }
            (None, _) => {
                fs::create_dir_all(&partial).map_err(|e| io_setup("create", &partial, &e))?;
            }
        }
        fs::set_permissions(&partial, fs::Permissions::from_mode(mode.unwrap_or(0o755)))
            .map_err(|e| io_setup("chmod", &partial, &e))?;
        chown(&partial, *uid, *gid)?;
        // Never replace a cache another step created meanwhile (and may have mounted).
        let placed = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &partial,
            rustix::fs::CWD,
            dir,
            rustix::fs::RenameFlags::NOREPLACE,
        );
        if placed.is_err() {
            let _ = fs::remove_dir_all(&partial);
        }
        Ok(())
    }

    /// A `secret` mount: a file in the private directory, an environment
    /// variable, or both; nothing if an optional secret was not given.
    fn secret(
        &self,
        n: usize,
        m: &Mount<String>,
        prepared: &mut Prepared,
    ) -> Result<(), StepError> {
        let Mount::Secret {
            id,
            target,
            env: as_env,
            required,
            mode,
            uid,
            gid,
        } = m
        else {
            unreachable!("secret() is called with secret mounts")
        };
        let id = id.clone().unwrap_or_default();
        let value = match self.inputs.grants.secrets.get(&id) {
            Some(SecretSource::File(path)) => fs::read(path).map_err(|e| {
                setup(
                    format!("cannot read secret `{id}` from `{}`: {e}", path.display()),
                    "check the `src=` path of `--secret`",
                )
            })?,
            Some(SecretSource::Env(var)) => std::env::var(var)
                .map_err(|_| {
                    setup(
                        format!("secret `{id}` comes from ${var}, which is not set"),
                        format!(
                            "export {var}, or pass the secret with `--secret id={id},src=FILE`"
                        ),
                    )
                })?
                .into_bytes(),
            None if *required => {
                return Err(setup(
                    format!(
                        "secret {id}: not found (the mount is `required` and no secret `{id}` was given)"
                    ),
                    format!(
                        "pass it with `--secret id={id},src=FILE` or `--secret id={id},env=VAR`"
                    ),
                ));
            }
            None => return Ok(()),
        };
        if let Some(var) = as_env {
            prepared.set_env(var, String::from_utf8_lossy(&value).into_owned());
        }
        if let Some(target) = target {
            // Created 0600 in the step's own directory, then given
            // the mode and owner the step asks for (default 0400).
            let file = self.secrets.write_file(&format!("secret-{n}"), &value)?;
            fs::set_permissions(&file, fs::Permissions::from_mode(mode.unwrap_or(0o400)))
                .map_err(|e| io_setup("chmod", &file, &e))?;
            chown(&file, *uid, *gid)?;
            prepared.bind(target, file, true);
        }
        Ok(())
    }

    /// A `bind` mount of the context or of a stage or image; a writable one
    /// writes to a throwaway overlay (a directory) or copy (a file).
    fn bind(&self, n: usize, m: &Mount<String>, prepared: &mut Prepared) -> Result<(), StepError> {
        let Mount::Bind {
            target,
            source,
            from,
            rw,
        } = m
        else {
            unreachable!("bind() is called with bind mounts")
        };
        let context = self.inputs.context;
        let root = match from {
            Some(from) => self
                .inputs
                .sources
                .get(from)
                .cloned()
                .ok_or_else(|| unavailable_source(from))?,
            // The runtime resolves relative sources against the bundle.
            None => std::path::absolute(context).map_err(|e| io_setup("resolve", context, &e))?,
        };
        let mut path = inside(&root, source.as_deref().unwrap_or("/"))?;
        if !path.exists() {
            return Err(setup(
                format!(
                    "bind mount source `{}` does not exist",
                    source.as_deref().unwrap_or("/")
                ),
                "check `source` and `from`",
            ));
        }
        if *rw && path.is_dir() {
            // Writes go to a throwaway upperdir of an overlay on the source.
            let base = self.dirs.private.join(format!("bind-{n}"));
            let (upper, work, merged) =
                (base.join("upper"), base.join("work"), base.join("merged"));
            for dir in [&upper, &work, &merged] {
                fs::create_dir_all(dir).map_err(|e| io_setup("create", dir, &e))?;
            }
            let overlay = mount_overlay(
                std::slice::from_ref(&path),
                Some(Upper {
                    upper: &upper,
                    work: &work,
                }),
                &merged,
            )
            .map_err(|e| {
                setup(
                    format!("cannot mount a writable view of `{}`: {e}", path.display()),
                    "`imgbuild doctor` checks overlayfs",
                )
            })?;
            path = merged;
            prepared.overlays.push(overlay);
        } else if *rw {
            let copy = self.dirs.private.join(format!("bind-{n}"));
            copy_tree(&path, &copy).map_err(|e| io_setup("copy", &path, &e))?;
            path = copy;
        }
        prepared.bind(target, path, !*rw);
        Ok(())
    }

    /// An `ssh` mount: a proxy socket to a forwarded agent, named in
    /// `SSH_AUTH_SOCK`; nothing if an optional agent was not given.
    fn ssh(&self, n: usize, m: &Mount<String>, prepared: &mut Prepared) -> Result<(), StepError> {
        let Mount::Ssh {
            id,
            target,
            required,
            mode,
            uid,
            gid,
        } = m
        else {
            unreachable!("ssh() is called with ssh mounts")
        };
        let id = id.clone().unwrap_or_else(|| "default".into());
        let Some(socket) = self.inputs.grants.ssh.get(&id) else {
            if *required {
                return Err(setup(
                    format!(
                        "no SSH key {id:?} forwarded from the client (the mount is `required`)"
                    ),
                    format!("pass `--ssh {id}` with an agent running ($SSH_AUTH_SOCK)"),
                ));
            }
            return Ok(());
        };
        let target = target
            .clone()
            .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{n}"));
        prepared.set_env("SSH_AUTH_SOCK", target.clone());
        // In the step's private directory, like secret files: short
        // enough for a socket path, and per step.
        let path = self.secrets.path().join(format!("ssh-{n}"));
        let proxy = AgentProxy::start(
            socket,
            &path,
            mode.unwrap_or(0o600),
            uid.unwrap_or(0),
            gid.unwrap_or(0),
        )
        .map_err(|e| {
            setup(
                format!(
                    "cannot forward SSH agent `{id}` through `{}`: {e}",
                    path.display()
                ),
                "check that the agent's socket (`--ssh`) is a socket this user can reach",
            )
        })?;
        prepared.bind(&target, proxy.path().to_owned(), false);
        prepared.agents.push(proxy);
        Ok(())
    }
}

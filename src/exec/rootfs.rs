//! Root filesystems as overlay mounts of per-layer snapshots.
//!
//! Each layer is extracted once into its own snapshot directory, with
//! whiteouts stored the way overlayfs reads them; a stage's filesystem is
//! then an overlay of those snapshots, never a copy. A `run` step gets a
//! fresh upperdir on top (`redirect_dir=off,metacopy=off`, so the upperdir
//! converts to a plain OCI layer); reading a stage's files (copy `from`,
//! owner lookups) uses a read-only overlay of the same snapshots.
//!
//! Layers are added one by one with the `lowerdir+` option of the new mount
//! API (Linux 6.8), which has no limit on their number; older kernels get a
//! classic `lowerdir=a:b:c` mount.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, mount, move_mount, unmount,
};

/// An overlay mount, unmounted when dropped (by the reaper if this process
/// is killed first).
#[derive(Debug)]
pub struct OverlayMount {
    target: PathBuf,
    _watch: super::reaper::Guard,
}

impl OverlayMount {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if let Err(e) = unmount(&self.target, UnmountFlags::DETACH) {
            tracing::warn!("cannot unmount {}: {e}", self.target.display());
        } else {
            let _ = std::fs::remove_dir(&self.target);
        }
    }
}

/// The writable part of an overlay: its upperdir and workdir (same filesystem).
#[derive(Debug, Clone, Copy)]
pub struct Upper<'a> {
    /// Receives every change.
    pub upper: &'a Path,
    /// Overlayfs's scratch directory.
    pub work: &'a Path,
}

/// Mounts an overlay of `lowers` (bottom layer first) at `target`, writable
/// through `upper` when given, read-only otherwise.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> io::Result<OverlayMount> {
    if lowers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an overlay needs at least one lower directory",
        ));
    }
    let lowers = topmost_unique(lowers);
    let lowers = lowers.as_slice();
    let watch = super::reaper::watch_mount(target).map_err(io::Error::other)?;
    match mount_with_fsconfig(lowers, upper, target) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error())
                || e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
        {
            mount_classic(lowers, upper, target)?;
        }
        Err(e) => return Err(e),
    }
    Ok(OverlayMount {
        target: target.to_owned(),
        _watch: watch,
    })
}

fn mount_with_fsconfig(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // Overlayfs lists lower layers topmost first.
    for lower in lowers.iter().rev() {
        fsconfig_set_string(&fs, "lowerdir+", lower.as_path())?;
    }
    if let Some(upper) = upper {
        fsconfig_set_string(&fs, "upperdir", upper.upper)?;
        fsconfig_set_string(&fs, "workdir", upper.work)?;
    }
    fsconfig_set_string(&fs, "redirect_dir", "off")?;
    fsconfig_set_string(&fs, "metacopy", "off")?;
    fsconfig_set_string(&fs, "index", "off")?;
    fsconfig_create(&fs)?;
    let attrs = if upper.is_some() {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

fn mount_classic(lowers: &[PathBuf], upper: Option<Upper<'_>>, target: &Path) -> io::Result<()> {
    let lowerdir: Vec<String> = lowers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let mut options = format!(
        "lowerdir={},redirect_dir=off,metacopy=off,index=off",
        lowerdir.join(":")
    );
    if let Some(upper) = upper {
        let _ = write!(
            options,
            ",upperdir={},workdir={}",
            upper.upper.display(),
            upper.work.display()
        );
    }
    let flags = if upper.is_some() {
        MountFlags::empty()
    } else {
        MountFlags::RDONLY
    };
    let data = std::ffi::CString::new(options)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    mount("overlay", target, "overlay", flags, data.as_c_str())?;
    Ok(())
}

/// `lowers` without repeats, keeping each directory's topmost place.
/// Overlayfs refuses a directory twice (ELOOP), and two identical layers
/// share a snapshot; the lower copy is shadowed by the upper one anyway.
fn topmost_unique(lowers: &[PathBuf]) -> Vec<PathBuf> {
    lowers
        .iter()
        .enumerate()
        .filter(|(i, lower)| !lowers[i + 1..].contains(lower))
        .map(|(_, lower)| lower.clone())
        .collect()
}

/// A read-only view of a stack of layer snapshots.
#[derive(Debug)]
pub enum View {
    /// One layer: its snapshot directory itself.
    Single(PathBuf),
    /// Several: an overlay mount.
    Mounted(OverlayMount),
}

impl View {
    /// The root of the view.
    pub fn path(&self) -> &Path {
        match self {
            View::Single(path) => path,
            View::Mounted(mount) => mount.path(),
        }
    }
}

/// A read-only view of `lowers` (bottom first), mounted at `target` when it needs a mount.
pub fn read_only_view(lowers: &[PathBuf], target: &Path) -> io::Result<Option<View>> {
    match topmost_unique(lowers).as_slice() {
        [] => Ok(None),
        [single] => Ok(Some(View::Single(single.clone()))),
        _ => {
            std::fs::create_dir_all(target)?;
            Ok(Some(View::Mounted(mount_overlay(lowers, None, target)?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    #[test]
    fn overlay_orders_layers_and_records_changes() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        for d in ["bottom", "top", "upper", "work", "merged", "view"] {
            std::fs::create_dir(p(d)).unwrap();
        }
        std::fs::write(p("bottom/file"), "bottom").unwrap();
        std::fs::write(p("bottom/gone"), "x").unwrap();
        std::fs::write(p("top/file"), "top").unwrap();
        {
            let view = read_only_view(&[p("bottom"), p("top")], &p("view"))
                .unwrap()
                .unwrap();
            assert_eq!(
                std::fs::read_to_string(view.path().join("file")).unwrap(),
                "top"
            );
            assert!(
                std::fs::write(view.path().join("new"), "x").is_err(),
                "the view is read-only"
            );
        }
        let mounted = mount_overlay(
            &[p("bottom"), p("top")],
            Some(Upper {
                upper: &p("upper"),
                work: &p("work"),
            }),
            &p("merged"),
        )
        .unwrap();
        std::fs::write(mounted.path().join("new"), "new").unwrap();
        std::fs::remove_file(mounted.path().join("gone")).unwrap();
        drop(mounted);
        assert_eq!(std::fs::read_to_string(p("upper/new")).unwrap(), "new");
        assert!(
            std::fs::symlink_metadata(p("upper/gone"))
                .unwrap()
                .file_type()
                .is_char_device(),
            "a whiteout"
        );
        assert!(!p("merged").exists(), "unmounted and removed on drop");
    }
}

//! The context as a `RUN` step's bind mount sees it: what `.dockerignore`
//! leaves out is not there, as in `BuildKit`, which never sends it.
//!
//! [`write_whiteouts`] writes an overlay layer of whiteouts (character
//! devices 0:0) for the ignored paths; stacked over the context, read-only,
//! it hides them without copying anything. Its directories carry the
//! context's modes and owners, since overlayfs shows a merged directory's
//! attributes from the topmost layer.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{ContextError, PatternMatcher};

/// Writes under `into` a whiteout for every path of the context `root` that
/// `ignore` leaves out (a directory whose contents the patterns may bring
/// back is descended instead). Returns how many paths it hides.
pub fn write_whiteouts(
    root: &Path,
    ignore: &PatternMatcher,
    into: &Path,
) -> Result<usize, ContextError> {
    mirror_dir(root, into)?;
    let mut hidden = 0;
    let mut walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter();
    while let Some(item) = walker.next() {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_owned();
            ContextError::io(path, e.into())
        })?;
        let rel = item
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        let Some(name) = rel.to_str() else { continue };
        if !ignore.excludes(name) {
            continue;
        }
        let is_dir = item.file_type().is_dir();
        if is_dir && ignore.may_include_under(name) {
            mirror_dir(item.path(), &into.join(rel))?;
            continue;
        }
        for ancestor in rel
            .ancestors()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let made = into.join(ancestor);
            if !made.exists() {
                mirror_dir(&root.join(ancestor), &made)?;
            }
        }
        let at = into.join(rel);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &at,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| ContextError::io(&at, e.into()))?;
        hidden += 1;
        if is_dir {
            walker.skip_current_dir();
        }
    }
    Ok(hidden)
}

/// Makes directory `to` with the mode and owner of `from`.
fn mirror_dir(from: &Path, to: &Path) -> Result<(), ContextError> {
    let meta = fs::metadata(from).map_err(|e| ContextError::io(from, e))?;
    match fs::create_dir(to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ContextError::io(to, e)),
    }
    std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| ContextError::io(to, e))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| ContextError::io(to, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn ignored_paths_get_whiteouts_and_exceptions_are_kept() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: whiteouts are devices, which need root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        for f in [
            "a.md",
            "keep.md",
            "b.txt",
            "tmp/x",
            "docs/y.md",
            "docs/z.txt",
        ] {
            let path = ctx.join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, f).unwrap();
        }
        fs::set_permissions(ctx.join("docs"), fs::Permissions::from_mode(0o750)).unwrap();
        let patterns: Vec<String> = ["*.md", "!keep.md", "tmp", "docs/*.md"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let ignore = PatternMatcher::new(&patterns).unwrap();
        let into = dir.path().join("wh");
        assert_eq!(write_whiteouts(&ctx, &ignore, &into).unwrap(), 3);
        let whiteout = |p: &str| {
            fs::symlink_metadata(into.join(p)).is_ok_and(|m| m.file_type().is_char_device())
        };
        assert!(whiteout("a.md") && whiteout("tmp") && whiteout("docs/y.md"));
        assert!(!into.join("keep.md").exists() && !into.join("b.txt").exists());
        assert_eq!(
            fs::metadata(into.join("docs")).unwrap().mode() & 0o7777,
            0o750
        );
    }
}

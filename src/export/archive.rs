//! Tar archives of output directories, to a file or to standard output.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::{ExportError, io};

/// Whether `dest` means standard output (`dest=-`, as in `docker buildx build`).
pub fn is_stdout(dest: &Path) -> bool {
    dest.as_os_str() == "-"
}

/// Runs `write` on `file`, or on standard output when `file` is `-`. A
/// file is written beside itself and renamed into place when complete.
fn write_to(
    file: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    if is_stdout(file) {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        write(&mut out)?;
        return out.flush().map_err(io(file));
    }
    let partial = file.with_extension("partial");
    let mut out = std::io::BufWriter::new(fs::File::create(&partial).map_err(io(&partial))?);
    let written = write(&mut out).and_then(|()| out.flush().map_err(io(file)));
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    fs::rename(&partial, file).map_err(io(file))
}

/// The entries under `dir`, sorted by path.
fn sorted_entries(dir: &Path) -> Result<Vec<walkdir::DirEntry>, ExportError> {
    let mut paths: Vec<_> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| ExportError::Io {
            path: dir.to_owned(),
            source: e.into(),
        })?;
    paths.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(paths)
}

/// Writes the filesystem under `dir` to the tar file `file` (`-`: standard
/// output), as `docker buildx build --output type=tar` does: every entry
/// keeps its type, mode, owner and modification time; symlinks stay links.
pub fn tar_tree(dir: &Path, file: &Path) -> Result<(), ExportError> {
    let entries = sorted_entries(dir)?;
    write_to(file, |out| {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        for entry in entries {
            let rel = entry.path().strip_prefix(dir).expect("walked under dir");
            builder
                .append_path_with_name(entry.path(), rel)
                .map_err(io(entry.path()))?;
        }
        builder.finish().map_err(io(file))
    })
}

/// Writes the files under `dir` to the tar file `file` (`-`: standard
/// output): sorted, owned by root, mode 0644 (directories 0755), mtime 0,
/// so equal trees give equal archives.
pub fn tar_dir(dir: &Path, file: &Path) -> Result<(), ExportError> {
    let paths = sorted_entries(dir)?;
    write_to(file, |out| tar_files(dir, file, &paths, out))
}

fn tar_files(
    dir: &Path,
    file: &Path,
    paths: &[walkdir::DirEntry],
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    let mut builder = tar::Builder::new(out);
    for entry in paths {
        let rel = entry.path().strip_prefix(dir).expect("walked under dir");
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if entry.file_type().is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            header.set_cksum();
            builder
                .append_data(&mut header, rel, std::io::empty())
                .map_err(io(file))?;
        } else {
            let data = fs::File::open(entry.path()).map_err(io(entry.path()))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(data.metadata().map_err(io(entry.path()))?.len());
            header.set_cksum();
            builder
                .append_data(&mut header, rel, data)
                .map_err(io(file))?;
        }
    }
    builder.finish().map_err(io(file))
}

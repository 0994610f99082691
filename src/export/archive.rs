//! Deterministic tar archives of output directories.

use std::fs;
use std::path::Path;

use super::{ExportError, io};

/// Writes the files under `dir` to the tar file `file`: sorted, owned by
/// root, mode 0644 (directories 0755), mtime 0, so equal trees give equal
/// archives. The archive is written beside `file` and renamed into place.
pub fn tar_dir(dir: &Path, file: &Path) -> Result<(), ExportError> {
    let partial = file.with_extension("partial");
    let out = fs::File::create(&partial).map_err(io(&partial))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
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
    builder
        .into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .map_err(io(file))?;
    fs::rename(&partial, file).map_err(io(file))
}

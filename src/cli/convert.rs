//! `imgbuild convert`: write a Dockerfile as an `imgbuild.toml` manifest.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

use clap::Args;

use crate::error::Error;
use crate::printer::Printer;

/// Flags of `imgbuild convert`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// The Dockerfile to convert.
    #[arg(value_name = "DOCKERFILE", default_value = "Dockerfile")]
    pub dockerfile: PathBuf,
    /// Write the manifest to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the `--output` file if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
    /// The build context the manifest names. Default: the Dockerfile's
    /// directory, which `plan -f DOCKERFILE` uses too. It is written relative
    /// to the output file's directory (the current directory for standard
    /// output).
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
}

/// Converts and writes the manifest.
pub fn run(args: &ConvertArgs, printer: Printer) -> Result<(), Error> {
    let existing = match &args.output {
        Some(output) => Some(existing(output, args.force)?),
        None => None,
    };
    let text =
        fs::read_to_string(&args.dockerfile).map_err(|source| crate::dockerfile::Error::Read {
            path: args.dockerfile.clone(),
            source,
        })?;
    let dockerfile_dir = parent(&args.dockerfile);
    let context_dir = args.context.clone().unwrap_or(dockerfile_dir);
    let output_dir = args
        .output
        .as_deref()
        .map_or_else(|| PathBuf::from("."), parent);
    let context = relative_path(&output_dir, &context_dir)?;
    let name = args.dockerfile.display().to_string();
    let manifest = crate::dockerfile::convert(&name, &text, &context)
        .map_err(|d| Error::Dockerfile(d.into()))?;
    let ignore = ignore_file(&args.dockerfile);
    if ignore.is_file() {
        printer.message(&format!(
            "note: `{}` applies only to builds from the Dockerfile; the manifest's builds read `.dockerignore` in the context. Copy it there to leave out the same files.",
            ignore.display()
        ));
    }
    match &args.output {
        None => printer.result(&manifest).map_err(Error::Output),
        Some(output) => {
            if existing == Some(Existing::Special) {
                write_through(output, manifest.as_bytes())?;
                printer.message(&format!("wrote the manifest to {}", output.display()));
                return Ok(());
            }
            write_new(output, manifest.as_bytes(), args.force)?;
            printer.message(&format!(
                "wrote {}; build it with `imgbuild apply -f {}`",
                output.display(),
                output.display()
            ));
            Ok(())
        }
    }
}

/// What is at `--output` already, which decides how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Nothing, or a regular file: a temporary file is renamed into place.
    Replaceable,
    /// A character device or FIFO, or a symlink to one (`/dev/null`,
    /// `/dev/stdout` on a pipe or terminal): written through, never replaced.
    Special,
}

/// Checks `--output` before anything is converted: without `force`,
/// anything there is an error. With it, a directory, block device or socket
/// is refused, since writing a manifest there cannot be meant; so is a
/// symlink to anything but a device or FIFO: replacing the link could
/// replace a system one (`/dev/stdout` when standard output is a file), and
/// following it could replace a file anywhere.
fn existing(output: &Path, force: bool) -> Result<Existing, Error> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(meta) = output.symlink_metadata() else {
        return Ok(Existing::Replaceable);
    };
    if !force {
        return Err(exists(output));
    }
    let refuse = |what: &str, help: String| Error::Usage {
        message: format!(
            "`{}` is {what}; `--force` replaces only a regular file",
            output.display()
        ),
        help,
    };
    let file_path = || "give `--output` a file path such as `imgbuild.toml`".to_owned();
    if meta.file_type().is_symlink() {
        let target = fs::read_link(output).map_err(|e| Error::Usage {
            message: format!("cannot read the symlink `{}`: {e}", output.display()),
            help: file_path(),
        })?;
        let kind = fs::metadata(output).ok().map(|m| m.file_type());
        if kind.is_some_and(|k| k.is_char_device() || k.is_fifo()) {
            return Ok(Existing::Special);
        }
        return Err(refuse(
            &format!("a symlink to `{}`", target.display()),
            "`--force` writes through a symlink only to a device or FIFO: name the file it points to in `--output`, or remove the link first".to_owned(),
        ));
    }
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(Existing::Replaceable);
    }
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(Existing::Special);
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(refuse(what, file_path()))
}

/// Writes `bytes` into an existing character device or FIFO, as a shell
/// redirection does: it stays what it is (`-o /dev/null --force` discards
/// the manifest and leaves `/dev/null` alone).
fn write_through(output: &Path, bytes: &[u8]) -> Result<(), Error> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::FileTypeExt as _;
    let written = (|| {
        // No O_CREAT: if the node went away, nothing is created in its place.
        let fd = rustix::fs::open(
            output,
            OFlags::WRONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut file = fs::File::from(fd);
        let kind = file.metadata()?.file_type();
        if !(kind.is_char_device() || kind.is_fifo()) {
            return Err(io::Error::other(
                "it changed since it was checked; run `convert` again",
            ));
        }
        file.write_all(bytes)
    })();
    written.map_err(|e| {
        Error::Output(io::Error::new(
            e.kind(),
            format!("{}: {e}", output.display()),
        ))
    })
}

fn exists(output: &Path) -> Error {
    Error::Usage {
        message: format!("`{}` already exists", output.display()),
        help: "pass `--force` to overwrite it, or choose another `--output`".into(),
    }
}

/// The directory a file is in; `.` for a bare file name.
fn parent(file: &Path) -> PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `<Dockerfile>.dockerignore`, which only Dockerfile builds read.
fn ignore_file(dockerfile: &Path) -> PathBuf {
    let mut name = dockerfile.file_name().unwrap_or_default().to_os_string();
    name.push(".dockerignore");
    dockerfile.with_file_name(name)
}

/// The path of directory `to` relative to directory `from`, with `/`
/// separators: `.`, `ctx`, `../ctx`.
fn relative_path(from: &Path, to: &Path) -> Result<String, Error> {
    let resolve = |dir: &Path, what: &str| {
        fs::canonicalize(dir).map_err(|e| Error::Usage {
            message: format!("cannot use {what} `{}`: {e}", dir.display()),
            help: "give a directory that exists".into(),
        })
    };
    let from = resolve(from, "the output directory")?;
    let to = resolve(to, "the context directory")?;
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    for part in &to[common..] {
        let text = part.as_os_str().to_str().ok_or_else(|| Error::Usage {
            message: format!(
                "the context path `{}` is not UTF-8",
                part.as_os_str().display()
            ),
            help: "a manifest is UTF-8 text; rename the directory or pass `--context`".into(),
        })?;
        parts.push(text.to_owned());
    }
    Ok(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

/// Writes `bytes` to `output` in one step: a temporary file next to it,
/// synced, then moved into place, so a failure leaves no half-written
/// manifest and no temporary file. Without `force`, an existing file is
/// never replaced. With `force`, [`existing`] has made sure `output` is
/// missing or a regular file; devices and FIFOs go to [`write_through`].
fn write_new(output: &Path, bytes: &[u8], force: bool) -> Result<(), Error> {
    let dir = parent(output);
    let file_name = output.file_name().ok_or_else(|| Error::Usage {
        message: format!("`{}` is not a file name", output.display()),
        help: "give `--output` a file path such as `imgbuild.toml`".into(),
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".convert-{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if force {
            return fs::rename(&temp, output);
        }
        // A hard link fails when `output` exists, even if it appeared
        // since the check at the start.
        match fs::hard_link(&temp, output) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
            Err(_) if output.symlink_metadata().is_err() => fs::rename(&temp, output),
            other => other,
        }
    })();
    let _ = fs::remove_file(&temp);
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !force => Err(exists(output)),
        Err(e) => Err(Error::Output(io::Error::new(
            e.kind(),
            format!("{}: {e}", output.display()),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = root.path().join("a/b");
        let c = root.path().join("c");
        for dir in [&a, &b, &c] {
            fs::create_dir_all(dir).unwrap();
        }
        assert_eq!(relative_path(&a, &a).unwrap(), ".");
        assert_eq!(relative_path(&a, &b).unwrap(), "b");
        assert_eq!(relative_path(&b, &a).unwrap(), "..");
        assert_eq!(relative_path(&b, &c).unwrap(), "../../c");
        assert!(relative_path(&root.path().join("missing"), &a).is_err());
    }

    #[test]
    fn write_new_never_replaces_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("imgbuild.toml");
        write_new(&out, b"one", false).unwrap();
        assert!(matches!(
            write_new(&out, b"two", false),
            Err(Error::Usage { .. })
        ));
        assert_eq!(fs::read(&out).unwrap(), b"one");
        write_new(&out, b"three", true).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"three");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }
}

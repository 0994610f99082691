//! `imgbuild apply`: build the images and write the outputs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::BuildArgs;
use super::history::StepLog;
use super::metadata;
use super::session::Session;
use crate::error::Error;
use crate::exec::step::{Grants, SecretSource};
use crate::export::{self, Output};
use crate::layer::{Compression, CompressionOptions};
use crate::printer::Printer;
use crate::progress::{Progress, ProgressMode};
use crate::scheduler::{self, BuildOptions};

/// Where `--load` loads the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadArg {
    /// The docker daemon (`docker load`).
    Docker,
    /// Podman (`podman load`).
    Podman,
}

/// Flags of `imgbuild apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// What to build.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Write the images here too (repeatable): `type=oci-layout,dest=DIR`,
    /// `type=oci,dest=FILE`, `type=docker,dest=FILE`, `type=local,dest=DIR`,
    /// `type=tar,dest=FILE`, or `type=registry[,name=REF]` (push); `DIR`
    /// alone is `type=local,dest=DIR` and `-` is `type=tar,dest=-`, as in
    /// `docker buildx build`. `dest=-` writes an archive to standard output.
    #[arg(short, long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Write the image id to this file, as `docker buildx build --iidfile`:
    /// the config's digest for a single-platform image, the index's for
    /// several platforms.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write what was built to this file as JSON, with the keys of `docker
    /// buildx build --metadata-file` (`containerimage.digest`, ...).
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Push every image to each of its tags (`--output type=registry`).
    #[arg(long)]
    pub push: bool,
    /// Load the images into the local docker daemon (`--output
    /// type=docker`), or with `--load=podman` into podman, through their
    /// `load` command.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "docker", value_name = "docker|podman")]
    pub load: Option<LoadArg>,
    /// A secret for `secret` mounts (repeatable): `id=ID,src=FILE` or `id=ID,env=VAR`.
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    pub secrets: Vec<String>,
    /// Forward an SSH agent to `ssh` mounts (repeatable): `default` (`$SSH_AUTH_SOCK`) or `ID=SOCKET`.
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    pub ssh: Vec<String>,
    /// Compression of the layers of OCI layouts, OCI archives and pushed
    /// images (the store keeps them uncompressed).
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long, value_name = "N")]
    pub compression_level: Option<u32>,
    /// The OCI runtime for `run` steps, a name or a path. Default: the first
    /// of crun, runc and youki that works on this machine.
    #[arg(long, value_name = "NAME|PATH")]
    pub runtime: Option<String>,
    /// How many stages may build at once. Default: no limit, as `BuildKit`
    /// (a stage waiting for another does not count).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// How to show the build's progress on stderr; `-q` means `quiet`.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value = "auto",
        env = "IMGBUILD_PROGRESS"
    )]
    pub progress: ProgressMode,
    /// The most one layer of an image may expand to when it is extracted
    /// (a gzip bomb stops there), e.g. `64GiB` or `500M`; a layer that
    /// declares a smaller size is held to that.
    // 64 GiB: real layers compress 3-10x and rarely pass 10 GiB (CUDA and
    // ML images), and a zero-filled file can legitimately compress 1000x
    // with gzip (far more with zstd), so no ratio bound; a gzip bomb gets
    // at most 64 GiB, which free-space checks also stop.
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "64GiB",
        value_parser = parse_max_layer_size,
        env = "IMGBUILD_MAX_LAYER_SIZE"
    )]
    pub max_layer_size: u64,
}

fn parse_max_layer_size(text: &str) -> Result<u64, String> {
    match crate::ir::value::parse_size(text) {
        Some(0) => Err("the limit must be more than 0".to_owned()),
        Some(size) => Ok(size),
        None => Err(format!(
            "`{text}` is not a size: write a whole number with an optional unit, e.g. `64GiB`, `500M`"
        )),
    }
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// gzip (zlib-rs), what every registry and runtime reads.
    Gzip,
    /// zstd: smaller and faster; needs a recent runtime.
    Zstd,
    /// Uncompressed tar.
    None,
}

/// Reads `--compression` and `--compression-level`.
fn compression(args: &ApplyArgs) -> Result<CompressionOptions, Error> {
    let level = args.compression_level;
    let compression = match args.compression {
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
        CompressionArg::None => Compression::None,
    };
    let valid_level = match compression {
        Compression::Gzip => level.is_none_or(|l| l <= 9),
        Compression::Zstd => level.is_none_or(|l| (1..=22).contains(&l)),
        Compression::None => level.is_none(),
    };
    if !valid_level {
        return Err(Error::Usage {
            message: format!("invalid `--compression-level` for {:?}", args.compression)
                .to_lowercase(),
            help: "gzip takes 0 to 9, zstd 1 to 22, none takes no level".into(),
        });
    }
    Ok(CompressionOptions { compression, level })
}

/// Reads `--secret` and `--ssh` values.
fn grants(args: &ApplyArgs) -> Result<Grants, Error> {
    let mut grants = Grants::default();
    for spec in &args.secrets {
        let bad = |why: &str| Error::Usage {
            message: format!("invalid `--secret {spec}`: {why}"),
            help: "write `--secret id=ID,src=FILE` or `--secret id=ID,env=VAR`".into(),
        };
        let mut id = None;
        let mut source = None;
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_owned()),
                Some(("src" | "source", v)) => source = Some(SecretSource::File(PathBuf::from(v))),
                Some(("env", v)) => source = Some(SecretSource::Env(v.to_owned())),
                Some(("type", "file" | "env")) => {}
                _ => return Err(bad(&format!("unknown field `{field}`"))),
            }
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| bad("missing `id=`"))?;
        let source = source.unwrap_or_else(|| SecretSource::Env(id.clone()));
        grants.secrets.insert(id, source);
    }
    for spec in &args.ssh {
        let (id, socket) = match spec.split_once('=') {
            Some((id, path)) => (id.to_owned(), PathBuf::from(path)),
            None => {
                let socket = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| Error::Usage {
                    message: format!("`--ssh {spec}` forwards $SSH_AUTH_SOCK, which is not set"),
                    help: "start an agent (`eval $(ssh-agent)`) or write `--ssh ID=SOCKET`".into(),
                })?;
                (spec.clone(), PathBuf::from(socket))
            }
        };
        grants.ssh.insert(id, socket);
    }
    Ok(grants)
}

/// Builds, exports, and prints each image's digest.
pub fn run(args: &ApplyArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let outputs = outputs(args)?;
    let compression = compression(args)?;
    let started = std::time::SystemTime::now();
    let session = Session::prepare(&args.build, store_dir, printer)?;
    check_against_plan(args, &outputs, &session)?;
    // No stale id or metadata survives a failed build (buildx removes them first too).
    for file in [&args.iidfile, &args.metadata_file].into_iter().flatten() {
        remove_stale(file)?;
    }
    let options = build_options(args, &session)?;
    let progress = Progress::new(args.progress, printer, &session.graph);
    let steps = StepLog::default();
    let built = scheduler::build(
        &session.store,
        &session.graph,
        &session.context,
        &options,
        &|event| {
            steps.observe(&event);
            progress.event(&event);
        },
    );
    let context = session.context.root().to_owned();
    let images = match built {
        Ok(images) => {
            steps.record(&session.store, &args.build, &context, started, Ok(&images));
            images
        }
        Err(e) => {
            let error = e.to_string();
            steps.record(&session.store, &args.build, &context, started, Err(error));
            progress.fail(&e);
            return Err(Error::Build(e));
        }
    };
    let registry = args.build.registry.options();
    let mut pushed = Vec::new();
    for output in &outputs {
        match export::export(
            &session.store,
            &images,
            output,
            compression,
            &registry,
            args.max_layer_size,
        ) {
            Ok(done) => pushed.extend(done),
            Err(e) => {
                progress.fail(&e);
                return Err(Error::Export(e));
            }
        }
    }
    progress.finish(&images);
    report(
        args,
        &session,
        &images,
        &outputs,
        compression,
        &pushed,
        printer,
    )
}

/// The outputs the flags ask for (`--output`, `--push`, `--load`), checked
/// against each other.
fn outputs(args: &ApplyArgs) -> Result<Vec<Output>, Error> {
    let mut outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Usage {
            message: e.to_string(),
            help: "write e.g. `--output type=oci-layout,dest=out` or `--output type=registry`"
                .into(),
        })?;
    if args.push && !outputs.contains(&Output::Registry { names: Vec::new() }) {
        outputs.push(Output::Registry { names: Vec::new() });
    }
    if let Some(load) = args.load {
        let load = Output::Load(match load {
            LoadArg::Docker => export::Loader::Docker,
            LoadArg::Podman => export::Loader::Podman,
        });
        if !outputs.contains(&load) {
            outputs.push(load);
        }
    }
    check_stdout(&outputs)?;
    if args.iidfile.is_some()
        && let Some(output) = outputs.iter().find(|o| !o.holds_image())
    {
        let spec = args
            .outputs
            .iter()
            .zip(&outputs)
            .find(|(_, o)| *o == output)
            .map_or("", |(s, _)| s.as_str());
        return Err(Error::Usage {
            message: format!(
                "`--iidfile` cannot be used with `--output {spec}`: local and tar outputs hold files, not an image"
            ),
            help: "drop `--iidfile`, or write the image with `type=oci-layout`, `type=oci`, `type=docker` or `type=registry`".into(),
        });
    }
    Ok(outputs)
}

/// Refuses, before anything is built, what the plan's images cannot do:
/// one `--iidfile` for several images, several platforms in a docker
/// archive, an image with nowhere to be pushed.
fn check_against_plan(
    args: &ApplyArgs,
    outputs: &[Output],
    session: &Session,
) -> Result<(), Error> {
    let images = &session.graph.images;
    if args.iidfile.is_some() && images.len() > 1 {
        return Err(Error::Usage {
            message: format!(
                "`--iidfile` holds one image id, but this build makes {} images",
                images.len()
            ),
            help: "build one `--target`, or use `--metadata-file`, which names every image".into(),
        });
    }
    if outputs
        .iter()
        .any(|o| matches!(o, Output::DockerArchive(_) | Output::Load(_)))
        && let Some(image) = images.iter().find(|i| i.nodes.len() > 1)
    {
        return Err(Error::Usage {
            message: format!(
                "image `{}` has {} platforms, and a docker archive (`type=docker`) holds one",
                image.name,
                image.nodes.len()
            ),
            help:
                "pass one `--platform`, or use `type=oci` or `type=oci-layout`, which hold an index"
                    .into(),
        });
    }
    for output in outputs {
        if let Output::Registry { names } = output {
            for image in images {
                export::push_targets(&image.name, &image.tags, names, images.len()).map_err(
                    |e| Error::Usage {
                        message: e.to_string(),
                        help: "pushing needs a destination for every image".into(),
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// What the scheduler needs of the flags and the session.
fn build_options(args: &ApplyArgs, session: &Session) -> Result<BuildOptions, Error> {
    Ok(BuildOptions {
        context: session.context.root().to_owned(),
        manifest_dir: session.manifest_dir.clone(),
        source_date_epoch: session.source_date_epoch,
        runtime: args.runtime.clone(),
        grants: grants(args)?,
        host: crate::ir::Platform::host(),
        jobs: args.jobs.map(usize::from),
        no_cache: session.no_cache.clone(),
        scope: session.scope.clone(),
        bases: std::sync::Arc::clone(&session.bases),
        max_layer_size: args.max_layer_size,
    })
}

/// Says what was pushed, writes `--iidfile` and `--metadata-file`, and
/// prints each image's digest and tags (on stderr when stdout holds an
/// archive).
fn report(
    args: &ApplyArgs,
    session: &Session,
    images: &[scheduler::BuiltImage],
    outputs: &[Output],
    compression: CompressionOptions,
    pushed: &[export::Pushed],
    printer: Printer,
) -> Result<(), Error> {
    // After the build's display, which JSON progress keeps to JSON lines.
    if args.progress != ProgressMode::Json {
        for push in pushed {
            printer.message(&format!(
                "pushed {} ({} blobs uploaded, {} already there)",
                push.pinned(),
                push.blobs_uploaded,
                push.blobs_skipped
            ));
        }
    }
    if args.iidfile.is_some() || args.metadata_file.is_some() {
        let exported = metadata::exported(&session.store, images, outputs, compression, pushed)
            .map_err(Error::Export)?;
        if let Some(file) = &args.iidfile
            && let [image] = exported.as_slice()
        {
            write_file(file, image.id().as_bytes())?;
        }
        if let Some(file) = &args.metadata_file {
            write_file(file, &metadata::document(&exported))?;
        }
    }
    let mut lines = String::new();
    for image in images {
        let _ = write!(lines, "{} {}", image.name, image.descriptor.digest);
        for tag in &image.tags {
            lines.push(' ');
            lines.push_str(tag);
        }
        lines.push('\n');
    }
    if outputs.iter().any(Output::writes_stdout) {
        // Standard output holds the archive: the lines go to stderr.
        printer.message(lines.trim_end());
        return Ok(());
    }
    printer.result(&lines).map_err(Error::Output)
}

/// Refuses two outputs to standard output, and an archive to a terminal,
/// as `docker buildx build` does.
fn check_stdout(outputs: &[Output]) -> Result<(), Error> {
    use std::io::IsTerminal;
    let to_stdout = outputs.iter().filter(|o| o.writes_stdout()).count();
    if to_stdout > 1 {
        return Err(Error::Usage {
            message: format!(
                "{to_stdout} outputs write to standard output (`dest=-`), which holds one"
            ),
            help: "give all but one of them `dest=FILE`".into(),
        });
    }
    if to_stdout == 1 && std::io::stdout().is_terminal() {
        return Err(Error::Usage {
            message: "`--output` would write a tar archive to the terminal".into(),
            help: "redirect standard output (`-o - > rootfs.tar`), or write `dest=FILE`".into(),
        });
    }
    Ok(())
}

/// Removes what an earlier build left at `file`.
fn remove_stale(file: &Path) -> Result<(), Error> {
    match std::fs::remove_file(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Usage {
            message: format!("cannot remove the old `{}`: {e}", file.display()),
            help: "check the path given to `--iidfile` or `--metadata-file`".into(),
        }),
        _ => Ok(()),
    }
}

/// Writes `bytes` beside `file` and renames it into place, so a reader
/// never sees half a file.
fn write_file(file: &Path, bytes: &[u8]) -> Result<(), Error> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let partial = file.with_file_name(format!(".{name}.partial"));
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, file))
        .map_err(|source| {
            let _ = std::fs::remove_file(&partial);
            Error::Export(export::ExportError::Io {
                path: file.to_owned(),
                source,
            })
        })
}

//! `imgbuild apply`: build the images and write the outputs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::BuildArgs;
use crate::context::{self, PatternMatcher};
use crate::error::Error;
use crate::export::{self, Output};
use crate::layer::{Compression, CompressionOptions};
use crate::printer::Printer;
use crate::scheduler::{self, BuildOptions, Event};
use crate::store::Store;
use crate::{manifest, plan};

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

/// Flags of `imgbuild apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// What to build.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Write the images here too (repeatable): `type=oci-layout,dest=DIR`,
    /// `type=oci,dest=FILE`, `type=docker,dest=FILE` or `type=local,dest=DIR`.
    #[arg(short, long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long, value_name = "N")]
    pub compression_level: Option<u32>,
}

/// Builds, exports, and prints each image's digest.
pub fn run(args: &ApplyArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Usage {
            message: e.to_string(),
            help: "write e.g. `--output type=oci-layout,dest=out`".into(),
        })?;
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
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => Some(text.parse::<i64>().map_err(|_| Error::Usage {
            message: format!("SOURCE_DATE_EPOCH=`{text}` is not a number of seconds"),
            help: "set it to a Unix timestamp, e.g. `$(git log -1 --format=%ct)`".into(),
        })?),
        _ => None,
    };

    let project = manifest::load(&args.build.file)?;
    let graph = plan::resolve_graph(&project, &args.build.request()?)?;
    scheduler::check_supported(&graph).map_err(Error::Build)?;

    let manifest_dir = args
        .build
        .file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let context = manifest_dir.join(&project.context.value);
    let ignore = load_ignore(&context)?;
    let store = Store::open(store_dir.map_or_else(Store::default_root, Path::to_path_buf))
        .map_err(Error::Store)?;
    let _lock = store.lock_shared().map_err(Error::Store)?;
    let options = BuildOptions {
        context,
        manifest_dir,
        compression: CompressionOptions { compression, level },
        source_date_epoch,
    };
    let mut report = |event: Event<'_>| match event {
        Event::NodeStarted { node } => printer.message(&format!("=> {node}")),
        Event::StepDone { step, summary, .. } => {
            printer.message(&format!("   {step:>2}. {summary}"));
        }
    };
    let images =
        scheduler::build(&store, &graph, &ignore, &options, &mut report).map_err(Error::Build)?;
    for output in &outputs {
        export::export(&store, &images, output).map_err(Error::Export)?;
    }
    let mut lines = String::new();
    for image in &images {
        let _ = write!(lines, "{} {}", image.name, image.descriptor.digest);
        for tag in &image.tags {
            lines.push(' ');
            lines.push_str(tag);
        }
        lines.push('\n');
    }
    printer.result(&lines).map_err(Error::Output)
}

fn load_ignore(context: &Path) -> Result<PatternMatcher, Error> {
    let patterns = match context::find_ignore_file(context, None) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Usage {
                message: format!("cannot read `{}`: {e}", path.display()),
                help: "check the file's permissions".into(),
            })?;
            context::parse_dockerignore(&text)
        }
        None => Vec::new(),
    };
    PatternMatcher::new(&patterns).map_err(|e| Error::Usage {
        message: format!("invalid pattern in .dockerignore: {e}"),
        help: "patterns follow Docker's .dockerignore syntax".into(),
    })
}

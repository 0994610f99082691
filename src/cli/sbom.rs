//! `imgbuild sbom`: the packages of an image, as an SPDX 2.3 document or a table.

use std::fmt::Write as _;
use std::path::Path;

use clap::{Args, ValueEnum};

use super::RegistryArgs;
use crate::error::Error;
use crate::ir::Platform;
use crate::printer::Printer;
use crate::sbom::{self, Subject};

/// Flags of `imgbuild sbom`.
#[derive(Debug, Clone, Args)]
pub struct SbomArgs {
    /// A tag in the store (`localhost/app:1`), `oci-layout:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, or a registry image:
    /// `docker://REF` (pulled into the store first, as a base image is).
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Only this platform; default: every platform of a stored image, the
    /// build machine's of a layout or archive.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// What to print: an SPDX 2.3 JSON document per platform (a JSON array
    /// when there are several), or a table of packages.
    #[arg(long, value_enum, default_value_t = SbomFormat::SpdxJson)]
    pub format: SbomFormat,
    /// How to reach a `docker://` image's registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How `imgbuild sbom` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3, JSON.
    SpdxJson,
    /// One row per package: ecosystem, name, version, where it was found.
    Table,
}

/// Reads the image's packages and prints them.
pub fn run(args: &SbomArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let platform = args
        .platform
        .as_deref()
        .map(|p| {
            Platform::parse(p).map_err(|e| Error::Usage {
                message: format!("invalid `--platform {p}`: {e}"),
                help: e.help(),
            })
        })
        .transpose()?;
    let store = super::open_store(store_dir)?;
    let found = super::inspect::resolve(&store, &args.image, platform, &args.registry)?;
    let mut documents = Vec::new();
    let mut table = String::new();
    for image in found {
        let packages = sbom::packages(&store, &image.image).map_err(|e| Error::Usage {
            message: format!("cannot read the packages of `{}`: {e}", args.image),
            help: "the image is damaged; rebuild, re-import or pull it again".into(),
        })?;
        match args.format {
            SbomFormat::SpdxJson => {
                let subject = Subject {
                    name: args.image.clone(),
                    manifest: image.manifest.as_ref().map(ToString::to_string),
                    platform: image.platform.to_string(),
                    created: image.image.config.created.clone(),
                };
                documents.push(sbom::document(&subject, &packages));
            }
            SbomFormat::Table => render_table(&mut table, &image.platform, &packages),
        }
    }
    let out = match args.format {
        SbomFormat::SpdxJson => {
            let value = if documents.len() == 1 {
                documents.pop().expect("one document")
            } else {
                serde_json::Value::Array(documents)
            };
            let mut text = serde_json::to_string_pretty(&value).expect("JSON serializes");
            text.push('\n');
            text
        }
        SbomFormat::Table => table,
    };
    printer.result(&out).map_err(Error::Output)
}

fn render_table(out: &mut String, platform: &Platform, packages: &[sbom::Package]) {
    let width = |f: fn(&sbom::Package) -> usize, title: &str| {
        packages.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let name_width = width(|p| p.name.len(), "NAME");
    let version_width = width(|p| p.version.len(), "VERSION");
    let _ = writeln!(out, "{platform}: {} packages", packages.len());
    if packages.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{:<6}  {:<name_width$}  {:<version_width$}  FOUND IN",
        "TYPE", "NAME", "VERSION"
    );
    for p in packages {
        let _ = writeln!(
            out,
            "{:<6}  {:<name_width$}  {:<version_width$}  {}",
            p.ecosystem.name(),
            p.name,
            p.version,
            p.found_in
        );
    }
}

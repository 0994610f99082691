//! The TOML front end: reads `imgbuild.toml`, checks it, and lowers it to the
//! IR; [`emit`](mod@emit) writes a project back out as a manifest.

pub mod emit;
mod lower;

pub mod schema;

pub use emit::{Anchor, Comments, Emitted, emit};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, closest};
use crate::ir::Project;
use crate::ir::trigger::TriggerSyntax;

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read manifest `{}`", path.display())]
    #[diagnostic(help(
        "pass the manifest with `-f FILE`; without it imgbuild reads `./imgbuild.toml`"
    ))]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Reads, checks and lowers the manifest at `path`; `onbuild` triggers are
/// checked with `triggers`.
pub fn load(path: &Path, triggers: &dyn TriggerSyntax) -> Result<Project, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse(&path.display().to_string(), &text, triggers)?)
}

/// Checks and lowers manifest `text`, naming it `name` in errors; `onbuild`
/// triggers (Dockerfile instructions) are checked with `triggers`.
pub fn parse(name: &str, text: &str, triggers: &dyn TriggerSyntax) -> Result<Project, Diagnostics> {
    let source = Arc::new(SourceFile::new(name, text));
    let manifest: schema::Manifest =
        toml::from_str(text).map_err(|e| Diagnostics::from(toml_error(&source, &e)))?;
    let project = lower::lower(manifest, Arc::clone(&source), triggers)?;
    Diagnostics::check(crate::ir::check(&project))?;
    Ok(project)
}

/// Turns a TOML or serde error into a diagnostic with a suggestion.
fn toml_error(source: &SourceFile, error: &toml::de::Error) -> Diagnostic {
    let span = error.span().unwrap_or(0..0);
    let message = error.message().trim();
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let expected = &quoted[1..];
        let help = match closest(key, expected.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None if expected.is_empty() => "remove it: this table takes no keys".to_owned(),
            None => format!(
                "remove it, or use one of: {}",
                expected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return source
            .error(span, format!("unknown key `{key}`"))
            .with_help(help);
    }
    if let Some(key) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let help = match key {
            "from" => "every stage needs `from`: an image reference, `scratch`, or `stage:NAME`",
            "stage" => "every image needs `stage`: the name of the stage it ships",
            "type" => "every mount needs `type`: `cache`, `secret`, `bind`, `tmpfs` or `ssh`",
            _ => "add it",
        };
        return source
            .error(span, format!("missing key `{key}`"))
            .with_label("in this table")
            .with_help(help);
    }
    if message.contains("untagged enum OneOrMany") {
        return source
            .error(span, "expected a string or a list of strings")
            .with_help("write `\"text\"` or `[\"a\", \"b\"]`");
    }
    if message.contains("untagged enum Scalar") {
        return source
            .error(span, "expected a string, number or boolean")
            .with_help("write the value as a string, like `\"1.0\"`");
    }
    if message.contains("untagged enum Mode") {
        return source.error(span, "expected a file mode").with_help(
            "write an octal integer like `0o755` or a string like `\"0755\"` or `\"u+x\"`",
        );
    }
    if message == "duplicate key" {
        return source
            .error(span, "duplicate key")
            .with_label("defined again here")
            .with_help("each key and table may appear once; merge the two or rename one");
    }
    let help = if message.starts_with("invalid type") {
        "see the manifest reference in the book for the type of each key"
    } else {
        "fix the TOML syntax; see https://toml.io for the format"
    };
    source.error(span, message).with_help(help)
}

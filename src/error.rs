//! The library's top-level error and the exit codes it maps to.

use crate::diagnostic::Diagnostics;
use crate::{dockerfile, manifest, plan};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the build failed.
pub const EXIT_BUILD_FAILED: u8 = 1;
/// Exit code: bad input or usage (a manifest error, an unknown flag or target).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of `plan --detailed-exitcode` when some step would be built.
pub const EXIT_WOULD_BUILD: u8 = 3;

/// Any error imgbuild reports; each module's own error converts into it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// Loading the manifest failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Manifest(#[from] manifest::Error),
    /// Loading a Dockerfile failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Dockerfile(#[from] dockerfile::Error),
    /// Planning failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] plan::Error),
    /// A command-line value is wrong.
    #[error("{message}")]
    #[diagnostic(help("{help}"))]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        help: String,
    },
    /// The build failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(crate::scheduler::BuildError),
    /// The store failed.
    #[error(transparent)]
    Store(crate::store::StoreError),
    /// An output could not be written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Export(crate::export::ExportError),
    /// The build checks found something and the file makes that an error
    /// (`# check=error=true`, `[lint] error = true`); the findings are printed already.
    #[error("the build checks failed")]
    #[diagnostic(help(
        "fix what the checks found, or skip those rules: `# check=skip=RULE` in a Dockerfile, `[lint] skip = [\"RULE\"]` in a manifest"
    ))]
    ChecksFailed,
    /// A registry operation failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// An image could not be read or pulled.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] crate::image::ImageError),
    /// `doctor` found something that keeps `run` steps from working.
    #[error("this machine cannot run `run` steps yet")]
    #[diagnostic(help("fix the lines marked FAIL above"))]
    DoctorFailed,
    /// `store verify` found problems.
    #[error("the store has corrupt blobs or leftovers")]
    #[diagnostic(help("run `imgbuild store verify --repair`"))]
    StoreDirty,
    /// A check the user asked for failed (`inspect --fail-on-waste`).
    #[error("{message}")]
    #[diagnostic(help("{help}"))]
    CheckFailed {
        /// What failed.
        message: String,
        /// What to do.
        help: String,
    },
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Manifest(_)
            | Error::Dockerfile(_)
            | Error::Plan(_)
            | Error::Usage { .. }
            | Error::Registry(crate::registry::RegistryError::InvalidReference { .. }) => {
                EXIT_BAD_INPUT
            }
            Error::Output(_)
            | Error::ChecksFailed
            | Error::Registry(_)
            | Error::Image(_)
            | Error::Build(_)
            | Error::Store(_)
            | Error::Export(_)
            | Error::StoreDirty
            | Error::CheckFailed { .. }
            | Error::DoctorFailed => EXIT_BUILD_FAILED,
        }
    }

    /// The source diagnostics inside this error, if it has any.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            Error::Manifest(manifest::Error::Invalid(d))
            | Error::Dockerfile(dockerfile::Error::Invalid(d))
            | Error::Plan(plan::Error::Invalid(d)) => Some(d),
            _ => None,
        }
    }
}

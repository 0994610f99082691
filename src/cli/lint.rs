//! `imgbuild lint`: run the build checks and print what they find.

use clap::Args;

use super::BuildArgs;
use super::session::load_ignore;
use crate::error::Error;
use crate::printer::Printer;

/// Flags of `imgbuild lint`.
#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// What to check: the file, and the arguments and platform to check it with.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Checks and prints. Exit code 0 with warnings only, 1 when the file makes
/// them errors (`# check=error=true`), 2 when it cannot be read or built.
pub fn run(args: &LintArgs, printer: Printer) -> Result<(), Error> {
    let build = &args.build;
    if !build.targets.is_empty() {
        return Err(Error::Usage {
            message: "`lint` checks every stage; `--target` does not apply".into(),
            help: "remove `--target`".into(),
        });
    }
    let Some(file) = build.dockerfile() else {
        // Loading checks the manifest; no checks are defined for manifests yet.
        build.load()?;
        printer.message(&format!(
            "{}: no build checks apply to manifests yet",
            build.file.display()
        ));
        return Ok(());
    };
    let request = build.request()?;
    // Checks run on the file as written, even one imgbuild cannot build.
    let text = std::fs::read_to_string(file).map_err(|source| {
        Error::Dockerfile(crate::dockerfile::Error::Read {
            path: file.to_owned(),
            source,
        })
    })?;
    let name = file.display().to_string();
    let dockerfile = crate::dockerfile::parse_project(&name, &text);
    let context = match (&build.context, &dockerfile) {
        (Some(dir), _) => dir.clone(),
        (None, Ok(project)) => build.context_dir(project),
        (None, Err(_)) => build.file_dir(),
    };
    let ignore = load_ignore(&context, Some(file))?;
    let base_dir = build.file_dir();
    let options = BuildArgs::check_options(&request, &ignore, &base_dir);
    let findings = crate::dockerfile::check_text(&name, &text, &options)
        .map_err(|e| Error::Dockerfile(e.into()))?;
    if !findings.is_empty() {
        printer
            .result(&crate::lint::render(&findings))
            .map_err(Error::Output)?;
    }
    dockerfile.map_err(|e| Error::Dockerfile(e.into()))?;
    if crate::lint::has_errors(&findings) {
        return Err(Error::ChecksFailed);
    }
    Ok(())
}

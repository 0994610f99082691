//! `imgbuild lint`: run the build checks and the best-practice rules, and
//! print what they find; `--explain RULE` prints a rule's documentation.

use std::path::PathBuf;

use clap::Args;

use super::session::load_ignore;
use super::{BuildArgs, RegistryArgs, parse_key_value};
use crate::error::Error;
use crate::image::base::PullPolicy;
use crate::lint::Finding;
use crate::practice;
use crate::printer::Printer;

/// Flags of `imgbuild lint`: only those it honours. It checks every stage,
/// builds nothing and pulls nothing, so it has no `--target`, `--no-cache`
/// or `--pull`.
#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// The manifest, or a Dockerfile: a file whose name does not end in `.toml`.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "imgbuild.toml"
    )]
    pub file: PathBuf,
    /// Check for this target platform (the first one given) instead of the
    /// build machine's: it sets `TARGETPLATFORM` and the other predefined arguments.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ','
    )]
    pub platforms: Vec<String>,
    /// Check with this build argument's value (repeatable).
    #[arg(
        long = "arg",
        visible_alias = "build-arg",
        value_name = "NAME=VALUE",
        value_parser = parse_key_value
    )]
    pub args: Vec<(String, String)>,
    /// The build context directory, whose `.dockerignore` `CopyIgnoredFile`
    /// reads; default: the one the manifest names, or the Dockerfile's directory.
    #[arg(value_name = "CONTEXT")]
    pub context: Option<PathBuf>,
    /// Print the findings as a JSON array (`[]` when there are none).
    #[arg(long)]
    pub json: bool,
    /// Print what RULE checks, why, and how to fix what it finds, and check
    /// nothing. Any rule: `BuildKit`'s checks and the best-practice rules.
    #[arg(long, value_name = "RULE", conflicts_with_all = ["json", "context"])]
    pub explain: Option<String>,
}

impl LintArgs {
    /// The build flags these stand for, with everything lint ignores at its default.
    fn build(&self) -> BuildArgs {
        BuildArgs {
            file: self.file.clone(),
            targets: Vec::new(),
            tags: Vec::new(),
            platforms: self.platforms.clone(),
            args: self.args.clone(),
            context: self.context.clone(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            pull: PullPolicy::Never,
            registry: RegistryArgs {
                insecure: Vec::new(),
                authfile: None,
            },
        }
    }
}

/// Checks and prints. Exit code 0 with warnings only, 1 when the file makes
/// them errors (`# check=error=true`, `[lint] error = true`), 2 when it
/// cannot be read or built.
pub fn run(args: &LintArgs, printer: Printer) -> Result<(), Error> {
    if let Some(rule) = &args.explain {
        return printer.result(&explain(rule)?).map_err(Error::Output);
    }
    let build = &args.build();
    let request = build.request()?;
    let Some(file) = build.dockerfile() else {
        let project = build.load()?;
        let options = practice::Options {
            syntax: practice::Syntax::Manifest,
            args: &request.args,
            local: &[],
        };
        let findings = practice::check(&project, &options);
        return print(&findings, args.json, printer);
    };
    // Checks run on the file as written, even one imgbuild cannot build.
    let text = std::fs::read_to_string(file).map_err(|source| {
        Error::Dockerfile(crate::dockerfile::Error::Read {
            path: file.to_owned(),
            source,
        })
    })?;
    let name = file.display().to_string();
    BuildArgs::warn_foreign_syntax(&name, &text, printer);
    let dockerfile = crate::dockerfile::parse_project(&name, &text);
    let context = match (&build.context, &dockerfile) {
        (Some(dir), _) => dir.clone(),
        (None, Ok(project)) => build.context_dir(project),
        (None, Err(_)) => build.file_dir(),
    };
    let ignore = load_ignore(&context, Some(file))?;
    let base_dir = build.file_dir();
    let options = BuildArgs::check_options(&request, &ignore, &base_dir);
    let mut findings = crate::dockerfile::check_text(&name, &text, &options)
        .map_err(|e| Error::Dockerfile(e.into()))?;
    // The best-practice rules read the IR: only a file that lowers gets them.
    if let (Ok(project), Ok(parsed)) = (&dockerfile, crate::dockerfile::parse(&text)) {
        findings.extend(crate::dockerfile::check::practice(
            project, &parsed, &options,
        ));
        findings.sort_by_key(|f| (f.location.line, f.location.column));
    }
    // A file that does not build still gets its findings printed first;
    // "no findings" is left to files that do.
    let printed = if findings.is_empty() && dockerfile.is_err() {
        Ok(())
    } else {
        print(&findings, args.json, printer)
    };
    dockerfile.map_err(|e| Error::Dockerfile(e.into()))?;
    printed
}

/// Prints `findings` (a line saying there are none, or `[]`, when there
/// are none); fails when they are errors.
fn print(findings: &[Finding], json: bool, printer: Printer) -> Result<(), Error> {
    let text = if json {
        serde_json::to_string_pretty(findings).expect("findings serialize")
    } else {
        crate::lint::render(findings)
    };
    printer.result(&text).map_err(Error::Output)?;
    if crate::lint::has_errors(findings) {
        return Err(Error::ChecksFailed);
    }
    Ok(())
}

/// The documentation of `rule` (any case): its section of the book, from
/// the best-practice page, `BuildKit`'s checks page, or both when both have
/// a rule of that name.
fn explain(rule: &str) -> Result<String, Error> {
    let checks = crate::lint::buildkit::RULES;
    let practices = practice::RULES;
    let names: Vec<&str> = practices.iter().chain(&checks).map(|r| r.name).collect();
    let Some(name) = names
        .iter()
        .copied()
        .find(|name| name.eq_ignore_ascii_case(rule))
    else {
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        return Err(Error::Usage {
            message: format!("`{rule}` is not a lint rule"),
            help: match crate::diagnostic::closest(rule, names.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("the rules are {}", unique.join(", ")),
            },
        });
    };
    let mut sections = Vec::new();
    if practices.iter().any(|r| r.name == name) {
        let text = crate::lint::explanation(practice::DOCS, name)
            .expect("every best-practice rule has a section in book/src/lint.md");
        sections.push(format!("{text}\n"));
    }
    if let Some(check) = checks.iter().find(|r| r.name == name) {
        let text = crate::lint::explanation(crate::lint::buildkit::DOCS, name)
            .expect("every BuildKit check has a section in book/src/checks.md");
        sections.push(match check.url {
            Some(url) => format!("{text}\n\nBuildKit's documentation: {url}\n"),
            None => format!("{text}\n"),
        });
    }
    Ok(sections.join("\n"))
}

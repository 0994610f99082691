//! What the rules know of package managers: which commands install,
//! clean up or fill a cache, which packages are toolchains, and which
//! installs read a dependency file.

use super::Reference;
use super::shell::{operands, program, short};
use crate::ir::{Mount, Run, Template, reference};

/// The language whose toolchain image `reference` is. The list is short on
/// purpose: images that hold only a compiler and its build tools, whose
/// programs run without them. Runtimes that build too (`node`, `python`,
/// `ruby`) are not on it, and neither are JRE tags of the JDK images.
pub(super) fn toolchain_image(reference: &str) -> Option<&'static str> {
    if reference::is_local(reference) {
        return None;
    }
    let parts = Reference::split(reference);
    let tag = parts.tag.unwrap_or("latest");
    let language = match parts.name() {
        "golang" => "Go",
        "rust" => "Rust",
        "gcc" | "buildpack-deps" => "C",
        "maven" | "gradle" => "Java",
        "openjdk" | "eclipse-temurin" | "amazoncorretto" | "sapmachine" if !tag.contains("jre") => {
            "Java"
        }
        "sdk" if parts.repository.ends_with("dotnet/sdk") => ".NET",
        _ => return None,
    };
    Some(language)
}

/// Whether an installed package is a compiler or build tool.
pub(super) fn is_toolchain_package(package: &str) -> bool {
    const TOOLS: [&str; 18] = [
        "build-essential",
        "build-base",
        "gcc",
        "g++",
        "gcc-c++",
        "clang",
        "make",
        "cmake",
        "autoconf",
        "automake",
        "libtool",
        "golang",
        "golang-go",
        "rustc",
        "cargo",
        "maven",
        "default-jdk",
        "Development Tools",
    ];
    let name = package.split(['=', ':']).next().unwrap_or(package);
    TOOLS.contains(&name)
        || (name.starts_with("openjdk-")
            && (name.ends_with("-jdk") || name.ends_with("-jdk-headless")))
}

/// A system package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Manager {
    /// `apt-get`, `apt`, `aptitude`.
    Apt,
    /// `apk`.
    Apk,
    /// `yum`, `dnf`, `microdnf`, `tdnf`.
    Yum,
    /// `zypper`.
    Zypper,
}

impl Manager {
    pub(super) fn of(program: &str) -> Option<Manager> {
        match program {
            "apt-get" | "apt" | "aptitude" => Some(Manager::Apt),
            "apk" => Some(Manager::Apk),
            "yum" | "dnf" | "microdnf" | "tdnf" => Some(Manager::Yum),
            "zypper" => Some(Manager::Zypper),
            _ => None,
        }
    }

    /// Options whose value is the next word.
    pub(super) fn valued_options(self) -> &'static [&'static str] {
        match self {
            Manager::Apt => &["-o", "-c", "-t", "--option", "--config-file"],
            Manager::Apk => &["-t", "--virtual", "-X", "--repository", "-p", "--root"],
            Manager::Yum | Manager::Zypper => &[],
        }
    }

    /// The directories its cache and package lists are kept in.
    pub(super) fn cache_dirs(self) -> &'static [&'static str] {
        match self {
            Manager::Apt => &["/var/lib/apt/lists", "/var/cache/apt"],
            Manager::Apk => &["/var/cache/apk", "/etc/apk/cache"],
            Manager::Yum => &["/var/cache/yum", "/var/cache/dnf"],
            Manager::Zypper => &["/var/cache/zypp"],
        }
    }

    /// How a step that installs with `program` cleans up after itself.
    pub(super) fn same_step_cleanup(self, program: &str) -> String {
        match self {
            Manager::Apt => format!(
                "`{program} update && {program} install -y ... && rm -rf /var/lib/apt/lists/*`, or `cache` mounts on /var/cache/apt and /var/lib/apt"
            ),
            Manager::Apk => "`apk add --no-cache ...`".to_owned(),
            Manager::Yum => format!("`{program} install -y ... && {program} clean all`"),
            Manager::Zypper => "`zypper install -y ... && zypper clean --all`".to_owned(),
        }
    }
}

/// A package installation by a system package manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Install<'a> {
    pub(super) manager: Manager,
    /// The program, as `apt-get`.
    pub(super) program: &'a str,
    /// The packages, as written.
    pub(super) packages: Vec<&'a str>,
    /// `apk add --no-cache`: nothing is left to clean up.
    pub(super) no_cache: bool,
}

/// The package installation a simple command performs, if it is one.
pub(super) fn install(words: &[String]) -> Option<Install<'_>> {
    let (program, args) = program(words)?;
    let manager = Manager::of(program)?;
    let operands = operands(args, manager.valued_options());
    let (subcommand, rest) = operands.split_first()?;
    let packages = match (manager, *subcommand) {
        (Manager::Apt | Manager::Yum, "install" | "reinstall")
        | (Manager::Apk, "add")
        | (Manager::Yum, "groupinstall")
        | (Manager::Zypper, "install" | "in") => rest.to_vec(),
        (Manager::Yum, "group") if rest.first() == Some(&"install") => rest[1..].to_vec(),
        _ => return None,
    };
    Some(Install {
        manager,
        program,
        packages,
        no_cache: manager == Manager::Apk && args.iter().any(|a| a == "--no-cache"),
    })
}

/// The package cache a simple command fills, with the command as a short
/// text: an install (`apt-get install`, `apk add` without `--no-cache`) or
/// an index update (`apt-get update`, `apk update`, `dnf makecache`).
pub(super) fn fills_cache(words: &[String]) -> Option<(Manager, String)> {
    if let Some(install) = install(words) {
        return (!install.no_cache).then(|| {
            let verb = if install.manager == Manager::Apk {
                "add"
            } else {
                "install"
            };
            (install.manager, format!("{} {verb}", install.program))
        });
    }
    let (program, args) = program(words)?;
    let manager = Manager::of(program)?;
    let operands = operands(args, manager.valued_options());
    match (manager, operands.first().copied()?) {
        (Manager::Apt | Manager::Apk, "update")
        | (Manager::Yum, "makecache")
        | (Manager::Zypper, "refresh" | "ref") => {
            Some((manager, format!("{program} {}", operands[0])))
        }
        _ => None,
    }
}

/// The package caches a simple command removes, each with the command as
/// a short text.
pub(super) fn cleanups(words: &[String]) -> Vec<(Manager, String)> {
    let Some((program, args)) = program(words) else {
        return Vec::new();
    };
    let text = || short(&words.join(" "));
    if program == "rm" {
        let mut managers: Vec<Manager> = Vec::new();
        for path in args.iter().filter(|a| !a.starts_with('-')) {
            let path = path.trim_end_matches(['*', '/']);
            for manager in [Manager::Apt, Manager::Apk, Manager::Yum, Manager::Zypper] {
                let cleans = manager.cache_dirs().iter().any(|dir| {
                    path.starts_with(dir) || (path.len() > "/var".len() && dir.starts_with(path))
                });
                if cleans && !managers.contains(&manager) {
                    managers.push(manager);
                }
            }
        }
        return managers.into_iter().map(|m| (m, text())).collect();
    }
    let Some(manager) = Manager::of(program) else {
        return Vec::new();
    };
    let operands = operands(args, manager.valued_options());
    let cleans = matches!(
        (manager, operands.as_slice()),
        (Manager::Apt, ["clean" | "autoclean", ..])
            | (Manager::Apk, ["cache", "clean" | "purge", ..])
            | (Manager::Yum, ["clean", ..])
            | (Manager::Zypper, ["clean" | "cc", ..])
    );
    if cleans {
        vec![(manager, text())]
    } else {
        Vec::new()
    }
}

/// Whether a simple command removes packages (`apt-get purge`, `apk del`).
pub(super) fn removes_packages(words: &[String]) -> bool {
    let Some((program, args)) = program(words) else {
        return false;
    };
    let Some(manager) = Manager::of(program) else {
        return false;
    };
    let operands = operands(args, manager.valued_options());
    matches!(
        (manager, operands.first().copied()),
        (Manager::Apt, Some("remove" | "purge" | "autoremove"))
            | (Manager::Apk, Some("del"))
            | (
                Manager::Yum,
                Some("remove" | "erase" | "autoremove" | "groupremove")
            )
            | (Manager::Zypper, Some("remove" | "rm"))
    )
}

/// Whether `run` mounts a cache or tmpfs over one of `manager`'s cache
/// directories, so its files never reach the layer.
pub(super) fn cache_mounted(run: &Run<Template>, manager: Manager) -> bool {
    run.mounts.iter().any(|mount| {
        let target = match mount {
            Mount::Cache { target, .. } | Mount::Tmpfs { target, .. } => &target.value,
            _ => return false,
        };
        let target = target.trim_end_matches('/');
        manager
            .cache_dirs()
            .iter()
            .any(|dir| dir.starts_with(target) || target.starts_with(dir))
    })
}

/// A step that installs a project's dependencies from its manifest files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DependencyInstall {
    /// The command, as `npm ci`.
    pub(super) command: String,
    /// The files it reads, as `package.json`.
    pub(super) files: Vec<String>,
}

impl DependencyInstall {
    pub(super) fn new(command: &str, files: &[&str]) -> Self {
        Self {
            command: command.to_owned(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// `package.json and package-lock.json`.
    pub(super) fn files_text(&self) -> String {
        match self.files.as_slice() {
            [one] => format!("`{one}`"),
            [init @ .., last] => format!(
                "{} and `{last}`",
                init.iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [] => String::new(),
        }
    }

    /// `"package.json", "package-lock.json"`.
    pub(super) fn files_toml(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The dependency installation a simple command performs, if it is one:
/// a command that reads only the project's manifest and lock files. Build
/// commands (`cargo build`, `go build`, `mvn package`) are not: they need
/// the sources, and follow the whole copy in the layout this rule asks for.
pub(super) fn dependency_install(words: &[String]) -> Option<DependencyInstall> {
    let (mut program, mut args) = program(words)?;
    if matches!(program, "python" | "python3") && args.first().is_some_and(|a| a == "-m") {
        let (module, rest) = args[1..].split_first()?;
        program = module.as_str();
        args = rest;
    }
    let ops = operands(args, &[]);
    let sub = ops.first().copied();
    let install = match (program, sub) {
        ("npm", Some("ci")) => {
            DependencyInstall::new("npm ci", &["package.json", "package-lock.json"])
        }
        ("npm", Some("install" | "i")) if ops.len() == 1 => {
            DependencyInstall::new("npm install", &["package.json", "package-lock.json"])
        }
        ("yarn", None | Some("install")) => {
            DependencyInstall::new("yarn install", &["package.json", "yarn.lock"])
        }
        ("pnpm", Some("install" | "i")) if ops.len() == 1 => {
            DependencyInstall::new("pnpm install", &["package.json", "pnpm-lock.yaml"])
        }
        ("pip" | "pip3", Some("install")) => {
            let file = requirement_file(args)?;
            DependencyInstall::new(&format!("{program} install -r {file}"), &[file])
        }
        ("uv", Some("pip")) if ops.get(1) == Some(&"install") => {
            let file = requirement_file(args)?;
            DependencyInstall::new(&format!("uv pip install -r {file}"), &[file])
        }
        ("uv", Some("sync")) => DependencyInstall::new("uv sync", &["pyproject.toml", "uv.lock"]),
        ("poetry", Some("install")) => {
            DependencyInstall::new("poetry install", &["pyproject.toml", "poetry.lock"])
        }
        ("pipenv", Some("install" | "sync")) => {
            DependencyInstall::new("pipenv install", &["Pipfile", "Pipfile.lock"])
        }
        ("cargo", Some("fetch")) => {
            DependencyInstall::new("cargo fetch", &["Cargo.toml", "Cargo.lock"])
        }
        ("go", Some("mod")) if ops.get(1) == Some(&"download") => {
            DependencyInstall::new("go mod download", &["go.mod", "go.sum"])
        }
        ("bundle" | "bundler", Some("install")) => {
            DependencyInstall::new("bundle install", &["Gemfile", "Gemfile.lock"])
        }
        ("composer", Some("install")) => {
            DependencyInstall::new("composer install", &["composer.json", "composer.lock"])
        }
        ("mvn" | "mvnw", _) => {
            let goal = ops.iter().find(|o| o.starts_with("dependency:"))?;
            DependencyInstall::new(&format!("mvn {goal}"), &["pom.xml"])
        }
        ("gradle" | "gradlew", _) if ops.contains(&"dependencies") => {
            DependencyInstall::new("gradle dependencies", &["build.gradle", "settings.gradle"])
        }
        ("dotnet", Some("restore")) => DependencyInstall::new("dotnet restore", &["*.csproj"]),
        _ => return None,
    };
    Some(install)
}

/// The file of `pip install -r FILE` (or `--requirement FILE`, `-rFILE`,
/// `--requirement=FILE`).
pub(super) fn requirement_file(args: &[String]) -> Option<&str> {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "-r" || word == "--requirement" {
            return words.next().map(String::as_str);
        }
        if let Some(file) = word
            .strip_prefix("--requirement=")
            .or_else(|| word.strip_prefix("-r").filter(|f| !f.is_empty()))
        {
            return Some(file);
        }
    }
    None
}

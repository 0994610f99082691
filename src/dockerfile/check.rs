//! `BuildKit`'s build checks over a parsed Dockerfile, with its rule names,
//! messages and semantics (`frontend/dockerfile/linter` and the checks in
//! `dockerfile2llb`), reported as [`Finding`]s.
//!
//! The checks walk the file as `BuildKit` dispatches it: global arguments
//! first, then every stage in order, tracking the variables each
//! instruction sees (the base's environment, `ARG` and `ENV`), so
//! `UndefinedVar` and `UndefinedArgInFrom` know what is declared. The
//! `# check=` directive sets the file's [`RuleSet`]; a `# check=skip=...`
//! comment right above an instruction skips rules for that instruction only.
//!
//! One difference: imgbuild cannot read a registry image's config without
//! pulling it, so in a stage whose base's environment is unknown (a
//! registry image, or a base with `ONBUILD` triggers) `UndefinedVar` does
//! not run, rather than report every variable the base defines.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use indexmap::IndexMap;

use super::DockerfileError;
use super::parse::{Dockerfile, Instruction, InstructionArgs};
use super::shell::ShellLex;
use crate::context::PatternMatcher;
use crate::diagnostic::{SourceFile, closest};
use crate::image::config::DEFAULT_PATH;
use crate::image::source::{self, ImageSource};
use crate::ir::{Platform, Project, Span, reference};
use crate::lint::buildkit::{
    CONSISTENT_INSTRUCTION_CASING, COPY_IGNORED_FILE, DUPLICATE_STAGE_NAME, EXPOSE_INVALID_FORMAT,
    EXPOSE_PROTO_CASING, FROM_AS_CASING, FROM_PLATFORM_FLAG_CONST_DISALLOWED,
    INVALID_DEFAULT_ARG_IN_FROM, JSON_ARGS_RECOMMENDED, LEGACY_KEY_VALUE_FORMAT,
    MAINTAINER_DEPRECATED, MULTIPLE_INSTRUCTIONS_DISALLOWED, NO_EMPTY_CONTINUATION,
    REDUNDANT_TARGET_PLATFORM, RESERVED_STAGE_NAME, SECRETS_USED_IN_ARG_OR_ENV, STAGE_NAME_CASING,
    UNDEFINED_ARG_IN_FROM, UNDEFINED_VAR, WORKDIR_RELATIVE_PATH,
};
use crate::lint::{Finding, Report, Rule, RuleSet, looks_secret};
use crate::practice;

/// What the checks need to know besides the file.
#[derive(Debug, Clone)]
pub struct CheckOptions<'a> {
    /// `--build-arg` values.
    pub args: &'a IndexMap<String, String>,
    /// The platform being built.
    pub target: Platform,
    /// The platform of the machine that builds.
    pub host: Platform,
    /// The context's `.dockerignore`, for `CopyIgnoredFile`.
    pub ignore: Option<&'a PatternMatcher>,
    /// Where relative paths of local base images start.
    pub base_dir: &'a Path,
}

/// Runs the build checks on `dockerfile`, parsed from `source`. Fails only
/// when the `# check=` directive cannot be read.
pub fn check(
    dockerfile: &Dockerfile,
    source: &SourceFile,
    options: &CheckOptions<'_>,
) -> Result<Vec<Finding>, DockerfileError> {
    let rules = match &dockerfile.directives.check {
        Some(value) => RuleSet::parse(value).map_err(|e| {
            let line = directive_line(&source.text, "check");
            DockerfileError::new(
                line,
                1,
                format!("failed to parse check options: {e}"),
                "write `# check=skip=RULE,RULE;error=true` (or `skip=all`)",
            )
        })?,
        None => RuleSet::default(),
    };
    let mut checker = Checker {
        source,
        options,
        lex: ShellLex::new(dockerfile.directives.escape),
        report: Report::new(source.name.clone(), rules),
        stages: Vec::new(),
        by_name: HashMap::new(),
    };
    checker.run(dockerfile);
    Ok(checker.report.into_findings())
}

/// Whether `path` is absolute on `os`, as `BuildKit`'s `system.IsAbs`
/// judges a `WORKDIR`, `COPY` or `ADD` path: on Windows a drive letter is
/// dropped (only `C:` is allowed; `C:` alone, `C:dir`, other drives and
/// UNC paths are not absolute) and `\` counts as `/`.
fn is_absolute(path: &str, os: &str) -> bool {
    if os != "windows" {
        return path.starts_with('/');
    }
    let slashed = |p: &str| p.replace('\\', "/");
    let bytes = path.as_bytes();
    if bytes.len() == 2 && bytes[1] == b':' {
        return false;
    }
    if slashed(path).starts_with("//") {
        return false;
    }
    match path.split_once(':') {
        None => slashed(path).starts_with('/'),
        Some((drive, rest)) => drive.eq_ignore_ascii_case("c") && slashed(rest).starts_with('/'),
    }
}

/// The 1-based line of the parser directive `name` near the top of `text`.
fn directive_line(text: &str, name: &str) -> usize {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix('#')
                .and_then(|rest| rest.trim_start().get(..name.len()))
                .is_some_and(|key| key.eq_ignore_ascii_case(name))
        })
        .map_or(1, |i| i + 1)
}

/// The variables one instruction sees, and what the stage has declared.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// Environment and arguments with values, in the order they were set.
    env: IndexMap<String, String>,
    /// Whether `env` holds everything the base defines.
    env_known: bool,
    /// Arguments declared in the stage (or the stages it starts from).
    declared: Vec<String>,
    /// A `WORKDIR` has been set in this file.
    workdir_set: bool,
    /// A shell is set for shell-form commands (`SHELL`, or the base's).
    shell_set: bool,
    /// The stage's operating system, which says what an absolute path is.
    os: String,
}

/// What one stage tracks of its own instructions: where the last `CMD`,
/// `ENTRYPOINT` and `HEALTHCHECK` were, and whether it has `ONBUILD`
/// triggers (which the stages starting from it run).
#[derive(Debug, Default)]
struct Trackers {
    cmd: Option<(usize, usize)>,
    entrypoint: Option<(usize, usize)>,
    healthcheck: Option<(usize, usize)>,
    onbuild: bool,
}

/// A word expanded the way `BuildKit` does, with the variables it used.
struct Expanded {
    text: String,
    matched: Vec<String>,
    unmatched: Vec<String>,
}

struct Checker<'a> {
    source: &'a SourceFile,
    options: &'a CheckOptions<'a>,
    lex: ShellLex,
    report: Report,
    /// Finished stages, in order.
    stages: Vec<StageState>,
    /// Stage indexes by lowercase name.
    by_name: HashMap<String, usize>,
}

impl Checker<'_> {
    /// Line and column of an instruction.
    fn at(&self, inst: &Instruction) -> (usize, usize) {
        self.source.line_column(inst.span.start)
    }

    /// The file's rules, with those a `# check=` comment above `inst` skips.
    fn rules_for(&self, inst: &Instruction) -> RuleSet {
        local_rules(&inst.comments).map_or_else(
            || self.report.rules().clone(),
            |local| self.report.rules().merged(&local),
        )
    }

    fn add(&mut self, rules: &RuleSet, rule: &Rule, message: String, inst: &Instruction) {
        let (line, column) = self.at(inst);
        self.report.add_under(rules, rule, message, line, column);
    }

    fn expand(&self, word: &str, env: &IndexMap<String, String>) -> Option<Expanded> {
        let matched = RefCell::new(Vec::new());
        let unmatched = RefCell::new(Vec::new());
        let lookup = |name: &str| {
            let value = env.get(name).cloned();
            let list = if value.is_some() {
                &matched
            } else {
                &unmatched
            };
            let mut list = list.borrow_mut();
            if !list.iter().any(|n: &String| n == name) {
                list.push(name.to_owned());
            }
            value
        };
        let text = self.lex.process_word(word, &lookup).ok()?;
        Some(Expanded {
            text,
            matched: matched.into_inner(),
            unmatched: unmatched.into_inner(),
        })
    }

    fn run(&mut self, dockerfile: &Dockerfile) {
        for warning in &dockerfile.warnings {
            let line = warning
                .strip_prefix("line ")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let rules = self.report.rules().clone();
            self.report.add_under(
                &rules,
                &NO_EMPTY_CONTINUATION,
                "Empty continuation line".to_owned(),
                line,
                1,
            );
        }
        let first_from = dockerfile
            .instructions
            .iter()
            .position(|i| i.name == "from")
            .unwrap_or(dockerfile.instructions.len());
        let (globals, staged) = dockerfile.instructions.split_at(first_from);
        for inst in staged {
            self.parse_time(inst);
        }
        self.stage_names(staged);
        self.casing(staged);

        // Global arguments: the predefined ones, then the file's.
        let predefined = self.predefined();
        let defaults = self.meta_args(globals, &predefined, false);
        let (global_env, declared_globals) = self.meta_args(globals, &predefined, true);
        self.default_bases(staged, &defaults.0);
        let mut from_keys: Vec<String> = global_env.keys().cloned().collect();
        for name in declared_globals {
            if !from_keys.contains(&name) {
                from_keys.push(name);
            }
        }

        let mut current: Option<(StageState, Trackers, String)> = None;
        for inst in staged {
            if inst.name == "from" {
                if let Some((state, trackers, name)) = current.take() {
                    self.finish_stage(state, &trackers, &name);
                }
                current = Some(self.from(inst, &global_env, &from_keys));
                continue;
            }
            if let Some((state, trackers, _)) = &mut current {
                self.instruction(inst, state, trackers, &global_env);
            }
        }
        if let Some((state, trackers, name)) = current.take() {
            self.finish_stage(state, &trackers, &name);
        }
    }

    fn finish_stage(&mut self, mut state: StageState, trackers: &Trackers, name: &str) {
        // Stages starting from this one run its triggers, whose effect on
        // the variables is not followed here.
        state.env_known &= !trackers.onbuild;
        if !name.is_empty() {
            self.by_name.insert(name.to_owned(), self.stages.len());
        }
        self.stages.push(state);
    }

    /// Checks `BuildKit` runs while parsing: `MaintainerDeprecated`,
    /// `StageNameCasing`, `FromAsCasing`.
    fn parse_time(&mut self, inst: &Instruction) {
        let rules = self.rules_for(inst);
        if inst.name == "maintainer" {
            self.add(
                &rules,
                &MAINTAINER_DEPRECATED,
                "Maintainer instruction is deprecated in favor of using label".to_owned(),
                inst,
            );
        }
        if inst.name != "from" {
            return;
        }
        let InstructionArgs::Words(words) = &inst.args else {
            return;
        };
        let [_, as_word, name] = words.as_slice() else {
            return;
        };
        if *name != name.to_lowercase() {
            self.add(
                &rules,
                &STAGE_NAME_CASING,
                format!("Stage name '{name}' should be lowercase"),
                inst,
            );
        }
        let from_word = keyword(inst);
        let consistent_from =
            from_word == from_word.to_lowercase() || from_word == from_word.to_uppercase();
        let matches = if from_word == from_word.to_lowercase() {
            *as_word == as_word.to_lowercase()
        } else {
            *as_word == as_word.to_uppercase()
        };
        if consistent_from && !matches {
            self.add(
                &rules,
                &FROM_AS_CASING,
                format!("'{as_word}' and '{from_word}' keywords' casing do not match"),
                inst,
            );
        }
    }

    /// `ReservedStageName` and `DuplicateStageName`, under the file's rules.
    fn stage_names(&mut self, staged: &[Instruction]) {
        let rules = self.report.rules().clone();
        let mut seen: Vec<String> = Vec::new();
        for inst in staged.iter().filter(|i| i.name == "from") {
            let Some(name) = stage_name(inst) else {
                continue;
            };
            if name == "context" || name == "scratch" {
                self.add(
                    &rules,
                    &RESERVED_STAGE_NAME,
                    format!("Stage name should not use the same name as reserved stage \"{name}\""),
                    inst,
                );
            }
            if seen.contains(&name) {
                self.add(
                    &rules,
                    &DUPLICATE_STAGE_NAME,
                    format!("Duplicate stage name \"{name}\", stage names should be unique"),
                    inst,
                );
            }
            seen.push(name);
        }
    }

    /// `ConsistentInstructionCasing`, under the file's rules.
    fn casing(&mut self, staged: &[Instruction]) {
        let rules = self.report.rules().clone();
        let (mut lower, mut upper) = (0, 0);
        for inst in staged {
            let word = keyword(inst);
            if word == word.to_lowercase() {
                lower += 1;
            } else if word == word.to_uppercase() {
                upper += 1;
            }
        }
        let majority_lower = lower > upper;
        for inst in staged {
            let word = keyword(inst);
            let wanted = if majority_lower && word != word.to_lowercase() {
                "lowercase"
            } else if !majority_lower && word != word.to_uppercase() {
                "uppercase"
            } else {
                continue;
            };
            self.add(
                &rules,
                &CONSISTENT_INSTRUCTION_CASING,
                format!(
                    "Command '{word}' should match the case of the command majority ({wanted})"
                ),
                inst,
            );
        }
    }

    /// The predefined arguments, as `BuildKit` sets them.
    fn predefined(&self) -> IndexMap<String, String> {
        let mut env = IndexMap::new();
        for (prefix, platform) in [
            ("BUILD", &self.options.host),
            ("TARGET", &self.options.target),
        ] {
            env.insert(format!("{prefix}PLATFORM"), platform.to_string());
            env.insert(format!("{prefix}OS"), platform.os.clone());
            env.insert(format!("{prefix}ARCH"), platform.architecture.clone());
            env.insert(
                format!("{prefix}VARIANT"),
                platform.variant.clone().unwrap_or_default(),
            );
        }
        env
    }

    /// The global arguments' values over `predefined`, with `--build-arg`
    /// values when `with_build_args`, and every declared global name.
    fn meta_args(
        &self,
        globals: &[Instruction],
        predefined: &IndexMap<String, String>,
        with_build_args: bool,
    ) -> (IndexMap<String, String>, Vec<String>) {
        let mut env = predefined.clone();
        let mut declared = Vec::new();
        for inst in globals.iter().filter(|i| i.name == "arg") {
            for (name, default) in arg_pairs(inst) {
                let value = match self.options.args.get(&name).filter(|_| with_build_args) {
                    Some(value) => Some(value.clone()),
                    None => default.and_then(|d| self.expand(&d, &env)).map(|e| e.text),
                };
                if let Some(value) = value {
                    env.insert(name.clone(), value);
                }
                declared.push(name);
            }
        }
        (env, declared)
    }

    /// `InvalidDefaultArgInFrom`: every base must be valid with the
    /// arguments' defaults alone.
    fn default_bases(&mut self, staged: &[Instruction], defaults: &IndexMap<String, String>) {
        let rules = self.report.rules().clone();
        for inst in staged.iter().filter(|i| i.name == "from") {
            let Some(base) = base_word(inst) else {
                continue;
            };
            let Some(expanded) = self.expand(&base, defaults) else {
                return;
            };
            let text = expanded.text;
            if reference::is_local(&text) {
                continue;
            }
            if reference::validate(&text).is_err() {
                self.add(
                    &rules,
                    &INVALID_DEFAULT_ARG_IN_FROM,
                    format!(
                        "Default value for ARG {base} results in empty or invalid base image name"
                    ),
                    inst,
                );
            }
        }
    }

    /// Reports `UndefinedArgInFrom` for the variables of a `FROM` word that
    /// no global argument declares.
    fn undefined_in_from(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        unmatched: &[String],
        keys: &[String],
    ) {
        for name in unmatched {
            if keys.contains(name) {
                continue;
            }
            let mut message = format!("FROM argument '{name}' is not declared");
            if let Some(near) = closest(name, keys.iter().map(String::as_str)) {
                let _ = write!(message, " (did you mean {near}?)");
            }
            self.add(rules, &UNDEFINED_ARG_IN_FROM, message, inst);
        }
    }

    /// Starts a stage: its `FROM` checks, and the state it starts with.
    fn from(
        &mut self,
        inst: &Instruction,
        globals: &IndexMap<String, String>,
        keys: &[String],
    ) -> (StageState, Trackers, String) {
        let rules = self.rules_for(inst);
        let name = stage_name(inst).unwrap_or_default();
        let mut platform = self.options.target.clone();
        let platform_flag = inst
            .flags
            .iter()
            .find(|(flag, _)| flag == "platform")
            .and_then(|(_, value)| value.clone());
        if let Some(flag) = &platform_flag
            && let Some(expanded) = self.expand(flag, globals)
        {
            self.undefined_in_from(&rules, inst, &expanded.unmatched, keys);
            if expanded.matched == ["TARGETPLATFORM"]
                && expanded.unmatched.is_empty()
                && globals.get("TARGETPLATFORM") == Some(&expanded.text)
            {
                self.add(
                    &rules,
                    &REDUNDANT_TARGET_PLATFORM,
                    format!("Setting platform to predefined {flag} in FROM is redundant as this is the default behavior"),
                    inst,
                );
            }
            if let Ok(constant) = Platform::parse(&expanded.text) {
                if expanded.matched.is_empty() && expanded.unmatched.is_empty() {
                    let os = &constant.os;
                    let arch = &constant.architecture;
                    if !name.contains(os.as_str()) && !name.contains(arch.as_str()) {
                        self.add(
                            &rules,
                            &FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                            format!(
                                "FROM --platform flag should not use constant value \"{}\"",
                                expanded.text
                            ),
                            inst,
                        );
                    }
                }
                platform = constant;
            }
        }
        let base = base_word(inst)
            .and_then(|word| self.expand(&word, globals))
            .map(|expanded| {
                self.undefined_in_from(&rules, inst, &expanded.unmatched, keys);
                expanded.text
            })
            .unwrap_or_default();
        let mut state = self.base_state(&base, &platform);
        if platform_flag.is_some() {
            // `FROM --platform` sets it over a parent stage's too.
            state.os.clone_from(&platform.os);
        }
        (state, Trackers::default(), name)
    }

    /// What a stage starting from `base` knows before its first instruction.
    fn base_state(&self, base: &str, platform: &Platform) -> StageState {
        if let Some(&index) = self.by_name.get(&base.to_ascii_lowercase()) {
            let parent = &self.stages[index];
            return parent.clone();
        }
        let mut state = StageState {
            env_known: true,
            os: platform.os.clone(),
            ..StageState::default()
        };
        if !base.eq_ignore_ascii_case("scratch") {
            let config = reference::is_local(base)
                .then(|| {
                    source::read_config(&ImageSource::parse(base, self.options.base_dir), platform)
                        .ok()
                })
                .flatten();
            match config {
                Some(config) => {
                    state.env = config.runtime.env.into_iter().collect();
                    state.shell_set = config.runtime.shell.is_some_and(|s| !s.is_empty());
                    state.env_known = config.runtime.onbuild.is_empty();
                }
                None => state.env_known = false,
            }
        }
        // BuildKit makes sure PATH is set.
        state
            .env
            .entry("PATH".to_owned())
            .or_insert_with(|| DEFAULT_PATH.to_owned());
        state
    }

    /// `UndefinedVar` for the variables of a word that neither the stage's
    /// variables nor its declared arguments define.
    fn undefined(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &StageState,
        unmatched: &[String],
    ) {
        if !state.env_known {
            return;
        }
        for name in unmatched {
            if state.declared.contains(name) {
                continue;
            }
            let mut message = format!("Usage of undefined variable '${name}'");
            if let Some(near) = closest(name, state.env.keys().map(String::as_str)) {
                let _ = write!(message, " (did you mean ${near}?)");
            }
            self.add(rules, &UNDEFINED_VAR, message, inst);
        }
    }

    /// Expands `word` with the stage's variables, reporting undefined ones.
    fn expand_checked(
        &mut self,
        rules: &RuleSet,
        inst: &Instruction,
        state: &StageState,
        word: &str,
    ) -> Option<String> {
        let expanded = self.expand(word, &state.env)?;
        self.undefined(rules, inst, state, &expanded.unmatched);
        Some(expanded.text)
    }

    fn instruction(
        &mut self,
        inst: &Instruction,
        state: &mut StageState,
        trackers: &mut Trackers,
        globals: &IndexMap<String, String>,
    ) {
        let rules = self.rules_for(inst);
        let name = keyword(inst).to_owned();
        match (inst.name.as_str(), &inst.args) {
            ("env" | "label", InstructionArgs::KeyValues { pairs, legacy }) => {
                if *legacy {
                    self.add(
                        &rules,
                        &LEGACY_KEY_VALUE_FORMAT,
                        format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
                        inst,
                    );
                }
                let mut values = Vec::new();
                for (key, value) in pairs {
                    let key = self.expand_checked(&rules, inst, state, key);
                    let value = self.expand_checked(&rules, inst, state, value);
                    values.extend(key.zip(value));
                }
                if inst.name == "env" {
                    for (key, value) in values {
                        self.secret(&rules, inst, "ENV", &key);
                        state.env.shift_remove(&key);
                        state.env.insert(key, value);
                    }
                }
            }
            ("arg", _) => {
                for (key, default) in arg_pairs(inst) {
                    self.secret(&rules, inst, "ARG", &key);
                    let value = match (self.options.args.get(&key), default) {
                        (Some(value), _) => Some(value.clone()),
                        (None, Some(default)) => self.expand_checked(&rules, inst, state, &default),
                        (None, None) => globals.get(&key).cloned(),
                    };
                    if let Some(value) = value {
                        state.env.shift_remove(&key);
                        state.env.insert(key.clone(), value);
                    }
                    if !state.declared.contains(&key) {
                        state.declared.push(key);
                    }
                }
            }
            ("workdir", InstructionArgs::Shell(path)) => {
                if let Some(path) = self.expand_checked(&rules, inst, state, path)
                    && !state.workdir_set
                    && !is_absolute(&path, &state.os)
                {
                    self.add(
                        &rules,
                        &WORKDIR_RELATIVE_PATH,
                        format!("Relative workdir {} can have unexpected results if the base image changes", go_quote(&path)),
                        inst,
                    );
                }
                state.workdir_set = true;
            }
            ("user" | "stopsignal", InstructionArgs::Shell(word)) => {
                self.expand_checked(&rules, inst, state, word);
            }
            ("volume", InstructionArgs::Words(words) | InstructionArgs::Json(words)) => {
                for word in words {
                    self.expand_checked(&rules, inst, state, word);
                }
            }
            ("copy" | "add", InstructionArgs::Words(words) | InstructionArgs::Json(words)) => {
                self.copy(&rules, inst, state, words);
            }
            ("run", _) => {
                for (flag, value) in &inst.flags {
                    if flag != "mount" {
                        continue;
                    }
                    for field in value.as_deref().unwrap_or_default().split(',') {
                        if let Some((_, v)) = field.split_once('=') {
                            self.expand_checked(&rules, inst, state, v);
                        }
                    }
                }
            }
            ("cmd" | "entrypoint" | "healthcheck", args) => {
                let previous = match inst.name.as_str() {
                    "cmd" => &mut trackers.cmd,
                    "entrypoint" => &mut trackers.entrypoint,
                    _ => &mut trackers.healthcheck,
                };
                if let Some((line, column)) = previous.replace(self.at(inst)) {
                    self.report.add_under(
                        &rules,
                        &MULTIPLE_INSTRUCTIONS_DISALLOWED,
                        format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                        line,
                        column,
                    );
                }
                if inst.name != "healthcheck"
                    && matches!(args, InstructionArgs::Shell(_))
                    && !state.shell_set
                {
                    self.add(
                        &rules,
                        &JSON_ARGS_RECOMMENDED,
                        format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
                        inst,
                    );
                }
            }
            ("expose", InstructionArgs::Words(words)) => {
                for word in words {
                    let Ok(ports) = self
                        .lex
                        .process_words(word, &|n: &str| state.env.get(n).cloned())
                    else {
                        continue;
                    };
                    for port in ports {
                        self.port(&rules, inst, &port);
                    }
                }
            }
            ("shell", _) => state.shell_set = true,
            ("onbuild", _) => trackers.onbuild = true,
            _ => {}
        }
    }

    /// `ExposeProtoCasing` and `ExposeInvalidFormat` for one `EXPOSE` port.
    fn port(&mut self, rules: &RuleSet, inst: &Instruction, port: &str) {
        let parts: Vec<&str> = port.split(':').collect();
        let container = parts.last().copied().unwrap_or_default();
        if let Some((_, protocol)) = container.split_once('/')
            && protocol != protocol.to_lowercase()
        {
            self.add(
                rules,
                &EXPOSE_PROTO_CASING,
                format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase"),
                inst,
            );
        }
        if parts.len() > 1 {
            self.add(
                rules,
                &EXPOSE_INVALID_FORMAT,
                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"),
                inst,
            );
        }
    }

    /// The checks of `COPY` and `ADD`: undefined variables in their flags
    /// and paths, and sources the `.dockerignore` excludes.
    fn copy(&mut self, rules: &RuleSet, inst: &Instruction, state: &StageState, words: &[String]) {
        let mut from_context = true;
        for (flag, value) in &inst.flags {
            match flag.as_str() {
                "chown" | "chmod" | "checksum" => {
                    self.expand_checked(rules, inst, state, value.as_deref().unwrap_or_default());
                }
                "from" => from_context = inst.name == "add",
                _ => {}
            }
        }
        let Some((dest, sources)) = words.split_last() else {
            return;
        };
        for source in sources {
            if !inst.heredocs.is_empty() && super::parse::heredoc_word(source).is_some() {
                continue;
            }
            let Some(path) = self.expand_checked(rules, inst, state, source) else {
                continue;
            };
            if from_context && !is_remote(&path) {
                self.ignored(rules, inst, &path);
            }
        }
        self.expand_checked(rules, inst, state, dest);
    }

    /// `CopyIgnoredFile` for one source path.
    fn ignored(&mut self, rules: &RuleSet, inst: &Instruction, source: &str) {
        let Some(ignore) = self.options.ignore else {
            return;
        };
        if ignore.has_exceptions() {
            return;
        }
        let path = crate::context::ignore::clean(source);
        let excluded = if path == "." || path == "/" {
            ignore.ignores_everything()
        } else {
            ignore.excludes(path.trim_start_matches('/'))
        };
        if excluded {
            let verb = if inst.name == "add" { "Add" } else { "Copy" };
            self.add(
                rules,
                &COPY_IGNORED_FILE,
                format!(
                    "Attempting to {verb} file {} that is excluded by .dockerignore",
                    go_quote(&path)
                ),
                inst,
            );
        }
    }

    /// `SecretsUsedInArgOrEnv` for an `ARG` or `ENV` name.
    fn secret(&mut self, rules: &RuleSet, inst: &Instruction, instruction: &str, key: &str) {
        if looks_secret(key) {
            self.add(
                rules,
                &SECRETS_USED_IN_ARG_OR_ENV,
                format!(
                    "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
                    go_quote(key)
                ),
                inst,
            );
        }
    }
}

/// Runs the best-practice rules ([`crate::practice`]) on `project`,
/// lowered from `dockerfile`: under the file's `# check=` directive, and
/// under the `# check=skip=` comment above an instruction for what that
/// instruction wrote.
pub fn practice(
    project: &Project,
    dockerfile: &Dockerfile,
    options: &CheckOptions<'_>,
) -> Vec<Finding> {
    let local: Vec<(Span, RuleSet)> = dockerfile
        .instructions
        .iter()
        .filter_map(|inst| Some((inst.span.clone(), local_rules(&inst.comments)?)))
        .collect();
    practice::check(
        project,
        &practice::Options {
            syntax: practice::Syntax::Dockerfile,
            args: options.args,
            local: &local,
        },
    )
}

/// The rules a `check=` comment above an instruction skips, if it has one.
fn local_rules(comments: &[String]) -> Option<RuleSet> {
    for comment in comments {
        let Some((key, value)) = comment.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("check") {
            continue;
        }
        let value = value.trim();
        let value = value.split(' ').next().unwrap_or_default();
        return RuleSet::parse(value).ok();
    }
    None
}

/// The instruction's keyword as written (`FROM`, `from`, `From`).
fn keyword(inst: &Instruction) -> &str {
    let original = inst.original.trim_start();
    original
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or_default()
}

/// The lowercase stage name of a `FROM ... AS NAME`.
fn stage_name(inst: &Instruction) -> Option<String> {
    match &inst.args {
        InstructionArgs::Words(words) if words.len() == 3 => Some(words[2].to_lowercase()),
        _ => None,
    }
}

/// The image word of a `FROM`.
fn base_word(inst: &Instruction) -> Option<String> {
    match &inst.args {
        InstructionArgs::Words(words) => words.first().cloned(),
        _ => None,
    }
}

/// The `(name, default)` pairs of an `ARG`, as written.
fn arg_pairs(inst: &Instruction) -> Vec<(String, Option<String>)> {
    match &inst.args {
        InstructionArgs::Words(words) => words
            .iter()
            .map(|w| match w.split_once('=') {
                Some((name, default)) => (name.to_owned(), Some(default.to_owned())),
                None => (w.clone(), None),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_remote(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://") || path.starts_with("git@")
}

/// Go's `%q` for the strings these messages quote.
fn go_quote(text: &str) -> String {
    format!("{text:?}")
}

#[cfg(test)]
mod tests;

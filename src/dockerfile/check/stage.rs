//! The checks of `FROM` and stages: stage names and their casing, the
//! global `ARG`s `FROM` may use, and the base's platform and environment.

use std::fmt::Write as _;

use indexmap::IndexMap;

use crate::diagnostic::closest;
use crate::dockerfile::parse::Instruction;
use crate::image::config::DEFAULT_PATH;
use crate::image::source::{self, ImageSource};
use crate::ir::{Platform, reference};
use crate::lint::RuleSet;
use crate::lint::buildkit::{
    CONSISTENT_INSTRUCTION_CASING, DUPLICATE_STAGE_NAME, FROM_PLATFORM_FLAG_CONST_DISALLOWED,
    INVALID_DEFAULT_ARG_IN_FROM, REDUNDANT_TARGET_PLATFORM, RESERVED_STAGE_NAME,
    UNDEFINED_ARG_IN_FROM,
};

use super::{Checker, StageState, Trackers, arg_pairs, base_word, keyword, stage_name};

impl Checker<'_> {
    /// `ReservedStageName` and `DuplicateStageName`, under the file's rules.
    pub(super) fn stage_names(&mut self, staged: &[Instruction]) {
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
    pub(super) fn casing(&mut self, staged: &[Instruction]) {
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
    pub(super) fn predefined(&self) -> IndexMap<String, String> {
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
    pub(super) fn meta_args(
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
    pub(super) fn default_bases(
        &mut self,
        staged: &[Instruction],
        defaults: &IndexMap<String, String>,
    ) {
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
    pub(super) fn undefined_in_from(
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
    pub(super) fn from(
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
    pub(super) fn base_state(&self, base: &str, platform: &Platform) -> StageState {
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
}

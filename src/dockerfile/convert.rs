//! `imgbuild convert`: a Dockerfile written as an `imgbuild.toml` manifest.
//!
//! The Dockerfile is lowered to the IR exactly as `-f Dockerfile` lowers it,
//! and the IR is written out by [`crate::manifest::emit`]. Build arguments
//! stay arguments, with their defaults: nothing is expanded or baked in.
//! Comments carry over: those above an instruction, and those between its
//! continuation lines, go above the stage, step or setting it became;
//! those before the first instruction and after the last stay at the top
//! and the bottom.
//!
//! A conversion is checked before it is returned: the manifest is read back
//! with the manifest front end and must lower to the same project, spans
//! aside. So a converted manifest builds what the Dockerfile builds, and a
//! value the manifest would refuse is reported at its line in the
//! Dockerfile.

use std::sync::Arc;

use miette::Diagnostic as _;
use serde::Serialize;

use super::lower::{self, Placement};
use super::parse::{Dockerfile, Instruction, InstructionArgs};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::ir::{Image, Located, Platform, Project, Stage, StagePlatform};
use crate::manifest::{self, Anchor, Comments, Emitted};

/// Instructions that set a stage setting rather than add steps, with the
/// setting's key in the manifest.
const SETTINGS: [(&str, &str); 9] = [
    ("label", "labels"),
    ("maintainer", "author"),
    ("expose", "expose"),
    ("volume", "volumes"),
    ("entrypoint", "entrypoint"),
    ("cmd", "cmd"),
    ("healthcheck", "healthcheck"),
    ("stopsignal", "stopsignal"),
    ("onbuild", "onbuild"),
];

/// Converts Dockerfile `text`, named `name` in errors, to manifest text
/// whose build context is `context` (relative to where the manifest will
/// be, `/`-separated).
pub fn convert(name: &str, text: &str, context: &str) -> Result<String, Diagnostics> {
    let (source, dockerfile) = super::parse_source(name, text)?;
    let (mut project, placements) = lower::lower_placed(&dockerfile, Arc::clone(&source))?;
    project.context = Located::new(context.to_owned(), 0..0);
    refuse_deferred_mounts(&project)?;
    let comments = comments(&source.text, &dockerfile, &placements, &project);
    let emitted = manifest::emit(&project, &comments);
    check(&project, &emitted, &dockerfile, &placements)?;
    Ok(emitted.text)
}

/// A manifest mount's type, mode, ids, size and flags are literal, so a
/// `--mount` that sets one with a variable has no manifest form.
fn refuse_deferred_mounts(project: &Project) -> Result<(), Diagnostics> {
    let deferred = project
        .stages
        .values()
        .flat_map(|stage| &stage.steps)
        .filter_map(|step| match step {
            crate::ir::Step::Run(run) => Some(&run.mounts),
            _ => None,
        })
        .flatten()
        .find_map(|mount| match mount {
            crate::ir::Mount::Deferred { options } => options.iter().find_map(|o| o.value.as_ref()),
            _ => None,
        });
    match deferred {
        Some(at) => Err(project
            .source
            .error(
                at.span.clone(),
                "imgbuild cannot convert a `--mount` whose type, `mode`, `uid`, `gid`, `size`, `sharing` or flags use variables (BuildKit's dockerfile frontend expands them since 1.3; `imgbuild apply` builds such a Dockerfile, but a manifest mount has no variables there)",
            )
            .with_help("a manifest mount takes these literally; write the values in the Dockerfile, then convert")
            .into()),
        None => Ok(()),
    }
}

/// Reads `emitted` back as a manifest and checks that it is `project`.
fn check(
    project: &Project,
    emitted: &Emitted,
    dockerfile: &Dockerfile,
    placements: &[Placement],
) -> Result<(), Diagnostics> {
    let source = &project.source;
    let read = manifest::parse("converted manifest", &emitted.text, &super::Triggers).map_err(
        |invalid| {
            let errors = invalid
                .errors
                .iter()
                .map(|error| point_back(source, emitted, error))
                .collect();
            Diagnostics { errors }
        },
    )?;
    let expected = definition(project);
    let actual = definition(&read);
    let Some(part) = (0..expected.len().max(actual.len()))
        .find(|&i| expected.get(i) != actual.get(i))
        .and_then(|i| expected.get(i).or(actual.get(i)))
    else {
        return Ok(());
    };
    // The instruction that made the step, else the stage's `FROM`.
    let stage_index = part
        .stage
        .as_ref()
        .and_then(|name| project.stages.get_index_of(name));
    let instruction = part.step.and_then(|step| {
        dockerfile
            .instructions
            .iter()
            .zip(placements)
            .find(|(_, p)| p.stage == stage_index && p.steps.contains(&step))
            .map(|(inst, _)| inst.span.start..inst.span.start + inst.name.len())
    });
    let span = instruction
        .or_else(|| stage_index.map(|i| project.stages[i].name.span.clone()))
        .unwrap_or(0..0);
    Err(source
        .error(
            span,
            format!(
                "`imgbuild convert` cannot write {} so that it builds the same",
                part.what
            ),
        )
        .with_help("this is a bug in imgbuild: please report it with this Dockerfile; `imgbuild apply -f` builds the Dockerfile itself meanwhile")
        .into())
}

/// Re-reports an error found in the converted manifest at the Dockerfile
/// position of the value it is about.
fn point_back(source: &SourceFile, emitted: &Emitted, error: &Diagnostic) -> Diagnostic {
    let offset = error
        .labels()
        .and_then(|mut labels| labels.next())
        .map_or(0, |label| label.offset());
    let span = emitted.origin_of(offset).unwrap_or(0..0);
    let diagnostic = source.error(
        span,
        format!(
            "{}, which a manifest does not accept",
            error.message.trim_end_matches('.')
        ),
    );
    match &error.help {
        Some(help) => diagnostic.with_help(help.clone()),
        None => diagnostic,
    }
}

/// One part of what a project says, spans aside.
#[derive(Debug, PartialEq, Eq)]
struct Part {
    /// What it is, for messages: `step 3 of stage build`.
    what: String,
    /// The stage it belongs to, if any.
    stage: Option<String>,
    /// The step it is, from 0, if it is one.
    step: Option<usize>,
    /// Its value as JSON text (key order kept, so order counts).
    json: String,
}

/// What `project` says, part by part, without spans or the source file:
/// two projects with equal definitions are the same build. Fixed stage
/// platforms are normalized, as the manifest front end normalizes them.
fn definition(project: &Project) -> Vec<Part> {
    let Project {
        source: _,
        context,
        platforms,
        args,
        arg_scope,
        stages,
        images,
        groups,
        checks: _,
        source_map: _,
    } = project;
    let part = |what: String, stage: Option<&str>, json: String| Part {
        what,
        stage: stage.map(str::to_owned),
        step: None,
        json,
    };
    let platform_names = |platforms: &[Located<Platform>]| -> Vec<String> {
        platforms.iter().map(|p| p.value.to_string()).collect()
    };
    let mut parts = vec![
        part("the build context".into(), None, json(context)),
        part(
            "the platforms".into(),
            None,
            json(&platform_names(platforms)),
        ),
        part("the arguments".into(), None, json(args)),
        part("the argument scope".into(), None, json(arg_scope)),
    ];
    for (key, stage) in stages {
        let Stage {
            name,
            from,
            platform,
            config,
            steps,
        } = stage;
        let platform = platform.as_ref().map(|p| match &p.value {
            StagePlatform::Build => "build".to_owned(),
            StagePlatform::Fixed(text) if !text.contains('$') => {
                Platform::parse(text).map_or_else(|_| text.clone(), |platform| platform.to_string())
            }
            StagePlatform::Fixed(text) => text.clone(),
        });
        let stage_part =
            |what: &str, json: String| part(format!("{what} of stage `{key}`"), Some(key), json);
        parts.push(stage_part("the name", json(name)));
        parts.push(stage_part("the base", json(from)));
        parts.push(stage_part("the platform", json(&platform)));
        parts.push(stage_part("the settings", json(config)));
        parts.push(stage_part("the number of steps", json(&steps.len())));
        for (i, step) in steps.iter().enumerate() {
            parts.push(Part {
                step: Some(i),
                ..stage_part(&format!("step {}", i + 1), json(step))
            });
        }
    }
    for (key, image) in images {
        let Image {
            name,
            stage,
            tags,
            platforms,
            labels,
            annotations,
        } = image;
        parts.push(part(
            format!("image `{key}`"),
            Some(&stage.value),
            json(&(
                name,
                stage,
                tags,
                platform_names(platforms),
                labels,
                annotations,
            )),
        ));
    }
    for (key, group) in groups {
        parts.push(part(
            format!("group `{key}`"),
            None,
            json(&(&group.name, &group.members)),
        ));
    }
    parts
}

/// JSON text of an IR value.
fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("IR values always serialize")
}

/// The comments of a Dockerfile, placed where its instructions landed.
fn comments(
    text: &str,
    dockerfile: &Dockerfile,
    placements: &[Placement],
    project: &Project,
) -> Comments {
    let lines: Vec<&str> = text.lines().collect();
    let mut comments = Comments::default();
    let mut pending: Vec<String> = Vec::new();
    // Lines before this index are directives or belong to an instruction.
    let mut next_line = directive_lines(&lines);
    for (index, (inst, placement)) in dockerfile.instructions.iter().zip(placements).enumerate() {
        let gap = lines.get(next_line..inst.line - 1).unwrap_or_default();
        let mut paragraphs = paragraphs(gap);
        if index == 0 && !paragraphs.is_empty() {
            // The file's own introduction: everything but a paragraph that
            // sits directly on the first instruction.
            let attached = gap.last().is_some_and(|l| is_comment(l));
            let keep = usize::from(attached);
            let header: Vec<Vec<String>> = paragraphs.drain(..paragraphs.len() - keep).collect();
            comments.header = join_paragraphs(header);
        }
        push_paragraphs(&mut pending, paragraphs);
        push_paragraphs(&mut pending, vec![inner_comments(&lines, inst)]);
        if let Some(anchor) = anchor(inst, placement, project)
            && !pending.is_empty()
        {
            comments.add(anchor, std::mem::take(&mut pending));
        }
        next_line = inst.end_line;
    }
    let rest = lines.get(next_line..).unwrap_or_default();
    push_paragraphs(&mut pending, paragraphs(rest));
    comments.footer = pending;
    if let Some(first) = project.images.keys().next() {
        comments.add(
            Anchor::Image(first.clone()),
            [
                "# Every stage is an image, so `--target STAGE` builds it as with `docker build`;"
                    .to_owned(),
                "# the `default` group builds the last stage.".to_owned(),
            ],
        );
    }
    comments
}

/// How many lines at the top are parser directives (`# syntax=`, `# escape=`,
/// `# check=`): they mean nothing in a manifest.
fn directive_lines(lines: &[&str]) -> usize {
    lines
        .iter()
        .take_while(|line| {
            let line = line.trim_start_matches('\u{feff}').trim_start();
            let Some(rest) = line.strip_prefix('#') else {
                return false;
            };
            let Some((key, _)) = rest.split_once('=') else {
                return false;
            };
            let key = key.trim().to_ascii_lowercase();
            ["syntax", "escape", "check"].contains(&key.as_str())
        })
        .count()
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The comment paragraphs among `lines`, split at blank lines.
fn paragraphs(lines: &[&str]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut current = Vec::new();
    for line in lines {
        if is_comment(line) {
            current.push(line.trim().to_owned());
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn join_paragraphs(paragraphs: Vec<Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    push_paragraphs(&mut out, paragraphs);
    out
}

/// Appends `paragraphs` to `lines`, an empty line between two paragraphs.
fn push_paragraphs(lines: &mut Vec<String>, paragraphs: Vec<Vec<String>>) {
    for paragraph in paragraphs {
        if paragraph.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.extend(paragraph);
    }
}

/// Comment lines between an instruction's continuation lines (`BuildKit`
/// drops them from the instruction); heredoc bodies are content, not comments.
fn inner_comments(lines: &[&str], inst: &Instruction) -> Vec<String> {
    let last = inst
        .end_line
        .saturating_sub(inst.heredoc_lines())
        .max(inst.line);
    lines
        .get(inst.line..last)
        .unwrap_or_default()
        .iter()
        .filter(|line| is_comment(line))
        .map(|line| line.trim().to_owned())
        .collect()
}

/// The part of the manifest an instruction became, if it became one.
fn anchor(inst: &Instruction, placement: &Placement, project: &Project) -> Option<Anchor> {
    let Some(stage_index) = placement.stage else {
        // A global ARG: the first of its arguments that is declared.
        let InstructionArgs::Words(words) = &inst.args else {
            return None;
        };
        return words
            .iter()
            .map(|w| w.split_once('=').map_or(w.as_str(), |(name, _)| name))
            .find(|name| project.args.contains_key(*name))
            .map(|name| Anchor::Arg(name.to_owned()));
    };
    let stage = project.stages.get_index(stage_index)?.0.clone();
    if inst.name == "from" {
        return Some(Anchor::Stage(stage));
    }
    if !placement.steps.is_empty() {
        return Some(Anchor::Step {
            stage,
            index: placement.steps.start,
        });
    }
    SETTINGS
        .iter()
        .find(|(name, _)| *name == inst.name)
        .map(|(_, key)| Anchor::Setting { stage, key })
}

#[cfg(test)]
mod tests;

//! `ONBUILD` triggers: instructions an image stores (`OnBuild` in its
//! config) for the builds that start from it.
//!
//! A trigger is kept as the text Docker stores: the instruction after
//! `ONBUILD`, with its heredocs appended. A build whose base has triggers
//! parses each one as a Dockerfile instruction and runs it first, as if it
//! were written right after `FROM` (see [`crate::plan`]). As in Docker, a
//! trigger may not be `ONBUILD`, `FROM` or `MAINTAINER`.

use super::DockerfileError;
use super::parse::{Instruction, InstructionArgs, parse};

/// The text Docker stores for the `ONBUILD` instruction `inst`: the
/// logical line without the `ONBUILD` keyword, then each heredoc's body and
/// delimiter.
pub(crate) fn expression(inst: &Instruction) -> String {
    let original = inst.original.trim_start();
    let keyword_end = original
        .find(|c: char| c.is_whitespace())
        .unwrap_or(original.len());
    let mut text = original[keyword_end..].trim_start().to_owned();
    for heredoc in &inst.heredocs {
        text.push('\n');
        text.push_str(&heredoc.content);
        text.push_str(&heredoc.name);
    }
    text
}

/// Checks that the inner instruction of an `ONBUILD` may be a trigger.
pub(crate) fn check_inner(inner: &Instruction) -> Result<(), (String, String)> {
    let keyword = inner.name.to_ascii_uppercase();
    match inner.name.as_str() {
        "onbuild" => Err((
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_owned(),
            "write the trigger's instruction once, after a single `ONBUILD`".to_owned(),
        )),
        "from" | "maintainer" => Err((
            format!("{keyword} isn't allowed as an ONBUILD trigger"),
            "a trigger runs inside the stage that starts from this image; use `RUN`, `COPY`, `ENV`, ... instead".to_owned(),
        )),
        _ if matches!(inner.args, InstructionArgs::Ignored) => Err((
            format!("unknown instruction `{keyword}` in an ONBUILD trigger"),
            "a trigger is one Dockerfile instruction such as `RUN make` or `COPY . /app`".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// Parses a stored trigger: exactly one instruction that may be a trigger.
pub(crate) fn parse_trigger(trigger: &str) -> Result<Instruction, DockerfileError> {
    let invalid = |message: String, help: &str| DockerfileError::new(1, 1, message, help);
    let mut parsed = parse(trigger).map_err(|e| {
        invalid(
            e.message,
            "a trigger is one Dockerfile instruction such as `RUN make` or `COPY . /app`",
        )
    })?;
    if parsed.instructions.len() != 1 {
        return Err(invalid(
            "onbuild trigger should be a single expression".to_owned(),
            "write one instruction per trigger",
        ));
    }
    let inst = parsed.instructions.remove(0);
    check_inner(&inst).map_err(|(message, help)| invalid(message, &help))?;
    Ok(inst)
}

/// Checks that `trigger` is one Dockerfile instruction that may run as an
/// `ONBUILD` trigger, for front ends that take trigger text as is.
pub(super) fn check_trigger(trigger: &str) -> Result<(), DockerfileError> {
    parse_trigger(trigger).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onbuild(text: &str) -> Instruction {
        let mut parsed = parse(text).unwrap();
        parsed.instructions.remove(0)
    }

    #[test]
    fn expression_is_the_instruction_after_onbuild() {
        assert_eq!(
            expression(&onbuild(
                "ONBUILD RUN --mount=type=cache,target=/c make all\n"
            )),
            "RUN --mount=type=cache,target=/c make all"
        );
        assert_eq!(
            expression(&onbuild("onbuild   COPY . /app\n")),
            "COPY . /app"
        );
    }

    #[test]
    fn expression_keeps_heredocs() {
        let inst = onbuild("ONBUILD RUN <<EOF\necho hi\nEOF\n");
        let text = expression(&inst);
        assert_eq!(text, "RUN <<EOF\necho hi\nEOF");
        let again = parse_trigger(&text).unwrap();
        assert_eq!(again.heredocs[0].content, "echo hi\n");
    }

    #[test]
    fn forbidden_triggers_are_refused_as_docker_does() {
        for (text, message) in [
            (
                "ONBUILD echo",
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ),
            ("FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
            (
                "maintainer me",
                "MAINTAINER isn't allowed as an ONBUILD trigger",
            ),
            ("FETCH x", "unknown instruction `FETCH`"),
            ("RUN a\nRUN b", "single expression"),
        ] {
            let error = check_trigger(text).unwrap_err();
            assert!(error.message.contains(message), "{text}: {error}");
        }
        check_trigger("RUN echo hi").unwrap();
        check_trigger("COPY --from=build /out /app").unwrap();
    }
}

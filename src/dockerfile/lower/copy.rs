//! `COPY` and `ADD`: their flags, sources and destination, and heredoc
//! sources as `file` steps.

use super::{Flags, Lowerer, after_flags};
use crate::dockerfile::parse::{Heredoc, Instruction, InstructionArgs, heredoc_word};
use crate::dockerfile::word::{self, HeredocText, WordError, has_variable};
use crate::ir::{Copy, File, Located, Span, Step, Template};

impl Lowerer {
    /// `COPY` and `ADD`: the flags, then the sources and the destination;
    /// a heredoc source becomes a `file` step.
    pub(super) fn copy(&mut self, inst: &Instruction, flags: &Flags) {
        let keyword = inst.name.to_uppercase();
        let words = match &inst.args {
            InstructionArgs::Json(w) | InstructionArgs::Words(w) => w.clone(),
            _ => Vec::new(),
        };
        let quotes = matches!(inst.args, InstructionArgs::Words(_));
        if words.len() < 2 {
            self.error(
                self.line_span(inst),
                format!("`{keyword}` needs a source and a destination"),
                format!("write `{keyword} SOURCE... DEST`"),
            );
            return;
        }
        let Some(mut copy) = self.copy_flags(flags) else {
            return;
        };
        let mut cursor = after_flags(inst, flags);
        let mut files = Vec::new();
        let (dest, sources) = words.split_last().expect("two words or more");
        let mut located_sources = Vec::new();
        for raw in sources {
            let span = self.locate(inst, raw, &mut cursor);
            if let Some(heredoc) = quotes.then(|| heredoc_for(raw, &inst.heredocs)).flatten() {
                files.push((heredoc, span));
            } else {
                located_sources.push((raw, span));
            }
        }
        let dest_span = self.locate(inst, dest, &mut cursor);
        if quotes && heredoc_word(dest).is_some() {
            self.error(
                dest_span,
                format!("{keyword} cannot accept a heredoc as a destination"),
                format!("write the destination path last: `{keyword} <<EOF /path/to/file`"),
            );
            return;
        }
        let Some(to) = self.template(dest, dest_span, quotes) else {
            return;
        };
        for (raw, span) in located_sources {
            if let Some(t) = self.template(raw, span, quotes) {
                copy.sources.push(t);
            }
        }
        let into_dir = to.value.ends_with('/') || to.value == "." || sources.len() > 1;
        self.heredoc_files(inst, &files, &to, into_dir, &copy);
        if copy.sources.is_empty() {
            return;
        }
        copy.to = to;
        let step = if inst.name == "copy" {
            Step::Copy(copy)
        } else {
            Step::Add(copy)
        };
        self.stage().steps.push(step);
    }

    /// A copy with the options `flags` of `COPY`/`ADD` give, and no sources
    /// yet; `None` after an error.
    fn copy_flags(&mut self, flags: &Flags) -> Option<Copy<Template>> {
        let mut copy = Copy {
            sources: Vec::new(),
            to: Located::new(String::new(), 0..0),
            from: None,
            chown: None,
            chmod: None,
            link: false,
            parents: false,
            exclude: Vec::new(),
            checksum: None,
            keep_git_dir: None,
        };
        for (flag, value, span) in flags {
            let text = || value.clone().unwrap_or_default();
            let boolean = || match value.as_deref() {
                None | Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            };
            match flag.as_str() {
                "link" | "parents" | "keep-git-dir" => {
                    let Some(on) = boolean() else {
                        self.error(
                            span.clone(),
                            format!("invalid `--{flag}` value"),
                            format!("write `--{flag}`, `--{flag}=true` or `--{flag}=false`"),
                        );
                        return None;
                    };
                    if flag == "link" {
                        copy.link = on;
                    } else if flag == "keep-git-dir" {
                        copy.keep_git_dir = Some(on);
                    } else {
                        copy.parents = on;
                    }
                }
                "from" => {
                    let mut t = self.template(&text(), span.clone(), true)?;
                    // BuildKit reads `--from` before expanding anything.
                    if has_variable(&t.value) {
                        self.error(
                            span.clone(),
                            "variable expansion is not supported for --from",
                            "define a new stage with FROM using ARG from global scope as a workaround: `ARG SRC=build` before the first `FROM`, `FROM ${SRC} AS src`, then `COPY --from=src`",
                        );
                        return None;
                    }
                    t.value = self.source_ref(t.value);
                    copy.from = Some(t);
                }
                "chown" => copy.chown = self.template(&text(), span.clone(), true),
                "chmod" => copy.chmod = self.template(&text(), span.clone(), true),
                "checksum" => copy.checksum = self.template(&text(), span.clone(), true),
                _ => {
                    let t = self.template(&text(), span.clone(), true)?;
                    copy.exclude.push(t);
                }
            }
        }
        Some(copy)
    }

    /// A `file` step for each heredoc source of `inst` (at its span), into
    /// `to` (a directory when `into_dir`), with the owner and mode of `copy`.
    fn heredoc_files(
        &mut self,
        inst: &Instruction,
        files: &[(&Heredoc, Span)],
        to: &Template,
        into_dir: bool,
        copy: &Copy<Template>,
    ) {
        let bodies = self.heredoc_bodies(inst);
        for (heredoc, span) in files {
            let body = heredoc.chomped_content();
            let body_span = inst
                .heredocs
                .iter()
                .position(|h| std::ptr::eq(h, *heredoc))
                .and_then(|i| bodies.get(i).cloned())
                .unwrap_or_else(|| span.clone());
            let (content, expand) = if heredoc.expand {
                match word::heredoc_text(&body) {
                    Ok(HeredocText::Literal(text)) => (text, false),
                    Ok(HeredocText::Template(template)) => (template, true),
                    Err(WordError { message, help }) => {
                        self.error(body_span, message, help);
                        continue;
                    }
                }
            } else {
                (body, false)
            };
            let path = if into_dir {
                format!("{}/{}", to.value.trim_end_matches('/'), heredoc.name)
            } else {
                to.value.clone()
            };
            self.stage().steps.push(Step::File(File {
                to: Located::new(path, to.span.clone()),
                name: (!into_dir).then(|| Located::new(heredoc.name.clone(), span.clone())),
                content: Located::new(content, body_span),
                expand,
                chown: copy.chown.clone(),
                chmod: copy.chmod.clone(),
            }));
        }
    }
}

/// The heredoc a `COPY`/`ADD` source word such as `<<EOF`, `<<-EOF` or
/// `<<"EOF"` introduces, as `BuildKit` looks it up: by the word's delimiter,
/// the last heredoc of that name winning.
fn heredoc_for<'h>(word: &str, heredocs: &'h [Heredoc]) -> Option<&'h Heredoc> {
    let name = heredoc_word(word)?.name;
    heredocs.iter().rev().find(|h| h.name == name)
}

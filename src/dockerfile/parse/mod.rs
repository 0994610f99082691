//! Dockerfile parsing into an owned AST with `BuildKit`'s parser semantics.
//!
//! [`parse`] mirrors `BuildKit`'s `frontend/dockerfile/parser`: parser
//! directives, comments, line continuations (including comment and empty
//! lines inside them), builder flags, JSON/shell forms, the per-instruction
//! argument shapes and heredocs. Arguments are *not* variable-expanded here;
//! use [`ShellLex`](super::ShellLex) at build time, as `BuildKit` does.
//!
//! [`parse_for_build`] additionally runs the `parse-dockerfile` crate over the
//! same text to enforce build-level rules that `BuildKit` checks after parsing
//! (the first instruction must be `FROM`/`ARG`, stage names must be unique,
//! `HEALTHCHECK` must use `CMD` or `NONE`, ...).
//!
//! This module reads lines and instructions; `args` reads their argument
//! forms and flags, `heredoc` their heredocs, and `dump` prints the AST.

mod args;
mod dump;
mod heredoc;

use std::collections::HashSet;
use std::ops::Range;

use super::DockerfileError;
use args::{
    extract_builder_flags, parse_maybe_json, parse_maybe_json_to_list, parse_name_val, parse_words,
    whitespace_delimited,
};
use heredoc::{heredocs_from_line, parse_heredoc};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// Instructions in source order (comments and blank lines removed).
    pub instructions: Vec<Instruction>,
    /// Non-fatal findings, e.g. empty continuation lines.
    pub warnings: Vec<String>,
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// Value of `# syntax=`, if present.
    pub syntax: Option<String>,
    /// Escape character: `\` by default, or `` ` `` from `# escape=` + backtick.
    pub escape: char,
    /// Value of `# check=`, if present.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// One instruction, e.g. `COPY --from=build /a /b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Instruction keyword in lowercase (`from`, `run`, ...); unknown
    /// keywords are kept with [`InstructionArgs::Ignored`].
    pub name: String,
    /// Builder flags as `(name, value)`: `--from=x` is `("from", Some("x"))`,
    /// `--link` is `("link", None)`.
    pub flags: Vec<(String, Option<String>)>,
    /// Arguments in the shape `BuildKit`'s parser gives them.
    pub args: InstructionArgs,
    /// Heredocs attached to `RUN`/`COPY`/`ADD` (also under `ONBUILD`).
    pub heredocs: Vec<Heredoc>,
    /// The comments above the instruction, without `#` (`BuildKit`'s
    /// `PrevComment`): those since the previous instruction or a bare `#`,
    /// parser directives excluded. A `check=` among them applies to this
    /// instruction's build checks.
    pub comments: Vec<String>,
    /// The logical line after joining continuations and removing comments.
    pub original: String,
    /// Byte range in the source, from the instruction's first line to the
    /// end of its last line (heredoc bodies included).
    pub span: Range<usize>,
    /// First line (1-based).
    pub line: usize,
    /// Last line (1-based, inclusive).
    pub end_line: usize,
}

/// Instruction arguments, unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionArgs {
    /// No arguments (e.g. `HEALTHCHECK` alone, `ONBUILD` alone, `RUN`).
    None,
    /// Exec form: a JSON array of strings (`CMD ["a", "b"]`).
    Json(Vec<String>),
    /// Shell form / single string, as written (`RUN echo hi`, `USER x`).
    Shell(String),
    /// Whitespace-separated words (`FROM img AS x`, `EXPOSE 80 443`,
    /// `COPY a b`, `VOLUME /a /b`, `ARG a=1 b`); quotes are kept.
    Words(Vec<String>),
    /// `ENV`/`LABEL` pairs; values keep their quotes and escapes.
    /// `legacy` is the `ENV name value` form (one pair, no `=`).
    KeyValues {
        /// The `(key, value)` pairs.
        pairs: Vec<(String, String)>,
        /// True for the old `KEY value` form.
        legacy: bool,
    },
    /// `HEALTHCHECK <kind> <command>`; `kind` is as written (`CMD`, `NONE`).
    Healthcheck {
        /// `CMD`, `NONE` (or anything else, which the build rejects).
        kind: String,
        /// The command after the kind.
        cmd: Box<InstructionArgs>,
    },
    /// `ONBUILD <instruction>`.
    Onbuild(Box<Instruction>),
    /// Unknown instruction: arguments are not interpreted.
    Ignored,
}

/// A heredoc body, e.g. from `RUN <<EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// Delimiter word with quotes removed (`EOF`).
    pub name: String,
    /// File descriptor prefix (`3<<EOF` gives 3), 0 when absent.
    pub file_descriptor: u32,
    /// Body lines, each with its newline, delimiter line excluded.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`): no expansion.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped (see [`Heredoc::chomped_content`]).
    pub chomp: bool,
}

impl Heredoc {
    /// The content with leading tabs removed from every line when `chomp`.
    pub fn chomped_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// A `# syntax=` parser directive: the frontend it names and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxDirective {
    /// The value, e.g. `docker/dockerfile:1`.
    pub frontend: String,
    /// The byte range of the directive's line, without its newline.
    pub span: std::ops::Range<usize>,
}

impl SyntaxDirective {
    /// Whether it names the Dockerfile frontend imgbuild implements:
    /// `docker/dockerfile` or `docker/dockerfile-upstream` on Docker Hub,
    /// with any tag or digest (`1`, `1.7-labs`, `master`).
    pub fn is_dockerfile(&self) -> bool {
        let reference = self.frontend.split_whitespace().next().unwrap_or_default();
        let reference = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
            .iter()
            .find_map(|prefix| reference.strip_prefix(prefix))
            .unwrap_or(reference);
        let repository = reference
            .split('@')
            .next()
            .and_then(|name| name.split(':').next())
            .unwrap_or_default();
        matches!(
            repository,
            "docker/dockerfile" | "docker/dockerfile-upstream"
        )
    }
}

/// The `# syntax=` directive of `text`, found as `BuildKit` detects one
/// (among the parser directives at the top, after an optional `#!` line),
/// even when the rest of the file does not parse.
pub fn syntax_directive(text: &str) -> Option<SyntaxDirective> {
    let mut parser = DirectiveParser::default();
    let mut start = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line_start = start;
        start += raw.len();
        let mut line = trim_newline(raw);
        let mut offset = line_start;
        if index == 0 {
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest;
                offset += '\u{feff}'.len_utf8();
            }
            if line.starts_with("#!") {
                continue;
            }
            let trimmed = line.trim_start();
            offset += line.len() - trimmed.len();
            line = trimmed;
        }
        match parser.parse_line(line) {
            Ok(Some((key, frontend))) if key == "syntax" => {
                return Some(SyntaxDirective {
                    frontend,
                    span: offset..offset + line.len(),
                });
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
    None
}

/// Parses `text` with `BuildKit`'s parser semantics (no build-level checks).
pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
    Parser::new(text).run()
}

/// Parses `text` and also validates it for building with the
/// `parse-dockerfile` crate (stage structure, instruction forms).
pub fn parse_for_build(text: &str) -> Result<Dockerfile, DockerfileError> {
    let df = parse(text)?;
    // BuildKit's own words for ONBUILD misuse, before the crate's.
    for inst in df.instructions.iter().filter(|i| i.name == "onbuild") {
        let refused = match &inst.args {
            InstructionArgs::Onbuild(inner) => super::onbuild::check_inner(inner).err(),
            _ => Some((
                "ONBUILD requires at least one argument".to_owned(),
                "write e.g. `ONBUILD RUN make` or `ONBUILD COPY . /app`".to_owned(),
            )),
        };
        if let Some((message, help)) = refused {
            return Err(DockerfileError::new(inst.line, 1, message, &help));
        }
    }
    // BuildKit's words for a file of global ARGs only.
    if let Some(first) = df.instructions.first()
        && df.instructions.iter().all(|i| i.name == "arg")
    {
        return Err(DockerfileError::new(
            first.line,
            1,
            "dockerfile contains no stages to build".to_owned(),
            "start a stage with `FROM IMAGE` (or `FROM scratch`) after the global `ARG`s",
        ));
    }
    if let Err(e) =
        parse_dockerfile::parse(&with_empty_arrays_filled(&without_heredocs(text, &df), &df))
    {
        let msg = format!("{e:#}");
        return Err(DockerfileError::new(
            e.line().max(1),
            e.column().max(1),
            msg,
            "fix the instruction at this position; a buildable Dockerfile starts with FROM (or ARG then FROM) and uses unique stage names",
        ));
    }
    Ok(df)
}

/// `text` with the empty JSON argument of `CMD []`, `ENTRYPOINT []` (which
/// `BuildKit` takes: they clear the setting) written `[""]`, which the
/// `parse-dockerfile` crate, refusing an empty array, accepts. Only the end
/// of those lines moves, so the crate's errors elsewhere keep their columns.
fn with_empty_arrays_filled(text: &str, df: &Dockerfile) -> String {
    let mut filled = text.to_owned();
    for inst in df.instructions.iter().rev() {
        if !matches!(&inst.args, InstructionArgs::Json(argv) if argv.is_empty()) {
            continue;
        }
        let Some(line) = filled.get(inst.span.clone()) else {
            continue;
        };
        if let Some(open) = line.rfind('[') {
            let at = inst.span.start + open;
            filled.replace_range(at..=at, "[\"\"");
        }
    }
    filled
}

/// `text` as the `parse-dockerfile` crate can read it: the crate knows only
/// a heredoc that starts a `RUN` command, so the heredocs [`parse`] found are
/// hidden from it. Their bodies and delimiter lines become empty lines and
/// the `<<` that opens each becomes two spaces, so every other line, and
/// every column on it, stays where it was for the crate's errors.
fn without_heredocs(text: &str, df: &Dockerfile) -> String {
    let mut hidden = text.to_owned();
    // From the last, so the spans still to come stay valid.
    for inst in df
        .instructions
        .iter()
        .rev()
        .filter(|i| !i.heredocs.is_empty())
    {
        let command_end = inst.end_line - inst.heredoc_lines();
        let mut lines = text[inst.span.clone()].split_inclusive('\n');
        let mut masked = String::with_capacity(inst.span.len());
        for line in lines.by_ref().take(command_end + 1 - inst.line) {
            masked.push_str(&line.replace("<<", "  "));
        }
        for line in lines {
            masked.push_str(&line[trim_newline(line).len()..]);
        }
        hidden.replace_range(inst.span.clone(), &masked);
    }
    hidden
}

impl Instruction {
    /// How many of the instruction's lines are heredoc bodies and their
    /// delimiter lines: the command itself ends that many lines before
    /// [`Instruction::end_line`].
    pub fn heredoc_lines(&self) -> usize {
        self.heredocs
            .iter()
            .map(|h| h.content.matches('\n').count() + 1)
            .sum()
    }
}

/// `[\t\v\f\r ]`, `BuildKit`'s `reWhitespace` class.
fn is_re_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Go `regexp.Split(s, n)` for `[\t\v\f\r ]+` with n = -1 or 2.
fn split_ws(s: &str, limit: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if limit.is_some_and(|l| out.len() + 1 == l) {
            break;
        }
        let Some(start) = rest.find(is_re_ws) else {
            break;
        };
        let end = rest[start..]
            .find(|c| !is_re_ws(c))
            .map_or(rest.len(), |e| start + e);
        out.push(rest[..start].to_string());
        rest = &rest[end..];
    }
    out.push(rest.to_string());
    out
}

struct Line<'a> {
    /// Line text including its newline, if any.
    raw: &'a str,
    start: usize,
}

#[derive(Default)]
struct DirectiveParser {
    done: bool,
    seen: HashSet<String>,
}

impl DirectiveParser {
    /// Returns `(name, value)` for a parser directive line.
    fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let rest = rest.trim_start();
        let name_len = rest
            .char_indices()
            .take_while(|&(i, c)| {
                if i == 0 {
                    c.is_ascii_alphabetic()
                } else {
                    c.is_ascii_alphanumeric()
                }
            })
            .count();
        let is_s = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
        let parsed = (name_len > 0)
            .then(|| {
                let after = rest[name_len..]
                    .trim_start_matches(is_s)
                    .strip_prefix('=')?;
                let value = after.trim_start_matches(is_s);
                if value.is_empty() {
                    // `.+?` must take one char: the last of the skipped spaces.
                    return after.chars().last().map(|c| c.to_string());
                }
                Some(value.trim_end_matches(is_s).to_string())
            })
            .flatten();
        let Some(value) = parsed else {
            self.done = true;
            return Ok(None);
        };
        let key = rest[..name_len].to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        Ok(Some((key, value)))
    }
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    directives: Directives,
    dparser: DirectiveParser,
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for raw in text.split_inclusive('\n') {
            lines.push(Line { raw, start });
            start += raw.len();
        }
        if let Some(first) = lines.first_mut()
            && let Some(rest) = first.raw.strip_prefix('\u{feff}')
        {
            first.raw = rest;
            first.start += '\u{feff}'.len_utf8();
        }
        Self {
            lines,
            directives: Directives::default(),
            dparser: DirectiveParser::default(),
        }
    }

    fn err(line: usize, message: impl Into<String>, help: &str) -> DockerfileError {
        DockerfileError::new(line.max(1), 1, message.into(), help)
    }

    /// `BuildKit`'s `processLine`: trims the newline (and leading whitespace
    /// for a first line), applies directives and drops comment lines. Also
    /// says whether the line was a parser directive.
    fn process_line(
        &mut self,
        raw: &'a str,
        strip_left: bool,
        lineno: usize,
    ) -> Result<(&'a str, bool), DockerfileError> {
        let mut token = trim_newline(raw);
        if strip_left {
            token = token.trim_start();
        }
        let directive = self.dparser.parse_line(token).map_err(|m| {
            Self::err(
                lineno,
                m,
                "remove the repeated parser directive; each may appear once at the top of the file",
            )
        })?;
        let is_directive = directive.is_some();
        if let Some((key, value)) = directive {
            match key.as_str() {
                "escape" => {
                    if value != "`" && value != "\\" {
                        return Err(Self::err(
                            lineno,
                            format!("invalid escape token '{value}' does not match ` or \\"),
                            "use `# escape=\\` or `# escape=``",
                        ));
                    }
                    self.directives.escape = value.chars().next().unwrap_or('\\');
                }
                "syntax" => self.directives.syntax = Some(value),
                _ => self.directives.check = Some(value),
            }
        }
        Ok((if is_comment(token) { "" } else { token }, is_directive))
    }

    /// `BuildKit`'s `trimContinuationCharacter`: returns the line without a
    /// trailing escape character and whether the logical line ends here.
    fn trim_continuation(&self, line: &'a str) -> (&'a str, bool) {
        let esc = self.directives.escape;
        let t = line.trim_end_matches([' ', '\t']);
        let Some(before) = t.strip_suffix(esc) else {
            return (line, true);
        };
        if before.is_empty() {
            return ("", false);
        }
        if before.ends_with(esc) {
            return (line, true);
        }
        (before, false)
    }

    /// The 1-based line and column of the `<<` that opens the heredoc
    /// `name` among the lines `lines` (indexes) of an instruction.
    fn heredoc_position(&self, lines: Range<usize>, name: &str) -> Option<(usize, usize)> {
        lines.into_iter().find_map(|index| {
            let text = trim_newline(self.lines.get(index)?.raw);
            text.match_indices("<<").find_map(|(at, _)| {
                let after = text[at + 2..].trim_start_matches('-');
                let after = after.trim_start_matches(['\'', '"']);
                after
                    .starts_with(name)
                    .then(|| (index + 1, text[..at].chars().count() + 1))
            })
        })
    }

    fn run(mut self) -> Result<Dockerfile, DockerfileError> {
        let mut instructions = Vec::new();
        let mut warnings = Vec::new();
        let mut comments: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.lines.len() {
            let Line { raw, start } = self.lines[i];
            let lineno = i + 1;
            if let Some(comment) = trim_newline(raw).trim_start().strip_prefix('#') {
                let comment = comment.trim();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment.to_owned());
                }
            }
            let (first, is_directive) = self.process_line(raw, true, lineno)?;
            if is_directive {
                comments.pop();
            }
            i += 1;
            let (first, mut end_of_line) = self.trim_continuation(first);
            if end_of_line && first.is_empty() {
                continue;
            }
            let mut buf = first.to_string();
            let mut has_empty_continuation = false;
            while !end_of_line && i < self.lines.len() {
                let raw = self.lines[i].raw;
                let (line, _) = self.process_line(raw, false, i + 1)?;
                i += 1;
                if is_comment(raw) {
                    continue;
                }
                if line.trim_start().is_empty() {
                    has_empty_continuation = true;
                    continue;
                }
                let (line, eol) = self.trim_continuation(line);
                end_of_line = eol;
                buf.push_str(line);
            }
            if has_empty_continuation {
                warnings.push(format!("line {i}: empty continuation line found in: {buf}"));
            }
            let mut inst = new_instruction(&buf, self.directives.escape).map_err(|m| {
                DockerfileError::new(
                    lineno,
                    1,
                    m,
                    "check the instruction's arguments against the Dockerfile reference",
                )
            })?;
            if can_contain_heredoc(&inst) && buf.contains("<<") {
                let docs = heredocs_from_line(&buf).map_err(|m| {
                    DockerfileError::new(lineno, 1, m, "check the heredoc delimiter after <<")
                })?;
                let command_lines = lineno - 1..i;
                for mut doc in docs {
                    let mut terminated = false;
                    let mut content = String::new();
                    while i < self.lines.len() {
                        let raw = self.lines[i].raw;
                        i += 1;
                        let mut candidate = trim_newline(raw);
                        if doc.chomp {
                            candidate = candidate.trim_start_matches('\t');
                        }
                        if candidate == doc.name {
                            terminated = true;
                            break;
                        }
                        content.push_str(raw);
                    }
                    if !terminated {
                        let (line, column) = self
                            .heredoc_position(command_lines.clone(), &doc.name)
                            .unwrap_or((lineno, 1));
                        return Err(DockerfileError::new(
                            line,
                            column,
                            "unterminated heredoc".to_string(),
                            &format!(
                                "add a line containing only `{}` to end the heredoc",
                                doc.name
                            ),
                        ));
                    }
                    doc.content = content;
                    inst.heredocs.push(doc);
                }
            }
            let end = self
                .lines
                .get(i - 1)
                .map_or(start, |l| l.start + l.raw.len());
            inst.span = start..end;
            inst.line = lineno;
            inst.end_line = i;
            inst.comments = std::mem::take(&mut comments);
            instructions.push(inst);
        }
        if instructions.is_empty() {
            return Err(DockerfileError::new(
                self.lines.len().max(1),
                1,
                "file with no instructions".to_string(),
                "add at least a FROM instruction",
            ));
        }
        Ok(Dockerfile {
            directives: self.directives,
            instructions,
            warnings,
        })
    }
}

fn can_contain_heredoc(inst: &Instruction) -> bool {
    let inst = match &inst.args {
        InstructionArgs::Onbuild(inner) if inst.name == "onbuild" => inner,
        _ => inst,
    };
    matches!(inst.name.as_str(), "add" | "copy" | "run")
        && !matches!(inst.args, InstructionArgs::Json(_))
}

/// `BuildKit`'s `newNodeFromLine`.
fn new_instruction(line: &str, escape: char) -> Result<Instruction, String> {
    let parts = split_ws(line.trim(), Some(2));
    let cmd = parts[0].clone();
    let (args, flags) = match parts.get(1) {
        Some(rest) => {
            let (args, flags) = extract_builder_flags(rest, escape);
            (args.trim().to_string(), flags)
        }
        None => (String::new(), Vec::new()),
    };
    let name = cmd.to_lowercase();
    let args = dispatch(&name, &args, escape)?;
    let flags = flags
        .into_iter()
        .map(|f| {
            let f = f.strip_prefix("--").unwrap_or(&f).to_string();
            match f.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (f, None),
            }
        })
        .collect();
    Ok(Instruction {
        name,
        flags,
        args,
        heredocs: Vec::new(),
        comments: Vec::new(),
        original: line.to_string(),
        span: 0..0,
        line: 0,
        end_line: 0,
    })
}

fn dispatch(name: &str, rest: &str, escape: char) -> Result<InstructionArgs, String> {
    Ok(match name {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(rest)?,
        "arg" => {
            let words = parse_words(rest, escape);
            if words.is_empty() {
                InstructionArgs::None
            } else {
                InstructionArgs::Words(words)
            }
        }
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(rest)?,
        "env" => parse_name_val(rest, "ENV", escape)?,
        "label" => parse_name_val(rest, "LABEL", escape)?,
        "expose" | "from" => whitespace_delimited(rest),
        "healthcheck" => {
            let sep = rest
                .find(|c: char| c.is_ascii_whitespace() || c == '\u{b}')
                .unwrap_or(rest.len());
            if sep == 0 {
                return Ok(InstructionArgs::None);
            }
            let after =
                rest[sep..].trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\u{b}');
            InstructionArgs::Healthcheck {
                kind: rest[..sep].to_string(),
                cmd: Box::new(parse_maybe_json(after)?),
            }
        }
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if rest.is_empty() {
                InstructionArgs::None
            } else {
                InstructionArgs::Shell(rest.to_string())
            }
        }
        "onbuild" => {
            if rest.is_empty() {
                InstructionArgs::None
            } else {
                InstructionArgs::Onbuild(Box::new(new_instruction(rest, escape)?))
            }
        }
        _ => InstructionArgs::Ignored,
    })
}

/// `BuildKit`'s `MustParseHeredoc`: the heredoc `word` opens when it is one
/// heredoc word and nothing else (`<<EOF`, `<<-"EOF"`, `3<<EOF`), without
/// its content. `RUN` runs a heredoc's body only when its whole command is
/// such a word; `COPY` and `ADD` take such words as inline files.
pub fn heredoc_word(word: &str) -> Option<Heredoc> {
    parse_heredoc(word).ok().flatten()
}

#[cfg(test)]
mod tests;

//! Build checks: findings about a build definition that do not stop the
//! build unless its author asks them to.
//!
//! This module is generic: a front end defines its [`Rule`]s and reports
//! [`Finding`]s through a [`Report`], which drops the rules a file disables
//! (its [`RuleSet`]) and marks findings as errors when the file asks for it.
//! The Dockerfile checks (`BuildKit`'s build checks) are listed in
//! [`buildkit`] and run in [`crate::dockerfile`]; `imgbuild lint`, `plan`
//! and `apply` print the findings with [`render`]. The best-practice rules
//! of [`crate::practice`] run over the IR, so manifests and Dockerfiles get
//! them alike; only `imgbuild lint` runs them.

pub mod buildkit;

use std::fmt::Write as _;

use serde::Serialize;

/// A check, as its documentation names and describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name, as `# check=skip=NAME` writes it.
    pub name: &'static str,
    /// What the rule asks for, in one sentence.
    pub description: &'static str,
    /// The rule's published documentation, when it has one (`BuildKit`'s
    /// checks do); `imgbuild lint --explain NAME` prints every rule's.
    pub url: Option<&'static str>,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Printed; the command goes on.
    Warning,
    /// The file asked for its findings to fail the command (`error=true`).
    Error,
}

/// Where a finding is: a file and a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's name.
    pub rule: &'static str,
    /// What is wrong here.
    pub message: String,
    /// What the rule asks for: how to fix it.
    pub help: String,
    /// The rule's published documentation, if it has one.
    pub url: Option<&'static str>,
    /// Where.
    pub location: Location,
    /// Warning or error.
    pub severity: Severity,
}

/// Which rules run for one file and whether their findings are errors: the
/// file's own setting (a Dockerfile's `# check=` directive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// No rule runs.
    pub skip_all: bool,
    /// Rules that do not run, by name.
    pub skip: Vec<String>,
    /// Findings are errors.
    pub error: bool,
}

/// Why a rule-set setting cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleSetError {
    /// What is wrong, in `BuildKit`'s words.
    pub message: String,
}

impl RuleSet {
    /// Reads `BuildKit`'s check options: `skip=A,B` (or `skip=all`) and
    /// `error=BOOL`, separated by `;`. `experimental=` is accepted: it
    /// enables experimental rules, and imgbuild has none.
    pub fn parse(options: &str) -> Result<Self, RuleSetError> {
        let mut rules = RuleSet::default();
        let options = options.trim();
        if options.is_empty() {
            return Ok(rules);
        }
        for part in options.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(RuleSetError {
                    message: format!("invalid check option \"{part}\""),
                });
            };
            let value = value.trim();
            match key.trim() {
                "skip" if value == "all" => rules.skip_all = true,
                "skip" => rules.skip = value.split(',').map(|r| r.trim().to_owned()).collect(),
                "experimental" => {}
                "error" => {
                    rules.error = parse_bool(value).ok_or_else(|| RuleSetError {
                        message: format!("failed to parse check option \"{part}\": invalid syntax"),
                    })?;
                }
                other => {
                    return Err(RuleSetError {
                        message: format!("invalid check option \"{other}\""),
                    });
                }
            }
        }
        Ok(rules)
    }

    /// Whether `rule` runs.
    pub fn enabled(&self, rule: &str) -> bool {
        !self.skip_all && !self.skip.iter().any(|r| r == rule)
    }

    /// This set with the rules `local` skips skipped too: the setting of one
    /// place in the file (a `# check=` comment above a Dockerfile
    /// instruction). Whether findings are errors stays the file's choice.
    #[must_use]
    pub fn merged(&self, local: &RuleSet) -> RuleSet {
        let mut merged = self.clone();
        merged.skip_all |= local.skip_all;
        for rule in &local.skip {
            if !merged.skip.contains(rule) {
                merged.skip.push(rule.clone());
            }
        }
        merged
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Whether an `ARG` or `ENV` name looks like it holds a secret, as
/// `BuildKit` decides: a word such as `password`, `token` or `key` at
/// either end or between underscores, unless `public`, `file` or `version`
/// is one too.
pub fn looks_secret(key: &str) -> bool {
    const DENY: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: [&str; 3] = ["public", "file", "version"];
    let has = |words: &[&str]| {
        let lower = key.to_ascii_lowercase();
        words.iter().any(|w| {
            lower == *w
                || lower.starts_with(&format!("{w}_"))
                || lower.ends_with(&format!("_{w}"))
                || lower.contains(&format!("_{w}_"))
        })
    };
    has(&DENY) && !has(&ALLOW)
}

/// The findings of one file, under that file's [`RuleSet`].
#[derive(Debug, Clone)]
pub struct Report {
    file: String,
    rules: RuleSet,
    findings: Vec<Finding>,
}

impl Report {
    /// An empty report for `file`.
    pub fn new(file: impl Into<String>, rules: RuleSet) -> Self {
        Self {
            file: file.into(),
            rules,
            findings: Vec::new(),
        }
    }

    /// The file's rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Records that `rule` found `message` at `line`:`column`, unless the
    /// file disables the rule.
    pub fn add(&mut self, rule: &Rule, message: impl Into<String>, line: usize, column: usize) {
        let rules = self.rules.clone();
        self.add_under(&rules, rule, message, line, column);
    }

    /// Like [`Report::add`], under `rules`, the file's rules as one place in
    /// it sets them (see [`RuleSet::merged`]).
    pub fn add_under(
        &mut self,
        rules: &RuleSet,
        rule: &Rule,
        message: impl Into<String>,
        line: usize,
        column: usize,
    ) {
        self.add_with_help(rules, rule, message, rule.description, line, column);
    }

    /// Like [`Report::add_under`], with advice for this finding instead of
    /// the rule's description.
    pub fn add_with_help(
        &mut self,
        rules: &RuleSet,
        rule: &Rule,
        message: impl Into<String>,
        help: impl Into<String>,
        line: usize,
        column: usize,
    ) {
        if !rules.enabled(rule.name) {
            return;
        }
        self.findings.push(Finding {
            rule: rule.name,
            message: message.into(),
            help: help.into(),
            url: rule.url,
            location: Location {
                file: self.file.clone(),
                line,
                column,
            },
            severity: if self.rules.error {
                Severity::Error
            } else {
                Severity::Warning
            },
        });
    }

    /// The findings, in file order; one per rule and place.
    pub fn into_findings(mut self) -> Vec<Finding> {
        self.findings
            .sort_by_key(|f| (f.location.line, f.location.column));
        self.findings.dedup();
        self.findings
    }
}

/// Whether any finding is an error, so the command must fail.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// Where a finding of `rule` says to read more: its published page, else
/// the command that prints its documentation.
pub fn pointer(rule: &str, url: Option<&str>) -> String {
    url.map_or_else(|| format!("imgbuild lint --explain {rule}"), str::to_owned)
}

/// The section of `markdown` (a book page) that documents `rule`: from its
/// heading, ``## `RULE` ``, to the next second-level heading.
pub fn explanation<'a>(markdown: &'a str, rule: &str) -> Option<&'a str> {
    let heading = format!("## `{rule}`\n");
    let start = if markdown.starts_with(&heading) {
        0
    } else {
        markdown.find(&format!("\n{heading}"))? + 1
    };
    let body = &markdown[start..];
    let end = body[heading.len()..]
        .find("\n## ")
        .map_or(body.len(), |i| i + heading.len());
    Some(body[..end].trim_end())
}

/// Findings as text: `FILE:LINE:COL: Rule: message`, then the rule's
/// advice and where to read more, and a last line counting them (`no
/// findings` when there are none).
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str("no findings\n");
    }
    for finding in findings {
        let l = &finding.location;
        let _ = writeln!(
            out,
            "{}:{}:{}: {}: {}",
            l.file, l.line, l.column, finding.rule, finding.message
        );
        let _ = writeln!(out, "  help: {}", finding.help);
        let _ = writeln!(out, "  see: {}", pointer(finding.rule, finding.url));
    }
    if !findings.is_empty() {
        let errors = has_errors(findings);
        let count = findings.len();
        let noun = match (errors, count) {
            (false, 1) => "warning",
            (false, _) => "warnings",
            (true, 1) => "check failed",
            (true, _) => "checks failed",
        };
        let _ = write!(out, "{count} {noun}");
        if errors {
            let mut rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
            rules.sort_unstable();
            rules.dedup();
            let _ = write!(
                out,
                " (error=true): lint violation found for rules: {}",
                rules.join(", ")
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        name: "SomeRule",
        description: "Things should be some way",
        url: Some("https://example.com/some-rule"),
    };

    #[test]
    fn rule_sets_read_buildkit_options() {
        assert_eq!(RuleSet::parse("").unwrap(), RuleSet::default());
        let rules = RuleSet::parse("skip=A, B;error=true").unwrap();
        assert_eq!(rules.skip, ["A", "B"]);
        assert!(rules.error && !rules.enabled("A") && !rules.enabled("B") && rules.enabled("C"));
        let all = RuleSet::parse(" skip = all ").unwrap();
        assert!(all.skip_all && !all.enabled("C"));
        assert!(!RuleSet::parse("error=0").unwrap().error);
        assert!(RuleSet::parse("experimental=all").is_ok());
        assert_eq!(
            RuleSet::parse("skip").unwrap_err().message,
            "invalid check option \"skip\""
        );
        assert_eq!(
            RuleSet::parse("level=high").unwrap_err().message,
            "invalid check option \"level\""
        );
        assert!(RuleSet::parse("error=maybe").is_err());
    }

    #[test]
    fn local_settings_add_skips_but_not_errors() {
        let file = RuleSet::parse("skip=A").unwrap();
        let local = RuleSet::parse("skip=B;error=true").unwrap();
        let merged = file.merged(&local);
        assert_eq!(merged.skip, ["A", "B"]);
        assert!(!merged.error);
        assert!(file.merged(&RuleSet::parse("skip=all").unwrap()).skip_all);
    }

    #[test]
    fn reports_drop_disabled_rules_and_mark_errors() {
        let mut report = Report::new("f", RuleSet::parse("skip=Other").unwrap());
        report.add(&RULE, "here", 2, 1);
        report.add(
            &Rule {
                name: "Other",
                ..RULE
            },
            "not here",
            1,
            1,
        );
        let findings = report.into_findings();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(!has_errors(&findings));

        let mut report = Report::new("f", RuleSet::parse("error=true").unwrap());
        report.add(&RULE, "here", 2, 1);
        let findings = report.into_findings();
        assert!(has_errors(&findings));
        assert_eq!(
            render(&findings),
            "f:2:1: SomeRule: here\n  help: Things should be some way\n  see: https://example.com/some-rule\n1 check failed (error=true): lint violation found for rules: SomeRule\n"
        );
    }

    #[test]
    fn findings_without_a_page_point_at_explain() {
        let mut report = Report::new("f", RuleSet::default());
        report.add(&Rule { url: None, ..RULE }, "here", 1, 1);
        let text = render(&report.into_findings());
        assert!(
            text.contains("\n  see: imgbuild lint --explain SomeRule\n"),
            "{text}"
        );
        assert_eq!(render(&[]), "no findings\n");
    }

    #[test]
    fn explanations_are_sections_of_a_page() {
        let page = "# Page\n\nintro\n\n## `A`\n\nabout A\n\n### detail\n\n## `B`\n\nabout B\n";
        assert_eq!(
            explanation(page, "A"),
            Some("## `A`\n\nabout A\n\n### detail")
        );
        assert_eq!(explanation(page, "B"), Some("## `B`\n\nabout B"));
        assert_eq!(explanation(page, "C"), None);
        assert_eq!(explanation("## `A`\nx", "A"), Some("## `A`\nx"));
    }
}

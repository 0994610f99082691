//! The variables in scope while one node resolves, and how a template
//! expands with them.

use indexmap::{IndexMap, IndexSet};

use super::Value;
use crate::diagnostic::Diagnostic;
use crate::ir::Template;
use crate::ir::template::expand;

/// The variables in scope while resolving one node.
pub(super) struct Scope<'p> {
    pub(super) source: &'p crate::diagnostic::SourceFile,
    pub(super) args: IndexMap<String, Value>,
    pub(super) env: IndexMap<String, Value>,
    /// Arguments that hide the environment variable of the same name.
    pub(super) shadowing: IndexSet<String>,
    pub(super) reads_target: bool,
}

impl Scope<'_> {
    /// Expands `template`: environment first, then arguments, unless the
    /// argument was set after the variable (Dockerfile rules).
    pub(super) fn expand(&mut self, template: &Template) -> Result<String, Diagnostic> {
        let mut reads_target = false;
        let (env, args, shadowing) = (&self.env, &self.args, &self.shadowing);
        let result = expand(&template.value, &mut |name| {
            let value = if shadowing.contains(name) {
                args.get(name)
            } else {
                env.get(name).or_else(|| args.get(name))
            }?;
            reads_target |= value.reads_target;
            Some(value.text.clone())
        });
        self.reads_target |= reads_target;
        result.map_err(|e| {
            let quoted = self
                .source
                .text
                .get(template.span.start..)
                .is_some_and(|rest| rest.starts_with(['"', '\'']));
            let start = template.span.start + e.offset + usize::from(quoted);
            let span = if template.span.contains(&start) {
                start..start + 1
            } else {
                template.span.clone()
            };
            self.source.error(span, e.message).with_help(e.help)
        })
    }

    pub(super) fn expand_opt(
        &mut self,
        template: Option<&Template>,
    ) -> Result<Option<String>, Diagnostic> {
        template.map(|t| self.expand(t)).transpose()
    }

    pub(super) fn expand_all<'a>(
        &mut self,
        templates: impl IntoIterator<Item = &'a Template>,
    ) -> Result<Vec<String>, Diagnostic> {
        templates.into_iter().map(|t| self.expand(t)).collect()
    }
}

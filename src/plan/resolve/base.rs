//! What planning reads of a base image: its config's `ONBUILD` triggers
//! and environment, and the triggers lowered to steps through the request's
//! [`TriggerSyntax`].

use super::Resolver;
use crate::diagnostic::Diagnostic;
use crate::image::source::ImageSource;
use crate::ir::trigger::{LoweredTrigger, TriggerSyntax};
use crate::ir::{Platform, Span, Stage, Template, reference};

/// What planning reads of a base image's config: its `ONBUILD` triggers,
/// and its environment, which `ENV PATH=$PATH:...` and the like expand.
#[derive(Debug, Clone)]
pub(super) struct BaseConfig {
    pub(super) onbuild: Vec<String>,
    pub(super) env: Vec<(String, String)>,
}

impl Resolver<'_> {
    /// The `ONBUILD` triggers and environment of base image `reference` on
    /// `platform`, read from its config (a registry image's through the
    /// request's resolver, without its layers); `None` when it cannot be
    /// read now, so the build checks.
    pub(super) fn base_config(
        &mut self,
        reference: &str,
        platform: &Platform,
    ) -> Option<BaseConfig> {
        let key = (reference.to_owned(), platform.clone());
        if let Some(known) = self.base_configs.get(&key) {
            return known.clone();
        }
        let source = ImageSource::parse(reference, &self.request.base_dir);
        let config = if reference::is_local(reference) {
            crate::image::source::read_config(&source, platform)
        } else if let Some(bases) = &self.request.bases {
            bases
                .resolve_metadata(&source, platform)
                .map(|base| base.image.config)
        } else {
            return None;
        };
        let read = match config {
            Ok(config) => Some(BaseConfig {
                onbuild: config.runtime.onbuild,
                env: config.runtime.env,
            }),
            Err(e) => {
                tracing::debug!("cannot read the config of `{reference}` while planning: {e}");
                None
            }
        };
        self.base_configs.insert(key, read.clone());
        read
    }

    /// The syntax the request reads triggers and deferred mounts with; an
    /// error at `at` when it has none.
    pub(super) fn syntax(&self, at: &Span) -> Result<&dyn TriggerSyntax, Diagnostic> {
        self.request.triggers.as_deref().ok_or_else(|| {
            self.project
                .source
                .error(
                    at.clone(),
                    "this needs a syntax for `ONBUILD` triggers and `--mount` options, and the request has none",
                )
                .with_help("plan with `Request::triggers` set, e.g. to `dockerfile::Triggers`, as the command line does")
        })
    }

    /// Lowers one `ONBUILD` trigger of `stage`'s base; its steps point at
    /// the stage's `from`.
    pub(super) fn trigger(
        &self,
        stage: &Stage,
        trigger: &str,
    ) -> Result<LoweredTrigger, Diagnostic> {
        let names: Vec<&str> = self.project.stages.keys().map(String::as_str).collect();
        let at = stage.from.span.clone();
        match self.syntax(&at)?.lower(trigger, &names) {
            Ok(lowered) => {
                let mut relocate = |t: Template| Template::new(t.value, at.clone());
                Ok(LoweredTrigger {
                    steps: lowered
                        .steps
                        .into_iter()
                        .map(|step| step.map(&mut relocate))
                        .collect(),
                    config: lowered.config,
                })
            }
            Err(errors) => {
                let first = errors.errors.first();
                let message = first.map_or_else(String::new, |e| e.message.clone());
                let help = first
                    .and_then(|e| e.help.clone())
                    .unwrap_or_else(|| "rebuild the base image with a valid trigger".to_owned());
                Err(self
                    .project
                    .source
                    .error(
                        at,
                        format!(
                            "the base of stage `{}` has an ONBUILD trigger imgbuild cannot run, `{trigger}`: {message}",
                            stage.name.value
                        ),
                    )
                    .with_help(help))
            }
        }
    }
}

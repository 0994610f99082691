//! The Dockerfile front end's [`TriggerSyntax`]: `ONBUILD` triggers are
//! Dockerfile instructions, so this is the syntax the command line hands
//! the plan (for a base image's triggers and deferred `--mount`s) and the
//! manifest front end (for a manifest's `onbuild` entries).

use super::{lower, mount, onbuild};
use crate::diagnostic::Diagnostics;
use crate::ir::Mount;
use crate::ir::trigger::{LoweredTrigger, SyntaxError, TriggerSyntax};

/// Reads triggers and deferred mounts as `BuildKit` does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Triggers;

impl TriggerSyntax for Triggers {
    fn check(&self, trigger: &str) -> Result<(), SyntaxError> {
        onbuild::check_trigger(trigger).map_err(|e| SyntaxError {
            message: e.message,
            help: e.help,
        })
    }

    fn lower(&self, trigger: &str, stages: &[&str]) -> Result<LoweredTrigger, Diagnostics> {
        lower::lower_trigger(trigger, stages)
    }

    fn mount(&self, fields: &[(String, Option<String>)]) -> Result<Mount<String>, SyntaxError> {
        mount::from_fields(fields).map_err(|e| SyntaxError {
            message: e.message,
            help: e.help,
        })
    }
}

//! `ONBUILD` triggers, and the syntax they are written in.
//!
//! An image stores its triggers as text: Dockerfile instructions, whichever
//! front end wrote the image. The plan learns a base image's triggers only
//! while it resolves a project, so it cannot read them without a front end;
//! instead it is handed a [`TriggerSyntax`] (the caller's choice, the
//! Dockerfile front end's in practice) and gets IR steps back. A manifest's
//! own `onbuild` entries are checked through the same interface. Either way
//! neither the IR nor the plan imports a front end.

use super::{Mount, StageConfig, Step, Template};
use crate::diagnostic::Diagnostics;

/// What one `ONBUILD` trigger does in the stage that runs it: its steps,
/// and the image settings it changes (`CMD`, `ENTRYPOINT`, `HEALTHCHECK`).
#[derive(Debug, Clone)]
pub struct LoweredTrigger {
    /// The steps, in order.
    pub steps: Vec<Step<Template>>,
    /// The settings the trigger sets; the rest stay at their defaults.
    pub config: StageConfig<Template>,
}

/// Why a trigger or a mount cannot be read, with advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

/// The language of `ONBUILD` triggers (and of the `--mount` options the
/// plan reads once their variables are expanded, [`Mount::Deferred`]).
pub trait TriggerSyntax: std::fmt::Debug + Send + Sync {
    /// Checks that `trigger` is one instruction that may run as an
    /// `ONBUILD` trigger, for front ends that take trigger text as is.
    ///
    /// # Errors
    ///
    /// What is wrong with the trigger, and how to fix it.
    fn check(&self, trigger: &str) -> Result<(), SyntaxError>;

    /// Lowers the trigger `trigger` (one instruction, as an image stores
    /// it) for a stage of a project whose stages are `stages`, in order, so
    /// `--from=INDEX` and stage names resolve. Errors point into the
    /// trigger's text.
    ///
    /// # Errors
    ///
    /// The trigger cannot be read or lowered.
    fn lower(&self, trigger: &str, stages: &[&str]) -> Result<LoweredTrigger, Diagnostics>;

    /// Reads the options of a [`Mount::Deferred`], their values expanded
    /// by the plan, into a mount.
    ///
    /// # Errors
    ///
    /// An option is unknown, missing or has a bad value.
    fn mount(&self, fields: &[(String, Option<String>)]) -> Result<Mount<String>, SyntaxError>;
}

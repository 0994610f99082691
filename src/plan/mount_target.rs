//! Where a RUN mount appears: `BuildKit`'s `dispatchRunMounts` joins a
//! relative (or empty) `target` to the step's working directory, so a bind,
//! cache or tmpfs mount without `target` mounts at the working directory,
//! and refuses one that would land on `/`.

use super::resolve::join_path;
use crate::ir::{Mount, Span, Template};

/// `mount` with its target made absolute against `workdir`; Err with the
/// target (`/`) when it would mount at the root.
pub(super) fn at_workdir(mut mount: Mount<String>, workdir: &str) -> Result<Mount<String>, String> {
    if let Mount::Cache { target, .. } | Mount::Bind { target, .. } | Mount::Tmpfs { target, .. } =
        &mut mount
    {
        *target = join_path(workdir, target);
        if target == "/" {
            return Err(target.clone());
        }
    }
    Ok(mount)
}

/// Where a mount's target was written (its `--mount` flag, in a Dockerfile).
pub(super) fn target_span(mount: &Mount<Template>) -> Span {
    match mount {
        Mount::Cache { target, .. } | Mount::Bind { target, .. } | Mount::Tmpfs { target, .. } => {
            target.span.clone()
        }
        Mount::Deferred { options } => options
            .iter()
            .find_map(|o| o.value.as_ref())
            .map_or(0..0, |t| t.span.clone()),
        Mount::Secret { .. } | Mount::Ssh { .. } => 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(target: &str) -> Mount<String> {
        Mount::Bind {
            target: target.to_owned(),
            source: None,
            from: Some("build".into()),
            rw: false,
        }
    }

    fn target(mount: &Mount<String>) -> &str {
        match mount {
            Mount::Bind { target, .. } => target,
            _ => unreachable!(),
        }
    }

    #[test]
    fn targets_are_relative_to_the_workdir() {
        assert_eq!(target(&at_workdir(bind(""), "/src").unwrap()), "/src");
        assert_eq!(target(&at_workdir(bind("."), "/src").unwrap()), "/src");
        assert_eq!(
            target(&at_workdir(bind("out"), "/src").unwrap()),
            "/src/out"
        );
        assert_eq!(
            target(&at_workdir(bind("../x"), "/src/a").unwrap()),
            "/src/x"
        );
        assert_eq!(target(&at_workdir(bind("/abs/"), "/src").unwrap()), "/abs");
    }

    #[test]
    fn a_mount_at_the_root_is_refused() {
        assert_eq!(at_workdir(bind(""), "/").unwrap_err(), "/");
        assert_eq!(at_workdir(bind("/"), "/src").unwrap_err(), "/");
        assert_eq!(at_workdir(bind(".."), "/src").unwrap_err(), "/");
        let secret = Mount::Secret {
            id: Some("x".into()),
            target: None,
            env: None,
            required: false,
            mode: None,
            uid: None,
            gid: None,
        };
        assert!(at_workdir(secret, "/").is_ok());
    }
}

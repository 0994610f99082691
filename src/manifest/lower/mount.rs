//! A mount of a `run` step: its type, the options that type takes, and
//! their values.

use toml::Spanned;

use super::{Lowerer, located};
use crate::diagnostic::suggest;
use crate::ir::value::parse_size;
use crate::ir::{self, Sharing, Span, Template};
use crate::manifest::schema::{self, Scalar};

impl Lowerer<'_> {
    /// Lowers one mount of a `run` step: a known type, only its options,
    /// a target where the type needs one, valid values.
    pub(super) fn mount(&mut self, mount: Spanned<schema::Mount>) -> Option<ir::Mount<Template>> {
        let span = mount.span();
        let m = mount.into_inner();
        let kind = m.kind.get_ref().as_str();
        let Some(allowed) = ir::mount_options(kind) else {
            let types: Vec<&str> = ir::MOUNT_OPTIONS.iter().map(|(t, _)| *t).collect();
            self.error(
                m.kind.span(),
                format!("unknown mount type `{kind}`"),
                suggest("mount type", kind, &types),
            );
            return None;
        };
        let mut ok = self.mount_options_apply(kind, allowed, &m);
        ok &= self.mount_has_target(kind, &span, &m);
        let sharing = self.sharing(m.sharing.as_ref());
        ok &= sharing.is_some();
        if let Some(from) = &m.from {
            self.reference(from, true);
        }
        let size = m.size.as_ref().map(|s| self.tmpfs_size(s));
        ok &= !matches!(size, Some(None));
        let mode = self.mode_number(m.mode).ok()?;
        let uid = self.id("uid", m.uid).ok()?;
        let gid = self.id("gid", m.gid).ok()?;
        if !ok {
            return None;
        }
        let flag = |b: Option<Spanned<bool>>| b.is_some_and(Spanned::into_inner);
        let target = m.target.map(located);
        let id = m.id.map(located);
        let from = m.from.map(located);
        let source = m.source.map(located);
        Some(match kind {
            "cache" => ir::Mount::Cache {
                target: target?,
                id,
                sharing: sharing?,
                from,
                source,
                mode,
                uid,
                gid,
                readonly: flag(m.readonly),
            },
            "secret" => ir::Mount::Secret {
                id,
                target,
                env: m.env.map(located),
                required: flag(m.required),
                mode,
                uid,
                gid,
            },
            "bind" => ir::Mount::Bind {
                target: target?,
                source,
                from,
                rw: flag(m.rw),
            },
            "tmpfs" => ir::Mount::Tmpfs {
                target: target?,
                size: size.flatten(),
            },
            _ => ir::Mount::Ssh {
                id,
                target,
                required: flag(m.required),
                mode,
                uid,
                gid,
            },
        })
    }

    /// Whether every option `m` has applies to mounts of type `kind`
    /// (`allowed`); an error for each that does not.
    fn mount_options_apply(&mut self, kind: &str, allowed: &[&str], m: &schema::Mount) -> bool {
        let present = [
            ("target", m.target.as_ref().map(Spanned::span)),
            ("id", m.id.as_ref().map(Spanned::span)),
            ("sharing", m.sharing.as_ref().map(Spanned::span)),
            ("from", m.from.as_ref().map(Spanned::span)),
            ("source", m.source.as_ref().map(Spanned::span)),
            ("mode", m.mode.as_ref().map(Spanned::span)),
            ("uid", m.uid.as_ref().map(Spanned::span)),
            ("gid", m.gid.as_ref().map(Spanned::span)),
            ("readonly", m.readonly.as_ref().map(Spanned::span)),
            ("env", m.env.as_ref().map(Spanned::span)),
            ("required", m.required.as_ref().map(Spanned::span)),
            ("size", m.size.as_ref().map(Spanned::span)),
            ("rw", m.rw.as_ref().map(Spanned::span)),
        ];
        let mut ok = true;
        for (key, key_span) in present {
            if let Some(key_span) = key_span
                && !allowed.contains(&key)
            {
                ok = false;
                let (message, help) = ir::mount_option_error(kind, key);
                self.error(key_span, message, help);
            }
        }
        ok
    }

    /// Whether `m` (at `span`) has the `target` its type needs (`secret`:
    /// an `id` or a `target`); an error if not.
    fn mount_has_target(&mut self, kind: &str, span: &Span, m: &schema::Mount) -> bool {
        let mut ok = true;
        if m.target.is_none() && ["cache", "bind", "tmpfs"].contains(&kind) {
            ok = false;
            self.error(
                span.clone(),
                format!("`{kind}` mount has no `target`"),
                "add `target`, the path where the mount appears, e.g. `target = \"/root/.cache\"`",
            );
        }
        if kind == "secret" && m.target.is_none() && m.id.is_none() {
            ok = false;
            self.error(
                span.clone(),
                "`secret` mount has neither `id` nor `target`",
                "add `id`, the name given with `--secret id=NAME,src=FILE`",
            );
        }
        ok
    }

    /// A cache mount's `sharing` (`shared` when not given); `None` after an
    /// error.
    fn sharing(&mut self, sharing: Option<&Spanned<String>>) -> Option<Sharing> {
        let Some(s) = sharing else {
            return Some(Sharing::Shared);
        };
        match s.get_ref().as_str() {
            "shared" => Some(Sharing::Shared),
            "private" => Some(Sharing::Private),
            "locked" => Some(Sharing::Locked),
            other => {
                self.error(
                    s.span(),
                    format!("unknown sharing `{other}`"),
                    suggest("sharing mode", other, &["shared", "private", "locked"]),
                );
                None
            }
        }
    }

    /// A tmpfs mount's `size` in bytes; `None` after an error.
    fn tmpfs_size(&mut self, size: &Spanned<Scalar>) -> Option<u64> {
        let parsed = match size.get_ref() {
            Scalar::Integer(n) => u64::try_from(*n).ok(),
            Scalar::String(text) => parse_size(text),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                size.span(),
                "invalid tmpfs size",
                "write a number of bytes or a size like `64m` or `1g`",
            );
        }
        parsed
    }
}

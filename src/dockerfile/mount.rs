//! `RUN --mount=...`: `BuildKit`'s CSV mount options, read into IR mounts.

use crate::diagnostic::suggest;
use crate::ir::value::{parse_octal, parse_size};
use crate::ir::{Mount, MountOption, Sharing};

/// Every option name `BuildKit` accepts, with the canonical name it stands for.
const ALIASES: [(&str, &str); 17] = [
    ("target", "target"),
    ("dst", "target"),
    ("destination", "target"),
    ("source", "source"),
    ("src", "source"),
    ("from", "from"),
    ("id", "id"),
    ("sharing", "sharing"),
    ("mode", "mode"),
    ("uid", "uid"),
    ("gid", "gid"),
    ("ro", "readonly"),
    ("readonly", "readonly"),
    ("rw", "rw"),
    ("required", "required"),
    ("env", "env"),
    ("size", "size"),
];

/// A mount option that is wrong, with advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

fn error(message: impl Into<String>, help: impl Into<String>) -> MountError {
    MountError {
        message: message.into(),
        help: help.into(),
    }
}

/// Splits a CSV record: commas separate fields, `"..."` quotes one (`""` is a quote).
fn csv_fields(text: &str) -> Result<Vec<String>, MountError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(error(
            "unterminated quote in `--mount`",
            "close the `\"` around the field",
        ));
    }
    fields.push(field);
    Ok(fields)
}

fn flag(key: &str, value: Option<&str>) -> Result<bool, MountError> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(error(
            format!("invalid `{key}={other}`"),
            format!("write `{key}`, `{key}=true` or `{key}=false`"),
        )),
    }
}

fn number(key: &str, value: &str) -> Result<u32, MountError> {
    value.parse().map_err(|_| {
        error(
            format!("invalid `{key}={value}`"),
            format!("`{key}` is a number from 0 to 4294967295"),
        )
    })
}

/// One `key[=value]` field of a `--mount`, its key lowercased.
type Field = (String, Option<String>);

/// The options whose values are not templates in the IR: a variable in one
/// of them defers reading the whole mount to the plan.
const TYPED: [&str; 9] = [
    "type", "sharing", "mode", "uid", "gid", "size", "readonly", "rw", "required",
];

/// The canonical name of option `key`, if it is one.
fn canonical(key: &str) -> Option<&'static str> {
    if key == "type" {
        return Some("type");
    }
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map(|(_, canonical)| *canonical)
}

/// `BuildKit`'s refusal of `from=$X` (it reads `from` before expanding).
fn from_variable(value: &str) -> bool {
    value.find('$').is_some_and(|i| i != value.len() - 1)
}

/// Reads one `--mount` value. `template` turns a raw value into an IR
/// template (checking its variables); `stage_ref` maps a `from` value to a
/// stage reference where it names an earlier stage. A mount whose type or
/// typed options (`mode`, `uid`, `size`, ...) use variables becomes
/// [`Mount::Deferred`], read by [`from_fields`] once the plan has expanded
/// them.
pub fn parse(
    text: &str,
    template: &dyn Fn(&str) -> Result<String, MountError>,
    stage_ref: &dyn Fn(&str) -> String,
) -> Result<Mount<String>, MountError> {
    let mut fields: Vec<Field> = Vec::new();
    for field in csv_fields(text)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_owned())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        if key.is_empty() {
            continue;
        }
        if key == "from" && value.as_deref().is_some_and(from_variable) {
            return Err(error(
                "'from' doesn't support variable expansion, define alias stage instead",
                "name the stage or image literally; to choose it with an argument, declare the `ARG` before the first `FROM`, add `FROM ${ARG} AS alias`, and mount `from=alias`",
            ));
        }
        fields.push((key, value));
    }
    let deferred = fields.iter().any(|(key, value)| {
        canonical(key).is_some_and(|c| TYPED.contains(&c))
            && value
                .as_deref()
                .is_some_and(|v| template(v).is_ok_and(|t| super::word::has_variable(&t)))
    });
    if deferred {
        let mut options = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            if canonical(&key).is_none() {
                return Err(unknown_option(&key));
            }
            let value = match value {
                Some(v) if key == "from" => Some(stage_ref(&template(&v)?)),
                Some(v) => Some(template(&v)?),
                None => None,
            };
            options.push(MountOption { key, value });
        }
        return Ok(Mount::Deferred { options });
    }
    build(&fields, template, stage_ref)
}

/// Reads the fields of a deferred mount (see [`parse`]) whose values the
/// plan has expanded.
pub(super) fn from_fields(
    fields: &[(String, Option<String>)],
) -> Result<Mount<String>, MountError> {
    build(fields, &|v| Ok(v.to_owned()), &str::to_owned)
}

fn unknown_option(key: &str) -> MountError {
    let names: Vec<&str> = ALIASES.iter().map(|(a, _)| *a).collect();
    error(
        format!("unknown mount option `{key}`"),
        suggest("mount option", key, &names),
    )
}

/// A mount's options but its type, each as its canonical name, the name
/// written and the value.
type Options = Vec<(&'static str, String, Option<String>)>;

/// The mount's type (`bind` when not given) and its other options.
fn type_and_options(fields: &[Field]) -> Result<(String, Options), MountError> {
    let mut kind = "bind".to_owned();
    let mut options = Vec::new();
    for (key, value) in fields {
        if key == "type" {
            kind = value.as_deref().unwrap_or_default().to_ascii_lowercase();
            continue;
        }
        let Some(canonical) = canonical(key) else {
            return Err(unknown_option(key));
        };
        options.push((canonical, key.clone(), value.clone()));
    }
    Ok((kind, options))
}

/// A cache mount's `sharing=`.
fn sharing_mode(value: &str) -> Result<Sharing, MountError> {
    match value {
        "shared" => Ok(Sharing::Shared),
        "private" => Ok(Sharing::Private),
        "locked" => Ok(Sharing::Locked),
        other => Err(error(
            format!("unknown sharing `{other}`"),
            suggest("sharing mode", other, &["shared", "private", "locked"]),
        )),
    }
}

/// A `mode=`, in octal.
fn mode_value(value: &str) -> Result<u32, MountError> {
    parse_octal(value).ok_or_else(|| {
        error(
            format!("invalid `mode={value}`"),
            "write an octal mode like `mode=0755`",
        )
    })
}

/// A tmpfs `size=`, in bytes.
fn size_value(value: &str) -> Result<u64, MountError> {
    parse_size(value).ok_or_else(|| {
        error(
            format!("invalid `size={value}`"),
            "write a number of bytes or a size like `64m` or `1g`",
        )
    })
}

fn build(
    fields: &[Field],
    template: &dyn Fn(&str) -> Result<String, MountError>,
    stage_ref: &dyn Fn(&str) -> String,
) -> Result<Mount<String>, MountError> {
    let (kind, options) = type_and_options(fields)?;
    let Some(allowed) = crate::ir::mount_options(&kind) else {
        let types: Vec<&str> = crate::ir::MOUNT_OPTIONS.iter().map(|(t, _)| *t).collect();
        return Err(error(
            format!("unsupported mount type {kind:?}"),
            suggest("mount type", &kind, &types),
        ));
    };
    let mut target = None;
    let mut source = None;
    let mut from = None;
    let mut id = None;
    let mut env = None;
    let mut sharing = Sharing::Shared;
    let (mut mode, mut uid, mut gid, mut size) = (None, None, None, None);
    let (mut readonly, mut rw, mut required) = (false, false, false);
    for (canonical, key, value) in options {
        // Docker's bind mounts are read-only by default and also take `ro`.
        let bind_readonly = kind == "bind" && canonical == "readonly";
        if !allowed.contains(&canonical) && !bind_readonly {
            let (message, help) = crate::ir::mount_option_error(&kind, &key);
            return Err(error(message, help));
        }
        let boolean = ["readonly", "rw", "required"].contains(&canonical);
        let Some(value) = value.or_else(|| boolean.then(String::new)) else {
            return Err(error(
                format!("mount option `{key}` has no value"),
                format!("write `{key}=VALUE`"),
            ));
        };
        let as_flag = || flag(key.as_str(), (!value.is_empty()).then_some(value.as_str()));
        match canonical {
            "target" => target = Some(template(&value)?),
            "source" => source = Some(template(&value)?),
            "from" => from = Some(stage_ref(&template(&value)?)),
            "id" => id = Some(template(&value)?),
            "env" => env = Some(template(&value)?),
            "sharing" => sharing = sharing_mode(&value)?,
            "mode" => mode = Some(mode_value(&value)?),
            "uid" => uid = Some(number("uid", &value)?),
            "gid" => gid = Some(number("gid", &value)?),
            "size" => size = Some(size_value(&value)?),
            "readonly" => readonly = as_flag()?,
            "rw" => rw = as_flag()?,
            _ => required = as_flag()?,
        }
    }
    // As in `BuildKit`, a bind, cache or tmpfs mount without `target`
    // mounts at the working directory (the plan resolves the empty target,
    // and relative ones, against it).
    let target_or_workdir = || target.clone().unwrap_or_default();
    Ok(match kind.as_str() {
        "cache" => Mount::Cache {
            target: target_or_workdir(),
            id,
            sharing,
            from,
            source,
            mode,
            uid,
            gid,
            readonly,
        },
        "secret" => {
            if id.is_none() && target.is_none() {
                return Err(error(
                    "`secret` mount has neither `id` nor `target`",
                    "add `id=NAME`, the name given with `--secret id=NAME,src=FILE`",
                ));
            }
            Mount::Secret {
                id,
                target,
                env,
                required,
                mode,
                uid,
                gid,
            }
        }
        "bind" => Mount::Bind {
            target: target_or_workdir(),
            source,
            from,
            rw: rw && !readonly,
        },
        "tmpfs" => Mount::Tmpfs {
            target: target_or_workdir(),
            size,
        },
        _ => Mount::Ssh {
            id,
            target,
            required,
            mode,
            uid,
            gid,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Mount<String>, MountError> {
        parse(text, &|v| Ok(v.to_owned()), &|v| v.to_owned())
    }

    #[test]
    fn buildkit_option_names() {
        assert_eq!(
            read("type=cache,dst=/root/.cache,id=x,sharing=locked,mode=0700,uid=1,ro").unwrap(),
            Mount::Cache {
                target: "/root/.cache".into(),
                id: Some("x".into()),
                sharing: Sharing::Locked,
                from: None,
                source: None,
                mode: Some(0o700),
                uid: Some(1),
                gid: None,
                readonly: true,
            }
        );
        assert_eq!(
            read("target=/src,from=build,src=/out,rw").unwrap(),
            Mount::Bind {
                target: "/src".into(),
                source: Some("/out".into()),
                from: Some("build".into()),
                rw: true,
            }
        );
        assert!(matches!(
            read("type=secret,id=npm,env=TOKEN,required=true").unwrap(),
            Mount::Secret {
                required: true,
                env: Some(_),
                ..
            }
        ));
        assert_eq!(
            read("type=tmpfs,target=/t,size=1m").unwrap(),
            Mount::Tmpfs {
                target: "/t".into(),
                size: Some(1 << 20)
            }
        );
        assert_eq!(
            csv_fields("a=1,\"b=x,y\",c=\"\"\"\"").unwrap(),
            ["a=1", "b=x,y", "c=\""]
        );
    }

    #[test]
    fn bad_options_are_explained() {
        assert!(
            read("type=cache,target=/x,size=1")
                .unwrap_err()
                .message
                .contains("not an option")
        );
        assert!(
            read("type=cache,targte=/x")
                .unwrap_err()
                .help
                .contains("target")
        );
        // No target: the plan mounts it at the working directory.
        assert!(
            matches!(read("type=cache").unwrap(), Mount::Cache { target, .. } if target.is_empty())
        );
        assert!(
            matches!(read("from=build").unwrap(), Mount::Bind { target, .. } if target.is_empty())
        );
        assert!(read("type=cache,target=/x,mode=9").is_err());
        assert!(
            read("type=volume,target=/x")
                .unwrap_err()
                .message
                .contains("unsupported mount type \"volume\"")
        );
        assert!(read("type=secret").is_err());
    }
}

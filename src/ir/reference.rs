//! Syntax of image references: `[registry/]repository[:tag][@algorithm:digest]`.
//!
//! Only checks the form, following the distribution reference grammar; the
//! registry module resolves and normalizes references.

/// Whether `reference` names a local image (`oci-layout:DIR[:TAG]`,
/// `oci-archive:FILE[:TAG]` or `docker-archive:FILE`) rather than a
/// registry image.
pub fn is_local(reference: &str) -> bool {
    ["oci-layout:", "oci-archive:", "docker-archive:"]
        .iter()
        .any(|p| reference.starts_with(p))
}

/// What to say when the image `reference` cannot be loaded and it looks
/// like a misspelt stage: a bare word (no registry, tag or digest) one
/// typo away from a name in `stages`. Only a hint: a `from` that names no
/// stage is an image reference, as in `BuildKit`, which never guesses.
pub fn stage_hint(reference: &str, stages: &[String]) -> Option<String> {
    if reference.contains(['/', ':', '@', '.']) {
        return None;
    }
    let near = crate::diagnostic::closest(reference, stages.iter().map(String::as_str))?;
    Some(format!(
        "did you mean the stage `{near}`? `{reference}` names no stage, so it is the image `docker.io/library/{reference}`"
    ))
}

/// Checks the form of an image reference; the error says which part is wrong.
pub fn validate(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("it is empty".into());
    }
    if reference.len() > 4096 {
        return Err("it is longer than 4096 characters".into());
    }
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        validate_digest(digest)?;
    }
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(format!(
                "tag `{tag}` must be 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
            ));
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 && looks_like_registry(components[0]) {
        validate_registry(components.remove(0))?;
    }
    for component in components {
        validate_path_component(component)?;
    }
    Ok(())
}

fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn validate_registry(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => (n, Some(p)),
        _ => (host, None),
    };
    let valid_name = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        || (name.starts_with('[') && name.ends_with(']'));
    let valid_port = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if valid_name && valid_port {
        Ok(())
    } else {
        Err(format!("registry `{host}` is not a valid host[:port]"))
    }
}

fn validate_path_component(component: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "repository path component `{component}` must be lowercase letters and digits, separated by `.`, `_`, `__` or `-`"
        ))
    };
    if component.is_empty()
        || !component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return bad();
    }
    let mut separator = String::new();
    for c in component.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            let ok = matches!(separator.as_str(), "" | "." | "_" | "__")
                || separator.chars().all(|s| s == '-');
            if !ok {
                return bad();
            }
            separator.clear();
        } else if "._-".contains(c) {
            separator.push(c);
        } else {
            return bad();
        }
    }
    Ok(())
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("digest `{digest}` must be `algorithm:hex`"));
    };
    let expected = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "digest algorithm `{algorithm}` is not sha256 or sha512"
            ));
        }
    };
    if hex.len() == expected
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Ok(())
    } else {
        Err(format!(
            "{algorithm} digest must be {expected} lowercase hex digits"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_common_references() {
        for ok in [
            "alpine",
            "alpine:3.20",
            "docker.io/library/golang:1.23",
            "localhost:5000/team/app:v1",
            "ghcr.io/a-b/c__d/e.f:latest",
            "127.0.0.1:5000/x",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "",
            "alpine/X",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:abc",
            "alpine@md5:00",
            "a//b",
            "registry:99999/x",
            "app_/x",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}

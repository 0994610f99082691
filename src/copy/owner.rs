//! `chown` and `chmod` values: user and group names resolved from the
//! image's `/etc/passwd` and `/etc/group`, octal and symbolic modes.

use std::path::Path;

use super::CopyError;

/// A resolved owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Resolves `user[:group]` against the image whose root is `rootfs` (None
/// for an image with no files), as `BuildKit`'s file operations do: a
/// numeric user without a group uses the same number as gid; a named user
/// is looked up in /etc/passwd and brings its primary group. A name that
/// the image does not have (or an image without the file) is not an
/// error: an unknown user is 0:0 and an unknown group keeps the gid the
/// user gave, exactly as `BuildKit` (`solver/llbsolver/ops/user_linux.go`)
/// resolves it.
pub fn resolve_owner(spec: &str, rootfs: Option<&Path>) -> Result<Owner, CopyError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(CopyError::Owner {
            spec: spec.to_owned(),
            why: "expected `user[:group]`".into(),
        });
    }
    let read = |file: &str| {
        rootfs
            .and_then(|r| {
                let rel = crate::util::path::resolve_in_root(r, Path::new(file), true).ok()?;
                let full = r.join(rel);
                if full.is_file() {
                    std::fs::read_to_string(full).ok()
                } else {
                    None
                }
            })
            .unwrap_or_default()
    };
    let (uid, mut gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            lookup(&read("/etc/passwd"), user).map_or((0, 0), |(uid, gid)| (uid, gid.unwrap_or(0)))
        }
    };
    if let Some(group) = group {
        match group.parse::<u32>() {
            Ok(id) => gid = id,
            Err(_) => {
                if let Some((id, _)) = lookup(&read("/etc/group"), group) {
                    gid = id;
                }
            }
        }
    }
    Ok(Owner { uid, gid })
}

/// Finds `name` in a passwd or group file: its id (the third field) and
/// the fourth field as a number (the gid, in passwd).
fn lookup(file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    file.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&name) {
            return None;
        }
        let id = fields.get(2)?.parse().ok()?;
        Some((id, fields.get(3).and_then(|g| g.parse().ok())))
    })
}

/// A parsed `chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSpec {
    /// An absolute octal mode.
    Octal(u32),
    /// Symbolic clauses such as `u+x,go-w`.
    Symbolic(Vec<String>),
}

impl ModeSpec {
    /// Parses `0755`, `755` or symbolic `u+x,go-w`, `a=rX`.
    pub fn parse(text: &str) -> Result<Self, CopyError> {
        let bad = || CopyError::Mode(text.to_owned());
        if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
            let mode = u32::from_str_radix(text, 8).map_err(|_| bad())?;
            return if mode <= 0o7777 {
                Ok(ModeSpec::Octal(mode))
            } else {
                Err(bad())
            };
        }
        let clauses: Vec<String> = text.split(',').map(str::to_owned).collect();
        for clause in &clauses {
            let op = clause.find(['+', '-', '=']).ok_or_else(bad)?;
            if !clause[..op].chars().all(|c| "ugoa".contains(c))
                || !clause[op + 1..].chars().all(|c| "rwxXst+-=".contains(c))
            {
                return Err(bad());
            }
        }
        Ok(ModeSpec::Symbolic(clauses))
    }

    /// The mode for a file whose current mode is `mode` (permission bits).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            ModeSpec::Octal(m) => *m,
            ModeSpec::Symbolic(clauses) => clauses
                .iter()
                .fold(mode & 0o7777, |mode, c| apply_clause(c, mode, is_dir)),
        }
    }
}

fn apply_clause(clause: &str, mut mode: u32, is_dir: bool) -> u32 {
    let op_at = clause.find(['+', '-', '=']).unwrap_or(clause.len());
    let who = &clause[..op_at];
    let mut who_mask = 0;
    for c in if who.is_empty() {
        "a".chars()
    } else {
        who.chars()
    } {
        who_mask |= match c {
            'u' => 0o4700,
            'g' => 0o2070,
            'o' => 0o1007,
            _ => 0o7777,
        };
    }
    let mut rest = &clause[op_at..];
    while let Some(op) = rest.chars().next() {
        let perms_end = rest[1..]
            .find(['+', '-', '='])
            .map_or(rest.len(), |i| i + 1);
        let perms = &rest[1..perms_end];
        let any_exec = mode & 0o111 != 0;
        let mut bits = 0;
        for p in perms.chars() {
            bits |= match p {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                'X' if is_dir || any_exec => 0o111,
                's' => 0o6000,
                't' => 0o1000,
                _ => 0,
            };
        }
        let bits = bits & who_mask;
        mode = match op {
            '+' => mode | bits,
            '-' => mode & !bits,
            _ => (mode & !(who_mask & 0o777)) | bits,
        };
        rest = &rest[perms_end..];
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_modes() {
        let m = |s: &str, mode: u32, dir: bool| ModeSpec::parse(s).unwrap().apply(mode, dir);
        assert_eq!(m("u+x", 0o644, false), 0o744);
        assert_eq!(m("go-w", 0o666, false), 0o644);
        assert_eq!(m("a=rX", 0o700, true), 0o555);
        assert_eq!(m("a=rX", 0o600, false), 0o444);
        assert_eq!(m("a=rX", 0o700, false), 0o555);
        assert_eq!(m("u=rwx,go=rx", 0, false), 0o755);
        assert_eq!(m("+x", 0o644, false), 0o755);
        assert_eq!(m("0755", 0o600, false), 0o755);
        assert!(ModeSpec::parse("0999").is_err());
        assert!(ModeSpec::parse("u+q").is_err());
    }

    #[test]
    fn owners_by_id_and_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
        )
        .unwrap();
        let root = Some(dir.path());
        assert_eq!(
            resolve_owner("1000", None).unwrap(),
            Owner {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            resolve_owner("1:2", None).unwrap(),
            Owner { uid: 1, gid: 2 }
        );
        assert_eq!(
            resolve_owner("app", root).unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(
            resolve_owner("app:staff", root).unwrap(),
            Owner { uid: 1000, gid: 50 }
        );
        assert_eq!(
            resolve_owner("7:staff", root).unwrap(),
            Owner { uid: 7, gid: 50 }
        );
        // Unknown names are not errors in BuildKit: user 0:0, group kept.
        assert_eq!(
            resolve_owner("nobody", root).unwrap(),
            Owner { uid: 0, gid: 0 }
        );
        assert_eq!(
            resolve_owner("app:nogroup", root).unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(
            resolve_owner("7:nogroup", root).unwrap(),
            Owner { uid: 7, gid: 7 }
        );
        assert_eq!(
            resolve_owner("nobody:staff", root).unwrap(),
            Owner { uid: 0, gid: 50 }
        );
        // An image without /etc/passwd (scratch, a linked copy) finds no names.
        assert_eq!(
            resolve_owner("app:staff", None).unwrap(),
            Owner { uid: 0, gid: 0 }
        );
        assert!(resolve_owner(":staff", root).is_err());
    }
}

//! The process user of a RUN step, `user[:group]`, looked up in the image's
//! `/etc/passwd` and `/etc/group` the way runc's `user.GetExecUser` does for
//! `BuildKit`: a user that is not in passwd works when it is numeric (gid 0),
//! a name fails; an explicit group is the only group, and without one the
//! user's passwd group is primary and every group listing the user is
//! supplementary.

use std::path::Path;

/// A resolved process user: the OCI runtime spec's `process.user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (`additionalGids`), in /etc/group order.
    pub additional_gids: Vec<u32>,
}

/// Why a user could not be resolved; the wording is runc's (and so
/// `BuildKit`'s), so errors read the same in both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user name that /etc/passwd does not have.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name that /etc/group does not have.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

impl UserError {
    /// What to do about it.
    #[must_use]
    pub fn help(&self) -> &'static str {
        match self {
            UserError::NoUser(_) => {
                "create the user in an earlier step (adduser), or use a numeric uid"
            }
            UserError::NoGroup(_) => {
                "create the group in an earlier step (addgroup), or use a numeric gid"
            }
        }
    }
}

/// Resolves `spec` (`user`, `user:group`, names or ids; empty = root)
/// against the image whose root is `root`.
pub fn resolve(spec: &str, root: &Path) -> Result<ExecUser, UserError> {
    let read = |file: &str| {
        crate::util::path::resolve_in_root(root, Path::new(file), true)
            .ok()
            .and_then(|p| std::fs::read_to_string(root.join(p)).ok())
            .unwrap_or_default()
    };
    resolve_in(spec, &read("/etc/passwd"), &read("/etc/group"))
}

/// [`resolve`] over the text of the passwd and group files.
pub fn resolve_in(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, UserError> {
    if spec.is_empty() {
        return Ok(ExecUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        });
    }
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let numeric_user = user_arg.parse::<u32>().ok();
    let entry = records(passwd).find(|f| {
        f.len() > 3
            && (f[0] == user_arg || (numeric_user.is_some() && f[2].parse().ok() == numeric_user))
    });
    let (uid, mut gid, name) = match (&entry, numeric_user) {
        (Some(f), _) => (
            f[2].parse().unwrap_or_default(),
            f[3].parse().unwrap_or_default(),
            Some(f[0]),
        ),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => return Err(UserError::NoUser(user_arg.to_owned())),
    };
    let mut additional_gids = Vec::new();
    match group_arg.filter(|g| !g.is_empty()) {
        Some(group_arg) => {
            let numeric = group_arg.parse::<u32>().ok();
            let found = records(group).find(|f| {
                f.len() > 2
                    && (f[0] == group_arg || (numeric.is_some() && f[2].parse().ok() == numeric))
            });
            gid = match (found, numeric) {
                (Some(f), _) => f[2].parse().unwrap_or_default(),
                (None, Some(gid)) => gid,
                (None, None) => return Err(UserError::NoGroup(group_arg.to_owned())),
            };
        }
        None => {
            if let Some(name) = name {
                additional_gids = records(group)
                    .filter(|f| f.len() > 3 && f[3].split(',').any(|m| m.trim() == name))
                    .filter_map(|f| f[2].parse().ok())
                    .filter(|g| *g != gid)
                    .collect();
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
    })
}

/// The colon-separated records of a passwd or group file, comments and
/// blank lines skipped.
fn records(file: &str) -> impl Iterator<Item = Vec<&str>> {
    file.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nmore:x:3000:root,app\n";

    fn user(spec: &str) -> Result<ExecUser, UserError> {
        resolve_in(spec, PASSWD, GROUP)
    }

    fn ids(uid: u32, gid: u32, additional_gids: &[u32]) -> ExecUser {
        ExecUser {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn implicit_group_gives_passwd_group_and_memberships() {
        assert_eq!(user("app").unwrap(), ids(1000, 1000, &[2000, 3000]));
        assert_eq!(user("1000").unwrap(), ids(1000, 1000, &[2000, 3000]));
        assert_eq!(user("root").unwrap(), ids(0, 0, &[3000]));
        assert_eq!(user("").unwrap(), ids(0, 0, &[]));
    }

    #[test]
    fn explicit_group_is_the_only_group() {
        assert_eq!(user("app:extra").unwrap(), ids(1000, 2000, &[]));
        assert_eq!(user("app:4343").unwrap(), ids(1000, 4343, &[]));
        assert_eq!(user("1000:2000").unwrap(), ids(1000, 2000, &[]));
        assert_eq!(user("root:extra").unwrap(), ids(0, 2000, &[]));
    }

    #[test]
    fn unknown_numeric_ids_work_and_unknown_names_fail() {
        assert_eq!(user("4242").unwrap(), ids(4242, 0, &[]));
        assert_eq!(user("4242:4343").unwrap(), ids(4242, 4343, &[]));
        assert_eq!(user("4242:extra").unwrap(), ids(4242, 2000, &[]));
        assert_eq!(
            user("ghost").unwrap_err().to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            user("app:ghosts").unwrap_err().to_string(),
            "unable to find group ghosts: no matching entries in group file"
        );
        assert!(matches!(
            resolve_in("app", "", ""),
            Err(UserError::NoUser(_))
        ));
    }
}

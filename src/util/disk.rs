//! A full disk, told apart from other failures.

use std::path::Path;

/// Whether `error`, or an error it comes from, is a full filesystem or
/// quota (`ENOSPC`, `EDQUOT`).
#[must_use]
pub fn is_out_of_space(error: &(dyn std::error::Error + 'static)) -> bool {
    let full = [
        rustix::io::Errno::NOSPC.raw_os_error(),
        rustix::io::Errno::DQUOT.raw_os_error(),
    ];
    let mut at = Some(error);
    while let Some(e) = at {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some_and(|code| full.contains(&code))
        {
            return true;
        }
        at = e.source();
    }
    false
}

/// Bytes free for an unprivileged writer on the filesystem of `path`, or of
/// its nearest existing ancestor; 0 when that cannot be read.
#[must_use]
pub fn free_space(path: &Path) -> u64 {
    path.ancestors()
        .find_map(|dir| rustix::fs::statvfs(dir).ok())
        .map_or(0, |s| s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_found_through_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot write")]
        struct Wrapper(#[source] std::io::Error);
        let full = Wrapper(std::io::Error::from_raw_os_error(
            rustix::io::Errno::NOSPC.raw_os_error(),
        ));
        assert!(is_out_of_space(&full));
        let other = Wrapper(std::io::Error::other("broken"));
        assert!(!is_out_of_space(&other));
        assert!(free_space(Path::new("/nonexistent/below/root")) > 0);
    }
}

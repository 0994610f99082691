//! `add` of a URL: download to a scratch file, checking `checksum` when given.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::CopyError;

/// Downloads `url` into a new file under `dir`; returns its path and the file name the URL names.
pub fn fetch(
    url: &str,
    checksum: Option<&str>,
    dir: &Path,
) -> Result<(PathBuf, String), CopyError> {
    let fail = |why: String| CopyError::Fetch {
        url: url.to_owned(),
        why,
    };
    let name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .unwrap_or("download")
        .to_owned();
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut body = response.into_body().into_reader();
    fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create `{}`: {e}", dir.display())))?;
    let path = dir.join(format!("url-{}", hex(&Sha256::digest(url.as_bytes()))));
    let mut file = fs::File::create(&path)
        .map_err(|e| fail(format!("cannot create `{}`: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| fail(format!("download interrupted: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| fail(format!("cannot write `{}`: {e}", path.display())))?;
    }
    let actual = format!("sha256:{}", hex(&hasher.finalize()));
    if let Some(expected) = checksum
        && expected != actual
    {
        let _ = fs::remove_file(&path);
        return Err(CopyError::Checksum {
            url: url.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok((path, name))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

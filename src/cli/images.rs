//! `imgbuild images`: the images the store holds, as `docker images` lists them.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;

use super::du::human_size;
use crate::error::Error;
use crate::image::list::{self, StoredImage};
use crate::printer::Printer;

/// Flags of `imgbuild images`.
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Print JSON: every image with its full id, media type, size in bytes
    /// and each platform's manifest.
    #[arg(long)]
    pub json: bool,
    /// Show whole image ids (`sha256:` and 64 hex digits), not the first 12 digits.
    #[arg(long)]
    pub no_trunc: bool,
}

/// Lists the store's images: a table, JSON, or with `-q` only their ids.
pub fn run(args: &ImagesArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let store = super::open_store(store_dir)?;
    let _lock = super::lock_shared_waiting(&store, printer)?;
    let images = list::list(&store)?;
    let text = if args.json {
        serde_json::to_string_pretty(&images).expect("images serialize")
    } else if printer == Printer::Quiet {
        ids(&images, args.no_trunc)
    } else {
        table(&images, args.no_trunc)
    };
    printer.result(&text).map_err(Error::Output)?;
    if images.is_empty() && !args.json {
        printer.message(
            "the store holds no images: `imgbuild apply` builds them, `imgbuild pull` pulls them",
        );
    }
    Ok(())
}

/// An image id as `images` shows it: 12 hex digits, or all of the digest.
fn short_id(image: &StoredImage, no_trunc: bool) -> String {
    if no_trunc {
        image.id.to_string()
    } else {
        image.id.hex()[..12].to_owned()
    }
}

/// Each image id once, in the table's order: what `imgbuild rmi` takes.
pub fn ids(images: &[StoredImage], no_trunc: bool) -> String {
    let mut seen = Vec::new();
    for image in images {
        let id = short_id(image, no_trunc);
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    seen.iter().fold(String::new(), |mut out, id| {
        let _ = writeln!(out, "{id}");
        out
    })
}

/// The table: one row per tag (and per untagged entry), columns aligned.
pub fn table(images: &[StoredImage], no_trunc: bool) -> String {
    const NONE: &str = "<none>";
    let header = [
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "PLATFORMS",
    ];
    let rows: Vec<[String; 6]> = images
        .iter()
        .map(|image| {
            [
                image.repository.clone().unwrap_or_else(|| NONE.to_owned()),
                image.tag.clone().unwrap_or_else(|| NONE.to_owned()),
                short_id(image, no_trunc),
                image
                    .created
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), short_time),
                human_size(image.size),
                platforms(image),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            match i {
                5 => text.push_str(cell),
                // Sizes line up on the right, as in `du`.
                4 => {
                    let _ = write!(text, "{cell:>width$}   ");
                }
                _ => {
                    let _ = write!(text, "{cell:<width$}   ");
                }
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    out
}

/// The platforms in the store, and how many of an index's are not.
fn platforms(image: &StoredImage) -> String {
    let present: Vec<&str> = image
        .present_platforms()
        .map(|p| p.platform.as_str())
        .collect();
    let missing = image.platforms.len() - present.len();
    match (present.is_empty(), missing) {
        (true, 0) => "-".to_owned(),
        (true, n) => format!("({n} not pulled)"),
        (false, 0) => present.join(","),
        (false, n) => format!("{} (+{n} not pulled)", present.join(",")),
    }
}

/// An RFC 3339 time to the second: `2026-11-28T08:23:25.123456Z` is
/// `2026-11-28T08:23:25Z`; other forms are shown as written.
fn short_time(time: &str) -> String {
    let utc = |rest: &str| {
        rest == "Z"
            || rest
                .strip_prefix('.')
                .and_then(|r| r.strip_suffix('Z'))
                .is_some_and(|digits| {
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                })
    };
    match (time.get(..19), time.get(19..)) {
        (Some(seconds), Some(rest)) if utc(rest) => format!("{seconds}Z"),
        _ => time.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::list::StoredPlatform;
    use crate::store::Digest;

    fn image(reference: Option<&str>, platforms: &[(&str, bool)]) -> StoredImage {
        let id = Digest::of(reference.unwrap_or("none").as_bytes());
        let (repository, tag) = match reference.map(list::split_reference) {
            Some((r, t)) => (Some(r.to_owned()), t.map(str::to_owned)),
            None => (None, None),
        };
        StoredImage {
            reference: reference.map(str::to_owned),
            repository,
            tag,
            id: id.clone(),
            media_type: crate::image::MANIFEST_MEDIA_TYPE.to_owned(),
            created: Some("2026-11-28T08:23:25.123456789Z".to_owned()),
            size: 16 << 10,
            platforms: platforms
                .iter()
                .map(|(p, present)| StoredPlatform {
                    platform: (*p).to_owned(),
                    digest: id.clone(),
                    present: *present,
                })
                .collect(),
        }
    }

    #[test]
    fn times_are_cut_to_the_second() {
        assert_eq!(short_time("2026-11-28T08:23:25.5Z"), "2026-11-28T08:23:25Z");
        assert_eq!(short_time("1970-01-01T00:00:00Z"), "1970-01-01T00:00:00Z");
        assert_eq!(
            short_time("2026-11-28T08:23:25+01:00"),
            "2026-11-28T08:23:25+01:00"
        );
        assert_eq!(short_time("yesterday"), "yesterday");
    }

    #[test]
    fn platforms_say_what_was_not_pulled() {
        let pulled = image(
            Some("docker.io/library/alpine:3.20"),
            &[
                ("linux/amd64", true),
                ("linux/arm64/v8", false),
                ("linux/386", false),
            ],
        );
        assert_eq!(platforms(&pulled), "linux/amd64 (+2 not pulled)");
        assert_eq!(platforms(&image(None, &[])), "-");
        assert_eq!(
            platforms(&image(None, &[("linux/amd64", false)])),
            "(1 not pulled)"
        );
    }

    #[test]
    fn ids_are_listed_once() {
        let a = image(Some("a:1"), &[]);
        let mut b = image(Some("b:1"), &[]);
        b.id = a.id.clone();
        assert_eq!(
            ids(&[a.clone(), b], false),
            format!("{}\n", &a.id.hex()[..12])
        );
        assert_eq!(ids(std::slice::from_ref(&a), true), format!("{}\n", a.id));
    }
}

//! `imgbuild rmi`: untag images, as `docker rmi` does; `prune` then frees
//! what only they used.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;

use super::du::human_size;
use crate::error::Error;
use crate::printer::Printer;
use crate::registry::Registry;
use crate::store::{Descriptor, Digest, Store};

/// Flags of `imgbuild rmi`.
#[derive(Debug, Clone, Args)]
pub struct RmiArgs {
    /// The images to remove: a tag as `imgbuild images` shows it
    /// (`localhost/app:1`; `alpine:3.20` finds a pulled
    /// `docker.io/library/alpine:3.20`), or an image id (at least 4 hex
    /// digits of its digest, with or without `sha256:`).
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
    /// Remove every tag of an image named by its id, and skip images that
    /// are not in the store instead of failing.
    #[arg(short, long)]
    pub force: bool,
}

/// What one command-line image names in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A tag.
    Tag(String),
    /// Every tag of an image, and its untagged entries, by the image's digest.
    Id {
        digest: Digest,
        tags: Vec<String>,
        untagged: bool,
    },
}

/// Untags the images, then says what `prune` would now free. Refuses
/// (exit code 2, nothing removed) when an image is not in the store, an id
/// is ambiguous, or an id has several tags, unless `--force` says to skip
/// or remove them all.
pub fn run(args: &RmiArgs, store_dir: Option<&Path>, printer: Printer) -> Result<(), Error> {
    let store = super::open_store(store_dir)?;
    // Builds hold the shared lock too: untagging never waits for them, only
    // for `prune` and `store verify --repair`, which read the tags as roots.
    let _lock = super::lock_shared_waiting(&store, printer)?;
    let images = store.images().map_err(Error::Store)?;
    let mut targets = Vec::new();
    let mut unknown = Vec::new();
    for name in &args.images {
        match resolve(&images, name, args.force)? {
            Some(target) if !targets.contains(&target) => targets.push(target),
            Some(_) => {}
            None => unknown.push(name.as_str()),
        }
    }
    if !unknown.is_empty() {
        let list = unknown
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if !args.force {
            return Err(Error::Usage {
                message: format!("no image {list} in the store"),
                help: "nothing was removed; `imgbuild images` lists the images the store holds \
                       (`--force` skips images that are not there)"
                    .into(),
            });
        }
        printer.message(&format!("no image {list} in the store; skipped (--force)"));
    }
    let mut removed = Vec::new();
    let mut out = String::new();
    for target in &targets {
        let (digest, tags, untagged) = match target {
            Target::Tag(tag) => (None, std::slice::from_ref(tag), false),
            Target::Id {
                digest,
                tags,
                untagged,
            } => (Some(digest), tags.as_slice(), *untagged),
        };
        for tag in tags {
            if let Some(descriptor) = images.iter().find(|d| d.ref_name() == Some(tag))
                && store.remove_tag(tag).map_err(Error::Store)?
            {
                let _ = writeln!(out, "Untagged: {tag}");
                removed.push(descriptor.digest.clone());
            }
        }
        if let Some(digest) = digest.filter(|_| untagged)
            && store.remove_untagged(digest).map_err(Error::Store)?
        {
            let _ = writeln!(out, "Untagged: {digest}");
            removed.push(digest.clone());
        }
    }
    if !out.is_empty() {
        printer.result(&out).map_err(Error::Output)?;
    }
    let left = store.images().map_err(Error::Store)?;
    let gone = removed
        .iter()
        .filter(|digest| !left.iter().any(|d| &d.digest == *digest))
        .count();
    if gone > 0 {
        printer.message(&prunable(&store, gone));
    }
    Ok(())
}

/// What one name on the command line stands for; `None` when the store
/// has no such image.
fn resolve(images: &[Descriptor], name: &str, force: bool) -> Result<Option<Target>, Error> {
    let tagged = |tag: &str| images.iter().any(|d| d.ref_name() == Some(tag));
    if tagged(name) {
        return Ok(Some(Target::Tag(name.to_owned())));
    }
    // Pulled images are tagged under their normalised name.
    if let Ok(normalized) = Registry::normalize(name)
        && tagged(&normalized)
    {
        return Ok(Some(Target::Tag(normalized)));
    }
    let Some(prefix) = id_prefix(name) else {
        return Ok(None);
    };
    let mut digests: Vec<&Digest> = images
        .iter()
        .map(|d| &d.digest)
        .filter(|d| d.hex().starts_with(prefix))
        .collect();
    digests.sort();
    digests.dedup();
    let digest = match digests.as_slice() {
        [] => return Ok(None),
        [one] => (*one).clone(),
        several => {
            return Err(Error::Usage {
                message: format!(
                    "`{name}` is the start of {} image ids: {}",
                    several.len(),
                    several
                        .iter()
                        .map(|d| d.hex()[..12].to_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                help: "nothing was removed; write more of the id".into(),
            });
        }
    };
    let tags: Vec<String> = images
        .iter()
        .filter(|d| d.digest == digest)
        .filter_map(|d| d.ref_name().map(str::to_owned))
        .collect();
    if tags.len() > 1 && !force {
        return Err(Error::Usage {
            message: format!(
                "image {} has {} tags: {}",
                &digest.hex()[..12],
                tags.len(),
                tags.join(", ")
            ),
            help:
                "nothing was removed; name the tag to remove, or pass `--force` to remove them all"
                    .into(),
        });
    }
    let untagged = images
        .iter()
        .any(|d| d.digest == digest && d.ref_name().is_none());
    Ok(Some(Target::Id {
        digest,
        tags,
        untagged,
    }))
}

/// The hex digits of an image id: `sha256:` and any, or at least 4 bare.
fn id_prefix(name: &str) -> Option<&str> {
    let (hex, min) = match name.strip_prefix("sha256:") {
        Some(hex) => (hex, 1),
        None => (name, 4),
    };
    (hex.len() >= min
        && hex.len() <= 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(hex)
}

/// What `prune` now frees, for the message after `gone` images lost their last tag.
fn prunable(store: &Store, gone: usize) -> String {
    let images = if gone == 1 { "an image" } else { "images" };
    let frees = store.disk_usage().map_or_else(
        |_| "removes".to_owned(),
        |usage| format!("now frees {},", human_size(usage.reclaimable())),
    );
    format!(
        "no tag is left on {images}: `imgbuild prune` {frees} the blobs that no tag or \
         build cache entry needs; the layers the build cache holds go with `imgbuild prune --all`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION};

    fn entry(tag: Option<&str>, content: &[u8]) -> Descriptor {
        let mut d = Descriptor::new(MANIFEST_MEDIA_TYPE, Digest::of(content), 1);
        if let Some(tag) = tag {
            d.annotations
                .insert(REF_NAME_ANNOTATION.to_owned(), tag.to_owned());
        }
        d
    }

    #[test]
    fn names_resolve_to_tags_then_normalised_tags_then_ids() {
        let images = [
            entry(Some("docker.io/library/alpine:3.20"), b"alpine"),
            entry(Some("localhost/app:1"), b"app"),
            entry(Some("localhost/app:latest"), b"app"),
            entry(None, b"foreign"),
        ];
        let tag = |t: &str| Some(Target::Tag(t.to_owned()));
        assert_eq!(
            resolve(&images, "localhost/app:1", false).unwrap(),
            tag("localhost/app:1")
        );
        assert_eq!(
            resolve(&images, "alpine:3.20", false).unwrap(),
            tag("docker.io/library/alpine:3.20")
        );
        assert_eq!(
            resolve(&images, "localhost/app", false).unwrap(),
            tag("localhost/app:latest")
        );
        assert_eq!(resolve(&images, "nope", false).unwrap(), None);

        let app = Digest::of(b"app");
        assert!(
            resolve(&images, &app.hex()[..12], false).is_err(),
            "two tags"
        );
        assert_eq!(
            resolve(&images, app.as_ref(), true).unwrap(),
            Some(Target::Id {
                digest: app,
                tags: vec!["localhost/app:1".into(), "localhost/app:latest".into()],
                untagged: false,
            })
        );
        let foreign = Digest::of(b"foreign");
        assert_eq!(
            resolve(&images, &foreign.hex()[..4], false).unwrap(),
            Some(Target::Id {
                digest: foreign,
                tags: Vec::new(),
                untagged: true,
            })
        );
        assert_eq!(id_prefix("abc"), None, "too short to be an id");
        assert_eq!(id_prefix("sha256:a"), Some("a"));
        assert_eq!(id_prefix("ABCD"), None);
    }
}

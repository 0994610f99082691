//! Base images: what a stage's `from` (or a `copy` or mount `from`) names,
//! resolved once per build to the platform's manifest and its image, with
//! every blob in the store.
//!
//! Local sources (`oci-layout:`, `oci-archive:`, `docker-archive:`) are
//! imported by [`super::source`]. Registry references are pulled as the
//! [`PullPolicy`] says:
//!
//! - a reference pinned by digest (`NAME@sha256:…`) is never resolved: the
//!   store answers when it has the blobs, and the registry supplies only
//!   what is missing;
//! - a tag is resolved once per build, whatever the number of stages and
//!   platforms using it, so every platform gets the same image. `missing`
//!   (the default) takes the store's tag when it has one (from an earlier
//!   pull or build), `always` asks the registry, `never` only the store.
//!
//! A tag resolved by the registry is tagged in the store under its
//! normalised name (`docker.io/library/alpine:3.20`), as `docker pull` does.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use super::source::{self, ImageSource};
use super::{Image, ImageError, read_image, read_json, select_platform};
use crate::ir::Platform;
use crate::registry::{Registry, RegistryError, RegistryOptions, Resolved};
use crate::store::{Descriptor, Digest, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store};

/// When to ask the registry for a base image (`--pull`), as buildah and
/// podman's `--pull` do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Use the store's copy of a tag when it has one; pull otherwise.
    #[default]
    #[value(alias = "false")]
    Missing,
    /// Resolve every tag with the registry (once per build), and pull what
    /// the store lacks.
    #[value(alias = "true")]
    Always,
    /// Never contact a registry: every base image must be in the store.
    Never,
}

/// A base image, resolved for one platform, with its blobs in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBase {
    /// The registry reference, normalised (`docker.io/library/alpine:3.20`),
    /// or the local source as written.
    pub name: String,
    /// For registry images: the reference pinned to the index or manifest
    /// its tag resolved to (`docker.io/library/alpine@sha256:…`). The same
    /// for every platform of a build; what a plan records.
    pub pinned: Option<String>,
    /// The digest of the platform's image manifest: what the image is.
    pub manifest_digest: Digest,
    /// The image: its config and layers.
    pub image: Image,
}

/// Resolves base images for one build; shared by the build's threads.
/// Each (source, platform) is resolved once and each tag once.
pub struct BaseResolver {
    store: Store,
    policy: PullPolicy,
    registry_options: RegistryOptions,
    /// Created on first use, so builds without registry images start no runtime.
    registry: Mutex<Option<Arc<Registry>>>,
    /// What each normalised registry reference resolved to in this build.
    tags: Memo<String, Resolved>,
    /// Every base resolved in this build.
    bases: Memo<(ImageSource, Platform), ResolvedBase>,
    /// Registry bases resolved without their layers (for plans).
    metadata: Memo<(ImageSource, Platform), ResolvedBase>,
}

impl std::fmt::Debug for BaseResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseResolver")
            .field("store", &self.store.root())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl BaseResolver {
    /// A resolver for one build. Nothing is contacted until a registry image
    /// is resolved.
    pub fn new(store: &Store, policy: PullPolicy, registry_options: RegistryOptions) -> Self {
        Self {
            store: store.clone(),
            policy,
            registry_options,
            registry: Mutex::new(None),
            tags: Memo::default(),
            bases: Memo::default(),
            metadata: Memo::default(),
        }
    }

    /// Resolves `source` for `platform`: the registry or the source is read
    /// at most once per build, and every blob of the image ends up in the
    /// store, verified.
    pub fn resolve(
        &self,
        source: &ImageSource,
        platform: &Platform,
    ) -> Result<ResolvedBase, ImageError> {
        self.bases
            .get_or_try((source.clone(), platform.clone()), || match source {
                ImageSource::Registry(reference) => self.registry_base(reference, platform, true),
                local => {
                    let (manifest_digest, image) = source::import(&self.store, local, platform)?;
                    Ok(ResolvedBase {
                        name: local.to_string(),
                        pinned: None,
                        manifest_digest,
                        image,
                    })
                }
            })
    }

    /// Like [`BaseResolver::resolve`], but a registry image's layers are
    /// not downloaded, only its index, manifest and config: what a plan
    /// needs to know the image (its digest, its config, its layers'
    /// digests). Local sources are imported whole. The tag is resolved as
    /// `resolve` does, and each image is read once per platform.
    pub fn resolve_metadata(
        &self,
        source: &ImageSource,
        platform: &Platform,
    ) -> Result<ResolvedBase, ImageError> {
        match source {
            ImageSource::Registry(reference) => {
                let key = (source.clone(), platform.clone());
                if let Some(base) = self.bases.get(&key) {
                    return Ok(base);
                }
                self.metadata
                    .get_or_try(key, || self.registry_base(reference, platform, false))
            }
            local => self.resolve(local, platform),
        }
    }

    /// Pulls a registry image for `platform` (with its layers when
    /// `layers`) and reads it from the store.
    fn registry_base(
        &self,
        reference: &str,
        platform: &Platform,
        layers: bool,
    ) -> Result<ResolvedBase, ImageError> {
        let (name, pinned, manifest_digest) = self.pull(reference, platform, layers)?;
        let image = read_image(&self.store, &manifest_digest)?;
        source::check_platform(&image.config, platform, &name)?;
        Ok(ResolvedBase {
            name,
            pinned: Some(pinned),
            manifest_digest,
            image,
        })
    }

    /// Every registry reference resolved so far, normalised, with the
    /// reference pinned to what it resolved to; sorted.
    pub fn resolved_references(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .tags
            .values()
            .into_iter()
            .map(|(name, resolved)| (name, resolved.pinned()))
            .collect();
        all.sort();
        all
    }

    /// The shared registry client.
    fn registry(&self) -> Result<Arc<Registry>, ImageError> {
        let mut slot = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(registry) = slot.as_ref() {
            return Ok(Arc::clone(registry));
        }
        let registry =
            Arc::new(Registry::new(self.registry_options.clone()).map_err(ImageError::from)?);
        *slot = Some(Arc::clone(&registry));
        Ok(registry)
    }

    /// Fetches a registry image's index, manifest and config for
    /// `platform`, and its layers too with `layers`; returns the normalised
    /// and pinned references and the manifest digest.
    fn pull(
        &self,
        reference: &str,
        platform: &Platform,
        layers: bool,
    ) -> Result<(String, String, Digest), ImageError> {
        let name = Registry::normalize(reference).map_err(ImageError::from)?;
        let top = self.top(&name, reference)?;
        let pinned = top.pinned();
        let manifest_digest = if self.policy == PullPolicy::Never {
            self.local_manifest(&name, &top.digest, platform, layers)?
        } else {
            let registry = self.registry()?;
            if layers {
                registry.pull(&self.store, &pinned, platform)
            } else {
                registry.pull_metadata(&self.store, &pinned, platform)
            }
            .map_err(ImageError::from)?
        };
        Ok((name, pinned, manifest_digest))
    }

    /// What the normalised reference `name` (`written` as the manifest
    /// wrote it) stands for in this build: its index or manifest, in the
    /// store. Resolved once.
    fn top(&self, name: &str, written: &str) -> Result<Resolved, ImageError> {
        self.tags.get_or_try(name.to_owned(), || {
            if let Some((_, digest)) = name.split_once('@') {
                let digest = Digest::parse(digest)?;
                if self.store.has_blob(&digest) {
                    return stored(&self.store, name, &digest);
                }
                if self.policy == PullPolicy::Never {
                    return Err(not_in_store(name));
                }
                return self
                    .registry()?
                    .resolve(&self.store, name)
                    .map_err(ImageError::from);
            }
            // Pulled images are tagged normalised, built ones as written.
            let tagged = match self.store.tag(name)? {
                Some(tagged) => Some(tagged),
                None => self.store.tag(written)?,
            };
            if self.policy != PullPolicy::Always
                && let Some(tagged) = tagged
                && self.store.has_blob(&tagged.digest)
            {
                tracing::debug!("{name}: using the store's {}", tagged.digest);
                return Ok(Resolved {
                    name: name.to_owned(),
                    media_type: tagged.media_type,
                    digest: tagged.digest,
                    size: tagged.size,
                });
            }
            if self.policy == PullPolicy::Never {
                return Err(not_in_store(name));
            }
            let resolved = self
                .registry()?
                .resolve(&self.store, name)
                .map_err(ImageError::from)?;
            tracing::info!("{name} is {}", resolved.digest);
            self.store.set_tag(
                name,
                Descriptor::new(
                    resolved.media_type.clone(),
                    resolved.digest.clone(),
                    resolved.size,
                ),
            )?;
            Ok(resolved)
        })
    }

    /// The manifest for `platform` under `top`, from the store alone
    /// (`--pull=never`); its config must be there too, and with `layers`
    /// its layers.
    fn local_manifest(
        &self,
        name: &str,
        top: &Digest,
        platform: &Platform,
        layers: bool,
    ) -> Result<Digest, ImageError> {
        let manifest = select_platform(&self.store, top, platform)?;
        if !self.store.has_blob(&manifest) {
            return Err(not_in_store(&format!("{name} for {platform}")));
        }
        let doc = read_json(&self.store, &manifest)?;
        let layer_entries = doc
            .get("layers")
            .and_then(serde_json::Value::as_array)
            .filter(|_| layers)
            .into_iter()
            .flatten();
        let digests = doc
            .get("config")
            .into_iter()
            .chain(layer_entries)
            .filter_map(|d| d.get("digest").and_then(serde_json::Value::as_str));
        for digest in digests {
            if !self.store.has_blob(&Digest::parse(digest)?) {
                return Err(not_in_store(&format!("{name} for {platform}")));
            }
        }
        Ok(manifest)
    }
}

/// What the store knows of `digest` (an index or manifest) as `name`.
fn stored(store: &Store, name: &str, digest: &Digest) -> Result<Resolved, ImageError> {
    let doc = read_json(store, digest)?;
    let media_type = match doc.get("mediaType").and_then(serde_json::Value::as_str) {
        Some(media_type) => media_type.to_owned(),
        None if doc.get("manifests").is_some() => INDEX_MEDIA_TYPE.to_owned(),
        None => MANIFEST_MEDIA_TYPE.to_owned(),
    };
    let size = std::fs::metadata(store.blob_path(digest))
        .map_err(|e| ImageError::Invalid(format!("cannot read blob {digest}: {e}")))?
        .len();
    Ok(Resolved {
        name: name.to_owned(),
        media_type,
        digest: digest.clone(),
        size,
    })
}

fn not_in_store(what: &str) -> ImageError {
    ImageError::Source {
        message: format!("{what} is not in the store, and `--pull=never` forbids pulling it"),
        help: format!(
            "pull it first (`imgbuild pull {}`), or build with `--pull=missing`",
            what.split(' ').next().unwrap_or(what)
        ),
    }
}

/// A registry error is an image source error: its message and its help.
impl From<RegistryError> for ImageError {
    fn from(error: RegistryError) -> Self {
        let help = miette::Diagnostic::help(&error).map_or_else(String::new, |h| h.to_string());
        ImageError::Source {
            message: error.to_string(),
            help,
        }
    }
}

/// Results computed at most once per key, even when threads ask at once:
/// the first computes, the others wait for it. A failure is not kept, so a
/// later call tries again.
struct Memo<K, V> {
    entries: Mutex<HashMap<K, Arc<Mutex<Option<V>>>>>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    /// The value for `key`, computed by `compute` if no call did yet.
    fn get_or_try<E>(&self, key: K, compute: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        let slot = Arc::clone(
            self.entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default(),
        );
        let mut value = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = value.as_ref() {
            return Ok(value.clone());
        }
        let computed = compute()?;
        *value = Some(computed.clone());
        Ok(computed)
    }

    /// The value for `key`, if computed.
    fn get(&self, key: &K) -> Option<V> {
        let slot = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()?;
        slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every computed value with its key.
    fn values(&self) -> Vec<(K, V)> {
        let entries: Vec<(K, Arc<Mutex<Option<V>>>)> = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        entries
            .into_iter()
            .filter_map(|(k, v)| {
                let value = v.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
                Some((k, value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn memo_computes_once_across_threads_and_retries_failures() {
        let memo: Memo<&str, usize> = Memo::default();
        let calls = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let value = memo
                        .get_or_try("tag", || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok::<_, ()>(7)
                        })
                        .unwrap();
                    assert_eq!(value, 7);
                });
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(memo.get(&"tag"), Some(7));
        assert_eq!(memo.get(&"other"), None);
        assert_eq!(memo.get_or_try("other", || Err("down")), Err("down"));
        assert_eq!(memo.get_or_try("other", || Ok::<_, ()>(1)), Ok(1));
        let mut values = memo.values();
        values.sort_unstable();
        assert_eq!(values, [("other", 1), ("tag", 7)]);
    }

    #[test]
    fn never_pull_refuses_what_the_store_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let resolver = BaseResolver::new(&store, PullPolicy::Never, RegistryOptions::default());
        let platform = Platform::parse("linux/amd64").unwrap();
        let pinned = format!("registry.invalid/app@{}", Digest::of(b"none"));
        for reference in ["registry.invalid/app:1", pinned.as_str()] {
            let err = resolver
                .resolve(&ImageSource::Registry(reference.to_owned()), &platform)
                .unwrap_err();
            let ImageError::Source { message, help } = err else {
                panic!("{err}");
            };
            assert!(
                message.contains("`--pull=never` forbids pulling it"),
                "{message}"
            );
            assert!(
                help.contains("imgbuild pull registry.invalid/app"),
                "{help}"
            );
        }
        assert!(resolver.resolved_references().is_empty());
    }
}

//! Pulling images from and pushing images to OCI registries.
//!
//! A blocking front end over [`oci_client`]: [`Registry`] owns a small
//! current-thread tokio runtime and runs each operation to completion on it,
//! so the (synchronous) build engine can call it directly.
//!
//! - Credentials come from Docker's `~/.docker/config.json` (`auths`,
//!   `credsStore`, `credHelpers`) and Podman's `auth.json`; anonymous access
//!   (including Docker Hub's anonymous bearer-token flow) is the fallback.
//! - Requests failing with a network error, a timeout or a 5xx status are
//!   tried 3 times in all, with exponential backoff.
//! - Every byte pulled is checked against its digest before it enters the
//!   store; blobs already in the store are not downloaded again.
//! - Pushed blobs are streamed from the store in chunks (never read whole
//!   into memory); blobs the registry already has are skipped.

mod auth;
mod error;
mod push;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use crate::ir::Platform;
use crate::store::{Digest, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store};

pub use error::RegistryError;

/// Docker's media type for a multi-platform manifest list.
const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's media type for an image manifest.
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What we ask registries for when fetching a manifest or index.
const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    INDEX_MEDIA_TYPE,
    DOCKER_LIST_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE,
];
/// Manifests and indexes larger than this are refused (the spec suggests 4 MiB).
const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
/// Attempts per request (the first and two retries).
const TRIES: u32 = 3;
/// Delay before the first retry; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(300);

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`HOST:PORT`, as written in references) spoken to over plain
    /// HTTP instead of HTTPS.
    pub insecure: Vec<String>,
    /// Read credentials from this file (Docker `config.json` format) only,
    /// instead of the Docker and Podman defaults; for tests and `--authfile`.
    pub auth_file: Option<PathBuf>,
}

/// What [`Registry::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The digest of the pushed manifest or index.
    pub digest: Digest,
    /// Blobs (configs and layers) sent to the registry.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
}

/// What a reference resolved to: its index or manifest, now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The reference, normalised (`docker.io/library/alpine:latest`).
    pub name: String,
    /// The media type of the index or manifest.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

impl Resolved {
    /// The reference pinned to what it resolved to: `NAME@sha256:…`, the
    /// tag dropped (as `docker pull` and `BuildKit` write it).
    pub fn pinned(&self) -> String {
        pin(&self.name, &self.digest)
    }
}

/// `NAME@DIGEST` from a normalised reference, dropping any tag or old digest.
pub fn pin(name: &str, digest: &Digest) -> String {
    let repository = name.split('@').next().unwrap_or(name);
    let last_slash = repository.rfind('/').map_or(0, |i| i + 1);
    let repository = match repository[last_slash..].rfind(':') {
        Some(colon) => &repository[..last_slash + colon],
        None => repository,
    };
    format!("{repository}@{digest}")
}

/// A blocking registry client; owns a current-thread tokio runtime.
pub struct Registry {
    runtime: tokio::runtime::Runtime,
    client: Client,
    auth_files: Vec<PathBuf>,
    /// Credentials by registry host, looked up once.
    auths: Mutex<HashMap<String, RegistryAuth>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("auth_files", &self.auth_files)
            .finish_non_exhaustive()
    }
}

/// The parts of a manifest or index this module reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    manifests: Option<Vec<Desc>>,
}

impl Node {
    /// Parses and checks a manifest or index; `media_type` is what the
    /// caller or the registry said it is, if known.
    fn parse(
        reference: &str,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<(Node, bool), RegistryError> {
        let invalid = |why: String| RegistryError::InvalidManifest {
            reference: reference.to_owned(),
            digest: digest.to_string(),
            why,
        };
        let node: Node = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("it is not a valid manifest or index: {e}")))?;
        if node.schema_version != Some(2) {
            return Err(invalid(format!(
                "schemaVersion {:?} is not supported (only 2); re-push the image with a current tool",
                node.schema_version
            )));
        }
        let media_type = node.media_type.as_deref().or(media_type);
        let is_index = match media_type {
            Some(INDEX_MEDIA_TYPE | DOCKER_LIST_MEDIA_TYPE) => true,
            Some(MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST_MEDIA_TYPE) => false,
            Some(other) => {
                return Err(invalid(format!(
                    "media type {other} is neither an image manifest nor an index"
                )));
            }
            None => node.manifests.is_some(),
        };
        if is_index && node.manifests.is_none() {
            return Err(invalid("the index has no `manifests`".to_owned()));
        }
        if !is_index && node.config.is_none() {
            return Err(invalid("the manifest has no `config`".to_owned()));
        }
        for desc in node.blobs().chain(node.manifests.iter().flatten()) {
            Digest::parse(&desc.digest).map_err(|e| invalid(e.to_string()))?;
        }
        Ok((node, is_index))
    }

    /// The config and layers of a manifest.
    fn blobs(&self) -> impl Iterator<Item = &Desc> {
        self.config.iter().chain(self.layers.iter())
    }
}

/// A content descriptor.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Desc {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<EntryPlatform>,
}

impl Desc {
    fn digest(&self) -> Digest {
        Digest::parse(&self.digest).expect("checked by Node::parse")
    }
}

/// A platform in an index entry, as written there.
#[derive(Debug, Deserialize)]
struct EntryPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl std::fmt::Display for EntryPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Parses a reference the way Docker does (`alpine` is
/// `docker.io/library/alpine:latest`).
fn parse_reference(reference: &str) -> Result<Reference, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidReference {
        reference: reference.to_owned(),
        reason,
    };
    if reference.trim() != reference || reference.is_empty() {
        return Err(invalid("it is empty or has surrounding spaces".to_owned()));
    }
    let parsed: Reference = reference.parse().map_err(|e| invalid(format!("{e}")))?;
    if parsed.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("repository names must be lowercase".to_owned()));
    }
    if let Some(d) = parsed.digest() {
        Digest::parse(d).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(parsed)
}

/// The reference to push a manifest to by digest. The digest goes in the
/// tag slot: the URL is the same (`/manifests/sha256:…`), and oci-client's
/// fallback for registries that answer without a `Location` header expects
/// the URL to end with the tag (it panics otherwise).
fn by_digest(r: &Reference, digest: &Digest) -> Reference {
    Reference::with_tag(
        r.registry().to_owned(),
        r.repository().to_owned(),
        digest.to_string(),
    )
}

/// Runs `op` up to [`TRIES`] times while it fails with a transient error.
async fn retry<T, F, Fut>(mut op: F) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut delay = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < TRIES && e.is_transient() => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The platform an index entry is for, normalised like the build's own
/// platforms (so `arm64/v8` is `arm64`); None if it has none or an unknown one.
fn entry_platform(desc: &Desc) -> Option<Platform> {
    Platform::parse(&desc.platform.as_ref()?.to_string()).ok()
}

/// The digest error inside an error of a verifying download stream, if that
/// is what it is.
fn stream_digest_error(
    error: std::io::Error,
) -> Result<oci_client::errors::DigestError, std::io::Error> {
    error.downcast::<oci_client::errors::DigestError>()
}

impl Registry {
    /// A client with its own runtime. Nothing is contacted yet; credentials
    /// are read when a registry is first used.
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        // TLS uses rustls with the ring provider; installing it fails only
        // when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A credentials file named explicitly must be there: a typo would
        // otherwise mean anonymous access and a puzzling refusal later.
        if let Some(file) = &options.auth_file {
            std::fs::metadata(file).map_err(|source| RegistryError::Io {
                context: format!("read the credentials file {}", file.display()),
                source,
            })?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RegistryError::Io {
                context: "start the I/O runtime".to_owned(),
                source,
            })?;
        let protocol = if options.insecure.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(options.insecure)
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("imgbuild/", env!("CARGO_PKG_VERSION")),
            max_concurrent_download: 4,
            max_concurrent_upload: 4,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| RegistryError::Io {
            context: "create the HTTP client".to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Registry {
            runtime,
            client,
            auth_files: auth::config_files(options.auth_file.as_deref()),
            auths: Mutex::new(HashMap::new()),
        })
    }

    /// Normalizes a reference like Docker: `alpine` -> `docker.io/library/alpine:latest`.
    pub fn normalize(reference: &str) -> Result<String, RegistryError> {
        Ok(parse_reference(reference)?.whole())
    }

    /// Resolves a tag (or digest) to its index or manifest, which it puts in
    /// the store, without downloading anything else. A reference pinned by a
    /// digest the store has is answered from the store.
    pub fn resolve(&self, store: &Store, reference: &str) -> Result<Resolved, RegistryError> {
        let r = parse_reference(reference)?;
        let name = r.whole();
        self.runtime.block_on(async {
            let (bytes, digest) = self.manifest_into_store(store, &r, &name).await?;
            let (node, is_index) = Node::parse(&name, &digest, &bytes, None)?;
            let media_type = node.media_type.unwrap_or_else(|| {
                if is_index {
                    INDEX_MEDIA_TYPE
                } else {
                    MANIFEST_MEDIA_TYPE
                }
                .to_owned()
            });
            Ok(Resolved {
                name,
                media_type,
                size: bytes.len() as u64,
                digest,
            })
        })
    }

    /// Pulls `reference` for `platform` into the store: the index (if any),
    /// the platform's manifest, its config and layers, verifying every
    /// digest and skipping blobs the store has. A reference pinned by digest
    /// is never resolved again (and needs no network when the store has
    /// everything). Returns the platform's manifest digest.
    pub fn pull(
        &self,
        store: &Store,
        reference: &str,
        platform: &Platform,
    ) -> Result<Digest, RegistryError> {
        self.pull_platform(store, reference, platform, true)
    }

    /// Like [`Registry::pull`], but only the index, the platform's manifest
    /// and its config, no layer: enough to describe the image, for planning.
    pub fn pull_metadata(
        &self,
        store: &Store,
        reference: &str,
        platform: &Platform,
    ) -> Result<Digest, RegistryError> {
        self.pull_platform(store, reference, platform, false)
    }

    fn pull_platform(
        &self,
        store: &Store,
        reference: &str,
        platform: &Platform,
        layers: bool,
    ) -> Result<Digest, RegistryError> {
        let r = parse_reference(reference)?;
        let name = r.whole();
        self.runtime.block_on(async {
            let (bytes, digest) = self.manifest_into_store(store, &r, &name).await?;
            let (node, is_index) = Node::parse(&name, &digest, &bytes, None)?;
            let (manifest, manifest_digest) = if is_index {
                let entries = node.manifests.as_deref().unwrap_or_default();
                let Some(entry) = entries
                    .iter()
                    .find(|d| entry_platform(d).as_ref() == Some(platform))
                else {
                    let available: Vec<String> = entries
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                        .collect();
                    return Err(RegistryError::NoPlatform {
                        reference: name,
                        platform: platform.to_string(),
                        available: if available.is_empty() {
                            "none".to_owned()
                        } else {
                            available.join(", ")
                        },
                    });
                };
                let child = r.clone_with_digest(entry.digest.clone());
                let (bytes, digest) = self.manifest_into_store(store, &child, &name).await?;
                let (manifest, child_is_index) =
                    Node::parse(&name, &digest, &bytes, Some(&entry.media_type))?;
                if child_is_index {
                    return Err(RegistryError::InvalidManifest {
                        reference: name,
                        digest: digest.to_string(),
                        why: "an index entry for a platform is itself an index".to_owned(),
                    });
                }
                (manifest, digest)
            } else {
                (node, digest)
            };
            let blobs = manifest.blobs().take(if layers { usize::MAX } else { 1 });
            for desc in blobs {
                let digest = desc.digest();
                if !store.has_blob(&digest) {
                    self.pull_blob(store, &r, &name, &digest, desc.size).await?;
                }
            }
            Ok(manifest_digest)
        })
    }

    /// Finds the credentials for the reference's registry and hands them to
    /// the client (once per registry).
    async fn authenticate(&self, r: &Reference) -> Result<(), RegistryError> {
        let host = r.registry().to_owned();
        let cached = self
            .auths
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&host)
            .cloned();
        let auth = if let Some(auth) = cached {
            auth
        } else {
            let auth = auth::lookup(&host, &self.auth_files)?;
            self.auths
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(host, auth.clone());
            auth
        };
        self.client
            .store_auth_if_needed(r.resolve_registry(), &auth)
            .await;
        Ok(())
    }

    /// Fetches a manifest or index (by tag or digest) and checks its digest.
    async fn fetch_manifest(
        &self,
        r: &Reference,
        name: &str,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let what = match r.digest() {
            Some(d) => format!("manifest {d}"),
            None => "manifest".to_owned(),
        };
        let auth = RegistryAuth::Anonymous; // the stored credentials take precedence
        let (bytes, _) = retry(|| async {
            self.client
                .pull_manifest_raw(r, &auth, ACCEPTED_MANIFEST_TYPES)
                .await
                .map_err(|e| RegistryError::from_oci(name, r.registry(), &what, e))
        })
        .await?;
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(RegistryError::InvalidManifest {
                reference: name.to_owned(),
                digest: what,
                why: format!("it is {} bytes, more than the 4 MiB limit", bytes.len()),
            });
        }
        let actual = Digest::of(&bytes);
        if let Some(expected) = r.digest()
            && expected != actual.as_str()
        {
            return Err(RegistryError::DigestMismatch {
                reference: name.to_owned(),
                expected: expected.to_owned(),
                actual: actual.to_string(),
            });
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Gets a manifest or index into the store: from the store itself when
    /// the reference is pinned by a digest the store has, else from the registry.
    async fn manifest_into_store(
        &self,
        store: &Store,
        r: &Reference,
        name: &str,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        if let Some(d) = r.digest() {
            let digest = Digest::parse(d).map_err(|e| RegistryError::store(name, e))?;
            if store.has_blob(&digest) {
                let bytes = store
                    .read_blob(&digest)
                    .map_err(|e| RegistryError::store(name, e))?;
                return Ok((bytes, digest));
            }
        }
        self.authenticate(r).await?;
        let (bytes, digest) = self.fetch_manifest(r, name).await?;
        store
            .write_blob(&bytes)
            .map_err(|e| RegistryError::store(name, e))?;
        Ok((bytes, digest))
    }

    /// Downloads a blob into the store, verifying its digest and size.
    async fn pull_blob(
        &self,
        store: &Store,
        r: &Reference,
        name: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        self.authenticate(r).await?;
        let what = error::blob_what(digest);
        let oci = |e| RegistryError::from_oci(name, r.registry(), &what, e);
        retry(|| async {
            let mut stream = self
                .client
                .pull_blob_stream(r, digest.as_str())
                .await
                .map_err(oci)?;
            let mut writer = store
                .blob_writer()
                .map_err(|e| RegistryError::store(name, e))?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| match stream_digest_error(e) {
                    Ok(digest_error) => oci(OciDistributionError::DigestError(digest_error)),
                    Err(io) => oci(OciDistributionError::IoError(io)),
                })?;
                if writer.size() + chunk.len() as u64 > size {
                    return Err(RegistryError::InvalidManifest {
                        reference: name.to_owned(),
                        digest: digest.to_string(),
                        why: format!(
                            "the registry sent more than the {size} bytes the manifest declares"
                        ),
                    });
                }
                std::io::Write::write_all(&mut writer, &chunk).map_err(|source| {
                    RegistryError::Io {
                        context: format!("write {digest} of {name} to the store"),
                        source,
                    }
                })?;
            }
            if writer.size() != size {
                return Err(RegistryError::Network {
                    reference: name.to_owned(),
                    source: Box::new(OciDistributionError::IoError(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{digest} ended after {} of {size} bytes", writer.size()),
                    ))),
                });
            }
            writer
                .commit_expecting(digest)
                .map_err(|e| RegistryError::store(name, e))?;
            Ok(())
        })
        .await
    }
}

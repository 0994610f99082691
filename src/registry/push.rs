//! Pushing an image from the store: an index's manifests before the index,
//! a manifest's blobs before the manifest, each blob streamed from disk in
//! chunks unless the registry already has it.

use std::future::Future;
use std::pin::Pin;

use oci_client::Reference;
use oci_client::errors::OciDistributionError;
use tokio::io::AsyncReadExt;

use super::{
    Desc, Node, PushReport, Registry, RegistryError, by_digest, error, parse_reference, retry,
};
use crate::store::{Digest, MANIFEST_MEDIA_TYPE, Store};

/// Bytes read from disk per upload chunk when pushing a blob.
const UPLOAD_CHUNK: u64 = 4 * 1024 * 1024;

/// A stream of the file's content in chunks of [`UPLOAD_CHUNK`] bytes.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, OciDistributionError>> + Send + 'static {
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = Vec::with_capacity(usize::try_from(UPLOAD_CHUNK).expect("small"));
        match (&mut file).take(UPLOAD_CHUNK).read_to_end(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(bytes::Bytes::from(buf)), Some(file))),
            Err(e) => Some((Err(OciDistributionError::IoError(e)), None)),
        }
    })
}

impl Registry {
    /// Pushes the manifest or index `digest` (and everything it references,
    /// from the store) as `reference`: blobs the registry has are skipped
    /// (HEAD), blobs are streamed from disk in chunks; then the manifests,
    /// then the index. Returns the pushed digest and what was uploaded.
    pub fn push(
        &self,
        store: &Store,
        digest: &Digest,
        media_type: &str,
        reference: &str,
    ) -> Result<PushReport, RegistryError> {
        let r = parse_reference(reference)?;
        let name = r.whole();
        self.runtime.block_on(async {
            self.authenticate(&r).await?;
            let mut report = PushReport {
                digest: digest.clone(),
                blobs_uploaded: 0,
                blobs_skipped: 0,
            };
            let target = match (r.digest(), r.tag()) {
                (Some(pinned), _) if pinned != digest.as_str() => {
                    return Err(RegistryError::InvalidReference {
                        reference: reference.to_owned(),
                        reason: format!("it names digest {pinned}, but {digest} is being pushed"),
                    });
                }
                (None, Some(_)) => r.clone(),
                _ => by_digest(&r, digest),
            };
            let push = Push {
                registry: self,
                store,
                repo: &r,
                name: &name,
            };
            push.node(digest, media_type, &target, 0, &mut report)
                .await?;
            Ok(report)
        })
    }
}

/// One push: where from, where to, and the name errors are reported under.
struct Push<'a> {
    registry: &'a Registry,
    store: &'a Store,
    /// The repository pushed to.
    repo: &'a Reference,
    /// The reference as the user wrote it, for errors.
    name: &'a str,
}

impl Push<'_> {
    /// Pushes a manifest or index (children first) to `target`.
    fn node<'b>(
        &'b self,
        digest: &'b Digest,
        media_type: &'b str,
        target: &'b Reference,
        depth: usize,
        report: &'b mut PushReport,
    ) -> Pin<Box<dyn Future<Output = Result<(), RegistryError>> + 'b>> {
        let Push {
            registry,
            store,
            repo,
            name,
        } = *self;
        Box::pin(async move {
            let bytes = store
                .read_blob(digest)
                .map_err(|e| RegistryError::store(name, e))?;
            let (node, is_index) = Node::parse(name, digest, &bytes, Some(media_type))?;
            if is_index {
                if depth > 2 {
                    return Err(RegistryError::InvalidManifest {
                        reference: name.to_owned(),
                        digest: digest.to_string(),
                        why: "indexes are nested too deeply".to_owned(),
                    });
                }
                for entry in node.manifests.iter().flatten() {
                    let child_digest = entry.digest();
                    let child = by_digest(repo, &child_digest);
                    let child_type = if entry.media_type.is_empty() {
                        MANIFEST_MEDIA_TYPE
                    } else {
                        entry.media_type.as_str()
                    };
                    self.node(&child_digest, child_type, &child, depth + 1, report)
                        .await?;
                }
            } else {
                for desc in node.blobs() {
                    if self.blob(desc).await? {
                        report.blobs_uploaded += 1;
                    } else {
                        report.blobs_skipped += 1;
                    }
                }
            }
            let content_type = node.media_type.as_deref().unwrap_or(media_type);
            let content_type: http::HeaderValue =
                content_type
                    .parse()
                    .map_err(|_| RegistryError::InvalidManifest {
                        reference: name.to_owned(),
                        digest: digest.to_string(),
                        why: format!("media type {content_type:?} is not a valid header value"),
                    })?;
            let what = format!("manifest {digest}");
            let body = bytes::Bytes::from(bytes);
            retry(|| async {
                registry
                    .client
                    .push_manifest_raw(target, body.clone(), content_type.clone())
                    .await
                    .map_err(|e| RegistryError::from_oci(name, repo.registry(), &what, e))
            })
            .await?;
            Ok(())
        })
    }

    /// Pushes one blob unless the registry has it; `Ok(true)` if uploaded.
    async fn blob(&self, desc: &Desc) -> Result<bool, RegistryError> {
        let Push {
            registry,
            store,
            repo,
            name,
        } = *self;
        let digest = desc.digest();
        let what = error::blob_what(&digest);
        let oci = |e| RegistryError::from_oci(name, repo.registry(), &what, e);
        let path = store.blob_path(&digest);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == desc.size => {}
            Ok(meta) => {
                return Err(RegistryError::InvalidManifest {
                    reference: name.to_owned(),
                    digest: digest.to_string(),
                    why: format!(
                        "the store has {} bytes but the manifest declares {}; run `imgbuild store verify --repair`",
                        meta.len(),
                        desc.size
                    ),
                });
            }
            Err(_) => {
                // Reports the missing blob the store's way.
                store
                    .open_blob(&digest)
                    .map_err(|e| RegistryError::store(name, e))?;
            }
        }
        retry(|| async {
            if registry
                .client
                .blob_exists(repo, digest.as_str())
                .await
                .map_err(oci)?
            {
                return Ok(false);
            }
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|source| RegistryError::Io {
                    context: format!("open {} to push {name}", path.display()),
                    source,
                })?;
            registry
                .client
                .push_blob_stream(repo, file_chunks(file), digest.as_str(), Some(desc.size))
                .await
                .map_err(oci)?;
            Ok(true)
        })
        .await
    }
}

//! The registry module's error type. Every message names the image and what to do.

use std::path::PathBuf;

use oci_client::errors::{DigestError, OciDistributionError};

use crate::store::{Digest, StoreError};

/// What `imgbuild` suggests when the registry refuses the credentials.
pub(crate) fn login_help(host: &str) -> String {
    format!(
        "log in with `docker login {host}` (or `podman login {host}`), or check the credentials for {host} in ~/.docker/config.json; a push also needs write access to the repository"
    )
}

/// An error from talking to a registry. The message names the image; the
/// help says what to do.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    /// The reference cannot be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    #[diagnostic(help(
        "write it as [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST], e.g. docker.io/library/alpine:3.20"
    ))]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The registry refused the credentials (HTTP 401 or 403), or none were found.
    #[error("the registry refused access to {reference}")]
    #[diagnostic(help("{help}"))]
    Unauthorized {
        /// The image.
        reference: String,
        /// What to do about it.
        help: String,
    },
    /// The image (or one of its parts) does not exist in the registry (HTTP 404).
    #[error("{what} of {reference} not found in the registry")]
    #[diagnostic(help(
        "check the name and the tag; some registries answer this for private images when no credentials are given"
    ))]
    NotFound {
        /// The image.
        reference: String,
        /// What was missing, e.g. "manifest" or "blob sha256:…".
        what: String,
    },
    /// The registry could not be reached (connection refused or reset, timeout),
    /// even after retrying.
    #[error("cannot reach the registry of {reference}: {}", chain(source))]
    #[diagnostic(help(
        "check the network, any proxy settings and that the registry is running, then retry; a registry that speaks plain HTTP needs `--insecure-registry HOST:PORT`"
    ))]
    Network {
        /// The image.
        reference: String,
        /// The transport error.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// The registry answered with a server error (5xx, 429), even after
    /// retrying, or an unexpected status.
    #[error("the registry of {reference} failed with HTTP {status}: {message}")]
    #[diagnostic(help("retry later; each request was already tried 3 times"))]
    Server {
        /// The image.
        reference: String,
        /// The HTTP status code.
        status: u16,
        /// The body of the answer, shortened.
        message: String,
    },
    /// Content does not hash to the digest it is supposed to have.
    #[error("digest mismatch for {reference}: expected {expected}, got {actual}")]
    #[diagnostic(help(
        "the registry (or a proxy) served damaged content, or the local store is damaged: run `imgbuild store verify --repair`"
    ))]
    DigestMismatch {
        /// The image.
        reference: String,
        /// The digest that was asked for.
        expected: String,
        /// The digest of what was received or sent.
        actual: String,
    },
    /// The image index has no manifest for the requested platform.
    #[error("{reference} has no image for {platform}; it has: {available}")]
    #[diagnostic(help(
        "build for one of those platforms (`--platform`), or set the stage's `platform`"
    ))]
    NoPlatform {
        /// The image.
        reference: String,
        /// The requested platform, `os/arch[/variant]`.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// A manifest or index cannot be understood.
    #[error("cannot use {digest} of {reference}: {why}")]
    #[diagnostic(help(
        "the image is not a valid OCI or Docker v2 image; push it again with a current tool"
    ))]
    InvalidManifest {
        /// The image.
        reference: String,
        /// The manifest's digest.
        digest: String,
        /// What is wrong with it.
        why: String,
    },
    /// The registry rejected a request for another reason (a protocol error).
    #[error("the registry of {reference} rejected the request: {}", chain(source))]
    #[diagnostic(help("check the reference; `-vv` logs every request"))]
    Protocol {
        /// The image.
        reference: String,
        /// The client's error.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// Reading the credentials (config file or credential helper) failed.
    #[error("cannot read the credentials for {registry} from {}: {why}", path.display())]
    #[diagnostic(help("fix that file, or run `docker login {registry}` again"))]
    Credentials {
        /// The registry host.
        registry: String,
        /// The config file consulted.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The local content store failed.
    #[error("cannot transfer {reference}: {source}")]
    #[diagnostic(help("`imgbuild store verify` checks the store"))]
    Store {
        /// The image.
        reference: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The I/O runtime could not be started, or a local file could not be read.
    #[error("registry client: {context}: {source}")]
    #[diagnostic(help("check the file's permissions and the system's limits"))]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// An error and its causes on one line (`a: b: c`), for messages whose
/// cause would otherwise only say "error sending request".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

impl RegistryError {
    /// Whether retrying the same request may succeed (network errors, 5xx).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Network { .. } => true,
            RegistryError::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Wraps a store error, turning digest mismatches into [`RegistryError::DigestMismatch`].
    pub(crate) fn store(reference: &str, source: StoreError) -> RegistryError {
        match source {
            StoreError::DigestMismatch { expected, actual } => RegistryError::DigestMismatch {
                reference: reference.to_owned(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            },
            source => RegistryError::Store {
                reference: reference.to_owned(),
                source,
            },
        }
    }

    /// Classifies an error of the OCI client. `host` is the registry (for the
    /// login hint), `what` names the object for a 404.
    pub(crate) fn from_oci(
        reference: &str,
        host: &str,
        what: &str,
        error: OciDistributionError,
    ) -> RegistryError {
        let by_status = |status: u16, message: String| match status {
            401 | 403 => Some(RegistryError::Unauthorized {
                reference: reference.to_owned(),
                help: login_help(host),
            }),
            404 => Some(RegistryError::NotFound {
                reference: reference.to_owned(),
                what: what.to_owned(),
            }),
            s if s >= 300 => {
                if message.contains("DIGEST_INVALID") {
                    return Some(RegistryError::DigestMismatch {
                        reference: reference.to_owned(),
                        expected: what.to_owned(),
                        actual: "different content (the registry rejected it)".to_owned(),
                    });
                }
                Some(RegistryError::Server {
                    reference: reference.to_owned(),
                    status,
                    message: shorten(&message),
                })
            }
            _ => None,
        };
        match error {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => RegistryError::Unauthorized {
                reference: reference.to_owned(),
                help: login_help(host),
            },
            OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
                reference: reference.to_owned(),
                what: what.to_owned(),
            },
            OciDistributionError::ServerError { code, message, .. } => {
                by_status(code, message.clone()).unwrap_or_else(|| RegistryError::Server {
                    reference: reference.to_owned(),
                    status: code,
                    message: shorten(&message),
                })
            }
            OciDistributionError::RegistryError { envelope, url } => {
                use oci_client::errors::OciErrorCode as C;
                let codes: Vec<&C> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, C::Unauthorized | C::Denied))
                {
                    by_status(401, String::new()).expect("401 is classified")
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        C::ManifestUnknown | C::NameUnknown | C::BlobUnknown | C::NotFound
                    )
                }) {
                    by_status(404, String::new()).expect("404 is classified")
                } else if codes.iter().any(|c| matches!(c, C::DigestInvalid)) {
                    by_status(400, "DIGEST_INVALID".to_owned()).expect("400 is classified")
                } else if codes.iter().any(|c| matches!(c, C::Toomanyrequests)) {
                    RegistryError::Server {
                        reference: reference.to_owned(),
                        status: 429,
                        message: shorten(&envelope.to_string()),
                    }
                } else {
                    RegistryError::Protocol {
                        reference: reference.to_owned(),
                        source: Box::new(OciDistributionError::RegistryError { envelope, url }),
                    }
                }
            }
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => RegistryError::DigestMismatch {
                reference: reference.to_owned(),
                expected,
                actual,
            },
            OciDistributionError::RequestError(e) => {
                if let Some(status) = e.status()
                    && let Some(err) = by_status(status.as_u16(), e.to_string())
                {
                    return err;
                }
                if e.is_builder() {
                    RegistryError::Protocol {
                        reference: reference.to_owned(),
                        source: Box::new(OciDistributionError::RequestError(e)),
                    }
                } else {
                    RegistryError::Network {
                        reference: reference.to_owned(),
                        source: Box::new(OciDistributionError::RequestError(e)),
                    }
                }
            }
            OciDistributionError::IoError(e) => RegistryError::Network {
                reference: reference.to_owned(),
                source: Box::new(OciDistributionError::IoError(e)),
            },
            other => RegistryError::Protocol {
                reference: reference.to_owned(),
                source: Box::new(other),
            },
        }
    }
}

/// The first 300 characters of a (possibly long) server message, on one line.
fn shorten(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(300).collect();
    if one_line.chars().count() > 300 {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(no message)");
    }
    out
}

/// The digest's string form, for messages.
pub(crate) fn blob_what(digest: &Digest) -> String {
    format!("blob {digest}")
}

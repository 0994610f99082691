//! Credentials from Docker's `config.json` (`auths`, `credsStore`,
//! `credHelpers`) and Podman's `auth.json`.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use super::RegistryError;

/// The key Docker uses for Docker Hub in `config.json` and credential stores.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The config files to consult, in order: the override alone if given, else
/// Docker's (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), then
/// Podman's (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `~/.config/containers/auth.json`).
pub(crate) fn config_files(auth_file: Option<&Path>) -> Vec<PathBuf> {
    if let Some(file) = auth_file {
        return vec![file.to_owned()];
    }
    let env_path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    if let Some(dir) = env_path("DOCKER_CONFIG") {
        files.push(dir.join("config.json"));
    } else if let Some(home) = env_path("HOME") {
        files.push(home.join(".docker").join("config.json"));
    }
    if let Some(file) = env_path("REGISTRY_AUTH_FILE") {
        files.push(file);
    }
    if let Some(dir) = env_path("XDG_RUNTIME_DIR") {
        files.push(dir.join("containers").join("auth.json"));
    }
    if let Some(home) = env_path("HOME") {
        files.push(home.join(".config").join("containers").join("auth.json"));
    }
    files
}

/// Finds the credentials for `registry` (as in a reference: `docker.io`,
/// `ghcr.io`, `127.0.0.1:5000`) in `files`; anonymous when none has any.
pub(crate) fn lookup(registry: &str, files: &[PathBuf]) -> Result<RegistryAuth, RegistryError> {
    // Docker keys Docker Hub as its v1 URL; Podman as `docker.io`.
    let servers: &[&str] = if is_docker_hub(registry) {
        &[DOCKER_HUB_SERVER, "docker.io"]
    } else {
        &[registry]
    };
    for path in files {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(RegistryError::Credentials {
                    registry: registry.to_owned(),
                    path: path.clone(),
                    why: e.to_string(),
                });
            }
        };
        for server in servers {
            match docker_credential::get_credential_from_reader(
                BufReader::new(bytes.as_slice()),
                server,
            ) {
                Ok(DockerCredential::UsernamePassword(user, password)) => {
                    return Ok(RegistryAuth::Basic(user, password));
                }
                // An identity token is sent as is, as a bearer token.
                Ok(DockerCredential::IdentityToken(token)) => {
                    return Ok(RegistryAuth::Bearer(token));
                }
                Err(
                    CredentialRetrievalError::NoCredentialConfigured
                    | CredentialRetrievalError::ConfigNotFound,
                ) => {}
                // A helper that has no entry for this server says so and fails.
                Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. })
                    if is_not_found(&stdout) || is_not_found(&stderr) => {}
                Err(CredentialRetrievalError::ConfigReadError) => {
                    return Err(RegistryError::Credentials {
                        registry: registry.to_owned(),
                        path: path.clone(),
                        why: "it is not a valid JSON credentials file".to_owned(),
                    });
                }
                Err(e) => {
                    return Err(RegistryError::Credentials {
                        registry: registry.to_owned(),
                        path: path.clone(),
                        why: e.to_string().trim().to_owned(),
                    });
                }
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

fn is_not_found(output: &str) -> bool {
    let lower = output.to_ascii_lowercase();
    lower.contains("not found") || lower.contains("no credentials")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_auths_for_hosts_and_docker_hub() {
        let dir = tempfile::tempdir().unwrap();
        // "user:pass" and "hub:secret" in base64.
        let docker = write(
            dir.path(),
            "config.json",
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},
                "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="}}}"#,
        );
        let podman = write(
            dir.path(),
            "auth.json",
            r#"{"auths":{"ghcr.io":{"username":"me","password":"pw"}}}"#,
        );
        let files = vec![docker, dir.path().join("missing.json"), podman];
        let basic = |u: &str, p: &str| format!("{:?}", RegistryAuth::Basic(u.into(), p.into()));
        assert_eq!(
            format!("{:?}", lookup("127.0.0.1:5000", &files).unwrap()),
            basic("user", "pass")
        );
        assert_eq!(
            format!("{:?}", lookup("docker.io", &files).unwrap()),
            basic("hub", "secret")
        );
        assert_eq!(
            format!("{:?}", lookup("ghcr.io", &files).unwrap()),
            basic("me", "pw")
        );
        assert!(matches!(
            lookup("quay.io", &files).unwrap(),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn podman_docker_io_key_and_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let podman = write(
            dir.path(),
            "auth.json",
            r#"{"auths":{"docker.io":{"auth":"aHViOnNlY3JldA=="}}}"#,
        );
        assert!(matches!(
            lookup("docker.io", &[podman]).unwrap(),
            RegistryAuth::Basic(u, _) if u == "hub"
        ));
        let bad = write(dir.path(), "bad.json", "{not json");
        let err = lookup("docker.io", &[bad]).unwrap_err();
        assert!(matches!(err, RegistryError::Credentials { .. }), "{err}");
        assert!(err.to_string().contains("bad.json"), "{err}");
    }

    #[test]
    fn override_replaces_defaults() {
        let files = config_files(Some(Path::new("/x/auth.json")));
        assert_eq!(files, vec![PathBuf::from("/x/auth.json")]);
    }
}

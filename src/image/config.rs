//! The image configuration: what a container of the image runs, and its layers' history.
//!
//! Base-image configs are read tolerantly (Docker's configs carry fields the
//! OCI spec does not); ours are built with oci-spec, plus the Docker fields
//! that it lacks (`Healthcheck`, `Shell`, `OnBuild`), and written through
//! [`to_canonical_json`].

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::image::{ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, RootFsBuilder};
use serde_json::Value;

use super::ImageError;
use super::canonical::{sorted, to_canonical_json};
use crate::ir::{Command, Healthcheck, Platform};
use crate::store::Digest;

/// The `PATH` of `BuildKit`'s empty image (Linux), which `scratch` starts with.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The timestamp used when `SOURCE_DATE_EPOCH` is unset, so builds are reproducible.
pub const DEFAULT_CREATED: &str = "1970-01-01T00:00:00Z";

/// How a container of the image runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `user[:group]`.
    pub user: Option<String>,
    /// Ports such as `80/tcp`.
    pub exposed_ports: BTreeSet<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// Entrypoint argv.
    pub entrypoint: Option<Vec<String>>,
    /// Default command argv.
    pub cmd: Option<Vec<String>>,
    /// Volume paths.
    pub volumes: BTreeSet<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Docker's health check object, as JSON.
    pub healthcheck: Option<Value>,
    /// Docker's shell for shell-form commands.
    pub shell: Option<Vec<String>>,
    /// Docker's `OnBuild` triggers: instructions a build starting from the
    /// image runs first.
    pub onbuild: Vec<String>,
    /// Docker's `ArgsEscaped`: `BuildKit` sets it with every `CMD` (either
    /// form), and an image inherits it from its base.
    pub args_escaped: bool,
}

impl RuntimeConfig {
    /// Sets `name` in the environment, keeping its position if it exists.
    pub fn set_env(&mut self, name: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => value.clone_into(&mut entry.1),
            None => self.env.push((name.to_owned(), value.to_owned())),
        }
    }

    /// The value of `name` in the environment.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One history entry: the step that made a layer (or changed only config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// RFC 3339 time.
    pub created: String,
    /// The step, as text.
    pub created_by: String,
    /// Whether the step made no layer.
    pub empty_layer: bool,
}

/// A whole image configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// The platform the image runs on.
    pub platform: Platform,
    /// RFC 3339 creation time.
    pub created: String,
    /// The image's author (a Dockerfile's `MAINTAINER`), inherited from the base.
    pub author: Option<String>,
    /// Runtime settings.
    pub runtime: RuntimeConfig,
    /// The layers' uncompressed digests, bottom first.
    pub diff_ids: Vec<Digest>,
    /// History, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl ImageConfig {
    /// An empty image (`scratch`) for `platform`: no layers, and the config
    /// `BuildKit` gives its empty image, the default `PATH` and `/` as the
    /// working directory, so a program copied onto `scratch` finds what it
    /// runs as it would on any base. Manifests and Dockerfiles get the same.
    pub fn scratch(platform: Platform, created: &str) -> Self {
        Self {
            platform,
            created: created.to_owned(),
            author: None,
            runtime: RuntimeConfig {
                env: vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())],
                working_dir: Some("/".to_owned()),
                ..RuntimeConfig::default()
            },
            diff_ids: Vec::new(),
            history: Vec::new(),
        }
    }

    /// Reads an OCI or Docker image config.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ImageError> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| ImageError::Invalid(format!("image config is not JSON: {e}")))?;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let strings = |v: &Value, key: &str| -> Option<Vec<String>> {
            v.get(key)?.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
        };
        let keys = |v: &Value, key: &str| -> BTreeSet<String> {
            v.get(key)
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        let os = text(&doc, "os")
            .ok_or_else(|| ImageError::Invalid("image config has no `os`".into()))?;
        let architecture = text(&doc, "architecture")
            .ok_or_else(|| ImageError::Invalid("image config has no `architecture`".into()))?;
        let platform = Platform::parse(&format!(
            "{os}/{architecture}{}",
            text(&doc, "variant")
                .map(|v| format!("/{v}"))
                .unwrap_or_default()
        ))
        .map_err(|e| ImageError::Invalid(format!("image config platform: {e}")))?;
        let empty = Value::Null;
        let c = doc.get("config").unwrap_or(&empty);
        let runtime = RuntimeConfig {
            user: text(c, "User").filter(|u| !u.is_empty()),
            exposed_ports: keys(c, "ExposedPorts"),
            env: strings(c, "Env")
                .unwrap_or_default()
                .into_iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (kv, String::new()),
                })
                .collect(),
            entrypoint: strings(c, "Entrypoint"),
            cmd: strings(c, "Cmd"),
            volumes: keys(c, "Volumes"),
            working_dir: text(c, "WorkingDir").filter(|w| !w.is_empty()),
            labels: c
                .get("Labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            stop_signal: text(c, "StopSignal").filter(|s| !s.is_empty()),
            healthcheck: c.get("Healthcheck").filter(|h| !h.is_null()).cloned(),
            shell: strings(c, "Shell"),
            onbuild: strings(c, "OnBuild").unwrap_or_default(),
            args_escaped: c.get("ArgsEscaped").and_then(Value::as_bool) == Some(true),
        };
        let diff_ids = doc
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(Digest::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|e| ImageError::Invalid(format!("image config diff_ids: {e}")))?
            .unwrap_or_default();
        let history = doc
            .get("history")
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .map(|h| HistoryEntry {
                        created: text(h, "created").unwrap_or_default(),
                        created_by: text(h, "created_by").unwrap_or_default(),
                        empty_layer: h
                            .get("empty_layer")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            platform,
            created: text(&doc, "created").unwrap_or_else(|| DEFAULT_CREATED.to_owned()),
            author: text(&doc, "author").filter(|a| !a.is_empty()),
            runtime,
            diff_ids,
            history,
        })
    }

    /// The config as canonical JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let r = &self.runtime;
        let mut config = ConfigBuilder::default();
        if let Some(user) = &r.user {
            config = config.user(user.clone());
        }
        if !r.exposed_ports.is_empty() {
            config = config.exposed_ports(r.exposed_ports.iter().cloned().collect::<Vec<_>>());
        }
        if !r.env.is_empty() {
            config = config.env(
                r.env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>(),
            );
        }
        if let Some(entrypoint) = &r.entrypoint {
            config = config.entrypoint(entrypoint.clone());
        }
        if let Some(cmd) = &r.cmd {
            config = config.cmd(cmd.clone());
        }
        if !r.volumes.is_empty() {
            config = config.volumes(r.volumes.iter().cloned().collect::<Vec<_>>());
        }
        if let Some(dir) = &r.working_dir {
            config = config.working_dir(dir.clone());
        }
        if !r.labels.is_empty() {
            config = config.labels(
                r.labels
                    .clone()
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
        if let Some(signal) = &r.stop_signal {
            config = config.stop_signal(signal.clone());
        }
        let history: Vec<_> = self
            .history
            .iter()
            .map(|h| {
                let mut entry = HistoryBuilder::default()
                    .created(h.created.clone())
                    .created_by(h.created_by.clone());
                if h.empty_layer {
                    entry = entry.empty_layer(true);
                }
                entry.build().expect("history entries always build")
            })
            .collect();
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(
                self.diff_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .build()
            .expect("rootfs always builds");
        let mut image = ImageConfigurationBuilder::default()
            .created(self.created.clone())
            .architecture(self.platform.architecture.as_str())
            .os(self.platform.os.as_str())
            .config(config.build().expect("config always builds"))
            .rootfs(rootfs)
            .history(history);
        if let Some(variant) = &self.platform.variant {
            image = image.variant(variant.clone());
        }
        if let Some(author) = &self.author {
            image = image.author(author.clone());
        }
        let image = image.build().expect("image config always builds");
        let mut doc = serde_json::to_value(&image).expect("image config serializes");
        let config = doc
            .as_object_mut()
            .and_then(|d| d.get_mut("config"))
            .and_then(Value::as_object_mut)
            .expect("config is an object");
        if let Some(check) = &r.healthcheck {
            config.insert("Healthcheck".into(), check.clone());
        }
        if let Some(shell) = &r.shell {
            config.insert("Shell".into(), serde_json::json!(shell));
        }
        if !r.onbuild.is_empty() {
            config.insert("OnBuild".into(), serde_json::json!(r.onbuild));
        }
        if r.args_escaped {
            config.insert("ArgsEscaped".into(), Value::Bool(true));
        }
        to_canonical_json(&sorted(doc))
    }
}

/// The argv a command runs with `shell` (Docker's shell-form rule).
pub fn command_argv(command: &Command, shell: &[String]) -> Vec<String> {
    match command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(text) => shell.iter().cloned().chain([text.clone()]).collect(),
    }
}

/// Docker's `Healthcheck` object for `check`.
pub fn healthcheck_json(check: &Healthcheck) -> Value {
    let test = match &check.test {
        None => vec!["NONE".to_owned()],
        Some(Command::Exec(argv)) => ["CMD".to_owned()]
            .into_iter()
            .chain(argv.iter().cloned())
            .collect(),
        Some(Command::Shell(text)) => vec!["CMD-SHELL".to_owned(), text.clone()],
    };
    let mut doc = serde_json::json!({ "Test": test });
    for (key, value) in [
        ("Interval", check.interval),
        ("Timeout", check.timeout),
        ("StartPeriod", check.start_period),
        ("StartInterval", check.start_interval),
    ] {
        if let Some(nanos) = value {
            doc[key] = nanos.into();
        }
    }
    if let Some(retries) = check.retries {
        doc["Retries"] = retries.into();
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onbuild_triggers_are_read_and_written_as_docker_does() {
        let docker = br#"{"os":"linux","architecture":"amd64","config":{"OnBuild":["RUN make","COPY . /src"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config = ImageConfig::from_json(docker).unwrap();
        assert_eq!(config.runtime.onbuild, ["RUN make", "COPY . /src"]);
        let written: Value = serde_json::from_slice(&config.to_json()).unwrap();
        assert_eq!(
            written["config"]["OnBuild"],
            serde_json::json!(["RUN make", "COPY . /src"])
        );

        let none = br#"{"os":"linux","architecture":"amd64","config":{"OnBuild":null}}"#;
        let config = ImageConfig::from_json(none).unwrap();
        assert!(config.runtime.onbuild.is_empty());
        let written: Value = serde_json::from_slice(&config.to_json()).unwrap();
        assert!(written["config"].get("OnBuild").is_none(), "{written}");
    }

    #[test]
    fn author_and_args_escaped_are_read_and_written_as_docker_does() {
        let docker = br#"{"os":"linux","architecture":"amd64","author":"Jane <j@x>","config":{"ArgsEscaped":true,"Cmd":["x"]}}"#;
        let config = ImageConfig::from_json(docker).unwrap();
        assert_eq!(config.author.as_deref(), Some("Jane <j@x>"));
        assert!(config.runtime.args_escaped);
        let written: Value = serde_json::from_slice(&config.to_json()).unwrap();
        assert_eq!(written["author"], "Jane <j@x>");
        assert_eq!(written["config"]["ArgsEscaped"], true);

        let plain = ImageConfig::scratch(Platform::parse("linux/amd64").unwrap(), DEFAULT_CREATED);
        let written: Value = serde_json::from_slice(&plain.to_json()).unwrap();
        assert!(written.get("author").is_none(), "{written}");
        assert!(written["config"].get("ArgsEscaped").is_none(), "{written}");
    }
}

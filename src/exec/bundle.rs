//! The bundle directory: `config.json` plus private copies of the host's
//! `/etc/resolv.conf` and `/etc/hosts`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, Linux, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use serde_json::Value;

use super::{ExecError, MountKind, NetworkMode, RunSpec};

/// Mount destinations of the standard mounts, in mount order.
const STANDARD_MOUNT_POINTS: &[&str] = &[
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
    "/etc/resolv.conf",
    "/etc/hosts",
];

/// The destinations of the mounts every container gets, in mount order; the
/// runtime creates those missing from the root filesystem (see the module docs).
pub fn standard_mount_points() -> &'static [&'static str] {
    STANDARD_MOUNT_POINTS
}

/// `BuildKit`'s default capability set.
const CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// `runc spec` defaults.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// `runc spec` defaults.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The open-files limit containers get, where the host allows it.
const NOFILE: u64 = 1_048_576;

/// [`NOFILE`], lowered to what the runtime can set: `fs.nr_open`, and our own
/// hard limit when we lack `CAP_SYS_RESOURCE` (raising it would fail).
pub(crate) fn nofile_limit() -> u64 {
    let mut limit = NOFILE;
    if let Some(nr_open) = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        limit = limit.min(nr_open);
    }
    let can_raise = rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::SYS_RESOURCE)
    });
    if !can_raise
        && let Some(hard) = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum
    {
        limit = limit.min(hard);
    }
    limit
}

/// Files written into the bundle directory.
pub(crate) const CONFIG_FILE: &str = "config.json";
const RESOLV_COPY: &str = "resolv.conf";
const HOSTS_COPY: &str = "hosts";

/// Writes `config.json` (mode 0600) and the copies of the host files into
/// `spec.bundle`; returns the path of `config.json`.
pub(crate) fn write_bundle(spec: &RunSpec) -> Result<PathBuf, ExecError> {
    let rootfs = fs::canonicalize(&spec.rootfs).map_err(|source| ExecError::Io {
        path: spec.rootfs.clone(),
        source,
    })?;
    let bundle = std::path::absolute(&spec.bundle).map_err(|source| ExecError::Io {
        path: spec.bundle.clone(),
        source,
    })?;
    let resolv = bundle.join(RESOLV_COPY);
    copy_host_file(Path::new("/etc/resolv.conf"), &resolv)?;
    let hosts = bundle.join(HOSTS_COPY);
    copy_host_file(Path::new("/etc/hosts"), &hosts)?;

    let config = build_spec(spec, &rootfs, &resolv, &hosts, nofile_limit())?;
    let path = bundle.join(CONFIG_FILE);
    let io_err = |source| ExecError::Io {
        path: path.clone(),
        source,
    };
    // It holds the environment, secrets included: created 0600, never
    // written into a file that others could already have open.
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(e)),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    file.write_all(&canonical_json(&config)?).map_err(io_err)?;
    Ok(path)
}

/// Copies `host` to `copy`, or creates `copy` empty when `host` is absent.
fn copy_host_file(host: &Path, copy: &Path) -> Result<(), ExecError> {
    let contents = match fs::read(host) {
        Ok(contents) => contents,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(ExecError::Io {
                path: host.to_owned(),
                source,
            });
        }
    };
    fs::write(copy, contents).map_err(|source| ExecError::Io {
        path: copy.to_owned(),
        source,
    })
}

fn config_err(e: impl std::fmt::Display) -> ExecError {
    ExecError::Config {
        message: e.to_string(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, ExecError> {
    let mut builder = MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source);
    if !options.is_empty() {
        builder = builder.options(strings(options));
    }
    builder.build().map_err(config_err)
}

fn bind_file(destination: &str, source: &Path) -> Result<Mount, ExecError> {
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(strings(&["rbind", "ro", "nosuid", "nodev", "noexec"]))
        .build()
        .map_err(config_err)
}

fn user_mount(destination: &str, kind: &MountKind) -> Result<Mount, ExecError> {
    if !destination.starts_with('/') {
        return Err(config_err(format!(
            "mount destination {destination:?} is not absolute"
        )));
    }
    match kind {
        MountKind::Bind { source, readonly } => {
            let mut options = vec!["rbind".to_owned()];
            if *readonly {
                options.push("ro".to_owned());
            }
            MountBuilder::default()
                .destination(destination)
                .typ("bind")
                .source(source)
                .options(options)
                .build()
                .map_err(config_err)
        }
        MountKind::Tmpfs { size, mode } => {
            let mut options = strings(&["nosuid", "nodev"]);
            if let Some(size) = size {
                options.push(format!("size={size}"));
            }
            if let Some(mode) = mode {
                options.push(format!("mode={mode:o}"));
            }
            MountBuilder::default()
                .destination(destination)
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()
                .map_err(config_err)
        }
    }
}

/// The runtime configuration for `spec`, with the root at `rootfs` and the
/// host-file copies at `resolv` and `hosts`.
pub(crate) fn build_spec(
    spec: &RunSpec,
    rootfs: &Path,
    resolv: &Path,
    hosts: &Path,
    nofile: u64,
) -> Result<Spec, ExecError> {
    if spec.args.is_empty() {
        return Err(config_err("no command to run"));
    }
    if !spec.cwd.starts_with('/') {
        return Err(config_err(format!(
            "working directory {:?} is not absolute",
            spec.cwd
        )));
    }
    let process = process(spec, nofile)?;
    let root = RootBuilder::default()
        .path(rootfs)
        .readonly(false)
        .build()
        .map_err(config_err)?;
    let mounts = mounts(spec, resolv, hosts)?;
    let linux = linux(spec)?;
    let mut config = SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .hostname(spec.hostname.as_str())
        .mounts(mounts)
        .process(process)
        .linux(linux)
        .build()
        .map_err(config_err)?;
    config.set_annotations(None);
    Ok(config)
}

/// The process of `spec`: its command, environment and user, `BuildKit`'s
/// capabilities, and `nofile` open files at most.
fn process(spec: &RunSpec, nofile: u64) -> Result<Process, ExecError> {
    let caps: oci_spec::runtime::Capabilities = CAPABILITIES.iter().copied().collect();
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(config_err)?;
    // The builder's defaults fill these; BuildKit leaves them empty.
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    let mut user = UserBuilder::default().uid(spec.uid).gid(spec.gid);
    if !spec.additional_gids.is_empty() {
        user = user.additional_gids(spec.additional_gids.clone());
    }
    let user = user.build().map_err(config_err)?;
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(nofile)
        .soft(nofile)
        .build()
        .map_err(config_err)?;
    ProcessBuilder::default()
        .terminal(false)
        .args(spec.args.clone())
        .env(spec.env.clone())
        .cwd(spec.cwd.as_str())
        .user(user)
        .capabilities(capabilities)
        .no_new_privileges(false)
        .rlimits(vec![nofile])
        .build()
        .map_err(config_err)
}

/// The standard mounts (`/proc`, `/dev`, `/sys`, ...), the host files, then
/// the step's own mounts.
fn mounts(spec: &RunSpec, resolv: &Path, hosts: &Path) -> Result<Vec<Mount>, ExecError> {
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        bind_file("/etc/resolv.conf", resolv)?,
        bind_file("/etc/hosts", hosts)?,
    ];
    for m in &spec.mounts {
        mounts.push(user_mount(&m.destination, &m.kind)?);
    }
    Ok(mounts)
}

/// The namespaces (a network one for `network = none`), masked and
/// read-only paths and the device cgroup.
fn linux(spec: &RunSpec) -> Result<Linux, ExecError> {
    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if spec.network == NetworkMode::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(config_err)?;
    // Deny device access except runc's default allow-list (as `runc spec`,
    // Docker and BuildKit do); no limits and no cgroupsPath.
    let deny_devices = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(config_err)?;
    let resources = LinuxResourcesBuilder::default()
        .devices(vec![deny_devices])
        .build()
        .map_err(config_err)?;
    LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(strings(MASKED_PATHS))
        .readonly_paths(strings(READONLY_PATHS))
        .resources(resources)
        .build()
        .map_err(config_err)
}

/// `config` as JSON with object keys sorted and capability sets sorted.
pub(crate) fn canonical_json(config: &Spec) -> Result<Vec<u8>, ExecError> {
    let mut value = serde_json::to_value(config).map_err(config_err)?;
    if let Some(Value::Object(caps)) = value.pointer_mut("/process/capabilities") {
        for set in caps.values_mut() {
            if let Value::Array(items) = set {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    sort_keys(&mut value);
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(config_err)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut item) in entries {
                sort_keys(&mut item);
                map.insert(key, item);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::MountSpec;

    fn sample() -> RunSpec {
        RunSpec {
            bundle: PathBuf::from("/b"),
            rootfs: PathBuf::from("/r"),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 1,
            gid: 2,
            additional_gids: vec![3, 4],
            hostname: "h".into(),
            network: NetworkMode::None,
            mounts: vec![
                MountSpec {
                    destination: "/cache".into(),
                    kind: MountKind::Tmpfs {
                        size: Some(1 << 20),
                        mode: Some(0o1777),
                    },
                },
                MountSpec {
                    destination: "/src".into(),
                    kind: MountKind::Bind {
                        source: PathBuf::from("/host/src"),
                        readonly: true,
                    },
                },
            ],
        }
    }

    fn json(spec: &RunSpec) -> Value {
        let config = build_spec(
            spec,
            Path::new("/r"),
            Path::new("/b/resolv.conf"),
            Path::new("/b/hosts"),
            NOFILE,
        )
        .unwrap();
        serde_json::from_slice(&canonical_json(&config).unwrap()).unwrap()
    }

    #[test]
    fn config_has_the_expected_shape() {
        let v = json(&sample());
        assert_eq!(v["ociVersion"], "1.0.2");
        assert_eq!(v["process"]["terminal"], false);
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert_eq!(
            v["process"]["user"]["additionalGids"],
            serde_json::json!([3, 4])
        );
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(v["process"]["rlimits"][0]["hard"], 1_048_576);
        let bounding = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(bounding.len(), 14);
        assert_eq!(bounding[0], "CAP_AUDIT_WRITE");
        assert!(v["process"]["capabilities"].get("inheritable").is_none());
        assert_eq!(v["root"]["readonly"], false);
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        let mut expected = standard_mount_points().to_vec();
        expected.extend(["/cache", "/src"]);
        assert_eq!(dests, expected);
        let mounts = v["mounts"].as_array().unwrap();
        assert_eq!(
            mounts[9]["options"],
            serde_json::json!(["nosuid", "nodev", "size=1048576", "mode=1777"])
        );
        assert_eq!(mounts[10]["options"], serde_json::json!(["rbind", "ro"]));
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
        assert!(v.get("annotations").is_none());
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"].get("cgroupsPath").is_none());
    }

    #[test]
    fn host_network_has_no_network_namespace() {
        let mut spec = sample();
        spec.network = NetworkMode::Host;
        let v = json(&spec);
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.iter().all(|n| n["type"] != "network"));
    }

    #[test]
    fn output_is_canonical() {
        let spec = sample();
        let config = build_spec(
            &spec,
            Path::new("/r"),
            Path::new("/b/resolv.conf"),
            Path::new("/b/hosts"),
            NOFILE,
        )
        .unwrap();
        let a = canonical_json(&config).unwrap();
        for _ in 0..5 {
            assert_eq!(canonical_json(&config).unwrap(), a);
        }
        let text = String::from_utf8(a).unwrap();
        let hostname = text.find("\"hostname\"").unwrap();
        let linux = text.find("\"linux\"").unwrap();
        assert!(hostname < linux);
    }

    #[test]
    fn bad_specs_are_config_errors() {
        let mut spec = sample();
        spec.args.clear();
        assert!(matches!(
            build_spec(
                &spec,
                Path::new("/r"),
                Path::new("/a"),
                Path::new("/b"),
                NOFILE
            ),
            Err(ExecError::Config { .. })
        ));
        let mut spec = sample();
        spec.mounts[0].destination = "relative".into();
        assert!(matches!(
            build_spec(
                &spec,
                Path::new("/r"),
                Path::new("/a"),
                Path::new("/b"),
                NOFILE
            ),
            Err(ExecError::Config { .. })
        ));
    }
}

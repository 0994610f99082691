//! The build arguments imgbuild knows by name: the front ends check
//! declarations against them and the plan sets or passes them.

/// Arguments imgbuild sets from the platforms. A manifest cannot declare or
/// override them; a Dockerfile (argument scope `declared`) may override
/// them with `--build-arg`, as `BuildKit` allows.
pub const PREDEFINED_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// Proxy arguments accepted with `--arg` without being declared, as Docker does.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "all_proxy",
];

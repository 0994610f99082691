//! OCI platforms (`os/arch[/variant]`), parsed and normalized the way
//! containerd's `platforms.Normalize` does.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Operating systems accepted in a platform string.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

/// Architectures accepted in a platform string, after aliases are resolved.
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// Architecture spellings that are accepted and rewritten to an OCI name.
const ARCH_ALIASES: &[&str] = &[
    "x86_64", "x86-64", "aarch64", "armhf", "armel", "i386", "i486", "i586", "i686",
];

/// Valid variants of `arm`.
const ARM_VARIANTS: &[&str] = &["v5", "v6", "v7", "v8"];

/// Valid variants of `amd64`.
const AMD64_VARIANTS: &[&str] = &["v1", "v2", "v3", "v4"];

/// Valid variants of `riscv64`.
const RISCV64_VARIANTS: &[&str] = &["rva20u64", "rva22u64"];

/// How platforms are written, appended to most help texts.
const FORMAT_HELP: &str =
    "Platforms are written `os/arch[/variant]`, for example `linux/amd64` or `linux/arm/v7`";

/// An OCI platform such as `linux/arm64` or `linux/arm/v7`, normalized the way containerd does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// OCI architecture name, e.g. `amd64` or `arm64`.
    pub architecture: String,
    /// Architecture variant, e.g. `v7` for `arm`; `None` when the default applies.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine running imgbuild (linux + `std::env::consts::ARCH` mapped to OCI names:
    /// x86_64->amd64, aarch64->arm64, arm->arm/v7, x86->386, powerpc64->ppc64le on little endian,
    /// s390x, riscv64, loongarch64->loong64).
    #[must_use]
    pub fn host() -> Platform {
        let little = cfg!(target_endian = "little");
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc" => ("ppc", None),
            "powerpc64" if little => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "mips" if little => ("mipsle", None),
            "mips64" if little => ("mips64le", None),
            "loongarch64" => ("loong64", None),
            "wasm32" => ("wasm", None),
            // s390x, riscv64, mips, mips64, sparc64 already use their OCI names.
            other => (other, None),
        };
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// Parses and normalizes `os/arch[/variant]` or a bare `arch` (then os = linux).
    ///
    /// # Errors
    /// Returns a [`PlatformError`] naming the part that is empty, unknown or invalid.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let text = s.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Err(PlatformError::Empty);
        }
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(PlatformError::TooManyParts(s.trim().to_owned())),
        };
        for (value, part) in [(os, "operating system"), (arch, "architecture")] {
            if value.is_empty() {
                return Err(PlatformError::EmptyPart {
                    input: s.trim().to_owned(),
                    part,
                });
            }
        }
        if variant == Some("") {
            return Err(PlatformError::EmptyPart {
                input: s.trim().to_owned(),
                part: "variant",
            });
        }

        let os = normalize_os(os)?;
        let (architecture, variant) = normalize_arch(arch, variant)?;
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }
}

/// Lowercased `os` checked against [`KNOWN_OS`], with `macos` meaning `darwin`.
fn normalize_os(os: &str) -> Result<String, PlatformError> {
    let os = if os == "macos" { "darwin" } else { os };
    if KNOWN_OS.contains(&os) {
        Ok(os.to_owned())
    } else {
        Err(PlatformError::UnknownOs(os.to_owned()))
    }
}

/// Resolves architecture aliases and checks the variant against the architecture.
fn normalize_arch(
    arch: &str,
    variant: Option<&str>,
) -> Result<(String, Option<String>), PlatformError> {
    let invalid = |architecture: &str, variant: &str| PlatformError::InvalidVariant {
        architecture: architecture.to_owned(),
        variant: variant.to_owned(),
    };
    // containerd also accepts bare numbers such as `arm/7`.
    let variant = variant.map(|v| {
        if v.starts_with(|c: char| c.is_ascii_digit())
            && matches!(
                arch,
                "arm" | "arm64" | "aarch64" | "amd64" | "x86_64" | "x86-64"
            )
        {
            format!("v{v}")
        } else {
            v.to_owned()
        }
    });

    let (architecture, variant) = match arch {
        "x86_64" | "x86-64" | "amd64" => match variant.as_deref() {
            None | Some("v1") => ("amd64", None),
            Some(v) if AMD64_VARIANTS.contains(&v) => ("amd64", variant),
            Some(v) => return Err(invalid("amd64", v)),
        },
        "aarch64" | "arm64" => match variant.as_deref() {
            None | Some("v8" | "v8.0") => ("arm64", None),
            Some("v9.0") => ("arm64", Some("v9".to_owned())),
            Some(v) if is_arm64_variant(v) => ("arm64", variant),
            Some(v) => return Err(invalid("arm64", v)),
        },
        "armhf" | "armel" => {
            let implied = if arch == "armhf" { "v7" } else { "v6" };
            match variant.as_deref() {
                None => ("arm", Some(implied.to_owned())),
                Some(v) if v == implied => ("arm", variant),
                Some(v) => return Err(invalid(arch, v)),
            }
        }
        "arm" => match variant.as_deref() {
            None => ("arm", Some("v7".to_owned())),
            Some(v) if ARM_VARIANTS.contains(&v) => ("arm", variant),
            Some(v) => return Err(invalid("arm", v)),
        },
        "riscv64" => match variant.as_deref() {
            Some(v) if !RISCV64_VARIANTS.contains(&v) => return Err(invalid("riscv64", v)),
            _ => ("riscv64", variant),
        },
        other => {
            let architecture = match other {
                "i386" | "i486" | "i586" | "i686" => "386",
                _ if KNOWN_ARCH.contains(&other) => other,
                _ => return Err(PlatformError::UnknownArchitecture(other.to_owned())),
            };
            match variant.as_deref() {
                None => (architecture, None),
                Some(v) => return Err(invalid(architecture, v)),
            }
        }
    };
    Ok((architecture.to_owned(), variant))
}

/// `v8`, `v8.0`..`v8.9`, `v9` and `v9.0`..`v9.5`.
fn is_arm64_variant(v: &str) -> bool {
    match v.strip_prefix("v8") {
        Some(rest) => rest.is_empty() || matches!(rest.as_bytes(), [b'.', b'0'..=b'9']),
        None => match v.strip_prefix("v9") {
            Some(rest) => rest.is_empty() || matches!(rest.as_bytes(), [b'.', b'0'..=b'5']),
            None => false,
        },
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts a platform string.
        struct PlatformVisitor;

        impl Visitor<'_> for PlatformVisitor {
            type Value = Platform;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a platform string such as `linux/amd64` or `linux/arm/v7`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Platform, E> {
                Platform::parse(v).map_err(|e| E::custom(format!("{e} ({})", e.help())))
            }
        }

        deserializer.deserialize_str(PlatformVisitor)
    }
}

/// Why a platform string was refused. Each variant's Display is one sentence naming the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The string was empty or only whitespace.
    #[error("the platform is empty")]
    Empty,
    /// More than three `/`-separated parts.
    #[error("platform `{0}` has more than three `/`-separated parts")]
    TooManyParts(String),
    /// One of the `/`-separated parts is empty, e.g. `linux/`.
    #[error("platform `{input}` has an empty {part}")]
    EmptyPart {
        /// The whole (trimmed) platform string.
        input: String,
        /// Which part is empty: "operating system", "architecture" or "variant".
        part: &'static str,
    },
    /// The operating system is not one that OCI images use.
    #[error("unknown operating system `{0}`")]
    UnknownOs(String),
    /// The architecture is not one that OCI images use.
    #[error("unknown architecture `{0}`")]
    UnknownArchitecture(String),
    /// The variant does not exist for the architecture.
    #[error("variant `{variant}` is not valid for architecture `{architecture}`")]
    InvalidVariant {
        /// The architecture (normalized, or the alias as written for `armhf`/`armel`).
        architecture: String,
        /// The refused variant.
        variant: String,
    },
}

impl PlatformError {
    /// What the user should do, e.g. "did you mean `linux`? Platforms are written `os/arch[/variant]`,
    /// for example `linux/amd64` or `linux/arm/v7`". Suggests the closest known os/arch within
    /// Levenshtein distance 2.
    #[must_use]
    pub fn help(&self) -> String {
        match self {
            PlatformError::Empty => format!("give a platform. {FORMAT_HELP}"),
            PlatformError::TooManyParts(_) => format!("remove the extra parts. {FORMAT_HELP}"),
            PlatformError::EmptyPart { part, .. } => {
                format!("fill in the {part} or drop its `/`. {FORMAT_HELP}")
            }
            PlatformError::UnknownOs(os) => {
                if KNOWN_ARCH.contains(&os.as_str()) || ARCH_ALIASES.contains(&os.as_str()) {
                    format!(
                        "`{os}` is an architecture; the operating system comes first. {FORMAT_HELP}"
                    )
                } else if let Some(best) = closest(os, KNOWN_OS.iter()) {
                    format!("did you mean `{best}`? {FORMAT_HELP}")
                } else {
                    format!(
                        "known operating systems are {}. {FORMAT_HELP}",
                        KNOWN_OS.join(", ")
                    )
                }
            }
            PlatformError::UnknownArchitecture(arch) => {
                if KNOWN_OS.contains(&arch.as_str()) {
                    format!(
                        "`{arch}` is an operating system; add an architecture, e.g. `{arch}/amd64`. {FORMAT_HELP}"
                    )
                } else if let Some(best) = closest(arch, KNOWN_ARCH.iter().chain(ARCH_ALIASES)) {
                    format!("did you mean `{best}`? {FORMAT_HELP}")
                } else {
                    format!(
                        "known architectures are {}. {FORMAT_HELP}",
                        KNOWN_ARCH.join(", ")
                    )
                }
            }
            PlatformError::InvalidVariant {
                architecture,
                variant: _,
            } => {
                let valid: &[&str] = match architecture.as_str() {
                    "arm" => ARM_VARIANTS,
                    "arm64" => &["v8", "v8.0 to v8.9", "v9", "v9.0 to v9.5"],
                    "amd64" => AMD64_VARIANTS,
                    "riscv64" => RISCV64_VARIANTS,
                    "armhf" => return "`armhf` already means `arm/v7`; write `linux/arm/v7` or `linux/armhf`".to_owned(),
                    "armel" => return "`armel` already means `arm/v6`; write `linux/arm/v6` or `linux/armel`".to_owned(),
                    _ => return format!("`{architecture}` has no variants; write `linux/{architecture}`"),
                };
                format!(
                    "valid variants of `{architecture}` are {}. {FORMAT_HELP}",
                    valid.join(", ")
                )
            }
        }
    }
}

/// The candidate closest to `word`, if it is within Levenshtein distance 2.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as ValueError, StrDeserializer};

    fn p(s: &str) -> String {
        Platform::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .to_string()
    }

    fn err(s: &str) -> PlatformError {
        Platform::parse(s).expect_err(s)
    }

    #[test]
    fn normalizes_aliases() {
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/x86-64"), "linux/amd64");
        assert_eq!(p("linux/amd64/v1"), "linux/amd64");
        assert_eq!(p("linux/amd64/v3"), "linux/amd64/v3");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8.2"), "linux/arm64/v8.2");
        assert_eq!(p("linux/arm64/v9.0"), "linux/arm64/v9");
        assert_eq!(p("linux/arm64/v9.5"), "linux/arm64/v9.5");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/armel"), "linux/arm/v6");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/arm/7"), "linux/arm/v7");
        assert_eq!(p("linux/arm/v5"), "linux/arm/v5");
        for arch in ["i386", "i486", "i586", "i686", "386"] {
            assert_eq!(p(&format!("linux/{arch}")), "linux/386");
        }
        assert_eq!(p("linux/riscv64/rva22u64"), "linux/riscv64/rva22u64");
    }

    #[test]
    fn normalizes_os_case_and_whitespace() {
        assert_eq!(p("  Linux/AMD64  "), "linux/amd64");
        assert_eq!(p("macos/arm64"), "darwin/arm64");
        assert_eq!(p("Windows/amd64"), "windows/amd64");
    }

    #[test]
    fn bare_architecture_means_linux() {
        assert_eq!(p("arm64"), "linux/arm64");
        assert_eq!(p("x86_64"), "linux/amd64");
        assert_eq!(
            Platform::parse("armhf"),
            Ok(Platform {
                os: "linux".into(),
                architecture: "arm".into(),
                variant: Some("v7".into())
            })
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "linux/amd64",
            "linux/arm/v7",
            "linux/arm64/v8.1",
            "windows/amd64",
            "linux/s390x",
        ] {
            let platform: Platform = s.parse().unwrap();
            assert_eq!(platform.to_string(), s);
            assert_eq!(Platform::parse(&platform.to_string()), Ok(platform));
        }
    }

    #[test]
    fn host_is_valid_linux_platform() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert_eq!(Platform::parse(&host.to_string()), Ok(host));
    }

    #[test]
    fn serde_uses_the_string_form() {
        let de: StrDeserializer<'_, ValueError> = "linux/armhf".into_deserializer();
        let platform = Platform::deserialize(de).unwrap();
        assert_eq!(platform.to_string(), "linux/arm/v7");

        let de: StrDeserializer<'_, ValueError> = "linx/amd64".into_deserializer();
        let message = Platform::deserialize(de).unwrap_err().to_string();
        assert!(
            message.contains("`linx`") && message.contains("did you mean `linux`?"),
            "{message}"
        );
    }

    #[test]
    fn refuses_empty_parts() {
        assert_eq!(err(""), PlatformError::Empty);
        assert_eq!(err("   "), PlatformError::Empty);
        assert_eq!(
            err("linux/"),
            PlatformError::EmptyPart {
                input: "linux/".into(),
                part: "architecture"
            }
        );
        assert_eq!(
            err("/amd64"),
            PlatformError::EmptyPart {
                input: "/amd64".into(),
                part: "operating system"
            }
        );
        assert_eq!(
            err("linux/arm/"),
            PlatformError::EmptyPart {
                input: "linux/arm/".into(),
                part: "variant"
            }
        );
        assert_eq!(
            err("linux/").to_string(),
            "platform `linux/` has an empty architecture"
        );
    }

    #[test]
    fn refuses_too_many_parts() {
        let e = err("linux/amd64/v2/x");
        assert_eq!(e, PlatformError::TooManyParts("linux/amd64/v2/x".into()));
        assert!(e.to_string().contains("linux/amd64/v2/x"));
        assert!(e.help().contains("os/arch[/variant]"));
    }

    #[test]
    fn unknown_os_suggests_closest() {
        let e = err("linx/amd64");
        assert_eq!(e, PlatformError::UnknownOs("linx".into()));
        assert_eq!(e.to_string(), "unknown operating system `linx`");
        assert!(
            e.help()
                .starts_with("did you mean `linux`? Platforms are written"),
            "{}",
            e.help()
        );

        let far = err("haiku/amd64").help();
        assert!(far.contains("known operating systems are aix"), "{far}");
        assert!(
            err("amd64/linux")
                .help()
                .contains("operating system comes first")
        );
    }

    #[test]
    fn unknown_architecture_suggests_closest() {
        let e = err("linux/amd46");
        assert_eq!(e, PlatformError::UnknownArchitecture("amd46".into()));
        assert_eq!(e.to_string(), "unknown architecture `amd46`");
        assert!(
            e.help().starts_with("did you mean `amd64`?"),
            "{}",
            e.help()
        );
        assert!(
            err("linux/aarch46")
                .help()
                .starts_with("did you mean `aarch64`?")
        );
        assert!(
            err("linux/vax")
                .help()
                .contains("known architectures are 386")
        );
        assert!(err("linux").help().contains("`linux/amd64`"));
    }

    #[test]
    fn refuses_invalid_variants() {
        let cases = [
            ("linux/arm/v9", "arm", "v9"),
            ("linux/arm64/v8.10", "arm64", "v8.10"),
            ("linux/arm64/v9.6", "arm64", "v9.6"),
            ("linux/arm64/v7", "arm64", "v7"),
            ("linux/amd64/v5", "amd64", "v5"),
            ("linux/riscv64/rva23", "riscv64", "rva23"),
            ("linux/386/v1", "386", "v1"),
            ("linux/s390x/z15", "s390x", "z15"),
            ("linux/armhf/v6", "armhf", "v6"),
        ];
        for (input, architecture, variant) in cases {
            assert_eq!(
                err(input),
                PlatformError::InvalidVariant {
                    architecture: architecture.into(),
                    variant: variant.into()
                },
                "{input}"
            );
        }
        assert_eq!(
            err("linux/arm/v9").to_string(),
            "variant `v9` is not valid for architecture `arm`"
        );
        assert!(err("linux/arm/v9").help().contains("v5, v6, v7, v8"));
        assert!(err("linux/386/v1").help().contains("`386` has no variants"));
    }
}

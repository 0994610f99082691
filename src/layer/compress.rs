//! Compression detection, streaming compressors and digesting writers.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::{Compression, CompressionOptions, LayerError};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2_MAGIC: &[u8] = b"BZh";

/// Default gzip level (flate2's default).
const GZIP_DEFAULT_LEVEL: u32 = 6;
/// Default zstd level.
const ZSTD_DEFAULT_LEVEL: u32 = 3;
/// OS byte written in gzip headers: 255 = unknown, as Go's `compress/gzip` writes.
const GZIP_OS_UNKNOWN: u8 = 255;

impl Compression {
    /// The OCI media type of a layer with this compression:
    /// `application/vnd.oci.image.layer.v1.tar`, `...tar+gzip` or `...tar+zstd`.
    #[must_use]
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Detects the compression from the first bytes of a blob (magic numbers);
    /// anything that is neither gzip nor zstd is reported as [`Compression::None`].
    #[must_use]
    pub fn detect(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if first_bytes.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Names a compression format this module recognises but cannot read.
pub(crate) fn unsupported_format(first_bytes: &[u8]) -> Option<&'static str> {
    if first_bytes.starts_with(XZ_MAGIC) {
        Some("xz")
    } else if first_bytes.starts_with(BZIP2_MAGIC) {
        Some("bzip2")
    } else {
        None
    }
}

impl CompressionOptions {
    /// The effective level, validated for the chosen compression.
    fn resolved_level(&self) -> Result<u32, LayerError> {
        match self.compression {
            Compression::None => Ok(0),
            Compression::Gzip => match self.level {
                None => Ok(GZIP_DEFAULT_LEVEL),
                Some(l) if l <= 9 => Ok(l),
                Some(l) => Err(LayerError::Options(format!(
                    "gzip level {l} is out of range 0..=9"
                ))),
            },
            Compression::Zstd => match self.level {
                None => Ok(ZSTD_DEFAULT_LEVEL),
                Some(l) if l <= 22 => Ok(l),
                Some(l) => Err(LayerError::Options(format!(
                    "zstd level {l} is out of range 0..=22"
                ))),
            },
        }
    }
}

/// A streaming compressor in front of `W`.
pub(crate) enum Compressor<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    /// Starts a compressor; gzip headers carry no name, mtime 0 and a fixed OS byte.
    pub(crate) fn new(options: &CompressionOptions, out: W) -> Result<Self, LayerError> {
        let level = options.resolved_level()?;
        Ok(match options.compression {
            Compression::None => Compressor::Plain(out),
            Compression::Gzip => Compressor::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(GZIP_OS_UNKNOWN)
                    .write(out, flate2::Compression::new(level)),
            ),
            Compression::Zstd => {
                let level = i32::try_from(level).expect("zstd level validated to 0..=22");
                Compressor::Zstd(
                    zstd::stream::write::Encoder::new(out, level).map_err(LayerError::Write)?,
                )
            }
        })
    }

    /// Writes the compression trailer and returns the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Plain(w) => Ok(w),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Plain(w) => w.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Plain(w) => w.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

/// A writer that passes bytes through while hashing and counting them.
pub(crate) struct HashWriter<W> {
    inner: W,
    /// None: only counting.
    hasher: Option<Sha256>,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Some(Sha256::new()),
            count: 0,
        }
    }

    /// A writer that only counts; its digest comes back empty.
    pub(crate) fn counting(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: None,
            count: 0,
        }
    }

    /// Returns the inner writer, the `sha256:<hex>` digest (empty when only
    /// counting) and the byte count.
    pub(crate) fn into_parts(self) -> (W, String, u64) {
        let digest = self.hasher.map(sha256_digest_string).unwrap_or_default();
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Formats a finished hash as `sha256:<lowercase hex>`.
pub(crate) fn sha256_digest_string(hasher: Sha256) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in hasher.finalize() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Opens a decompressing reader over `reader`, detecting the format from its
/// first bytes (which are read and replayed).
pub(crate) fn decompressing_reader<'r, R: Read + 'r>(
    mut reader: R,
) -> Result<Box<dyn Read + 'r>, LayerError> {
    let mut prefix = [0u8; 6];
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LayerError::Tar(e)),
        }
    }
    let head = prefix[..filled].to_vec();
    if let Some(format) = unsupported_format(&head) {
        return Err(LayerError::Tar(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{format}-compressed layers are not supported"),
        )));
    }
    let compression = Compression::detect(&head);
    let chained = io::Cursor::new(head).chain(reader);
    Ok(match compression {
        Compression::None => Box::new(chained),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(chained).map_err(LayerError::Tar)?)
        }
    })
}

/// Compresses the tar stream `input` into `out` with `options`; the same
/// input and options always give the same bytes.
pub fn compress_stream(
    mut input: impl Read,
    options: &CompressionOptions,
    out: impl Write,
) -> Result<(), LayerError> {
    let mut compressor = Compressor::new(options, out)?;
    io::copy(&mut input, &mut compressor).map_err(LayerError::Write)?;
    compressor
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(LayerError::Write)
}

//! [`SpoolError`]: every way a spool operation fails. Each carries the path involved; disk
//! full (ENOSPC, EDQUOT, EFBIG) is told apart from other IO errors so the caller can count it.

use std::io;
use std::path::{Path, PathBuf};

/// Spool failures. After any of them the spool stays usable: a later append retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The disk (or quota, or file size limit) is full.
    #[error("spool full writing {path}")]
    Full {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Any other IO failure.
    #[error("spool io error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record or batch larger than the format or `max_bytes` allows.
    #[error("spool record too large: {len} bytes, limit {limit}")]
    TooLarge { len: u64, limit: u64 },
    /// A segment written by a newer ecu-bridge; refused rather than deleted.
    #[error("spool segment {path} has format version {version}, newer than this build")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// Another process (another ecu-bridge) has the spool folder open.
    #[error(
        "spool folder {dir} is in use by another process (another ecu-bridge with the same \
         [spool] dir or state directory); give each bridge its own"
    )]
    Locked { dir: PathBuf },
    /// Impossible limits.
    #[error("invalid spool config: {0}")]
    Config(&'static str),
}

impl SpoolError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        let full = matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge
        ) || source.raw_os_error() == Some(nix::errno::Errno::EDQUOT as i32);
        let path = path.to_path_buf();
        if full {
            Self::Full { path, source }
        } else {
            Self::Io { path, source }
        }
    }
}

//! Spool limits and durability policy ([`SpoolConfig`], [`SyncPolicy`]) with their
//! documented defaults; the arithmetic behind `max_bytes` is in `docs/spool.md`.

use std::time::Duration;

use super::SpoolError;
use super::segment::SEGMENT_HEADER_LEN;

/// When appended data is forced to stable storage with `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every append: nothing is lost on a power cut, at a large cost in throughput.
    Always,
    /// At most once per interval (checked on append, ack and `sync`), and on roll and close.
    Every(Duration),
    /// Never; the OS writes back when it likes. A killed process still loses nothing.
    Never,
}

/// Spool limits and durability. `Default` gives the documented production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// Bound on all segment bytes; the oldest segments are dropped to stay under it.
    pub max_bytes: u64,
    /// Segments last written longer ago than this are dropped; `None` keeps them.
    pub max_age: Option<Duration>,
    /// When data is fdatasync'ed.
    pub sync: SyncPolicy,
    /// Write-behind: up to this many bytes of the newest records are held in memory and
    /// written only if they are still unacknowledged when more arrive; 0 writes every record
    /// before `append` returns. A killed process loses what is held, so only a spool no later
    /// run resumes (a replay's temporary one) sets it.
    pub write_behind_bytes: u64,
}

impl SpoolConfig {
    /// 64 MiB segments: few files, yet deleting one frees space in small steps.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// 25 GiB: 30 minutes of a 1 M samples/s car at ~14.5 encoded bytes per sample
    /// (arithmetic in `docs/spool.md`).
    pub const DEFAULT_MAX_BYTES: u64 = 25 << 30;
    /// A day: older telemetry is no longer wanted live.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
    /// The power-cut loss bound.
    pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(200);

    /// Checks that the limits can hold at least one segment.
    pub fn validate(&self) -> Result<(), SpoolError> {
        if self.segment_bytes <= SEGMENT_HEADER_LEN as u64 {
            return Err(SpoolError::Config(
                "segment_bytes must exceed the 16-byte header",
            ));
        }
        if self.max_bytes < self.segment_bytes {
            return Err(SpoolError::Config(
                "max_bytes must be at least segment_bytes",
            ));
        }
        Ok(())
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_age: Some(Self::DEFAULT_MAX_AGE),
            sync: SyncPolicy::Every(Self::DEFAULT_SYNC_INTERVAL),
            write_behind_bytes: 0,
        }
    }
}

//! The recorder behind `ecu-bridge record`: takes every [`RawCapture`] the live sources hand
//! over and writes it, per source, exactly as received: UDP datagrams to `<name>.pcapng`,
//! serial reads to `<name>.serial`, and for both, when the source carries CAN, the frames
//! decoded by the transport receivers to `<name>.candump.log` (sources of native frames have
//! no CAN frames to log; their raw capture replays through their definition).
//!
//! Input edge: a bounded channel fed by the sources' capture taps (UDP `try_send`s and counts
//! what does not fit, serial awaits). The recorder ends when that channel closes, after
//! flushing and syncing every file. Writes are buffered per file and flushed when a buffer
//! passes [`FLUSH_BYTES`] and at least every [`FLUSH_INTERVAL`], so a crash loses at most that
//! much. Recordings never overwrite: an existing file is an error naming it.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use decoders::wire::candump;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::{CaptureError, pcapng, serial_log};
use crate::config::{SourceConfig, SourceKind};
use crate::pipeline::edge::TimedFrame;
use crate::source::RawCapture;
use crate::source::receiver::{CannelloniReceiver, SlcanReceiver};
use crate::telemetry::{Metrics, SourceMetrics};

/// A file's buffer is written out once it holds this much.
pub const FLUSH_BYTES: usize = 1 << 16;
/// Every buffer is written out at least this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Addresses written for a datagram whose addresses the source did not report.
const UNSPECIFIED: (SocketAddr, SocketAddr) = (
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
);

/// Writes the capture files of one recording directory.
#[derive(Debug)]
pub struct CaptureWriter {
    /// By source name, as carried in [`RawCapture::source`].
    sources: HashMap<String, SourceRecording>,
    /// Captures naming a source that is not configured (a wiring bug; counted, not fatal).
    unknown_source: u64,
}

/// What a recording wrote.
#[derive(Debug, Clone, Default)]
pub struct RecordStats {
    /// Per source, in name order.
    pub sources: Vec<SourceRecordStats>,
    /// Captures from sources not configured for recording (dropped).
    pub unknown_source: u64,
}

/// What was recorded for one source.
#[derive(Debug, Clone, Default)]
pub struct SourceRecordStats {
    /// The source's name.
    pub name: String,
    /// The files written: raw capture, then candump log.
    pub files: Vec<PathBuf>,
    /// Datagrams or serial reads recorded.
    pub captures: u64,
    /// Their bytes.
    pub bytes: u64,
    /// CAN frames decoded into the candump log.
    pub frames: u64,
    /// Datagrams too large for an IP packet, left out of the pcapng (still decoded).
    pub oversized: u64,
    /// Malformed transport input, by kind.
    pub decode_errors: BTreeMap<&'static str, u64>,
}

#[derive(Debug)]
struct SourceRecording {
    transport: Transport,
    raw: OutputFile,
    /// CAN sources only: a source of native frames has no CAN frames to log.
    candump: Option<OutputFile>,
    metrics: SourceMetrics,
    /// Reused per capture: frames decoded from it and their candump lines.
    frames: Vec<TimedFrame>,
    lines: String,
    oversized: u64,
}

#[derive(Debug)]
enum Transport {
    Udp(CannelloniReceiver),
    /// Boxed: the line buffer makes it much larger than the UDP receiver.
    Serial(Box<SlcanReceiver>),
}

/// A capture file and its write buffer.
#[derive(Debug)]
struct OutputFile {
    path: PathBuf,
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl CaptureWriter {
    /// Creates `out_dir` (if needed) and, for each source, its capture files with their headers.
    /// Fails if any file already exists.
    pub fn create(out_dir: &Path, sources: &[SourceConfig]) -> Result<Self, CaptureError> {
        std::fs::create_dir_all(out_dir).map_err(|source| CaptureError::Create {
            path: out_dir.to_owned(),
            source,
        })?;
        let mut recordings = HashMap::new();
        for source in sources {
            let name = source.name.as_str();
            let (extension, transport) = match source.kind {
                SourceKind::Udp(_) => ("pcapng", Transport::Udp(CannelloniReceiver::default())),
                SourceKind::Serial(_) | SourceKind::Tcp(_) => {
                    ("serial", Transport::Serial(Box::default()))
                }
            };
            let mut raw = OutputFile::create(out_dir.join(format!("{name}.{extension}")))?;
            match transport {
                Transport::Udp(_) => {
                    pcapng::write_section_header(&mut raw.buf);
                    pcapng::write_interface(name, &mut raw.buf);
                }
                Transport::Serial(_) => serial_log::write_header(name, &mut raw.buf),
            }
            // Native frames and polled blocks carry no CAN frames to log.
            let candump = match (&source.definition, &source.poll) {
                (Some(_), _) | (_, Some(_)) => None,
                (None, None) => Some(OutputFile::create(
                    out_dir.join(format!("{name}.candump.log")),
                )?),
            };
            let recording = SourceRecording {
                transport,
                raw,
                candump,
                metrics: SourceMetrics::new(name),
                frames: Vec::new(),
                lines: String::new(),
                oversized: 0,
            };
            recordings.insert(source.name.clone(), recording);
        }
        Ok(Self {
            sources: recordings,
            unknown_source: 0,
        })
    }

    /// Records until `input` closes, then flushes and syncs every file.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<RawCapture>,
    ) -> Result<RecordStats, CaptureError> {
        let first = tokio::time::Instant::now() + FLUSH_INTERVAL;
        let mut flush = tokio::time::interval_at(first, FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                capture = input.recv() => match capture {
                    Some(capture) => self.handle_capture(&capture).await?,
                    None => break,
                },
                _ = flush.tick() => {
                    for recording in self.sources.values_mut() {
                        recording.raw.flush().await?;
                        if let Some(candump) = &mut recording.candump {
                            candump.flush().await?;
                        }
                    }
                }
            }
        }
        let mut stats = RecordStats {
            sources: Vec::with_capacity(self.sources.len()),
            unknown_source: self.unknown_source,
        };
        for (name, mut recording) in self.sources {
            recording.raw.finish().await?;
            if let Some(candump) = &mut recording.candump {
                candump.finish().await?;
            }
            stats.sources.push(recording.stats(name));
        }
        stats.sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    }

    async fn handle_capture(&mut self, capture: &RawCapture) -> Result<(), CaptureError> {
        let Some(recording) = self.sources.get_mut(&*capture.source) else {
            if self.unknown_source == 0 {
                tracing::warn!(source = %capture.source, "capture from a source not being recorded dropped");
            }
            self.unknown_source += 1;
            return Ok(());
        };
        recording.handle_capture(capture);
        recording.raw.write_if_full().await?;
        match &mut recording.candump {
            Some(candump) => candump.write_if_full().await,
            None => Ok(()),
        }
    }
}

impl SourceRecording {
    /// Appends the raw capture and (for CAN sources) its decoded frames to the file buffers.
    fn handle_capture(&mut self, capture: &RawCapture) {
        let (time_ns, bytes) = (capture.time_ns, &capture.bytes[..]);
        // An empty serial capture is the source's reopen marker, not a read.
        if !bytes.is_empty() {
            Metrics::add(&self.metrics.reads, 1);
            Metrics::add(&self.metrics.bytes, bytes.len() as u64);
        }
        let decode_can = self.candump.is_some();
        match &mut self.transport {
            Transport::Udp(receiver) => {
                let addresses = capture.addresses.unwrap_or(UNSPECIFIED);
                if !pcapng::write_packet(0, time_ns, addresses, bytes, &mut self.raw.buf) {
                    if self.oversized == 0 {
                        tracing::warn!(source = %self.metrics.name, len = bytes.len(), "datagram too large for pcapng left out");
                    }
                    self.oversized += 1;
                }
                if decode_can {
                    receiver.handle_datagram(time_ns, bytes, &self.metrics, &mut self.frames);
                }
            }
            Transport::Serial(receiver) => {
                serial_log::write_record(time_ns, bytes, &mut self.raw.buf);
                if bytes.is_empty() {
                    receiver.reset();
                }
                if decode_can {
                    receiver.handle_bytes(time_ns, bytes, &self.metrics, &mut self.frames);
                }
            }
        }
        let Some(candump) = &mut self.candump else {
            return;
        };
        for timed in self.frames.drain(..) {
            candump::write_line(
                timed.time_ns,
                &self.metrics.name,
                &timed.frame,
                &mut self.lines,
            );
        }
        candump.buf.extend_from_slice(self.lines.as_bytes());
        self.lines.clear();
    }

    fn stats(&self, name: String) -> SourceRecordStats {
        SourceRecordStats {
            name,
            files: std::iter::once(&self.raw)
                .chain(&self.candump)
                .map(|file| file.path.clone())
                .collect(),
            captures: Metrics::get(&self.metrics.reads),
            bytes: Metrics::get(&self.metrics.bytes),
            frames: Metrics::get(&self.metrics.frames),
            oversized: self.oversized,
            decode_errors: self.metrics.decode_errors(),
        }
    }
}

impl OutputFile {
    fn create(path: PathBuf) -> Result<Self, CaptureError> {
        let file = std::fs::File::create_new(&path);
        let file = file.map_err(|source| CaptureError::Create {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            file: tokio::fs::File::from_std(file),
            buf: Vec::with_capacity(FLUSH_BYTES * 2),
        })
    }

    async fn write_if_full(&mut self) -> Result<(), CaptureError> {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the buffer out and waits until the OS has it.
    async fn flush(&mut self) -> Result<(), CaptureError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.buf).await;
        // tokio's `File` completes writes in the background; `flush` waits for them.
        let flushed = match written {
            Ok(()) => self.file.flush().await,
            Err(error) => Err(error),
        };
        self.buf.clear();
        flushed.map_err(|source| self.write_error(source))
    }

    async fn finish(&mut self) -> Result<(), CaptureError> {
        self.flush().await?;
        let synced = self.file.sync_all().await;
        synced.map_err(|source| self.write_error(source))
    }

    fn write_error(&self, source: std::io::Error) -> CaptureError {
        CaptureError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

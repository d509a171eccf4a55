//! Reads any capture file back into timed frames: the format is detected by content, and
//! pcapng datagrams and serial-log records go through the live sources' transport receivers
//! with their recorded receive times, so the frames and timestamps are those of the live run.
//! Which receiver depends on the source chosen for the input ([`super::route`]: forced, the
//! pcapng interface name, the UDP destination port, the serial log's source name, or the only
//! source of that transport): the native-frame receiver of its definition when that source
//! carries native frames, cannelloni or SLCAN otherwise. Each choice is kept, with its reason,
//! for the replay summary.
//!
//! Never paces and never reads a clock (replay does). Malformed input (a bad line, a non-UDP
//! packet, a datagram that is not cannelloni, a truncated last record) is counted in
//! [`Metrics`] by kind, and the first few are logged with the file and byte offset; it never
//! stops the read. Only a damaged pcapng block structure or serial-log record length, after
//! which the next record cannot be found, ends the read early (also counted and logged).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use decoders::wire::candump;

use super::CaptureFormat;
use super::pcapng::{PcapngEvent, PcapngReader};
use super::route::{ReceiverChoice, ReplayInputs};
use super::serial_log;
use crate::pipeline::edge::{SourceBatch, TimedFrame};
use crate::source::NativeInput;
use crate::source::receiver::{ByteStreamReceiver, DatagramReceiver};
use crate::telemetry::{Metrics, SourceMetrics};

/// Why a capture could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureReadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The capture.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The content is none of the capture formats.
    #[error(
        "{path}: not a capture (pcapng, ECUBSER1 serial log or candump -L log; first line: {first_line:?})"
    )]
    UnknownFormat {
        /// The capture.
        path: PathBuf,
        /// Start of the first non-empty line.
        first_line: String,
    },
}

/// Sources that carry native frames, by source name: how their recordings are read back.
pub type NativeInputs = HashMap<String, NativeInput>;

/// Malformed inputs logged individually before the rest are only counted.
const LOGGED_BAD_INPUTS: u64 = 10;
/// Bytes read from the file at a time, once the reads have grown: each read is a round trip to
/// tokio's blocking pool, so 64 KiB reads made a replay of a 25 MB capture wait on 390 of them,
/// and 256 KiB reads cost 2 to 4 % more CPU than 1 MiB ones (`docs/performance.md`, "The
/// twelfth turn"). The read goes straight into the reader's buffer, handed to the blocking
/// thread and back ([`read_into`]).
const CHUNK: usize = 1 << 20;
/// The first read's size, doubled by each read up to [`CHUNK`]: a short capture is not given
/// (and does not zero) a whole chunk of buffer.
const FIRST_READ: usize = 1 << 16;
/// A candump "line" longer than this is rejected whole, without being buffered: the reader
/// skips to its end, so a file of one endless line costs bounded memory.
const MAX_LINE: usize = 1 << 16;
/// Lines one [`CaptureReader::read_frames`] call takes at most from a candump log.
const LINES_PER_CALL: usize = 256;

/// One capture file being read, one input unit (line, packet, record) at a time.
#[derive(Debug)]
pub struct CaptureReader {
    path: PathBuf,
    format: CaptureFormat,
    file: Arc<std::fs::File>,
    /// Read-ahead; `buf[start..end]` is not yet consumed. Bytes past `end` are spare room,
    /// zeroed once when the buffer grew, so a read does not clear them again.
    buf: Vec<u8>,
    /// How much the next read asks for at least.
    read_size: usize,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`, for error reports.
    offset: u64,
    eof: bool,
    /// Set once nothing more can be read (end of file or unrecoverable damage).
    done: bool,
    line_number: u64,
    pcapng: PcapngReader,
    /// The configured sources, to choose a receiver for each recorded input.
    inputs: Arc<ReplayInputs>,
    /// One receiver per pcapng interface name ("" for none) and UDP destination port, so
    /// counters follow each source.
    datagrams: HashMap<(String, u16), DatagramReceiver>,
    /// The receivers chosen so far, with their reasons.
    choices: BTreeSet<ReceiverChoice>,
    /// Inside a line longer than [`MAX_LINE`], already counted: skip to its newline.
    skipping_line: bool,
    /// Chosen once the serial log's header names the source.
    stream: ByteStreamReceiver,
    serial_header_read: bool,
    /// The transport receivers count into this; new counts are moved into the run's metrics.
    transport: SourceMetrics,
    transport_errors: BTreeMap<&'static str, u64>,
    rejected: u64,
    log_limit: u64,
}

impl CaptureReader {
    /// Opens `path` and detects its format. An empty (or blank) file reads as an empty
    /// candump log.
    pub async fn open(path: &Path) -> Result<Self, CaptureReadError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| CaptureReadError::Io {
                path: path.to_owned(),
                source,
            })?
            .into_std()
            .await;
        let mut reader = Self {
            path: path.to_owned(),
            format: CaptureFormat::Candump,
            file: Arc::new(file),
            // Reserved, not touched: the reads' growth zeroes it step by step, without moving
            // it. A whole read lands after the unread rest of a line, at most `MAX_LINE` long.
            buf: Vec::with_capacity(CHUNK + MAX_LINE),
            read_size: FIRST_READ,
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            done: false,
            line_number: 0,
            pcapng: PcapngReader::new(),
            inputs: Arc::default(),
            datagrams: HashMap::new(),
            choices: BTreeSet::new(),
            skipping_line: false,
            stream: ByteStreamReceiver::new(None),
            serial_header_read: false,
            transport: SourceMetrics::new(&path.display().to_string()),
            transport_errors: BTreeMap::new(),
            rejected: 0,
            log_limit: LOGGED_BAD_INPUTS,
        };
        reader.fill(serial_log::MAGIC.len()).await?;
        while !reader.eof && reader.unread().iter().all(u8::is_ascii_whitespace) {
            reader.fill(reader.unread().len() + 1).await?;
        }
        let blank = reader.unread().iter().all(u8::is_ascii_whitespace);
        reader.format = match CaptureFormat::detect(reader.unread()) {
            Some(format) => format,
            None if blank => CaptureFormat::Candump,
            None => return Err(reader.unknown_format()),
        };
        if reader.format == CaptureFormat::Candump {
            reader.choices.insert(ReceiverChoice::CanLog);
        }
        Ok(reader)
    }

    /// Chooses receivers among the configured sources in `inputs` (see [`super::route`]).
    pub fn with_inputs(mut self, inputs: Arc<ReplayInputs>) -> Self {
        self.inputs = inputs;
        self
    }

    /// The receivers chosen so far for this capture, each with its reason.
    pub fn receiver_choices(&self) -> impl Iterator<Item = &ReceiverChoice> {
        self.choices.iter()
    }

    /// Logs nothing about malformed input (it is still counted): for a second pass.
    pub fn quiet(mut self) -> Self {
        self.log_limit = 0;
        self
    }

    /// The detected format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends the frames of the next input unit to `out` (often none or one; a datagram or
    /// serial read may carry several). Returns false once the capture is exhausted.
    pub async fn read_frames(
        &mut self,
        out: &mut SourceBatch,
        metrics: &Metrics,
    ) -> Result<bool, CaptureReadError> {
        if self.done {
            return Ok(false);
        }
        match self.format {
            CaptureFormat::Candump => self.read_line(out, metrics).await?,
            CaptureFormat::Pcapng => self.read_block(out, metrics).await?,
            CaptureFormat::SerialLog => self.read_record(out, metrics).await?,
        }
        if self.done && self.rejected > self.log_limit && self.log_limit > 0 {
            let rejected = self.rejected;
            tracing::warn!(file = %self.path.display(), rejected, "malformed capture input skipped in total");
        }
        Ok(!self.done)
    }

    /// One `candump -L` line (blank lines are skipped).
    async fn read_line(
        &mut self,
        out: &mut SourceBatch,
        metrics: &Metrics,
    ) -> Result<(), CaptureReadError> {
        if !self.skipping_line && self.take_plain_lines(out, LINES_PER_CALL) > 0 {
            return Ok(());
        }
        let mut scanned = 0;
        let (end, whole) = loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(at) = memchr::memchr(b'\n', &pending[scanned..]) {
                break (scanned + at + 1, true);
            }
            scanned = pending.len();
            if self.eof || scanned >= MAX_LINE {
                break (scanned, self.eof);
            }
            self.fill(scanned + 1).await?;
        };
        if end == 0 {
            self.done = true;
            return Ok(());
        }
        if self.skipping_line || !whole {
            // One over-long line is one rejected input, however many pieces it is read in.
            if !self.skipping_line {
                self.line_number += 1;
                self.reject(metrics, "line_too_long", "over-long capture line skipped");
            }
            self.skipping_line = !whole;
            self.consume(end);
            return Ok(());
        }
        self.take_line(end, out, metrics);
        // Whole lines already buffered are taken in the same call: an await per line cost
        // more than parsing it (`docs/performance.md`).
        let mut taken = 1;
        while taken < LINES_PER_CALL {
            let plain = self.take_plain_lines(out, LINES_PER_CALL - taken);
            taken += plain;
            if plain > 0 {
                continue;
            }
            let Some(at) = memchr::memchr(b'\n', self.unread()) else {
                break;
            };
            self.take_line(at + 1, out, metrics);
            taken += 1;
        }
        Ok(())
    }

    /// Takes the buffered lines candump writes for classic data frames, at most `limit`,
    /// each found and parsed in one pass ([`candump::parse_next_line`]); stops at the first
    /// other line, or one not wholly buffered, which [`Self::take_line`] then takes. Returns
    /// how many it took.
    fn take_plain_lines(&mut self, out: &mut SourceBatch, limit: usize) -> usize {
        // The position is a local while lines are taken, the reader's fields set once after.
        let mut at = self.start;
        let mut taken = 0;
        while taken < limit {
            let Some((parsed, used)) = candump::parse_next_line(&self.buf[at..self.end]) else {
                break;
            };
            out.can.push(TimedFrame {
                time_ns: parsed.time_ns,
                frame: parsed.frame,
            });
            at += used;
            taken += 1;
        }
        self.line_number += taken as u64;
        self.consume(at - self.start);
        taken
    }

    /// Parses the whole line of `end` bytes at the read position, then consumes it.
    fn take_line(&mut self, end: usize, out: &mut SourceBatch, metrics: &Metrics) {
        self.line_number += 1;
        let line = &self.buf[self.start..self.start + end];
        if !line.iter().all(u8::is_ascii_whitespace) {
            match candump::parse_line(line) {
                Ok(parsed) => out.can.push(TimedFrame {
                    time_ns: parsed.time_ns,
                    frame: parsed.frame,
                }),
                Err(error) => {
                    let (kind, at, line) = (error.kind(), error.offset(), self.line_number);
                    metrics.count_decode_error(kind);
                    self.rejected += 1;
                    if self.rejected <= self.log_limit {
                        tracing::warn!(file = %self.path.display(), line, offset = at, file_offset = self.offset, %error, "malformed capture line skipped");
                    }
                }
            }
        }
        self.consume(end);
    }

    /// One pcapng block; a UDP datagram goes through the cannelloni receiver.
    async fn read_block(
        &mut self,
        out: &mut SourceBatch,
        metrics: &Metrics,
    ) -> Result<(), CaptureReadError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            match self.pcapng.handle_block(pending) {
                Ok(Some((used, PcapngEvent::Packet(packet)))) => {
                    let time_ns = packet.time_ns;
                    let name = self.pcapng.interface_name(packet.interface).unwrap_or("");
                    let key = (name.to_owned(), packet.local.port());
                    let receiver = match self.datagrams.entry(key) {
                        std::collections::hash_map::Entry::Occupied(found) => found.into_mut(),
                        std::collections::hash_map::Entry::Vacant(new) => {
                            let (source, choice) = self
                                .inputs
                                .choose_datagram_source(&new.key().0, new.key().1);
                            let native = source.and_then(|s| s.native.as_ref());
                            let receiver = DatagramReceiver::new(native);
                            self.choices.insert(choice);
                            new.insert(receiver)
                        }
                    };
                    receiver.handle_datagram(time_ns, packet.payload, &self.transport, out);
                    self.take_transport_errors(metrics);
                    self.consume(used);
                    return Ok(());
                }
                Ok(Some((used, PcapngEvent::Other))) => {
                    self.consume(used);
                    return Ok(());
                }
                Ok(Some((used, PcapngEvent::Rejected(kind)))) => {
                    self.reject(metrics, kind, "unusable packet skipped");
                    self.consume(used);
                    return Ok(());
                }
                Ok(None) if self.eof => {
                    if !pending.is_empty() {
                        self.reject(metrics, "truncated", "last block cut short");
                    }
                }
                Ok(None) => {
                    self.fill(pending.len() + 1).await?;
                    continue;
                }
                // The next block cannot be found.
                Err(error) => self.reject(metrics, "pcapng_corrupt", &error.to_string()),
            }
            self.done = true;
            return Ok(());
        }
    }

    /// The serial log header, then one record through the SLCAN receiver.
    async fn read_record(
        &mut self,
        out: &mut SourceBatch,
        metrics: &Metrics,
    ) -> Result<(), CaptureReadError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            let parsed = if self.serial_header_read {
                serial_log::parse_record(pending)
                    .map(|r| r.map(|(record, used)| (Some(record), used)))
            } else {
                serial_log::parse_header(pending).map(|h| {
                    h.map(|(name, used)| {
                        let (source, choice) = self.inputs.choose_stream_source(name);
                        let native = source.and_then(|s| s.native.as_ref());
                        self.stream = ByteStreamReceiver::new(native);
                        self.choices.insert(choice);
                        (None, used)
                    })
                })
            };
            match parsed {
                Ok(Some((Some(record), used))) => {
                    // A record with no bytes marks the device being reopened.
                    if record.bytes.is_empty() {
                        self.stream.reset();
                    }
                    self.stream
                        .handle_bytes(record.time_ns, record.bytes, &self.transport, out);
                    self.take_transport_errors(metrics);
                    self.consume(used);
                    return Ok(());
                }
                Ok(Some((None, used))) => {
                    self.serial_header_read = true;
                    self.consume(used);
                }
                Ok(None) if self.eof => {
                    if !pending.is_empty() {
                        self.reject(metrics, "truncated", "last record cut short");
                    }
                    self.done = true;
                    return Ok(());
                }
                Ok(None) => self.fill(pending.len() + 1).await?,
                Err(error) => {
                    self.reject(metrics, "serial_log_corrupt", &error.to_string());
                    self.done = true;
                    return Ok(());
                }
            }
        }
    }

    /// Counts one malformed input at the current offset, logging the first few.
    fn reject(&mut self, metrics: &Metrics, kind: &'static str, what: &str) {
        metrics.count_decode_error(kind);
        self.rejected += 1;
        if self.rejected <= self.log_limit {
            tracing::warn!(file = %self.path.display(), offset = self.offset, kind, "{what}");
        }
    }

    /// Moves errors the transport receiver counted for the last input into `metrics`.
    fn take_transport_errors(&mut self, metrics: &Metrics) {
        let errors = self.transport.decode_errors();
        if errors == self.transport_errors {
            return;
        }
        for (&kind, &count) in &errors {
            let new = count - self.transport_errors.get(kind).copied().unwrap_or(0);
            for _ in 0..new {
                self.reject(metrics, kind, "malformed datagram or serial line skipped");
            }
        }
        self.transport_errors = errors;
    }

    /// The bytes read and not yet consumed.
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, used: usize) {
        self.start += used;
        self.offset += used as u64;
    }

    /// Reads until `need` unconsumed bytes are buffered or the file ends.
    async fn fill(&mut self, need: usize) -> Result<(), CaptureReadError> {
        while self.end - self.start < need && !self.eof {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let room = self.read_size.max(need - self.end);
            self.read_size = (self.read_size * 2).min(CHUNK);
            if self.buf.len() < self.end + room {
                self.buf.resize(self.end + room, 0);
            }
            let buf = std::mem::take(&mut self.buf);
            let (buf, read) =
                read_into(Arc::clone(&self.file), buf, self.end..self.end + room).await;
            self.buf = buf;
            let read = read.map_err(|source| {
                // A lost buffer (the blocking read panicked) holds nothing more to parse.
                self.eof = true;
                self.start = 0;
                self.end = self.end.min(self.buf.len());
                CaptureReadError::Io {
                    path: self.path.clone(),
                    source,
                }
            })?;
            self.end += read;
            self.eof = read == 0;
        }
        Ok(())
    }

    fn unknown_format(&self) -> CaptureReadError {
        let unread = self.unread();
        let text = &unread[unread
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0)..];
        let line = &text[..text
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(text.len())];
        CaptureReadError::UnknownFormat {
            path: self.path.clone(),
            first_line: String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned(),
        }
    }
}

/// Reads from `file` into `buf[range]` on tokio's blocking pool: the buffer goes to the
/// blocking thread and comes back, so the bytes are not copied again (tokio's `File` reads
/// into a buffer of its own and copies out of it). A panicked read gives back an empty buffer.
async fn read_into(
    file: Arc<std::fs::File>,
    mut buf: Vec<u8>,
    range: Range<usize>,
) -> (Vec<u8>, std::io::Result<usize>) {
    let read = tokio::task::spawn_blocking(move || {
        let read = (&*file).read(&mut buf[range]);
        (buf, read)
    })
    .await;
    read.unwrap_or_else(|error| (Vec::new(), Err(std::io::Error::other(error))))
}

#[cfg(test)]
mod tests {
    use decoders::CanFrame;

    use super::*;

    /// Plain lines are taken in one pass, every other kind through the full grammar: a log of
    /// all kinds mixed, longer than one read so lines are cut by the buffer's end, reads as
    /// its lines parsed one by one, with every bad line counted.
    #[tokio::test]
    async fn a_mixed_log_reads_as_its_lines_parsed_one_by_one() {
        let kinds: [&[u8]; 9] = [
            b"(1436509052.249713) can0 1A4#FFF1000007FFF124\n",
            b"(1436509052.249714) can0 12345678#0102\r\n",
            b"(1436509052.000001) can1 123##10102030405060708090A0B0C\n",
            b"(1436509052.000002) can0 123#R\n",
            b"\n",
            b"(1436509052.000003) can0 7FF#\n",
            b"(1436509052.000004) can0 1A4#0G\n",
            b"(1.5) vcan0 001#01.02\n",
            b"(1436509052.000005) can0 20000004#0000100000000000\n",
        ];
        let mut text = Vec::new();
        let mut lines = Vec::new();
        for n in 0..3 * CHUNK / 40 {
            // Co-prime steps, so each kind follows each other one.
            let line = kinds[(n * 7 + n / 9) % kinds.len()];
            text.extend_from_slice(line);
            lines.push(line);
        }
        text.extend_from_slice(b"(1436509052.000006) can0 1A4#01");
        lines.push(b"(1436509052.000006) can0 1A4#01");
        let mut expected = Vec::new();
        let mut bad = 0u64;
        for line in &lines {
            match candump::parse_line(line) {
                Ok(parsed) => expected.push((parsed.time_ns, parsed.frame)),
                Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
                Err(_) => bad += 1,
            }
        }
        assert!(bad > 0 && expected.len() > 2 * CHUNK / 50);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mixed.log");
        std::fs::write(&path, &text).expect("write");
        let metrics = Metrics::default();
        let mut reader = CaptureReader::open(&path).await.expect("open");
        let mut batch = SourceBatch::default();
        while reader
            .read_frames(&mut batch, &metrics)
            .await
            .expect("read")
        {}
        let read: Vec<(u64, CanFrame)> = batch.can.iter().map(|t| (t.time_ns, t.frame)).collect();
        assert_eq!(read.len(), expected.len());
        assert!(read == expected, "the frames differ");
        let errors: u64 = metrics.decode_errors().values().sum();
        assert_eq!((errors, reader.rejected), (bad, bad));
        assert_eq!(reader.line_number, lines.len() as u64);
        assert_eq!(reader.offset(), text.len() as u64);
    }

    /// A path that opens but cannot be read (a folder: `read` fails with EISDIR) fails on the
    /// first read on the blocking pool, with an error naming it, not a panic or an empty replay.
    #[tokio::test]
    async fn a_capture_that_cannot_be_read_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = CaptureReader::open(dir.path())
            .await
            .expect_err("a folder is not a capture");
        assert!(
            matches!(&error, CaptureReadError::Io { path, source }
                if path == dir.path() && source.raw_os_error() == Some(nix::libc::EISDIR)),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&dir.path().display().to_string()),
            "{error}"
        );
    }
}

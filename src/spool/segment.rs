//! Segment files: their names, their 16-byte header, the writer that appends encoded records
//! (generic over [`SegmentSink`] so tests can make it fail after N bytes), and the streaming
//! scanner that reads records back, resynchronising on the record magic after damage.
//! The scanner holds at most one record (≤ 16 MiB + header) plus one read chunk in memory.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};

use super::record::{HEADER_LEN, Invalid, MAGIC, RecordView};

/// First bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"ECUSPOOL";
/// Format version written after the magic; a reader refuses newer versions.
pub(crate) const VERSION: u32 = 1;
/// Magic, version and a reserved `u32`.
pub(crate) const SEGMENT_HEADER_LEN: usize = 16;
const EXTENSION: &str = "seg";
/// Bytes read from the file per refill.
const CHUNK: usize = 256 << 10;

/// `write_all` for several slices: vectored writes until every byte is taken.
fn write_all_parts<W: Write>(sink: &mut W, mut parts: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match sink.write_vectored(parts) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut parts, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The file name of the segment whose first record has `first_seq`: zero-padded so names
/// sort in seq order.
pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.{EXTENSION}"))
}

/// The first seq named by a segment file name, or `None` for any other file.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The segment header bytes.
pub(crate) fn header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0; SEGMENT_HEADER_LEN];
    out[..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out
}

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Ok,
    /// Shorter than a header: a segment torn while being created.
    Torn,
    /// Not a spool segment at all.
    BadMagic,
    /// Written by a newer ecu-bridge.
    NewerVersion(u32),
}

pub(crate) fn check_header(bytes: &[u8]) -> HeaderCheck {
    let Some(head) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return HeaderCheck::Torn;
    };
    if head[..8] != SEGMENT_MAGIC {
        return HeaderCheck::BadMagic;
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version > VERSION {
        return HeaderCheck::NewerVersion(version);
    }
    HeaderCheck::Ok
}

/// Where segment bytes go: a `File` in production, a failing in-memory sink in tests.
pub(crate) trait SegmentSink: Write {
    /// Makes written data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the sink back to `len` bytes, removing a partly written record.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl SegmentSink for File {
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// Appends whole write batches to one segment. After a failed write it cuts the segment back
/// to the last complete batch; if even that fails it is `poisoned` and must be replaced.
#[derive(Debug)]
pub(crate) struct SegmentWriter<W> {
    sink: W,
    /// Bytes known to be complete records (plus the header).
    len: u64,
    /// A failed write could not be cut back: the tail holds a partial record.
    poisoned: bool,
}

impl<W: SegmentSink> SegmentWriter<W> {
    /// Writes the segment header to a fresh, empty `sink`.
    pub(crate) fn create(mut sink: W) -> io::Result<Self> {
        sink.write_all(&header())?;
        Ok(Self {
            sink,
            len: SEGMENT_HEADER_LEN as u64,
            poisoned: false,
        })
    }

    /// Writes `bytes` (whole encoded records): [`SegmentWriter::write_parts`] of one slice.
    #[cfg(test)]
    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_parts(&mut [IoSlice::new(bytes)])
    }

    /// [`SegmentWriter::write`] of `parts` in order (record heads and the payloads they
    /// frame), handed to the OS in as few vectored writes as it takes, so payloads are not
    /// copied into one buffer first. On error the segment is cut back to its previous length.
    pub(crate) fn write_parts(&mut self, parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        match write_all_parts(&mut self.sink, parts) {
            Ok(()) => {
                self.len += total as u64;
                Ok(())
            }
            Err(error) => {
                if self.sink.truncate(self.len).is_err() {
                    self.poisoned = true;
                }
                Err(error)
            }
        }
    }

    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.sink.sync_data()
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The sink (a second handle to the file is what the sync thread syncs).
    pub(crate) fn sink(&self) -> &W {
        &self.sink
    }
}

/// One step of a scan.
#[derive(Debug)]
pub(crate) enum Scanned {
    /// A valid record, read with [`SegmentScanner::record`] before the next call.
    Record,
    /// Damaged bytes followed by a valid record: counted as one corrupt record.
    Corrupt { offset: u64, bytes: u64 },
    /// Damaged or partial bytes running to the end of the file: a torn tail.
    Truncated { offset: u64, bytes: u64 },
}

/// Reads records from a segment body (after the header) in file order.
#[derive(Debug)]
pub(crate) struct SegmentScanner<R> {
    source: R,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
    /// Offset where the current run of damaged bytes began.
    damaged_since: Option<u64>,
    /// The record returned last, as `buf[record]`.
    last: std::ops::Range<usize>,
}

impl<R: Read> SegmentScanner<R> {
    /// Scans `source`, whose first byte is at file offset `offset`.
    pub(crate) fn new(source: R, offset: u64) -> Self {
        Self {
            source,
            buf: Vec::new(),
            start: 0,
            offset,
            eof: false,
            damaged_since: None,
            last: 0..0,
        }
    }

    /// The next record or damaged region, `None` at the end of the file.
    pub(crate) fn next_event(&mut self) -> io::Result<Option<Scanned>> {
        loop {
            match RecordView::check(&self.buf[self.start..]) {
                Ok(view) => {
                    if let Some(since) = self.damaged_since.take() {
                        return Ok(Some(Scanned::Corrupt {
                            offset: since,
                            bytes: self.offset - since,
                        }));
                    }
                    let len = view.len();
                    self.last = self.start..self.start + len;
                    self.consume(len);
                    return Ok(Some(Scanned::Record));
                }
                Err(Invalid::Short { need }) if !self.eof => self.fill(need)?,
                Err(_) if self.start == self.buf.len() && self.eof => {
                    return Ok(self.damaged_since.take().map(|since| Scanned::Truncated {
                        offset: since,
                        bytes: self.offset - since,
                    }));
                }
                Err(_) => {
                    self.damaged_since.get_or_insert(self.offset);
                    self.skip_to_next_magic()?;
                }
            }
        }
    }

    /// The bytes of the record returned by the last `Scanned::Record`.
    pub(crate) fn record(&self) -> Option<RecordView<'_>> {
        RecordView::check(self.buf.get(self.last.clone())?).ok()
    }

    /// Drops at least one byte, then everything up to the next possible record start.
    fn skip_to_next_magic(&mut self) -> io::Result<()> {
        self.consume(1);
        loop {
            let window = &self.buf[self.start..];
            if let Some(at) = window.windows(MAGIC.len()).position(|w| w == MAGIC) {
                self.consume(at);
                return Ok(());
            }
            // Keep the last few bytes: they may be the first part of a magic.
            let keep = window.len().min(MAGIC.len() - 1);
            self.consume(window.len() - keep);
            if self.eof {
                if keep > 0 {
                    self.consume(keep);
                }
                return Ok(());
            }
            self.fill(self.buf.len() - self.start + 1)?;
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Reads until `need` unconsumed bytes are buffered or the file ends.
    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
            self.last = 0..0;
        }
        let want = need.max(HEADER_LEN).max(CHUNK);
        while self.buf.len() < need && !self.eof {
            let have = self.buf.len();
            self.buf.resize(have.max(want), 0);
            let read = loop {
                match self.source.read(&mut self.buf[have..]) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            match read {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.truncate(have + n),
                Err(error) => {
                    self.buf.truncate(have);
                    return Err(error);
                }
            }
            if self.eof {
                self.buf.truncate(have);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::spool::record::{SpoolRecord, encode};

    /// A sink that accepts `limit` bytes and then fails like a full disk, until raised.
    #[derive(Debug, Default)]
    pub(crate) struct FailAfter {
        pub(crate) data: Vec<u8>,
        pub(crate) limit: usize,
    }

    impl Write for FailAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.limit.saturating_sub(self.data.len());
            if room == 0 {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            let n = room.min(buf.len());
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl SegmentSink for FailAfter {
        fn sync_data(&mut self) -> io::Result<()> {
            Ok(())
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    fn record(seq: u64, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let rec = SpoolRecord {
            samples: seq as u32,
            payload: Bytes::from(vec![seq as u8; size]),
            ..SpoolRecord::default()
        };
        encode(seq, &rec, &mut out);
        out
    }

    fn scan(bytes: &[u8]) -> Vec<Scanned> {
        let mut scanner = SegmentScanner::new(bytes, 0);
        let mut out = Vec::new();
        while let Some(event) = scanner.next_event().expect("in-memory read") {
            out.push(event);
        }
        out
    }

    fn seqs(bytes: &[u8]) -> Vec<u64> {
        let mut scanner = SegmentScanner::new(bytes, 0);
        let mut out = Vec::new();
        while let Some(event) = scanner.next_event().expect("in-memory read") {
            if let Scanned::Record = event {
                out.push(scanner.record().expect("just scanned").seq());
            }
        }
        out
    }

    #[test]
    fn names_sort_by_seq_and_parse_back() {
        let dir = Path::new("/spool");
        let name = segment_path(dir, 42);
        assert_eq!(name, Path::new("/spool/00000000000000000042.seg"));
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000042.seg.tmp"), None);
        assert_eq!(check_header(&header()), HeaderCheck::Ok);
        assert_eq!(check_header(&header()[..10]), HeaderCheck::Torn);
        let mut newer = header();
        newer[8] = 2;
        assert_eq!(check_header(&newer), HeaderCheck::NewerVersion(2));
    }

    #[test]
    fn failed_write_is_cut_back_and_a_later_write_succeeds() {
        let sink = FailAfter {
            limit: 16 + 100 + 60,
            ..FailAfter::default()
        };
        let mut writer = SegmentWriter::create(sink).expect("header fits");
        let first = record(1, 44);
        assert_eq!(first.len(), 100);
        writer.write(&first).expect("fits");
        let error = writer.write(&record(2, 500)).expect_err("disk full");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(!writer.is_poisoned());
        assert_eq!(writer.len(), 116);
        assert_eq!(writer.sink().data.len(), 116, "partial record cut off");
        writer.sink.limit = usize::MAX;
        writer.write(&record(3, 500)).expect("space freed");
        let body = &writer.sink().data[SEGMENT_HEADER_LEN..];
        assert_eq!(seqs(body), vec![1, 3]);
        assert!(scan(body).iter().all(|e| matches!(e, Scanned::Record)));
    }

    /// Heads and payloads written as parts: the disk fills in the middle of the second
    /// record's payload, the whole write is cut back, and a later write lands where it stood.
    #[test]
    fn a_vectored_write_cut_short_by_a_full_disk_leaves_no_partial_record() {
        let records: Vec<SpoolRecord> = (1..=3u8)
            .map(|n| SpoolRecord {
                samples: u32::from(n),
                payload: Bytes::from(vec![n; 200]),
                ..SpoolRecord::default()
            })
            .collect();
        let write = |writer: &mut SegmentWriter<FailAfter>, first_seq: u64| {
            let mut heads = Vec::new();
            let mut parts = crate::spool::record::encode_parts(first_seq, &records, &mut heads);
            writer.write_parts(&mut parts)
        };
        let sink = FailAfter {
            limit: SEGMENT_HEADER_LEN + 256 + 56 + 100,
            ..FailAfter::default()
        };
        let mut writer = SegmentWriter::create(sink).expect("header fits");
        let error = write(&mut writer, 1).expect_err("disk full");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(!writer.is_poisoned());
        assert_eq!(
            writer.sink().data.len(),
            SEGMENT_HEADER_LEN,
            "nothing partial"
        );
        writer.sink.limit = usize::MAX;
        write(&mut writer, 4).expect("space freed");
        let body = &writer.sink().data[SEGMENT_HEADER_LEN..];
        assert_eq!(seqs(body), vec![4, 5, 6]);
        let whole: Vec<u8> = (4..)
            .zip(&records)
            .flat_map(|(seq, record)| {
                let mut out = Vec::new();
                encode(seq, record, &mut out);
                out
            })
            .collect();
        assert_eq!(body, &whole[..], "the same bytes as records encoded whole");
    }

    #[test]
    fn flipped_byte_costs_exactly_one_record() {
        let mut body: Vec<u8> = (1..=5).flat_map(|seq| record(seq, 300)).collect();
        body[356 * 2 + 100] ^= 0xFF;
        assert_eq!(seqs(&body), vec![1, 2, 4, 5]);
        let corrupt: Vec<_> = scan(&body)
            .into_iter()
            .filter(|e| !matches!(e, Scanned::Record))
            .collect();
        assert!(
            matches!(
                corrupt[..],
                [Scanned::Corrupt {
                    offset: 712,
                    bytes: 356
                }]
            ),
            "{corrupt:?}"
        );
    }

    #[test]
    fn corrupt_length_does_not_swallow_later_records() {
        let mut body: Vec<u8> = (1..=4).flat_map(|seq| record(seq, 1000)).collect();
        // Second record claims a 15 MiB payload: beyond the file, but resync finds 3 and 4.
        body[1056 + 8..1056 + 12].copy_from_slice(&(15u32 << 20).to_le_bytes());
        assert_eq!(seqs(&body), vec![1, 3, 4]);
    }

    #[test]
    fn torn_tail_is_truncated_not_corrupt() {
        let body: Vec<u8> = (1..=3).flat_map(|seq| record(seq, 5000)).collect();
        for cut in [body.len() - 1, body.len() - 3000, body.len() - 5050] {
            let events = scan(&body[..cut]);
            assert_eq!(events.len(), 3, "cut {cut}");
            assert!(matches!(
                events[2],
                Scanned::Truncated { offset: 10112, bytes } if bytes == cut as u64 - 10112
            ));
        }
        let mut zero_tail = body.clone();
        zero_tail.extend_from_slice(&[0; 4096]);
        assert_eq!(seqs(&zero_tail), vec![1, 2, 3]);
        assert!(matches!(
            scan(&zero_tail)[3],
            Scanned::Truncated { bytes: 4096, .. }
        ));
    }

    #[test]
    fn records_larger_than_a_read_chunk_scan_whole() {
        let body: Vec<u8> = (1..=3).flat_map(|seq| record(seq, CHUNK * 2 + 7)).collect();
        assert_eq!(seqs(&body), vec![1, 2, 3]);
    }
}

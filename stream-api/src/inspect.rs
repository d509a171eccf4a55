//! Reading a recording back: sessions, streams, parameters, samples, markers and the protocol
//! violations the server recorded, as data ([`Recording`]) and as a human summary ([`Summary`]);
//! chosen parameters' values as series, a wide table and CSV (`values`), and as a PNG of time
//! plots (`plot`).
//!
//! Only reads; tolerates a torn last record (reported as [`Recording::truncated`]). Packets whose
//! content does not decode are skipped here (the server recorded a B1 violation for them).
//! Redelivered packets (same session, stream, `Packet.id` and content as one accepted before,
//! told apart exactly as the server's checker does) stay listed by [`Recording::duplicates`] but
//! add no samples or markers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use prost::{DecodeError, Message};

use super::conformance::{Severity, Violation, rule_name};
use super::lint::ListRef;
use super::recording::{self, RawRecord, RecordKind, RecordingError};
use super::seen::{Seen, SeenIds};
use open_data::sample_data_format;
use open_streaming::{api, open_data};

mod plot;
mod summary;
mod time;
mod values;

pub use plot::{MAX_PANELS, PlotError, image_size, plot_png};
pub use time::utc;
pub use values::{Lap, SelectError, Series, WideRow, WideTable, write_values};

/// Samples per parameter identifier, `(time_ns, value)`.
type SampleMap = BTreeMap<String, Vec<(u64, f64)>>;

/// A decoded recording.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    sessions: Vec<SessionSummary>,
    /// Data-format id → parameter identifiers (from GetParameterDataFormatId pairs).
    formats: HashMap<u64, Vec<String>>,
    packets: Vec<Written>,
    violations: Vec<Violation>,
    truncated: bool,
    records: usize,
    /// Accepted ids per (session key, stream), while reading.
    seen: HashMap<(String, String), SeenIds>,
}

/// One recorded packet write.
#[derive(Debug, Clone)]
struct Written {
    time_ns: u64,
    details: api::DataPacketDetails,
    /// A redelivery of a packet written before (see [`Recording::duplicates`]).
    duplicate: bool,
}

/// A packet the server received again after accepting it (a producer's redelivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicatePacket {
    /// Session key of the write.
    pub session_key: String,
    /// Stream it was written to.
    pub stream: String,
    /// Its `Packet.id`.
    pub id: u64,
    /// Its `Packet.type`.
    pub r#type: String,
    /// When the server received the repeat (epoch ns).
    pub time_ns: u64,
}

/// One session as seen by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// The key CreateSession returned.
    pub key: String,
    /// Data source it was created for.
    pub data_source: String,
    /// Its identifier (after any UpdateSessionIdentifier).
    pub identifier: String,
    /// When CreateSession was received (epoch ns).
    pub started_ns: u64,
    /// When a successful EndSession was received, if it was.
    pub ended_ns: Option<u64>,
    /// Packets written per stream (`""` = main), duplicates included.
    pub streams: BTreeMap<String, u64>,
    /// Packets of this session that were redeliveries of ones already accepted.
    pub duplicates: u64,
    /// Sessions this one is linked to (CreateSession's `associate_session_key` and
    /// AddAssociateSession), e.g. the session a producer continues after a server lost its state.
    pub associates: Vec<String>,
}

/// One parameter's data across the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSummary {
    /// `"Name:App"`.
    pub identifier: String,
    /// Units from its ParameterDefinition (empty if none was sent).
    pub units: String,
    /// Numeric samples seen.
    pub samples: usize,
    /// Time of the first and last sample (epoch ns).
    pub range_ns: (u64, u64),
    /// (samples − 1) / span, in Hz; 0 with fewer than two samples.
    pub mean_rate_hz: f64,
}

/// A marker packet and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkerRecord {
    /// Session key of the write.
    pub session_key: String,
    /// Stream it was written to.
    pub stream: String,
    /// The marker.
    pub marker: open_data::MarkerPacket,
}

/// What a recording holds, for people (`Display`, in `summary.rs`) and tests (fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Sessions in creation order.
    pub sessions: Vec<SessionSummary>,
    /// Parameters by identifier.
    pub parameters: Vec<ParameterSummary>,
    /// Markers in write order.
    pub markers: Vec<MarkerRecord>,
    /// Protocol violations the server recorded.
    pub violations: Vec<Violation>,
    /// Records read.
    pub records: usize,
    /// Whether a torn last record was ignored.
    pub truncated: bool,
}

/// Reads and decodes a recording file.
pub fn read_recording(path: impl AsRef<Path>) -> Result<Recording, RecordingError> {
    let parsed = recording::read_file(path.as_ref())?;
    let mut rec = Recording {
        truncated: parsed.truncated,
        records: parsed.records.len(),
        ..Recording::default()
    };
    let mut pending: Option<&RawRecord> = None;
    for (index, record) in parsed.records.iter().enumerate() {
        let Some(kind) = record.kind() else { continue };
        let request = pending.take();
        // Request kinds are odd; the ones whose meaning needs the response wait for it.
        if record.kind % 2 == 1 && kind < RecordKind::DataPacketDetails {
            pending = Some(record);
            continue;
        }
        rec.absorb(record, kind, request)
            .map_err(|source| RecordingError::Decode {
                path: path.as_ref().to_owned(),
                index,
                kind,
                source,
            })?;
    }
    Ok(rec)
}

/// The violation an ErrorPacket record stands for (inverse of the server's encoding).
fn violation_of(e: &open_data::ErrorPacket) -> Violation {
    let severity = if e.r#type == open_data::ErrorType::Logged as i32 {
        Severity::Warning
    } else {
        Severity::Error
    };
    Violation {
        rule: rule_name(&e.error_identifier).unwrap_or("?"),
        severity,
        session_key: e.group.clone(),
        stream: e.name.clone(),
        message: e.description.clone(),
    }
}

impl Recording {
    /// Sessions in creation order.
    pub fn sessions(&self) -> &[SessionSummary] {
        &self.sessions
    }

    /// Whether a torn last record was ignored.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Protocol violations the server recorded, in order.
    pub fn violations(&self) -> Vec<Violation> {
        self.violations.clone()
    }

    /// Every numeric sample per parameter identifier as `(time_ns, value)`, sorted by time
    /// (stable, so equal times keep write order). Row, periodic and synchro packets are decoded
    /// through their data-format id or inline list; bools count as 0/1, strings are skipped.
    /// Duplicate packets are left out, so a redelivery does not count its samples twice.
    pub fn samples(&self) -> BTreeMap<String, Vec<(u64, f64)>> {
        let mut out: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
        for packet in self.accepted().filter_map(|d| d.message.as_ref()) {
            self.packet_samples(packet, &mut out);
        }
        for samples in out.values_mut() {
            samples.sort_by_key(|(t, _)| *t);
        }
        out
    }

    /// [`Recording::samples`] of one session only (and of one stream, when given).
    pub fn samples_of(&self, session_key: &str, stream: Option<&str>) -> SampleMap {
        let mut out: SampleMap = BTreeMap::new();
        for details in self.accepted().filter(|d| {
            d.session_key == session_key && stream.is_none_or(|stream| d.stream == stream)
        }) {
            if let Some(packet) = details.message.as_ref() {
                self.packet_samples(packet, &mut out);
            }
        }
        for samples in out.values_mut() {
            samples.sort_by_key(|(t, _)| *t);
        }
        out
    }

    /// Every accepted packet of type `type_name` (`"NewSession"`, `"EndOfSession"`, …) as
    /// (session key, stream, content), in write order, redeliveries left out.
    pub fn packets_of_type(&self, type_name: &str) -> Vec<(String, String, Vec<u8>)> {
        self.accepted()
            .filter_map(|d| {
                let p = d.message.as_ref().filter(|p| p.r#type == type_name)?;
                Some((d.session_key.clone(), d.stream.clone(), p.content.to_vec()))
            })
            .collect()
    }

    /// Every marker packet, in write order (a marker sent to two streams appears twice; a
    /// redelivered one does not).
    pub fn markers(&self) -> Vec<MarkerRecord> {
        self.accepted()
            .filter_map(|d| {
                let p = d.message.as_ref().filter(|p| p.r#type == "Marker")?;
                let marker = open_data::MarkerPacket::decode(&p.content[..]).ok()?;
                Some(MarkerRecord {
                    session_key: d.session_key.clone(),
                    stream: d.stream.clone(),
                    marker,
                })
            })
            .collect()
    }

    /// Every redelivered packet, in the order the server received the repeats.
    pub fn duplicates(&self) -> Vec<DuplicatePacket> {
        self.packets
            .iter()
            .filter(|w| w.duplicate)
            .filter_map(|w| {
                let packet = w.details.message.as_ref()?;
                Some(DuplicatePacket {
                    session_key: w.details.session_key.clone(),
                    stream: w.details.stream.clone(),
                    id: packet.id,
                    r#type: packet.r#type.clone(),
                    time_ns: w.time_ns,
                })
            })
            .collect()
    }

    /// The human-readable overview.
    pub fn summary(&self) -> Summary {
        let units = self.units();
        let parameters = self
            .samples()
            .into_iter()
            .map(|(identifier, samples)| {
                let first = samples.first().map_or(0, |s| s.0);
                let last = samples.last().map_or(0, |s| s.0);
                let span_s = (last - first) as f64 / 1e9;
                let mean_rate_hz = if samples.len() > 1 && span_s > 0.0 {
                    (samples.len() - 1) as f64 / span_s
                } else {
                    0.0
                };
                let units = units.get(&identifier).cloned().unwrap_or_default();
                ParameterSummary {
                    identifier,
                    units,
                    samples: samples.len(),
                    range_ns: (first, last),
                    mean_rate_hz,
                }
            })
            .collect();
        Summary {
            sessions: self.sessions.clone(),
            parameters,
            markers: self.markers(),
            violations: self.violations(),
            records: self.records,
            truncated: self.truncated,
        }
    }

    /// Takes in one record (a response together with its request).
    fn absorb(
        &mut self,
        record: &RawRecord,
        kind: RecordKind,
        request: Option<&RawRecord>,
    ) -> Result<(), DecodeError> {
        let request = request.filter(|r| r.kind + 1 == record.kind);
        match (kind, request) {
            (RecordKind::CreateSessionResponse, Some(req)) => {
                let resp: api::CreateSessionResponse = record.decode()?;
                let req: api::CreateSessionRequest = req.decode()?;
                if resp.success {
                    self.sessions.push(SessionSummary {
                        key: resp.session_key,
                        data_source: req.data_source,
                        identifier: req.identifier,
                        started_ns: record.time_ns,
                        ended_ns: None,
                        streams: BTreeMap::new(),
                        duplicates: 0,
                        associates: req.associate_session_key,
                    });
                }
            }
            (RecordKind::EndSessionResponse, Some(req)) => {
                let req: api::EndSessionRequest = req.decode()?;
                let ended = record.decode::<api::EndSessionResponse>()?.success;
                if let (Some(s), true) = (self.session_mut(&req.session_key), ended) {
                    s.ended_ns.get_or_insert(record.time_ns);
                }
            }
            (RecordKind::UpdateSessionIdentifierResponse, Some(req)) => {
                let req: api::UpdateSessionIdentifierRequest = req.decode()?;
                if let Some(s) = self.session_mut(&req.session_key) {
                    s.identifier = req.identifier;
                }
            }
            (RecordKind::AddAssociateSessionResponse, Some(req)) => {
                let req: api::AddAssociateSessionRequest = req.decode()?;
                let added = record.decode::<api::AddAssociateSessionResponse>()?.success;
                if let (Some(s), true) = (self.session_mut(&req.session_key), added) {
                    s.associates.push(req.associate_session_key);
                }
            }
            (RecordKind::GetParameterDataFormatIdResponse, Some(req)) => {
                let req: api::GetParameterDataFormatIdRequest = req.decode()?;
                let resp: api::GetParameterDataFormatIdResponse = record.decode()?;
                self.formats
                    .insert(resp.data_format_identifier, req.parameters);
            }
            (RecordKind::DataPacketDetails, _) => {
                let details: api::DataPacketDetails = record.decode()?;
                let duplicate = self.is_redelivery(&details);
                if let Some(s) = self.session_mut(&details.session_key) {
                    *s.streams.entry(details.stream.clone()).or_insert(0) += 1;
                    s.duplicates += u64::from(duplicate);
                }
                self.packets.push(Written {
                    time_ns: record.time_ns,
                    details,
                    duplicate,
                });
            }
            (RecordKind::Violation, _) => self.violations.push(violation_of(&record.decode()?)),
            _ => {}
        }
        Ok(())
    }

    /// Whether the server counted this write as a duplicate: it tracks ids of sessions it
    /// created, ended or not (the checker's `handle_packet`).
    fn is_redelivery(&mut self, d: &api::DataPacketDetails) -> bool {
        let known = self.sessions.iter().any(|s| s.key == d.session_key);
        let Some(packet) = d.message.as_ref().filter(|_| known) else {
            return false;
        };
        let seen = self
            .seen
            .entry((d.session_key.clone(), d.stream.clone()))
            .or_default();
        seen.handle(packet) == Seen::Duplicate
    }

    /// Packet writes that were not redeliveries.
    fn accepted(&self) -> impl Iterator<Item = &api::DataPacketDetails> {
        self.packets
            .iter()
            .filter(|w| !w.duplicate)
            .map(|w| &w.details)
    }

    fn session_mut(&mut self, key: &str) -> Option<&mut SessionSummary> {
        self.sessions.iter_mut().find(|s| s.key == key)
    }

    /// Units per parameter from every Configuration packet (last definition wins).
    fn units(&self) -> HashMap<String, String> {
        let configs = self.accepted().filter_map(|d| {
            let p = d.message.as_ref().filter(|p| p.r#type == "Configuration")?;
            open_data::ConfigurationPacket::decode(&p.content[..]).ok()
        });
        configs
            .flat_map(|c| c.parameter_definitions)
            .map(|d| (d.identifier, d.units))
            .collect()
    }

    fn identifiers(&self, format: Option<&open_data::SampleDataFormat>) -> Vec<String> {
        match format.and_then(|f| f.format.as_ref()) {
            Some(sample_data_format::Format::DataFormatIdentifier(id)) => {
                self.formats.get(id).cloned().unwrap_or_default()
            }
            Some(sample_data_format::Format::ParameterIdentifiers(list)) => {
                list.parameter_identifiers.clone()
            }
            None => Vec::new(),
        }
    }

    fn packet_samples(&self, packet: &open_data::Packet, out: &mut SampleMap) {
        let content = &packet.content[..];
        match packet.r#type.as_str() {
            "PeriodicData" => {
                if let Ok(p) = open_data::PeriodicDataPacket::decode(content) {
                    let n = p
                        .columns
                        .first()
                        .and_then(ListRef::of_column)
                        .map_or(0, |l| l.len());
                    let times: Vec<u64> = (0..n as u64)
                        .map(|i| {
                            p.start_time
                                .saturating_add(i.saturating_mul(u64::from(p.interval)))
                        })
                        .collect();
                    self.columns(p.data_format.as_ref(), &p.columns, &times, out);
                }
            }
            "SynchroData" => {
                if let Ok(p) = open_data::SynchroDataPacket::decode(content) {
                    let steps = std::iter::once(0).chain(p.intervals.iter().map(|i| u64::from(*i)));
                    let times: Vec<u64> = steps
                        .scan(p.start_time, |t, d| {
                            *t = t.saturating_add(d);
                            Some(*t)
                        })
                        .collect();
                    self.columns(p.data_format.as_ref(), &p.columns, &times, out);
                }
            }
            "RowData" => {
                if let Ok(p) = open_data::RowDataPacket::decode(content) {
                    let ids = self.identifiers(p.data_format.as_ref());
                    for (t, row) in p.timestamps.iter().zip(&p.rows) {
                        let values = ListRef::of_row(row).map(|l| l.values()).unwrap_or_default();
                        for (id, v) in ids.iter().zip(values) {
                            out.entry(id.clone())
                                .or_default()
                                .extend(v.map(|v| (*t, v)));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Column-wise samples (periodic, synchro): column i belongs to parameter i of the format.
    fn columns(
        &self,
        format: Option<&open_data::SampleDataFormat>,
        columns: &[open_data::SampleColumn],
        times: &[u64],
        out: &mut SampleMap,
    ) {
        for (id, column) in self.identifiers(format).iter().zip(columns) {
            let values = ListRef::of_column(column)
                .map(|l| l.values())
                .unwrap_or_default();
            let samples = times.iter().zip(values).filter_map(|(t, v)| Some((*t, v?)));
            out.entry(id.clone()).or_default().extend(samples);
        }
    }
}

//! Per-packet checks of the conformance checker: decoding the content by `Packet.type` (B1)
//! and the ordering, data-format, shape, timestamp and marker rules (B3–B9) for one packet.
//!
//! Private to [`conformance`](super::conformance); borrows the checker's state for one packet
//! and never keeps any itself.

use std::collections::HashMap;

use prost::Message;

use super::conformance::{FormatKind, IssuedFormat, StreamState, merge_range};
use super::lint::{self, Findings, ListRef};
use super::row_shape::RowSummary;
use open_data::{event_data_format, sample_data_format};
use open_streaming::open_data;

/// A decoded packet content, by `Packet.type`.
// Lives on the stack for one packet check; boxing the big variants buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Content {
    NewSession(open_data::NewSessionPacket),
    EndOfSession,
    Configuration(open_data::ConfigurationPacket),
    Periodic(open_data::PeriodicDataPacket),
    Row(RowSummary),
    Synchro(open_data::SynchroDataPacket),
    Event(open_data::EventPacket),
    Marker(open_data::MarkerPacket),
    Timed(&'static str, u64),
    Untimed,
}

/// B1: the type string and the content decoding as `<type>Packet` (rules 43, 23, 54).
pub(super) fn decode_content(packet: &open_data::Packet) -> Result<Content, String> {
    fn parse<M: Message + Default>(packet: &open_data::Packet) -> Result<M, String> {
        M::decode(&packet.content[..]).map_err(|e| {
            format!(
                "packet {}: content does not parse as {}Packet: {e}",
                packet.id, packet.r#type
            )
        })
    }
    let content = match packet.r#type.as_str() {
        "NewSession" => Content::NewSession(parse(packet)?),
        "EndOfSession" => {
            parse::<open_data::EndOfSessionPacket>(packet).map(|_| Content::EndOfSession)?
        }
        "Configuration" => Content::Configuration(parse(packet)?),
        "PeriodicData" => Content::Periodic(parse(packet)?),
        "RowData" => Content::Row(RowSummary::read(&packet.content).map_err(|e| {
            format!(
                "packet {}: content does not parse as {}Packet: {e}",
                packet.id, packet.r#type
            )
        })?),
        "SynchroData" => Content::Synchro(parse(packet)?),
        "Event" => Content::Event(parse(packet)?),
        "Marker" => Content::Marker(parse(packet)?),
        "Error" => Content::Timed(
            "Error timestamp",
            parse::<open_data::ErrorPacket>(packet)?.timestamp,
        ),
        "RawCANData" => Content::Timed(
            "RawCANData timestamp",
            parse::<open_data::RawCanDataPacket>(packet)?.timestamp,
        ),
        "CoverageCursorInfo" => {
            let cursor = parse::<open_data::CoverageCursorInfoPacket>(packet)?;
            Content::Timed("CoverageCursorInfo time", cursor.coverage_cursor_time)
        }
        "Metadata" => parse::<open_data::MetadataPacket>(packet).map(|_| Content::Untimed)?,
        "DataFormatDefinition" | "SessionInfo" => {
            return Err(format!(
                "packet {}: type {:?} is written by the server only",
                packet.id, packet.r#type
            ));
        }
        other => {
            return Err(format!(
                "packet {}: unknown Packet.type {other:?} (readers drop it)",
                packet.id
            ));
        }
    };
    Ok(content)
}

/// Everything the per-type checks of one packet need, borrowed from the checker.
pub(super) struct PacketCtx<'c, 'f> {
    /// Server receive time (B7's "now").
    pub(super) now_ns: u64,
    /// The envelope being checked.
    pub(super) packet: &'c open_data::Packet,
    /// `DataPacketDetails.data_source` (data-format ids are per data source).
    pub(super) data_source: &'c str,
    /// Every id issued so far.
    pub(super) formats: &'c HashMap<u64, IssuedFormat>,
    /// Every config id seen, across sessions.
    pub(super) config_ids: &'c mut HashMap<String, open_data::ConfigurationPacket>,
    /// Where violations go.
    pub(super) f: &'c mut Findings<'f>,
}

impl PacketCtx<'_, '_> {
    /// B3 (and B4/B8 where the order concerns config): the packet's place in its stream.
    pub(super) fn check_order(
        &mut self,
        content: &Content,
        stream: &mut StreamState,
        main_configured: bool,
    ) {
        let (id, ty) = (self.packet.id, self.packet.r#type.as_str());
        if stream.end_of_session {
            self.f.error(
                "B3",
                format!("packet {id} ({ty}) written after EndOfSession on this stream"),
            );
        }
        match content {
            Content::NewSession(_) if stream.any_packet => {
                self.f.error(
                    "B3",
                    format!("packet {id}: NewSession is not the first packet on this stream"),
                );
            }
            Content::NewSession(_) => {}
            _ if !stream.new_session => {
                self.f.error(
                    "B3",
                    format!("packet {id} ({ty}) before NewSession on this stream"),
                );
            }
            _ => {}
        }
        let is_data = matches!(
            content,
            Content::Periodic(_) | Content::Row(_) | Content::Synchro(_) | Content::Event(_)
        );
        let is_marker = matches!(content, Content::Marker(_));
        if is_data && !stream.configured {
            self.f.error(
                "B3",
                format!("packet {id} ({ty}) before any Configuration on this stream"),
            );
        }
        if is_marker && !stream.configured {
            self.f.error(
                "B8",
                format!(
                    "packet {id}: Marker on a stream that has no Configuration (dropped by SQLRace)"
                ),
            );
        }
        if (is_data || is_marker)
            && !stream.data_seen
            && !main_configured
            && !self.f.stream.is_empty()
        {
            self.f.error(
                "B4",
                format!("packet {id} ({ty}): no Configuration was sent on the main stream \"\""),
            );
        }
        stream.data_seen |= is_data || is_marker;
    }

    /// Per-type checks (B4–B9) and the stream-state updates they imply.
    pub(super) fn check_content(
        &mut self,
        content: &Content,
        stream: Option<&mut StreamState>,
        session_range: Option<(u64, u64)>,
    ) {
        let essential = self.packet.is_essential;
        match content {
            Content::NewSession(p) => {
                if p.data_source.is_empty() {
                    self.f.error(
                        "B3",
                        format!(
                            "packet {}: NewSession packet without data_source",
                            self.packet.id
                        ),
                    );
                }
                if let Some(s) = stream {
                    s.new_session = true;
                }
            }
            Content::EndOfSession => {
                if let Some(s) = stream {
                    s.end_of_session = true;
                }
            }
            Content::Configuration(config) => self.on_configuration(config, essential, stream),
            Content::Periodic(p) => self.on_periodic(p, stream),
            Content::Row(p) => self.on_row(p, stream),
            Content::Synchro(p) => self.on_synchro(p, stream),
            Content::Event(p) => self.on_event(p, stream),
            Content::Marker(m) => {
                self.on_marker(m, stream.and_then(|s| s.data_range).or(session_range))
            }
            Content::Timed(what, t) => {
                lint::check_timestamp(what, *t, self.now_ns, self.f);
            }
            Content::Untimed => {}
        }
    }

    fn on_configuration(
        &mut self,
        config: &open_data::ConfigurationPacket,
        essential: bool,
        stream: Option<&mut StreamState>,
    ) {
        lint::check_configuration(config, essential, self.f);
        if !config.config_id.is_empty() {
            // The parts of a split configuration (rule 20) share one config_id; each part
            // is compared with the same part sent before.
            let key = if config.partial_packet {
                format!("{}#{}", config.config_id, config.packet_number)
            } else {
                config.config_id.clone()
            };
            match self.config_ids.get(&key) {
                Some(first) if first != config => self.f.error(
                    "B4",
                    format!(
                        "config_id {:?} reused with different content (readers keep the first)",
                        config.config_id
                    ),
                ),
                Some(_) => {}
                None => {
                    self.config_ids.insert(key, config.clone());
                }
            }
        }
        if let Some(s) = stream {
            s.configured = true;
            s.parameters.extend(
                config
                    .parameter_definitions
                    .iter()
                    .map(|d| d.identifier.clone()),
            );
            s.events.extend(
                config
                    .event_definitions
                    .iter()
                    .map(|d| d.identifier.clone()),
            );
        }
    }

    /// B5 + B9: resolves a sample data format to its parameter list and a continuity key.
    fn resolve(
        &mut self,
        format: Option<&open_data::SampleDataFormat>,
        stream: Option<&StreamState>,
    ) -> Option<(Vec<String>, String)> {
        let id = self.packet.id;
        if self.packet.is_essential {
            self.f.error(
                "B9",
                format!(
                    "packet {id} ({}): sample data marked is_essential (duplicated to readers)",
                    self.packet.r#type
                ),
            );
        }
        let resolved = match format.and_then(|f| f.format.as_ref()) {
            None => {
                self.f
                    .error("B5", format!("packet {id}: data_format is not set"));
                return None;
            }
            Some(sample_data_format::Format::ParameterIdentifiers(list)) => {
                let ids = list.parameter_identifiers.clone();
                let key = format!("list:{}", ids.join(","));
                (ids, key)
            }
            Some(sample_data_format::Format::DataFormatIdentifier(fid)) => {
                let ids = self.issued(*fid, FormatKind::Parameter)?;
                (ids, format!("id:{fid}"))
            }
        };
        if let Some(s) = stream {
            let undefined: Vec<&String> = resolved
                .0
                .iter()
                .filter(|p| !s.parameters.contains(*p))
                .collect();
            if !undefined.is_empty() {
                let what = "have no ParameterDefinition on this stream";
                self.f.error(
                    "B5",
                    format!("packet {id}: parameter(s) {undefined:?} {what}"),
                );
            }
        }
        Some(resolved)
    }

    /// B5: a data-format id issued by this server for this data source and kind.
    fn issued(&mut self, fid: u64, kind: FormatKind) -> Option<Vec<String>> {
        let id = self.packet.id;
        let problem = match self.formats.get(&fid) {
            _ if fid == 0 => "data_format_identifier is 0".to_owned(),
            None => format!("data_format_identifier {fid} was not issued by this server"),
            Some(f) if f.data_source != self.data_source => {
                format!(
                    "data_format_identifier {fid} was issued for data source {:?}",
                    f.data_source
                )
            }
            Some(f) if f.kind != kind => format!(
                "data_format_identifier {fid} is a {:?} format, used as {kind:?}",
                f.kind
            ),
            Some(f) => return Some(f.identifiers.clone()),
        };
        self.f.error("B5", format!("packet {id}: {problem}"));
        None
    }

    fn on_periodic(&mut self, p: &open_data::PeriodicDataPacket, stream: Option<&mut StreamState>) {
        let resolved = self.resolve(p.data_format.as_ref(), stream.as_deref());
        let n_params = resolved.as_ref().map_or(p.columns.len(), |r| r.0.len());
        lint::check_periodic_shape(p, n_params, self.f);
        let len = p
            .columns
            .first()
            .and_then(ListRef::of_column)
            .map_or(0, |l| l.len()) as u64;
        if !lint::check_timestamp("PeriodicData start_time", p.start_time, self.now_ns, self.f)
            || len == 0
        {
            return;
        }
        if len == 1 {
            self.f.warn(
                "B7",
                format!(
                    "packet {}: single-sample PeriodicData (send ~1 s per packet)",
                    self.packet.id
                ),
            );
        }
        let end = p
            .start_time
            .saturating_add((len - 1).saturating_mul(u64::from(p.interval)));
        let Some(s) = stream else { return };
        extend_range(s, p.start_time, end);
        let Some((_, key)) = resolved else { return };
        let next = (end.saturating_add(u64::from(p.interval)), p.interval);
        if let Some((expected, interval)) = s.periodic_next.insert(key, next)
            && (expected != p.start_time || interval != p.interval)
        {
            let delta = i128::from(p.start_time) - i128::from(expected);
            let kind = if delta < 0 {
                "overlaps"
            } else {
                "leaves a gap after"
            };
            self.f.warn(
                "B7",
                format!(
                    "packet {}: PeriodicData start_time {} {kind} the previous packet (expected {expected}, {delta:+} ns; interval {} → {})",
                    self.packet.id, p.start_time, interval, p.interval
                ),
            );
        }
    }

    fn on_row(&mut self, p: &RowSummary, stream: Option<&mut StreamState>) {
        let resolved = self.resolve(p.data_format.as_ref(), stream.as_deref());
        let n_params = resolved.map_or_else(
            || p.rows.first().copied().flatten().map_or(0, |l| l.len),
            |r| r.0.len(),
        );
        lint::check_row_shape(p, n_params, self.f);
        let now = self.now_ns;
        if p.timestamps
            .iter()
            .all(|t| lint::check_timestamp("RowData timestamp", *t, now, self.f))
            && let (Some(s), Some(min), Some(max)) =
                (stream, p.timestamps.iter().min(), p.timestamps.iter().max())
        {
            extend_range(s, *min, *max);
        }
    }

    fn on_synchro(&mut self, p: &open_data::SynchroDataPacket, stream: Option<&mut StreamState>) {
        let resolved = self.resolve(p.data_format.as_ref(), stream.as_deref());
        let n_params = resolved.map_or(p.columns.len(), |r| r.0.len());
        lint::check_synchro_shape(p, n_params, self.f);
        if lint::check_timestamp("SynchroData start_time", p.start_time, self.now_ns, self.f)
            && let Some(s) = stream
        {
            let span = p.intervals.iter().map(|i| u64::from(*i)).sum::<u64>();
            extend_range(s, p.start_time, p.start_time.saturating_add(span));
        }
    }

    fn on_event(&mut self, p: &open_data::EventPacket, stream: Option<&mut StreamState>) {
        lint::check_timestamp("Event timestamp", p.timestamp, self.now_ns, self.f);
        let event_id = match p.data_format.as_ref().and_then(|f| f.format.as_ref()) {
            None => {
                self.f.error(
                    "B5",
                    format!("packet {}: Event data_format is not set", self.packet.id),
                );
                return;
            }
            Some(event_data_format::Format::EventIdentifier(e)) => e.clone(),
            Some(event_data_format::Format::DataFormatIdentifier(fid)) => {
                match self
                    .issued(*fid, FormatKind::Event)
                    .and_then(|ids| ids.into_iter().next())
                {
                    Some(e) => e,
                    None => return,
                }
            }
        };
        if let Some(s) = stream
            && !s.events.contains(&event_id)
        {
            self.f.error(
                "B5",
                format!(
                    "packet {}: event {event_id:?} has no EventDefinition on this stream",
                    self.packet.id
                ),
            );
        }
    }

    fn on_marker(&mut self, m: &open_data::MarkerPacket, range: Option<(u64, u64)>) {
        let ok = lint::check_timestamp("Marker timestamp", m.timestamp, self.now_ns, self.f);
        if m.r#type != "Lap Trigger" {
            return;
        }
        lint::check_lap_marker(m, self.f);
        let (id, t) = (self.packet.id, m.timestamp);
        match range {
            None if ok => self.f.error(
                "B8",
                format!("packet {id}: Lap Trigger at {t} before any data was sent"),
            ),
            Some((lo, hi)) if ok && !(lo..=hi).contains(&t) => {
                let range = format!("{lo}..={hi}");
                self.f.error(
                    "B8",
                    format!(
                        "packet {id}: Lap Trigger at {t} outside the data range {range} sent so far"
                    ),
                );
            }
            _ => {}
        }
    }
}

/// Widens the stream's data range to cover `lo..=hi`.
pub(super) fn extend_range(s: &mut StreamState, lo: u64, hi: u64) {
    s.data_range = Some(s.data_range.map_or((lo, hi), |r| merge_range(r, (lo, hi))));
}

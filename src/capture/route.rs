//! Which configured source's receiver reads a recorded input back: replay asks this for every
//! pcapng interface and UDP destination port, and for every serial log's recorded source name,
//! and reports the answer with its reason (docs/replay.md, "Which receiver reads a capture").
//!
//! The rules, first match wins: a source forced by `replay --source`; for pcapng, the
//! interface name when it names a UDP source, else a UDP source whose `bind` port is the
//! datagram's destination port, else the only UDP source; for serial logs, the recorded source
//! name, else the only serial source. With no match, datagrams are read as cannelloni and
//! serial bytes as SLCAN, as a source without a definition would read them.
//!
//! Pure lookups over the configuration's sources: no IO, no logging.

use std::fmt;

use crate::source::NativeInput;

/// How a configured source's recordings arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedTransport {
    /// UDP datagrams to this local port (from the source's `bind`).
    Udp {
        /// The bind port.
        port: u16,
    },
    /// Serial reads.
    Serial,
}

/// A configured source as replay sees it.
#[derive(Debug, Clone)]
pub struct RecordedSource {
    /// The configured name.
    pub name: String,
    /// What its recordings look like.
    pub transport: RecordedTransport,
    /// The definition whose native frames it carries (`None`: cannelloni or SLCAN CAN).
    pub native: Option<NativeInput>,
}

/// The configuration's sources, and the one `replay --source` forces, if any.
#[derive(Debug, Clone, Default)]
pub struct ReplayInputs {
    /// Every `[[source]]`, in configuration order.
    pub sources: Vec<RecordedSource>,
    /// Index into `sources` of the source that reads every input (`replay --source`).
    pub forced: Option<usize>,
}

/// Why a source's receiver was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChoiceReason {
    /// `replay --source`.
    Forced,
    /// The pcapng interface (or serial log header) names the source.
    RecordedName(String),
    /// The UDP destination port is the source's bind port.
    DestinationPort(u16),
    /// The configuration has one source of this transport.
    OnlySource,
}

/// The receiver chosen for one recorded input stream; `Display` is the summary's wording.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiverChoice {
    /// A configured source's receiver.
    Source {
        /// The source's name.
        name: String,
        /// Why.
        reason: ChoiceReason,
        /// Datagrams (pcapng) rather than a byte stream (serial log).
        datagrams: bool,
    },
    /// A `candump -L` log: CAN frames already, no receiver involved.
    CanLog,
    /// No source matched: cannelloni for datagrams, SLCAN for a byte stream.
    Default {
        /// The recorded name (pcapng interface, serial log source); may be empty.
        recorded: String,
        /// The UDP destination port, for datagrams.
        port: Option<u16>,
    },
}

impl ReplayInputs {
    /// The source that reads datagrams recorded on `interface` to local port `port`.
    pub fn choose_datagram_source(
        &self,
        interface: &str,
        port: u16,
    ) -> (Option<&RecordedSource>, ReceiverChoice) {
        let udp = |s: &&RecordedSource| matches!(s.transport, RecordedTransport::Udp { .. });
        let found = self
            .forced_source()
            .or_else(|| {
                let named = self
                    .sources
                    .iter()
                    .filter(udp)
                    .find(|s| s.name == interface);
                named.map(|s| (s, ChoiceReason::RecordedName(interface.to_owned())))
            })
            .or_else(|| {
                let bound = self
                    .sources
                    .iter()
                    .find(|s| port != 0 && s.transport == RecordedTransport::Udp { port });
                bound.map(|s| (s, ChoiceReason::DestinationPort(port)))
            })
            .or_else(|| self.only(udp));
        Self::choice(found, interface, Some(port))
    }

    /// The source that reads a serial log recorded from the source called `recorded`.
    pub fn choose_stream_source(
        &self,
        recorded: &str,
    ) -> (Option<&RecordedSource>, ReceiverChoice) {
        let serial = |s: &&RecordedSource| s.transport == RecordedTransport::Serial;
        let found = self
            .forced_source()
            .or_else(|| {
                let named = self
                    .sources
                    .iter()
                    .filter(serial)
                    .find(|s| s.name == recorded);
                named.map(|s| (s, ChoiceReason::RecordedName(recorded.to_owned())))
            })
            .or_else(|| self.only(serial));
        Self::choice(found, recorded, None)
    }

    fn forced_source(&self) -> Option<(&RecordedSource, ChoiceReason)> {
        let source = self.sources.get(self.forced?)?;
        Some((source, ChoiceReason::Forced))
    }

    fn only(
        &self,
        kind: impl Fn(&&RecordedSource) -> bool,
    ) -> Option<(&RecordedSource, ChoiceReason)> {
        let mut of_kind = self.sources.iter().filter(kind);
        match (of_kind.next(), of_kind.next()) {
            (Some(only), None) => Some((only, ChoiceReason::OnlySource)),
            _ => None,
        }
    }

    fn choice<'a>(
        found: Option<(&'a RecordedSource, ChoiceReason)>,
        recorded: &str,
        port: Option<u16>,
    ) -> (Option<&'a RecordedSource>, ReceiverChoice) {
        match found {
            Some((source, reason)) => (
                Some(source),
                ReceiverChoice::Source {
                    name: source.name.clone(),
                    reason,
                    datagrams: port.is_some(),
                },
            ),
            None => (
                None,
                ReceiverChoice::Default {
                    recorded: recorded.to_owned(),
                    port,
                },
            ),
        }
    }
}

impl fmt::Display for ReceiverChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source {
                name,
                reason,
                datagrams,
            } => {
                let transport = if *datagrams { "UDP" } else { "serial" };
                let why = match reason {
                    ChoiceReason::Forced => "forced by --source".to_owned(),
                    ChoiceReason::RecordedName(recorded) if *datagrams => {
                        format!("pcapng interface `{recorded}` is its name")
                    }
                    ChoiceReason::RecordedName(_) => {
                        "the serial log was recorded from it".to_owned()
                    }
                    ChoiceReason::DestinationPort(port) => {
                        format!("UDP destination port {port} matches its bind port")
                    }
                    ChoiceReason::OnlySource => format!("the only {transport} source"),
                };
                write!(f, "source `{name}` ({why})")
            }
            Self::CanLog => write!(f, "candump -L log (CAN frames, no receiver needed)"),
            Self::Default {
                recorded,
                port: Some(port),
            } => write!(
                f,
                "no source: read as cannelloni CAN (recorded as `{recorded}`, port {port}; no UDP source has that name or bind port; pick one with --source)"
            ),
            Self::Default {
                recorded,
                port: None,
            } => write!(
                f,
                "no source: read as SLCAN CAN (recorded as `{recorded}`; no serial source has that name; pick one with --source)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(name: &str, port: u16) -> RecordedSource {
        RecordedSource {
            name: name.to_owned(),
            transport: RecordedTransport::Udp { port },
            native: None,
        }
    }

    fn serial(name: &str) -> RecordedSource {
        RecordedSource {
            name: name.to_owned(),
            transport: RecordedTransport::Serial,
            native: None,
        }
    }

    fn chosen(inputs: &ReplayInputs, interface: &str, port: u16) -> String {
        inputs.choose_datagram_source(interface, port).1.to_string()
    }

    #[test]
    fn interface_name_then_destination_port_then_the_only_source() {
        let inputs = ReplayInputs {
            sources: vec![udp("f1", 20777), udp("gw", 20000), serial("usb")],
            forced: None,
        };
        assert_eq!(
            chosen(&inputs, "gw", 20777),
            "source `gw` (pcapng interface `gw` is its name)"
        );
        assert_eq!(
            chosen(&inputs, "lo", 20777),
            "source `f1` (UDP destination port 20777 matches its bind port)"
        );
        let unmatched = chosen(&inputs, "lo", 9);
        assert!(
            unmatched.starts_with("no source: read as cannelloni CAN (recorded as `lo`, port 9;"),
            "{unmatched}"
        );
        let one = ReplayInputs {
            sources: vec![udp("f1", 20777), serial("usb")],
            forced: None,
        };
        assert_eq!(chosen(&one, "eth0", 9), "source `f1` (the only UDP source)");
        assert_eq!(
            one.choose_stream_source("old-name").1.to_string(),
            "source `usb` (the only serial source)"
        );
        let none = ReplayInputs::default().choose_stream_source("usb").1;
        assert!(
            none.to_string()
                .starts_with("no source: read as SLCAN CAN (recorded as `usb`;"),
            "{none}"
        );
    }

    #[test]
    fn a_forced_source_reads_everything() {
        let inputs = ReplayInputs {
            sources: vec![udp("f1", 20777), udp("gw", 20000)],
            forced: Some(1),
        };
        let (source, choice) = inputs.choose_datagram_source("f1", 20777);
        assert_eq!(source.map(|s| s.name.as_str()), Some("gw"));
        assert_eq!(choice.to_string(), "source `gw` (forced by --source)");
    }
}

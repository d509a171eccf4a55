//! RowData as the checks see it: its data format, its timestamps and each row's sample count,
//! list kind and first unspecified status, read straight from the wire bytes for the common
//! shape (double rows, as producers write them) without building a value per sample.
//!
//! The wire reader is only a shortcut: it accepts the fields `RowDataPacket`, `SampleRow`,
//! `DoubleSampleList` and `DoubleSample` define, each with its own wire type, and gives up
//! (`None`) on anything else — another list kind, an unknown field, a repeated data format, an
//! unpacked timestamp, a long varint — so prost then decodes the packet and decides. Whatever
//! it accepts, prost decodes to the same summary (a property test below checks it), so the
//! checks cannot tell which path ran. `docs/performance.md` has what it saves.

use prost::Message;

use super::lint::ListRef;
use open_streaming::open_data;

/// What the RowData checks need of one packet.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RowSummary {
    /// The packet's data format, if set.
    pub data_format: Option<open_data::SampleDataFormat>,
    /// Every row's timestamp, in packet order.
    pub timestamps: Vec<u64>,
    /// Each row's sample list; `None` where a row has none.
    pub rows: Vec<Option<ListShape>>,
}

/// One sample list, without its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ListShape {
    /// Number of samples.
    pub len: usize,
    /// Index of the first sample whose status is `DATA_STATUS_UNSPECIFIED`.
    pub first_unspecified: Option<usize>,
    /// A `string_samples` list (which the sample recorders do not support).
    pub strings: bool,
}

impl ListShape {
    /// The shape of a decoded list.
    pub(super) fn of(list: &ListRef<'_>) -> Self {
        Self {
            len: list.len(),
            first_unspecified: list.first_unspecified(),
            strings: matches!(list, ListRef::String(_)),
        }
    }
}

impl RowSummary {
    /// Reads a `RowDataPacket` content; the error is prost's, for a content that does not
    /// decode.
    pub(super) fn read(content: &[u8]) -> Result<Self, prost::DecodeError> {
        match read_plain(content) {
            Some(summary) => Ok(summary),
            None => open_data::RowDataPacket::decode(content).map(|packet| Self::of(&packet)),
        }
    }

    /// The summary of a decoded packet.
    pub(super) fn of(packet: &open_data::RowDataPacket) -> Self {
        Self {
            data_format: packet.data_format.clone(),
            timestamps: packet.timestamps.clone(),
            rows: packet
                .rows
                .iter()
                .map(|row| ListRef::of_row(row).map(|list| ListShape::of(&list)))
                .collect(),
        }
    }
}

/// Wire types of the protobuf encoding.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;

/// Keys of `DoubleSampleList.samples`, `DoubleSample.value` and `DoubleSample.status`.
const SAMPLE_KEY: u8 = 1 << 3 | LENGTH_DELIMITED;
const VALUE_KEY: u8 = 1 << 3 | FIXED64;
const STATUS_KEY: u8 = 2 << 3 | VARINT;

/// The wire reader of the module doc; `None` hands the packet to prost.
fn read_plain(mut content: &[u8]) -> Option<RowSummary> {
    let mut summary = RowSummary {
        data_format: None,
        timestamps: Vec::new(),
        rows: Vec::new(),
    };
    while !content.is_empty() {
        match key(&mut content)? {
            (1, LENGTH_DELIMITED) if summary.data_format.is_none() => {
                let bytes = delimited(&mut content)?;
                summary.data_format = Some(open_data::SampleDataFormat::decode(bytes).ok()?);
            }
            (2, LENGTH_DELIMITED) => {
                let bytes = delimited(&mut content)?;
                if bytes.len() % 8 != 0 {
                    return None;
                }
                summary.timestamps.extend(
                    bytes.chunks_exact(8).map(|b| {
                        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    }),
                );
            }
            (3, LENGTH_DELIMITED) => {
                let row = delimited(&mut content)?;
                summary.rows.push(read_row(row)?);
            }
            _ => return None,
        }
    }
    Some(summary)
}

/// A `SampleRow` holding at most one `double_samples` list.
fn read_row(mut row: &[u8]) -> Option<Option<ListShape>> {
    if row.is_empty() {
        return Some(None);
    }
    let (1, LENGTH_DELIMITED) = key(&mut row)? else {
        return None;
    };
    let mut list = delimited(&mut row)?;
    if !row.is_empty() {
        return None;
    }
    let mut shape = ListShape {
        len: 0,
        first_unspecified: None,
        strings: false,
    };
    while !list.is_empty() {
        // A sample as producers write it — value (when not zero) then a one-byte status —
        // is recognised whole; anything else is read field by field below.
        let plain = match list {
            [
                SAMPLE_KEY,
                11,
                VALUE_KEY,
                _,
                _,
                _,
                _,
                _,
                _,
                _,
                _,
                STATUS_KEY,
                status,
                ..,
            ] => Some((13, *status)),
            [SAMPLE_KEY, 2, STATUS_KEY, status, ..] => Some((4, *status)),
            _ => None,
        };
        if let Some((len, status)) = plain.filter(|(_, status)| *status < 0x80) {
            if status == 0 && shape.first_unspecified.is_none() {
                shape.first_unspecified = Some(shape.len);
            }
            shape.len += 1;
            list = &list[len..];
            continue;
        }
        let (1, LENGTH_DELIMITED) = key(&mut list)? else {
            return None;
        };
        let mut sample = delimited(&mut list)?;
        // Proto3 scalars: the last occurrence wins, absent means 0 (unspecified).
        let mut status = 0i32;
        while !sample.is_empty() {
            match key(&mut sample)? {
                (1, FIXED64) => sample = sample.get(8..)?,
                // An enum is an int32 on the wire: prost keeps the varint's low 32 bits.
                (2, VARINT) => status = varint(&mut sample)? as i32,
                _ => return None,
            }
        }
        if status == open_data::DataStatus::Unspecified as i32 && shape.first_unspecified.is_none()
        {
            shape.first_unspecified = Some(shape.len);
        }
        shape.len += 1;
    }
    Some(Some(shape))
}

/// A field key: its number and wire type.
fn key(bytes: &mut &[u8]) -> Option<(u64, u8)> {
    let key = varint(bytes)?;
    Some((key >> 3, (key & 7) as u8))
}

/// A length-delimited field's bytes.
fn delimited<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(bytes)?).ok()?;
    let (field, rest) = bytes.split_at_checked(len)?;
    *bytes = rest;
    Some(field)
}

/// A varint of at most 5 bytes (up to 2^35 - 1): every key, length and status of a real
/// packet; anything longer goes to prost.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(5).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use open_data::{sample_data_format, sample_row};

    fn double_row(statuses: &[i32]) -> open_data::SampleRow {
        open_data::SampleRow {
            list: Some(sample_row::List::DoubleSamples(
                open_data::DoubleSampleList {
                    samples: statuses
                        .iter()
                        .enumerate()
                        .map(|(i, status)| open_data::DoubleSample {
                            value: i as f64 * 0.5,
                            status: *status,
                        })
                        .collect(),
                },
            )),
        }
    }

    fn any_row() -> impl Strategy<Value = open_data::SampleRow> {
        let statuses = proptest::collection::vec(prop_oneof![Just(1), Just(0), any::<i32>()], 0..6);
        prop_oneof![
            4 => statuses.clone().prop_map(|s| double_row(&s)),
            1 => statuses.clone().prop_map(|s| open_data::SampleRow {
                list: Some(sample_row::List::Int32Samples(open_data::Int32SampleList {
                    samples: s.iter().map(|status| open_data::Int32Sample { value: 7, status: *status }).collect(),
                })),
            }),
            1 => statuses.prop_map(|s| open_data::SampleRow {
                list: Some(sample_row::List::StringSamples(open_data::StringSampleList {
                    samples: s.iter().map(|status| open_data::StringSample { value: "x".into(), status: *status }).collect(),
                })),
            }),
            1 => Just(open_data::SampleRow { list: None }),
        ]
    }

    fn any_packet() -> impl Strategy<Value = open_data::RowDataPacket> {
        (
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u64>(), 0..5),
            proptest::collection::vec(any_row(), 0..5),
        )
            .prop_map(|(format, timestamps, rows)| open_data::RowDataPacket {
                data_format: format.map(|id| open_data::SampleDataFormat {
                    format: Some(sample_data_format::Format::DataFormatIdentifier(id)),
                }),
                timestamps,
                rows,
            })
    }

    /// Encoded packets, some with bytes changed, cut short or appended to.
    fn packet_bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            any_packet(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            any::<Option<prop::sample::Index>>(),
            proptest::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(|(packet, changes, cut, tail)| {
                let mut bytes = packet.encode_to_vec();
                if !bytes.is_empty() {
                    for (at, byte) in changes {
                        let at = at.index(bytes.len());
                        bytes[at] = byte;
                    }
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                bytes.extend(tail);
                bytes
            })
    }

    proptest! {
        #[test]
        fn the_wire_reader_agrees_with_prost(bytes in packet_bytes()) {
            let decoded = open_data::RowDataPacket::decode(bytes.as_slice());
            if let Some(plain) = read_plain(&bytes) {
                let decoded = decoded.expect("prost decodes what the wire reader accepts");
                prop_assert_eq!(plain, RowSummary::of(&decoded));
            } else {
                prop_assert_eq!(RowSummary::read(&bytes).ok(), decoded.ok().map(|p| RowSummary::of(&p)));
            }
        }
    }

    /// One row of `samples` written with every field present, as some producers do (prost
    /// leaves a zero value and a zero status out): (value bytes or none, status byte).
    fn explicit_row(samples: &[(Option<[u8; 8]>, u8)]) -> Vec<u8> {
        let mut list = Vec::new();
        for (value, status) in samples {
            match value {
                Some(bytes) => {
                    list.extend([SAMPLE_KEY, 11, VALUE_KEY]);
                    list.extend(bytes);
                }
                None => list.extend([SAMPLE_KEY, 2]),
            }
            list.extend([STATUS_KEY, *status]);
        }
        let mut row = vec![1 << 3 | LENGTH_DELIMITED, list.len() as u8];
        row.extend(list);
        let mut packet = vec![3 << 3 | LENGTH_DELIMITED, row.len() as u8];
        packet.extend(row);
        packet
    }

    #[test]
    fn explicit_statuses_are_read_as_prost_reads_them() {
        let one = Some(1.5f64.to_le_bytes());
        for samples in [
            vec![(one, 1), (one, 0), (None, 0)],
            vec![(None, 1), (None, 2), (one, 0)],
            vec![(one, 3)],
        ] {
            let bytes = explicit_row(&samples);
            let decoded = open_data::RowDataPacket::decode(bytes.as_slice()).expect("valid");
            let plain = read_plain(&bytes).expect("the common shape");
            assert_eq!(plain, RowSummary::of(&decoded), "{samples:?}");
            let first_zero = samples.iter().position(|(_, status)| *status == 0);
            assert_eq!(plain.rows[0].and_then(|r| r.first_unspecified), first_zero);
        }
    }

    #[test]
    fn a_producers_packet_takes_the_wire_path() {
        let packet = open_data::RowDataPacket {
            data_format: Some(open_data::SampleDataFormat {
                format: Some(sample_data_format::Format::DataFormatIdentifier(3)),
            }),
            timestamps: vec![1, 2],
            rows: vec![double_row(&[1, 1, 1]), double_row(&[1, 0, 0])],
        };
        let plain = read_plain(&packet.encode_to_vec()).expect("the common shape");
        assert_eq!(plain, RowSummary::of(&packet));
        assert_eq!(plain.rows[1].and_then(|r| r.first_unspecified), Some(1));
    }
}

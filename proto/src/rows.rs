//! Incremental protobuf encoding of `RowDataPacket`s: each row is encoded once, when it
//! arrives, into the bytes of the packet's `rows` field, so a finished packet is those bytes
//! with its other fields, the data format and the timestamps, appended
//! ([`push_row_data_tail`]), or the same fields in prost's order, before the rows
//! ([`row_data_content`]). Protobuf parsers take fields in any order; both decode to exactly
//! the message prost would build (checked against prost in the tests), every sample a double
//! with status VALID (rule 32).
//!
//! Wire layout (field numbers from `open_data.proto`):
//! `RowDataPacket { 1: SampleDataFormat { 1: uint64 id }, 2: packed fixed64 timestamps,
//! 3: repeated SampleRow { 1: DoubleSampleList { 1: repeated DoubleSample { 1: double value,
//! 2: DataStatus status } } } }`.

/// `DataStatus::Valid`.
const STATUS_VALID: u8 = 1;
/// Tag bytes: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
const TAG_FORMAT: u8 = 1 << 3 | 2;
const TAG_FORMAT_ID: u8 = 1 << 3;
const TAG_TIMESTAMPS: u8 = 2 << 3 | 2;
const TAG_ROW: u8 = 3 << 3 | 2;
const TAG_DOUBLE_LIST: u8 = 1 << 3 | 2;
const TAG_DOUBLE_SAMPLE: u8 = 1 << 3 | 2;
const TAG_VALUE: u8 = 1 << 3 | 1;
const TAG_STATUS: u8 = 2 << 3;

/// Values in a row whose two lengths fit one varint byte each however many values are zero:
/// 9 samples of 13 bytes make a list of 117 and a row of 119, below 128.
const ONE_BYTE_LENGTHS: usize = 9;

/// Appends one `SampleRow` of `values` (with its field-3 tag and length) to `out`.
pub fn encode_row(values: &[f64], out: &mut Vec<u8>) {
    if values.len() <= ONE_BYTE_LENGTHS {
        // The header goes in with its lengths zero, and they are written once the samples
        // are in: one pass over the values, not a first one to measure them.
        let start = out.len();
        out.reserve(4 + 13 * values.len());
        out.extend_from_slice(&[TAG_ROW, 0, TAG_DOUBLE_LIST, 0]);
        push_samples(values, out);
        let list_len = out.len() - start - 4;
        out[start + 1] = (list_len + 2) as u8;
        out[start + 3] = list_len as u8;
        return;
    }
    let list_len: usize = values.iter().map(|v| 2 + sample_len(*v)).sum();
    let row_len = 1 + varint_len(list_len as u64) + list_len;
    out.reserve(1 + varint_len(row_len as u64) + row_len);
    out.push(TAG_ROW);
    push_varint(row_len as u64, out);
    out.push(TAG_DOUBLE_LIST);
    push_varint(list_len as u64, out);
    push_samples(values, out);
}

/// Appends a `DoubleSample` (tag, length and body) for each of `values`.
#[inline(always)]
fn push_samples(values: &[f64], out: &mut Vec<u8>) {
    // Each sample goes in as one slice: pushing its bytes one by one cost a capacity check
    // each, which was most of the encoding time (`docs/performance.md`).
    let mut sample = [0u8; 13];
    sample[..3].copy_from_slice(&[TAG_DOUBLE_SAMPLE, 11, TAG_VALUE]);
    sample[11..].copy_from_slice(&[TAG_STATUS, STATUS_VALID]);
    const ZERO_SAMPLE: [u8; 4] = [TAG_DOUBLE_SAMPLE, 2, TAG_STATUS, STATUS_VALID];
    for value in values {
        // proto3 leaves a zero value out, as prost does; -0.0 compares equal and is left out too.
        if *value != 0.0 {
            sample[3..11].copy_from_slice(&value.to_le_bytes());
            out.extend_from_slice(&sample);
        } else {
            out.extend_from_slice(&ZERO_SAMPLE);
        }
    }
}

/// Encoded size of the row `encode_row` would append.
pub fn encoded_row_len(values: &[f64]) -> usize {
    let list_len: usize = values.iter().map(|v| 2 + sample_len(*v)).sum();
    let row_len = 1 + varint_len(list_len as u64) + list_len;
    1 + varint_len(row_len as u64) + row_len
}

/// The most [`encode_row`] can append for `count` values (all non-zero), found without looking
/// at them: the batch stage's size check, one pass over the values fewer per row.
pub fn max_encoded_row_len(count: usize) -> usize {
    if count <= ONE_BYTE_LENGTHS {
        // Tag and one length byte for the row, and for its list.
        return 4 + 13 * count;
    }
    let list_len = count * 13;
    let row_len = 1 + varint_len(list_len as u64) + list_len;
    1 + varint_len(row_len as u64) + row_len
}

/// The `RowDataPacket` bytes for `data_format`, `timestamps` and rows encoded by
/// [`encode_row`] (one per timestamp), in prost's field order: a copy of the rows, for
/// checks against prost (the publisher appends to the rows instead, [`push_row_data_tail`]).
pub fn row_data_content(data_format: u64, timestamps: &[u64], encoded_rows: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(format_and_timestamps_len(data_format, timestamps) + encoded_rows.len());
    push_format_and_timestamps(data_format, timestamps, &mut out);
    out.extend_from_slice(encoded_rows);
    out
}

/// Makes `rows` (rows encoded by [`encode_row`], one per timestamp) a whole `RowDataPacket`
/// by appending its data format and timestamps: the rows, nearly all of its bytes, are neither
/// copied nor sent as a piece of their own. The packet's fields are then in the order rows,
/// data format, timestamps, which decodes as prost's order does.
pub fn push_row_data_tail(data_format: u64, timestamps: &[u64], rows: &mut Vec<u8>) {
    rows.reserve(format_and_timestamps_len(data_format, timestamps));
    push_format_and_timestamps(data_format, timestamps, rows);
}

/// Bytes of the data format and timestamps fields, at most.
fn format_and_timestamps_len(data_format: u64, timestamps: &[u64]) -> usize {
    2 + 1 + varint_len(data_format) + 1 + 10 + timestamps.len() * 8
}

fn push_format_and_timestamps(data_format: u64, timestamps: &[u64], out: &mut Vec<u8>) {
    let format_len = 1 + varint_len(data_format);
    out.push(TAG_FORMAT);
    push_varint(format_len as u64, out);
    out.push(TAG_FORMAT_ID);
    push_varint(data_format, out);
    if !timestamps.is_empty() {
        let stamps_len = timestamps.len() * 8;
        out.push(TAG_TIMESTAMPS);
        push_varint(stamps_len as u64, out);
        for time in timestamps {
            out.extend_from_slice(&time.to_le_bytes());
        }
    }
}

/// Bytes of one `DoubleSample` body: value (tag + 8) unless zero, then status (tag + 1).
fn sample_len(value: f64) -> usize {
    if value != 0.0 { 11 } else { 2 }
}

fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn push_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::open_data::{
        DataStatus, DoubleSample, DoubleSampleList, RowDataPacket, SampleDataFormat, SampleRow,
        sample_data_format, sample_row,
    };

    fn prost_packet(format: u64, rows: &[(u64, Vec<f64>)]) -> RowDataPacket {
        RowDataPacket {
            data_format: Some(SampleDataFormat {
                format: Some(sample_data_format::Format::DataFormatIdentifier(format)),
            }),
            timestamps: rows.iter().map(|(t, _)| *t).collect(),
            rows: rows
                .iter()
                .map(|(_, values)| SampleRow {
                    list: Some(sample_row::List::DoubleSamples(DoubleSampleList {
                        samples: values
                            .iter()
                            .map(|value| DoubleSample {
                                value: *value,
                                status: DataStatus::Valid as i32,
                            })
                            .collect(),
                    })),
                })
                .collect(),
        }
    }

    fn ours(format: u64, rows: &[(u64, Vec<f64>)]) -> Vec<u8> {
        let mut encoded = Vec::new();
        for (_, values) in rows {
            let before = encoded.len();
            encode_row(values, &mut encoded);
            assert_eq!(encoded.len() - before, encoded_row_len(values));
            assert!(encoded_row_len(values) <= max_encoded_row_len(values.len()));
            if values.iter().all(|v| *v != 0.0) {
                assert_eq!(encoded_row_len(values), max_encoded_row_len(values.len()));
            }
        }
        let timestamps: Vec<u64> = rows.iter().map(|(t, _)| *t).collect();
        row_data_content(format, &timestamps, &encoded)
    }

    #[test]
    fn matches_prost_byte_for_byte_on_ordinary_values() {
        let rows = vec![
            (1_778_936_400_000_000_000, vec![1.5, 0.0, -2.25, 1e300]),
            (1_778_936_400_001_000_000, vec![3.0, 4.0, 5.0, 6.0]),
        ];
        assert_eq!(ours(300, &rows), prost_packet(300, &rows).encode_to_vec());
    }

    #[test]
    fn wide_rows_match_prost_at_every_length_boundary() {
        // Rows of more than 9 values (measured before they are written) whose lists take 120
        // to 135 bytes, so each length takes one or two varint bytes; and rows of 1 260 and
        // 1 261 values, the widest whose lengths fit two bytes and one more.
        let mut widths = Vec::new();
        for nonzero in 0..=9usize {
            for zeros in 0..=40usize {
                let list_len = 13 * nonzero + 4 * zeros;
                if nonzero + zeros > ONE_BYTE_LENGTHS && (120..=135).contains(&list_len) {
                    widths.push((nonzero, zeros));
                }
            }
        }
        widths.extend([(1260, 0), (1261, 0), (1000, 261), (0, 1300)]);
        for (nonzero, zeros) in widths {
            let mut values = vec![1.25; nonzero];
            values.extend(std::iter::repeat_n(0.0, zeros));
            let rows = vec![(7, values)];
            assert_eq!(
                ours(9, &rows),
                prost_packet(9, &rows).encode_to_vec(),
                "{nonzero} values and {zeros} zeros"
            );
        }
    }

    proptest! {
        #[test]
        fn the_same_bytes_and_message_as_prost(
            format in 1u64..u64::MAX,
            rows in prop::collection::vec(
                // Zeros (left out of a sample), of both signs, in two draws of five.
                (
                    any::<u64>(),
                    prop::collection::vec(
                        prop_oneof![3 => any::<f64>(), 1 => Just(0.0), 1 => Just(-0.0)],
                        0..40,
                    ),
                ),
                0..20,
            ),
        ) {
            let encoded = ours(format, &rows);
            let decoded = RowDataPacket::decode(encoded.as_slice()).expect("decodes");
            let expected = prost_packet(format, &rows);
            // Byte for byte too: both write a NaN's bits as they are.
            prop_assert_eq!(&encoded, &expected.encode_to_vec());
            // Compare through prost's own encoding, so NaN payloads compare by bits.
            prop_assert_eq!(decoded.encode_to_vec(), expected.encode_to_vec());

            // The rows first, the other fields appended: the same message.
            let mut rows_first = Vec::new();
            for (_, values) in &rows {
                encode_row(values, &mut rows_first);
            }
            let rows_len = rows_first.len();
            let timestamps: Vec<u64> = rows.iter().map(|(t, _)| *t).collect();
            push_row_data_tail(format, &timestamps, &mut rows_first);
            prop_assert_eq!(rows_first.len(), encoded.len());
            prop_assert_eq!(&rows_first[rows_len..], &encoded[..encoded.len() - rows_len]);
            let decoded = RowDataPacket::decode(rows_first.as_slice()).expect("decodes");
            prop_assert_eq!(decoded.encode_to_vec(), expected.encode_to_vec());
        }
    }
}

//! Compound CAN messages: the MoTeC dash stream (80 bytes over 10 frames of id 0x5F0)
//! reassembles and decodes; a dropped frame and a bad CRC are each counted, never emitted.

use decoders::RowBatch;
use decoders::frame::{CheckKind, CompoundAssembler, CompoundStats, FramePlan, NativeOutcome};

const MOTEC: &str = include_str!("../definitions/motec_dash_can.toml");

/// The 80-byte message with channel `k` = `base + k`.
fn message(base: u16) -> Vec<u8> {
    let mut bytes = vec![0x82, 0x81, 0x80, 0x24];
    for k in 0..36u16 {
        bytes.extend_from_slice(&(base + k).to_be_bytes());
    }
    let crc = CheckKind::Crc32.compute(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

fn assembler() -> (FramePlan, CompoundAssembler) {
    let plan = FramePlan::load("motec_dash_can.toml", MOTEC).expect("loads");
    let assembler = CompoundAssembler::new(plan.framing()).expect("compound framing");
    (plan, assembler)
}

/// Feeds CAN frames; returns the messages completed.
fn feed<'a>(
    assembler: &mut CompoundAssembler,
    frames: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .filter_map(|frame| assembler.handle_frame(frame).map(<[u8]>::to_vec))
        .collect()
}

#[test]
fn a_ten_frame_message_reassembles_and_decodes() {
    let (plan, mut assembler) = assembler();
    let bytes = message(1000);
    let frames: Vec<&[u8]> = bytes.chunks(8).collect();
    assert_eq!(frames.len(), 10);
    let got = feed(&mut assembler, frames.iter().copied());
    assert_eq!(got, vec![bytes.clone()]);
    let mut rows = RowBatch::new();
    assert_eq!(
        plan.decode(9, &got[0], &mut rows),
        Ok(NativeOutcome::Decoded {
            message: 0,
            samples: 36
        })
    );
    let (_, values) = rows.row(0).expect("row");
    assert_eq!(values[0], 1000.0);
    assert_eq!(values[35], 1035.0);
    assert_eq!(plan.parameters()[35].name, "channel_35");
    assert_eq!(assembler.stats().messages, 1);
}

#[test]
fn a_dropped_frame_is_counted_and_never_emitted() {
    let (_, mut assembler) = assembler();
    let (first, second, third) = (message(0), message(100), message(200));
    let mut frames: Vec<&[u8]> = first.chunks(8).collect();
    frames.remove(4);
    frames.extend(second.chunks(8));
    // Losing the sync frame leaves the rest of the message stray.
    frames.extend(third.chunks(8).skip(1));
    let got = feed(&mut assembler, frames);
    assert_eq!(got, vec![second]);
    assert_eq!(
        assembler.stats(),
        CompoundStats {
            messages: 1,
            incomplete: 1,
            stray_frames: 9,
            ..CompoundStats::default()
        }
    );
}

#[test]
fn a_bad_crc_is_counted_and_never_emitted() {
    let (_, mut assembler) = assembler();
    let mut bad = message(7);
    bad[40] ^= 0x01;
    let good = message(8);
    let got = feed(&mut assembler, bad.chunks(8).chain(good.chunks(8)));
    assert_eq!(got, vec![good]);
    let stats = assembler.stats();
    assert_eq!(
        (stats.messages, stats.check_failures, stats.incomplete),
        (1, 1, 0)
    );
}

#[test]
fn an_impossible_count_is_counted() {
    let (_, mut assembler) = assembler();
    assert_eq!(
        assembler.handle_frame(&[0x82, 0x81, 0x80, 0xFF, 0, 0, 0, 0]),
        None
    );
    assert_eq!(assembler.stats().bad_lengths, 1);
    assert_eq!(assembler.handle_frame(&[0; 8]), None);
    assert_eq!(assembler.stats().stray_frames, 1);
}

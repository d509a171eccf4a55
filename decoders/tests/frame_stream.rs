//! Property tests of the serial stream framer: any split of a valid byte stream into chunks
//! yields the same frames and counts; garbage between frames is skipped and counted; a
//! corrupted frame is dropped without losing its neighbours.

use decoders::frame::{CheckKind, FramePlan, FramerStats, StreamFramer};
use proptest::prelude::*;

const SERIAL: &str = include_str!("../definitions/example_serial_ecu.toml");

fn framer() -> StreamFramer {
    let plan = FramePlan::load("example_serial_ecu.toml", SERIAL).expect("loads");
    StreamFramer::new(plan.framing()).expect("delimited")
}

fn frame(counter: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xAA, 0x55, payload.len() as u8, counter, id];
    out.extend_from_slice(payload);
    let crc = CheckKind::Crc16CcittFalse.compute(&out[2..]) as u16;
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Runs the framer over `stream` cut at `cuts` (sorted positions).
fn run(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, FramerStats) {
    let (frames, stats, _) = run_pending(stream, cuts);
    (frames, stats)
}

/// [`run`], also giving the bytes left pending at the end.
fn run_pending(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, FramerStats, usize) {
    let mut framer = framer();
    let mut frames = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(start, stream.len());
        framer.push(&stream[start..cut], |f| frames.push(f.to_vec()));
        assert!(framer.pending_len() <= 64);
        start = cut;
    }
    (frames, framer.stats(), framer.pending_len())
}

fn frames() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..30)),
        1..12,
    )
    .prop_map(|specs| {
        specs
            .iter()
            .enumerate()
            .map(|(i, (id, payload))| frame(i as u8, *id, payload))
            .collect()
    })
}

/// Garbage that cannot start a frame (no 0xAA), so every byte of it must be skipped.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("not a sync start", |b| *b != 0xAA),
        0..20,
    )
}

proptest! {
    #[test]
    fn any_split_yields_the_same_frames(
        frames in frames(),
        mut cuts in prop::collection::vec(0usize..600, 0..20),
    ) {
        let stream = frames.concat();
        cuts.sort_unstable();
        let (whole, whole_stats) = run(&stream, &[]);
        let (split, split_stats) = run(&stream, &cuts);
        let bytewise: Vec<usize> = (1..stream.len()).collect();
        let (single, single_stats) = run(&stream, &bytewise);
        prop_assert_eq!(&whole, &frames);
        prop_assert_eq!(&split, &frames);
        prop_assert_eq!(&single, &frames);
        prop_assert_eq!(whole_stats, split_stats);
        prop_assert_eq!(whole_stats, single_stats);
        prop_assert_eq!(whole_stats.resyncs + whole_stats.counter_gaps, 0);
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_counted(
        parts in prop::collection::vec((garbage(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..20)), 1..10),
        mut cuts in prop::collection::vec(0usize..500, 0..10),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, (junk, id, payload)) in parts.iter().enumerate() {
            stream.extend_from_slice(junk);
            let f = frame(i as u8, *id, payload);
            stream.extend_from_slice(&f);
            want.push(f);
        }
        cuts.sort_unstable();
        let (got, stats) = run(&stream, &cuts);
        prop_assert_eq!(got, want);
        let junk_bytes: usize = parts.iter().map(|(j, _, _)| j.len()).sum();
        let junk_runs = parts.iter().filter(|(j, _, _)| !j.is_empty()).count();
        prop_assert_eq!(stats.skipped_bytes, junk_bytes as u64);
        prop_assert_eq!(stats.resyncs, junk_runs as u64);
        prop_assert_eq!(stats.check_failures, 0);
    }

    #[test]
    fn a_corrupted_frame_is_dropped_and_its_neighbours_kept(
        frames in frames(),
        victim in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let victim = victim.index(frames.len());
        let mut corrupted = frames.clone();
        let byte = at.index(corrupted[victim].len());
        corrupted[victim][byte] ^= flip;
        // A corrupted length may announce a frame longer than what follows: the framer then waits
        // for more bytes. One `max_length` of filler settles every candidate.
        let mut stream = corrupted.concat();
        stream.extend_from_slice(&[0u8; 64]);
        let (got, stats, pending) = run_pending(&stream, &[]);
        let want: Vec<Vec<u8>> = frames.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, f)| f.clone()).collect();
        prop_assert_eq!(got, want);
        prop_assert!(stats.resyncs >= 1);
        prop_assert_eq!(pending, 0);
        let lost = u64::from(victim > 0 && victim + 1 < frames.len());
        prop_assert_eq!(stats.lost_frames, lost);
    }
}

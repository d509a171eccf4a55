//! Property tests for the CAN transports in `decoders::wire`: arbitrary bytes never panic any
//! parser or the SLCAN framer and cost bounded work; encode → parse round-trips every valid
//! frame; and any split of a valid SLCAN stream yields the same lines.

use decoders::wire::{candump, cannelloni, slcan};
use decoders::{CanFlags, CanFrame, CanId};
use proptest::prelude::*;

/// Payload lengths a CAN FD frame can have on the bus (SLCAN can carry only these).
const FD_LENS: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];

fn any_id() -> impl Strategy<Value = CanId> {
    prop_oneof![
        (0..=CanId::MAX_STANDARD).prop_map(|id| CanId::standard(id).expect("in range")),
        (0..=CanId::MAX_EXTENDED).prop_map(|id| CanId::extended(id).expect("in range")),
    ]
}

/// Any frame SLCAN can carry: classic data, remote, or FD with a table length.
fn slcan_frame() -> impl Strategy<Value = CanFrame> {
    let classic = (any_id(), prop::collection::vec(any::<u8>(), 0..=8))
        .prop_map(|(id, data)| CanFrame::new(id, CanFlags::empty(), &data).expect("<= 8"));
    let remote = (any_id(), 0u8..=8).prop_map(|(id, dlc)| CanFrame::remote(id, dlc).expect("dlc"));
    let fd = (any_id(), prop::sample::select(&FD_LENS[..]), any::<bool>()).prop_flat_map(
        |(id, len, brs)| {
            prop::collection::vec(any::<u8>(), len).prop_map(move |data| {
                let flags = if brs {
                    CanFlags::FD.with(CanFlags::BRS)
                } else {
                    CanFlags::FD
                };
                CanFrame::new(id, flags, &data).expect("<= 64")
            })
        },
    );
    prop_oneof![classic, remote, fd]
}

/// Any frame at all: also FD lengths off the table, ESI, and error frames.
fn any_frame() -> impl Strategy<Value = CanFrame> {
    let fd = (any_id(), prop::collection::vec(any::<u8>(), 0..=64), 0u8..4).prop_map(
        |(id, data, bits)| {
            let mut flags = CanFlags::FD;
            if bits & 1 != 0 {
                flags = flags.with(CanFlags::BRS);
            }
            if bits & 2 != 0 {
                flags = flags.with(CanFlags::ESI);
            }
            CanFrame::new(id, flags, &data).expect("<= 64")
        },
    );
    let error = (
        0..=CanId::MAX_EXTENDED,
        prop::collection::vec(any::<u8>(), 0..=8),
    )
        .prop_map(|(class, data)| {
            let id = CanId::extended(class).expect("in range");
            CanFrame::new(id, CanFlags::ERROR, &data).expect("<= 8")
        });
    prop_oneof![slcan_frame(), fd, error]
}

/// A valid adapter stream: frame lines and replies, each CR-terminated except BEL.
fn slcan_stream() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![
        (slcan_frame(), prop::option::of(0u16..60_000)).prop_map(|(frame, ts)| {
            let mut out = Vec::new();
            slcan::encode_frame(&frame, ts, &mut out);
            out
        }),
        Just(b"\r".to_vec()),
        Just(vec![slcan::BEL]),
        Just(b"z\r".to_vec()),
        Just(b"V1013\r".to_vec()),
    ];
    prop::collection::vec(item, 0..20).prop_map(|items| items.concat())
}

/// Every line (or error) the framer yields for `chunks`, owned.
fn frame_lines<'c>(chunks: impl IntoIterator<Item = &'c [u8]>) -> Vec<Result<Vec<u8>, String>> {
    let mut framer = slcan::SlcanFramer::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        framer.push(chunk, |line| {
            lines.push(line.map(<[u8]>::to_vec).map_err(|e| e.to_string()));
        });
        assert!(framer.pending_len() <= slcan::MAX_LINE_LEN);
    }
    lines
}

/// Cuts `bytes` at the given (unsorted, possibly repeated) positions.
fn split_at_points(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|c| *c %= bytes.len() + 1);
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}

proptest! {
    #[test]
    fn cannelloni_never_panics_and_is_bounded(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(datagram) = cannelloni::parse_datagram(&bytes) {
            // Each record takes at least 5 bytes, plus one trailing error at most.
            let items = datagram.frames().count();
            prop_assert!(items <= bytes.len() / 5 + 1);
            prop_assert!(items <= usize::from(datagram.count()) + 1);
        }
    }

    #[test]
    fn text_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = slcan::parse_line(&bytes);
        let _ = candump::parse_line(&bytes);
    }

    #[test]
    fn text_parsers_never_panic_on_near_misses(
        text in "(\\([0-9]{1,12}\\.[0-9]{1,9}\\) [a-z0-9]{1,6} )?[0-9A-Fa-f#R._]{0,40}",
        letter in prop::sample::select(&b"tTrRdDbBzZVNF\x07"[..]),
    ) {
        let _ = candump::parse_line(text.as_bytes());
        let line = [&[letter][..], text.as_bytes()].concat();
        let _ = slcan::parse_line(&line);
    }

    #[test]
    fn framer_never_panics_and_stays_bounded(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let lines = frame_lines(split_at_points(&bytes, cuts));
        for line in lines.into_iter().flatten() {
            prop_assert!(line.len() <= slcan::MAX_LINE_LEN);
        }
    }

    #[test]
    fn framer_output_is_independent_of_chunking(
        stream in slcan_stream(),
        junk in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        // Junk (possibly an over-long line) first, then a valid stream: the split must not
        // change the lines, the errors or their offsets.
        let bytes = [junk, stream].concat();
        let whole = frame_lines([&bytes[..]]);
        let bytewise = frame_lines(bytes.chunks(1));
        let split = frame_lines(split_at_points(&bytes, cuts));
        prop_assert_eq!(&whole, &bytewise);
        prop_assert_eq!(&whole, &split);
    }

    #[test]
    fn framer_yields_the_lines_of_a_valid_stream(stream in slcan_stream()) {
        for line in frame_lines([&stream[..]]) {
            let line = line.map_err(TestCaseError::fail)?;
            let parsed = slcan::parse_line(&line);
            prop_assert!(
                !matches!(parsed, Err(_) | Ok(slcan::SlcanLine::Unknown(_))),
                "{:?} -> {:?}", line, parsed
            );
        }
    }

    #[test]
    fn cannelloni_round_trips(frames in prop::collection::vec(any_frame(), 0..40), seq: u8) {
        let mut out = vec![0xAA; 7];
        cannelloni::encode_datagram(seq, &frames, &mut out);
        let datagram = cannelloni::parse_datagram(&out[7..]).expect("own output");
        prop_assert_eq!(datagram.sequence(), seq);
        let back: Vec<_> = datagram.frames().collect::<Result<_, _>>().expect("own output");
        prop_assert_eq!(back, frames);
    }

    #[test]
    fn cannelloni_packer_respects_the_mtu(
        frames in prop::collection::vec(any_frame(), 0..80),
        mtu in 75usize..1500,
    ) {
        let mut packer = cannelloni::DatagramPacker::new(&frames, 0, mtu);
        let mut back = Vec::new();
        let mut out = Vec::new();
        while let Some(n) = packer.poll_datagram(&mut out) {
            prop_assert!(out.len() <= mtu && n > 0);
            let datagram = cannelloni::parse_datagram(&out).expect("own output");
            for frame in datagram.frames() {
                back.push(frame.expect("own output"));
            }
            out.clear();
        }
        prop_assert_eq!(back, frames);
    }

    #[test]
    fn slcan_round_trips(frame in slcan_frame(), ts in prop::option::of(0u16..60_000)) {
        let mut out = b"junk".to_vec();
        slcan::encode_frame(&frame, ts, &mut out);
        prop_assert_eq!(out.pop(), Some(slcan::CR));
        let parsed = slcan::parse_line(&out[4..]).expect("own output");
        prop_assert_eq!(parsed, slcan::SlcanLine::Frame { frame, timestamp_ms: ts });
    }

    #[test]
    fn candump_round_trips(
        frame in any_frame(),
        micros in 0u64..=18_000_000_000_000_000,
        iface in "[a-z][a-z0-9]{0,14}",
    ) {
        let time_ns = micros * 1000;
        let mut out = String::from("junk");
        candump::write_line(time_ns, &iface, &frame, &mut out);
        let line = candump::parse_line(&out.as_bytes()[4..]).expect("own output");
        prop_assert_eq!((line.time_ns, line.interface(), line.frame), (time_ns, iface.as_str(), frame));
    }
}

// Crash regressions found by fuzzing go below, one named test each (none yet).

#[test]
fn timestamp_unwrapper_is_monotonic_across_wraps() {
    let mut clock = slcan::TimestampUnwrapper::new(5);
    let mut last = 0;
    for ms in (0..200_000u32).step_by(7_919) {
        let now = clock.unwrap_ms((ms % 60_000) as u16);
        assert!(now >= last);
        last = now;
    }
    assert_eq!(
        last,
        5 + u64::from((200_000 / 7_919) * 7_919u32) * 1_000_000
    );
}

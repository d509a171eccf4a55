//! Fuzz target: a channel map holding frame definitions must never panic on what sources hand
//! it. Arbitrary bytes are fed as CAN frames of the id carrying the MoTeC compound message
//! (reassembly, check, decode) and, whole, as an F1 24 datagram; every row that comes out has
//! exactly its format's width.
#![no_main]

use decoders::channel_map::{ChannelMap, DefinitionUse, Selection};
use decoders::dbc::Dbc;
use decoders::frame::FrameDefinition;
use decoders::{CanFlags, CanFrame, CanId, RowBatch};
use libfuzzer_sys::fuzz_target;

const MOTEC: &str = include_str!("../../definitions/motec_dash_can.toml");
const F1_24: &str = include_str!("../../definitions/f1_24_car_telemetry.toml");

fuzz_target!(|data: &[u8]| {
    let motec = FrameDefinition::parse("motec_dash_can.toml", MOTEC).expect("loads");
    let f1 = FrameDefinition::parse("f1_24_car_telemetry.toml", F1_24).expect("loads");
    let id = CanId::standard(0x5F0).expect("valid id");
    let uses = [
        DefinitionUse { definition: &motec, can_id: Some(id) },
        DefinitionUse { definition: &f1, can_id: None },
    ];
    let selection = Selection { application: "Fuzz".into(), ..Selection::default() };
    let mut map = ChannelMap::compile_with(&Dbc::default(), &uses, &selection).expect("compiles");
    let mut rows = RowBatch::new();
    // Each CAN frame: one length byte (0..=8), then that many data bytes.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len % 9).min(tail.len());
        let frame = CanFrame::new(id, CanFlags::empty(), &tail[..len]).expect("classic frame");
        let _ = map.decode(0, &frame, &mut rows);
        rest = &tail[len..];
    }
    let f1_index = map.definition_index("f1_24_car_telemetry").expect("loaded");
    let _ = map.decode_definition(f1_index, 0, data, &mut rows);
    for (header, values) in rows.rows() {
        let format = map.format(header.format).expect("rows name known formats");
        assert_eq!(values.len(), format.parameters.len());
    }
});

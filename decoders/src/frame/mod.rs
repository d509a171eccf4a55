//! Frame definition files: an engineer describes a native binary frame in TOML and the bridge
//! decodes it at full speed with no new Rust code.
//!
//! The path: [`FrameDefinition::parse`] validates the text once (errors name file, line and
//! problem); [`FramePlan::compile`] turns it into dense plans and a [`Parameter`] list;
//! [`FramePlan::decode`] turns one whole frame into one row of a caller-owned
//! [`crate::RowBatch`] without strings or allocation. Byte streams (serial) are cut into frames
//! by [`StreamFramer`]; messages spread over consecutive CAN frames are rebuilt by
//! [`CompoundAssembler`]. Checks live in [`crc`]. The format is documented in
//! `docs/frame-definitions.md`; shipped definitions are in `decoders/definitions/`.
//!
//! Like the rest of the crate: no IO, no clock, no logging; time is an argument.
//!
//! [`Parameter`]: crate::channel_map::Parameter

mod compound;
pub mod crc;
mod definition;
mod expand;
mod framer;
mod framing;
mod plan;
mod schema;
mod value;

pub use compound::{CompoundAssembler, CompoundStats};
pub use crc::CheckKind;
pub use definition::{
    DEFAULT_MAX_LENGTH, DefinitionError, FieldDef, FrameDefinition, MAX_FIELDS, MAX_FRAME_LENGTH,
    MessageDef, Selector,
};
pub use framer::{FramerError, FramerStats, SequenceTracker, StreamFramer};
pub use framing::{Check, Framing, LengthField, LengthUnit};
pub use plan::{FramePlan, MAX_SELECTORS, NativeOutcome};
pub use value::{Endian, FieldLayout, ValueType, read_uint};

//! Sans-IO decoders for ECU telemetry: bytes and a channel map go in, timestamped samples come out.
//!
//! The contract every module keeps:
//! - **No IO, no clock, no logging.** Nothing here opens a socket or file, reads `Instant::now`
//!   (banned by `clippy.toml`) or logs. Time is always an argument (`time_ns`, nanoseconds since
//!   the UNIX epoch), so the daemon decides between capture and receive time.
//! - **Caller-owned output.** Decoders push into buffers the caller owns and reuses
//!   ([`sample::RowBatch`]); the hot path allocates nothing per frame.
//! - **Never panic on input.** Malformed bytes give a [`DecodeError`] carrying the offset;
//!   "not enough bytes yet" is `Ok(None)`; an unrecognised message is a value the caller counts.
//! - **Load-time errors name their place.** DBC problems carry file, line and column
//!   ([`dbc::DbcError`]); survivable quirks of real files become [`dbc::DbcWarning`]s.
//!
//! Modules: [`can`] (the CAN frame type), [`wire`] (CAN transports: cannelloni, SLCAN,
//! candump logs), [`dbc`] (DBC channel maps and signal bit-twiddling), [`frame`] (native binary
//! frames described by TOML definition files), [`channel_map`] (a car's selection of DBC
//! signals and definition fields compiled into a dense decode plan), [`ini`] (TunerStudio INI
//! channel maps and the serial protocol of polled ECUs), [`profiles`] (built-in DBCs for
//! aftermarket ECU broadcasts, compiled in), [`laps`] (laps from the car's lap signals),
//! [`sample`] (decoded output).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod can;
pub mod channel_map;
pub mod dbc;
pub mod error;
pub mod frame;
pub mod ini;
pub mod laps;
pub mod profiles;
pub mod sample;
pub mod wire;

pub use can::{CanFlags, CanFrame, CanId};
pub use error::DecodeError;
pub use sample::{RowBatch, RowHeader};

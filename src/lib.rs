//! ecu-bridge: carries ECU telemetry into the Open Streaming Stream API.
//!
//! Stages, joined by bounded channels (capacity `batch.channel_capacity` batches each):
//!
//! ```text
//! source ──SourceBatch──▶ decode ──Decoded──▶ batch ──Batch──▶ publish ──gRPC──▶ Stream API
//! ```
//!
//! When a channel is full: replay and serial sources block, so nothing is lost and
//! the capture or the adapter waits; a UDP source drops the batch and counts it (an ECU cannot
//! be slowed down); every later edge blocks. Shutdown cancels only the sources;
//! each later stage ends when its input closes, and publish ends the Open Streaming session.

pub mod batch;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod init;
pub mod live_values;
pub mod pipeline;
pub mod publish;
pub mod service;
pub mod simulate;
pub mod source;
pub mod spool;
pub mod telemetry;
pub mod watch;

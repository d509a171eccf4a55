//! ecu-bridge: carries ECU telemetry into the Open Streaming Stream API.
//!
//! Stages, joined by bounded channels (capacity `batch.channel_capacity` batches each):
//!
//! ```text
//! source ──SourceBatch──▶ decode ──Decoded──▶ batch ──Batch──▶ publish ──gRPC──▶ Stream API
//! ```
//!
//! When a channel is full: replay (and, later, serial) sources block, so nothing is lost and
//! the capture simply waits; every later edge blocks too. Shutdown cancels only the sources;
//! each later stage ends when its input closes, and publish ends the Open Streaming session.

pub mod batch;
pub mod capture;
pub mod config;
pub mod configuration;
pub mod decode;
pub mod live;
pub mod pipeline;
pub mod producer;
pub mod proto;
pub mod publish;
pub mod row_encoding;
pub mod service;
pub mod source;
pub mod spool;
pub mod stream_api;
pub mod telemetry;

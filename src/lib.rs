//! ecu-bridge library (skeleton).
pub mod proto;
pub mod stream_api;
